using System.Collections.Concurrent;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using KafkaKit.Testing;
using KafkaKit.Topics;

namespace KafkaKit.Tests.Topics;

/// <summary>
/// The Admin API calls of topic declaration on the embedded cluster, which answers Metadata but not CreateTopics:
/// metadata from a real admin client, creation through the cluster's own call. Records what it was asked to create.
/// </summary>
internal sealed class EmbeddedTopicAdmin(EmbeddedKafkaCluster cluster) : ITopicAdmin
{
    private readonly IAdminClient _admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = cluster.BootstrapServers }).SetLogHandler(static (_, _) => { }).Build();

    public ConcurrentQueue<TopicSpecification> Created { get; } = new();

    public Metadata GetMetadata(TimeSpan timeout) => _admin.GetMetadata(timeout);

    public Task CreateTopicsAsync(IEnumerable<TopicSpecification> topics, CreateTopicsOptions options)
    {
        foreach (var topic in topics)
        {
            // -1 asks for the broker's default; the embedded cluster's CreateTopic needs numbers.
            cluster.CreateTopic(topic.Name, Math.Max(1, topic.NumPartitions), Math.Max((short)1, topic.ReplicationFactor));
            Created.Enqueue(topic);
        }

        return Task.CompletedTask;
    }

    public void Dispose() => _admin.Dispose();
}
