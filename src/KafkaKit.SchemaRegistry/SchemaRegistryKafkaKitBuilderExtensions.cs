using Confluent.SchemaRegistry;
using KafkaKit.DependencyInjection;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KafkaKit.SchemaRegistry;

/// <summary>Registers the Schema Registry client KafkaKit's Avro and JSON Schema serdes use.</summary>
public static partial class SchemaRegistryKafkaKitBuilderExtensions
{
    /// <summary>The configuration section of the registry settings.</summary>
    public const string SectionName = "KafkaKit:SchemaRegistry";

    /// <summary>
    /// Registers <see cref="SchemaRegistryOptions"/> bound from <c>KafkaKit:SchemaRegistry</c> of the application's
    /// <c>IConfiguration</c> (then <paramref name="configure"/>), validated when the host starts (every problem listed
    /// in one <see cref="OptionsValidationException"/>), and a singleton <see cref="ISchemaRegistryClient"/> (Confluent's
    /// <see cref="CachedSchemaRegistryClient"/>: schemas and ids are cached, each looked up once) unless one is
    /// registered already. Producers and consumers use it through <c>UseAvro(sp)</c> / <c>UseJsonSchema(sp)</c>.
    /// </summary>
    /// <param name="builder">The KafkaKit builder.</param>
    /// <param name="configure">Optional: changes after binding (e.g. the URL of an embedded registry in tests).</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="builder"/> is null.</exception>
    public static KafkaKitBuilder AddSchemaRegistry(this KafkaKitBuilder builder, Action<SchemaRegistryOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = builder.Services.AddOptions<SchemaRegistryOptions>().BindConfiguration(SectionName);
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SchemaRegistryOptions>, Validator>());
        builder.Services.TryAddSingleton<ISchemaRegistryClient>(sp =>
        {
            var registry = sp.GetRequiredService<IOptions<SchemaRegistryOptions>>().Value;
            var logger = (sp.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger("KafkaKit.SchemaRegistry");
            ClientCreated(logger, registry.ToString());
            return new CachedSchemaRegistryClient(registry.ToClientConfig());
        });
        return builder;
    }

    [LoggerMessage(4120, LogLevel.Information, "Schema registry client: {Settings}")]
    private static partial void ClientCreated(ILogger logger, string settings);

    /// <summary>Reports every problem at once.</summary>
    private sealed class Validator : IValidateOptions<SchemaRegistryOptions>
    {
        public ValidateOptionsResult Validate(string? name, SchemaRegistryOptions options)
        {
            var problems = options.Validate();
            return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
        }
    }
}
