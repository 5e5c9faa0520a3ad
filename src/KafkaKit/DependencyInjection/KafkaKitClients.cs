using KafkaKit.Consuming;
using KafkaKit.Producing;

namespace KafkaKit.DependencyInjection;

/// <summary>The producers and consumers built in one service provider, for health checks.</summary>
internal sealed class KafkaKitClients
{
    private readonly object _gate = new();
    private readonly List<object> _clients = [];

    public void Add(object client)
    {
        lock (_gate)
        {
            _clients.Add(client);
        }
    }

    public IReadOnlyList<object> Snapshot()
    {
        lock (_gate)
        {
            return [.. _clients];
        }
    }
}
