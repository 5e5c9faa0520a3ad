using Confluent.Kafka;
using Confluent.Kafka.Admin;
using KafkaKit.Tests.Scenarios;
using KafkaKit.Tests.Support;
using Testcontainers.Kafka;

namespace KafkaKit.Tests.RealBroker;

/// <summary>
/// A real Kafka cluster shared by the tier's tests: the Testcontainers broker (which a test can pause and resume), or
/// the cluster at <c>KAFKAKIT_TEST_BOOTSTRAP_SERVERS</c> (which a test cannot control).
/// </summary>
internal sealed class RealBrokerUnderTest(string bootstrapServers, KafkaContainer? container) : ClusterUnderTest
{
    public override string Name => container is null
        ? $"real broker ({RealBrokerCluster.EnvironmentVariable}={bootstrapServers})"
        : $"real broker (Testcontainers, {RealBrokerCluster.Image})";

    public override string BootstrapServers => bootstrapServers;

    public override bool DeduplicatesRetriedBatches => true;

    /// <summary>A leave or join completes in well under a second; an eviction after session.timeout.ms; room for a slow cluster.</summary>
    public override TimeSpan GroupChangeTimeout => TimeSpan.FromSeconds(60);

    public override string? OutageUnsupportedReason => container is null
        ? $"Needs a broker the test can stop: runs with Testcontainers only (the cluster at {RealBrokerCluster.EnvironmentVariable} is not under the test's control)."
        : null;

    /// <summary>
    /// Creates the topic through the Admin API with the cluster's default replication factor (-1: 1 on the single-node
    /// container, the cluster's own setting elsewhere), then waits until the metadata shows a leader for every partition.
    /// </summary>
    public override async Task CreateTopicAsync(string topic, int partitions)
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrapServers }).Build();
        await admin.CreateTopicsAsync([new TopicSpecification { Name = topic, NumPartitions = partitions, ReplicationFactor = -1 }]);
        bool Ready()
        {
            try
            {
                var metadata = admin.GetMetadata(topic, TimeSpan.FromSeconds(5)).Topics.SingleOrDefault(t => t.Topic == topic);
                return metadata is { Error.Code: ErrorCode.NoError } && metadata.Partitions.Count == partitions && metadata.Partitions.All(p => p.Leader >= 0);
            }
            catch (KafkaException)
            {
                return false; // metadata not answered in time: ask again
            }
        }

        await Wait.ForAsync(Ready, TimeSpan.FromSeconds(30), $"every partition of the new topic {topic} has a leader");
    }

    /// <summary>Pauses the container: the broker stops answering, its connections stay open (the mapped port is kept).</summary>
    public override Task SetBrokersDownAsync() => Controllable().PauseAsync();

    public override Task SetBrokersUpAsync() => Controllable().UnpauseAsync();

    /// <summary>The broker is shared by the tier's tests: <see cref="RealBrokerCluster"/> disposes the container.</summary>
    public override ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private KafkaContainer Controllable() => container ?? throw new InvalidOperationException(OutageUnsupportedReason);
}
