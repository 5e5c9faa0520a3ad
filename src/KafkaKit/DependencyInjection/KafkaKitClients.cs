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

    /// <summary>Gets or sets the problems of the declared topics found at start (empty when none, or none declared), for health checks.</summary>
    public IReadOnlyList<string> TopicProblems { get; set; } = [];

    public IReadOnlyList<KafkaClientHealth> Snapshot()
    {
        lock (_gate)
        {
            return [.. _clients];
        }
    }
}
