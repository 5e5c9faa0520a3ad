using Microsoft.Extensions.Configuration;

namespace KafkaKit.DependencyInjection;

/// <summary>The names registered through <see cref="KafkaKitBuilder"/> (one per service collection), for validation.</summary>
internal sealed class KafkaKitRegistry
{
    private readonly HashSet<string> _producers = new(StringComparer.Ordinal);
    private readonly HashSet<string> _consumers = new(StringComparer.Ordinal);
    private readonly HashSet<string> _shareConsumers = new(StringComparer.Ordinal);

    public IReadOnlyCollection<string> Producers => _producers;

    public IReadOnlyCollection<string> Consumers => _consumers;

    public IReadOnlyCollection<string> ShareConsumers => _shareConsumers;

    /// <summary>Gets or sets the configuration section KafkaKit's options are bound from, when they are.</summary>
    public IConfiguration? Configuration { get; set; }

    /// <summary>
    /// Gets whether the configuration has an entry <c>section:name</c> that the binder left out of the options: it drops a
    /// whole dictionary entry when one of its values does not convert, and <see cref="ConfigurationBindingValidator"/>
    /// names that value. Validating the defaults in its place would only add unrelated problems.
    /// </summary>
    public bool IsDroppedByBinder(string section, string name) =>
        Configuration?.GetSection(section).GetSection(name).Exists() == true;

    /// <summary>
    /// The options of <c>section:name</c>: the bound ones, or for an entry the binder dropped (see
    /// <see cref="IsDroppedByBinder"/>) its convertible values bound one by one, so that they are validated too.
    /// </summary>
    /// <param name="bound">The options the binder made, by name.</param>
    /// <param name="section">The section under KafkaKit (<c>Consumers</c>...).</param>
    /// <param name="name">The client's name.</param>
    /// <param name="left">Receives the options of a dropped entry left at their defaults (their values did not convert).</param>
    /// <returns>The options to validate.</returns>
    public T OptionsOf<T>(IDictionary<string, T> bound, string section, string name, List<string> left)
        where T : new() =>
        bound.TryGetValue(name, out var own) ? own
        : IsDroppedByBinder(section, name) ? ConfigurationBindingValidator.BindLeniently<T>(Configuration!.GetSection(section).GetSection(name), left)
        : new T();

    public void AddProducer(string name)
    {
        if (!_producers.Add(name))
        {
            throw new InvalidOperationException($"A KafkaKit producer named '{name}' is registered already; producer names must be unique.");
        }
    }

    public void AddConsumer(string name)
    {
        if (!_consumers.Add(name))
        {
            throw new InvalidOperationException($"A KafkaKit consumer named '{name}' is registered already; consumer names must be unique.");
        }
    }

    public void AddShareConsumer(string name)
    {
        if (!_shareConsumers.Add(name))
        {
            throw new InvalidOperationException($"A KafkaKit share consumer named '{name}' is registered already; share consumer names must be unique.");
        }
    }
}
