using System.Collections;
using System.Reflection;
using KafkaKit.Consuming;
using KafkaKit.Producing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace KafkaKit.DependencyInjection;

/// <summary>
/// Reports configuration values that cannot be converted to their option's type (an unknown enum name, a malformed
/// <see cref="TimeSpan"/>, a number that is not one), and keys that are no option at all (a misspelt name), in the
/// <c>Producers</c>, <c>Consumers</c>, <c>ShareConsumers</c> and <c>Topics</c> sections.
/// </summary>
/// <remarks>
/// The configuration binder throws for such a value in an ordinary property, but inside a dictionary entry it drops the
/// whole entry silently (dotnet/runtime#63792): the client would run on its defaults, or be reported for unrelated
/// missing settings. Each bad value is named here, by its configuration path, with what is allowed.
/// </remarks>
internal sealed class ConfigurationBindingValidator(IConfiguration configuration) : IValidateOptions<KafkaKitOptions>
{
    public ValidateOptionsResult Validate(string? name, KafkaKitOptions options)
    {
        var problems = new List<string>();
        foreach (var client in configuration.GetSection(nameof(KafkaKitOptions.Producers)).GetChildren())
        {
            Check(client, typeof(KafkaProducerOptions), problems);
        }

        foreach (var client in configuration.GetSection(nameof(KafkaKitOptions.Consumers)).GetChildren())
        {
            Check(client, typeof(KafkaConsumerOptions), problems);
        }

        foreach (var client in configuration.GetSection(nameof(KafkaKitOptions.ShareConsumers)).GetChildren())
        {
            Check(client, typeof(Sharing.KafkaShareConsumerOptions), problems);
        }

        foreach (var topic in configuration.GetSection(nameof(KafkaKitOptions.Topics)).GetChildren())
        {
            Check(topic, typeof(Topics.TopicDeclaration), problems);
        }

        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }

    private static void Check(IConfigurationSection section, Type type, List<string> problems)
    {
        foreach (var child in section.GetChildren())
        {
            var property = type.GetProperty(child.Key, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
            if (property is null)
            {
                // The binder ignores a key no property has: a misspelt option would silently keep its default.
                var known = type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Select(p => p.Name).Order(StringComparer.Ordinal);
                problems.Add($"'{child.Path}' is not a setting of {type.Name}: use one of {string.Join(", ", known)} (librdkafka properties go under Config).");
                continue;
            }

            if (typeof(IEnumerable).IsAssignableFrom(property.PropertyType) && property.PropertyType != typeof(string))
            {
                // Strings (topics, librdkafka properties: checked by librdkafka's own names) always convert; other
                // elements (e.g. TimeSpan delays) are checked one by one.
                var element = property.PropertyType.IsGenericType ? property.PropertyType.GetGenericArguments()[^1] : typeof(string);
                foreach (var item in element == typeof(string) ? [] : child.GetChildren().Where(c => c.Value is not null))
                {
                    try
                    {
                        _ = item.Get(element);
                    }
                    catch (InvalidOperationException)
                    {
                        problems.Add($"'{item.Path}={item.Value}' is not a valid {Describe(element)}.");
                    }
                }

                continue;
            }

            if (child.Value is null)
            {
                if (property.PropertyType.IsClass && property.PropertyType != typeof(string))
                {
                    Check(child, property.PropertyType, problems); // a nested options object, e.g. Retry
                }

                continue;
            }

            try
            {
                _ = child.Get(property.PropertyType);
            }
            catch (InvalidOperationException)
            {
                problems.Add($"'{child.Path}={child.Value}' is not a valid {Describe(property.PropertyType)}.");
            }
        }
    }

    /// <summary>
    /// Binds <paramref name="section"/> to new options value by value, leaving out the values that do not convert (which
    /// <see cref="Validate"/> names): the options of an entry the binder dropped, so that its other settings are validated
    /// too and every problem is listed at once.
    /// </summary>
    /// <param name="section">The entry's section.</param>
    /// <param name="left">Receives the options left at their defaults, as options name them in problems (<c>OnError</c>, <c>Retry.MaxDelay</c>).</param>
    internal static T BindLeniently<T>(IConfigurationSection section, List<string> left)
        where T : new()
    {
        var options = new T();
        BindLeniently(section, options, string.Empty, left);
        return options;
    }

    private static void BindLeniently(IConfigurationSection section, object target, string prefix, List<string> left)
    {
        foreach (var child in section.GetChildren())
        {
            var property = target.GetType().GetProperty(child.Key, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
            if (property is null)
            {
                continue;
            }

            var collection = typeof(IEnumerable).IsAssignableFrom(property.PropertyType) && property.PropertyType != typeof(string);
            if (child.Value is null && property.PropertyType.IsClass && property.PropertyType != typeof(string) && !collection)
            {
                if (property.GetValue(target) is { } nested)
                {
                    BindLeniently(child, nested, prefix + property.Name + ".", left);
                }

                continue;
            }

            try
            {
                if (collection && property.GetValue(target) is { } items)
                {
                    child.Bind(items);
                }
                else if (property.CanWrite)
                {
                    property.SetValue(target, child.Get(property.PropertyType));
                }
            }
            catch (InvalidOperationException)
            {
                left.Add(prefix + property.Name); // named by Validate; the option keeps its default here
            }
        }
    }

    private static string Describe(Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        return type.IsEnum ? $"{type.Name}: use one of {string.Join(", ", Enum.GetNames(type))}"
            : type == typeof(TimeSpan) ? "TimeSpan: use [d.]hh:mm:ss[.fff], e.g. 00:00:30 for 30 s"
            : type == typeof(bool) ? "bool: use true or false"
            : $"{type.Name}";
    }
}
