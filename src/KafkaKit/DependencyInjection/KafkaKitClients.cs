using KafkaKit.Hosting;

namespace KafkaKit.DependencyInjection;

/// <summary>The producers and consumers built in one service provider, for health checks.</summary>
internal sealed class KafkaKitClients
{
    private readonly object _gate = new();
    private readonly List<KafkaClientHealth> _clients = [];

    public void Add(KafkaClientHealth client)
    {
        lock (_gate)
        {
            _clients.Add(client);
        }
    }

    public IReadOnlyList<KafkaClientHealth> Snapshot()
    {
        lock (_gate)
        {
            return [.. _clients];
        }
    }
}
