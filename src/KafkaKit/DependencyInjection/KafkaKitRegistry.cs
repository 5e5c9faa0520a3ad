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
