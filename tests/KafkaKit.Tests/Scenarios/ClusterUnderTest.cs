using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Scenarios;

/// <summary>
/// The Kafka cluster a scenario runs against: the embedded cluster or a real broker. It says what a scenario may expect
/// of it where the two differ (DESIGN.md, "Where the embedded cluster differs") and which faults it can inject. Scenarios
/// create their own topics and groups with unique names, so several can share one cluster.
/// </summary>
internal abstract class ClusterUnderTest : IAsyncDisposable
{
    /// <summary>Gets what the cluster is, for the test output.</summary>
    public abstract string Name { get; }

    /// <summary>Gets the bootstrap servers.</summary>
    public abstract string BootstrapServers { get; }

    /// <summary>
    /// Gets whether the brokers deduplicate the batches an idempotent producer retries. A real broker does, so a scenario
    /// asserts zero duplicates there; the embedded cluster does not enforce idempotence for non-transactional producers
    /// and may write a retried batch twice, so there a scenario counts duplicates instead.
    /// </summary>
    public abstract bool DeduplicatesRetriedBatches { get; }

    /// <summary>
    /// Gets a generous bound on one group change here (a member joining or leaving, or a member that died being evicted
    /// after <c>session.timeout.ms</c>). The embedded cluster completes a rebalance of a non-empty group only after
    /// <c>session.timeout.ms</c> - 1 s; a broker as soon as every member has rejoined.
    /// </summary>
    public abstract TimeSpan GroupChangeTimeout { get; }

    /// <summary>Gets why the brokers cannot be taken down and brought back here, or <see langword="null"/> when they can.</summary>
    public abstract string? OutageUnsupportedReason { get; }

    /// <summary>Creates a unique topic or group name: <paramref name="prefix"/> and a random suffix.</summary>
    public static string UniqueName(string prefix) => $"{prefix}-{Guid.NewGuid():N}";

    /// <summary>Creates a topic with a unique name starting with <paramref name="prefix"/>; returns the name.</summary>
    public async Task<string> NewTopicAsync(string prefix, int partitions)
    {
        var topic = UniqueName(prefix);
        await CreateTopicAsync(topic, partitions);
        return topic;
    }

    /// <summary>Creates a topic and returns once every partition has a leader.</summary>
    public abstract Task CreateTopicAsync(string topic, int partitions);

    /// <summary>Takes every broker down (see <see cref="OutageUnsupportedReason"/>).</summary>
    public abstract Task SetBrokersDownAsync();

    /// <summary>Brings every broker back after <see cref="SetBrokersDownAsync"/>.</summary>
    public abstract Task SetBrokersUpAsync();

    /// <summary>
    /// Consumer options for <paramref name="group"/> on this cluster: KafkaKit's and librdkafka's defaults, plus only what
    /// this cluster needs for group changes to fit in test time, with the group protocol <paramref name="protocol"/>.
    /// </summary>
    public KafkaConsumerOptions ConsumerOptions(string group, string topic, Confluent.Kafka.GroupProtocol protocol = Confluent.Kafka.GroupProtocol.Classic)
    {
        var options = new KafkaConsumerOptions { BootstrapServers = BootstrapServers, GroupId = group, Topics = { topic }, GroupProtocol = protocol };
        AddGroupSettings(options);
        return options;
    }

    public abstract ValueTask DisposeAsync();

    /// <summary>Adds the group settings this cluster needs for <see cref="KafkaConsumerOptions.GroupProtocol"/> (none by default).</summary>
    protected virtual void AddGroupSettings(KafkaConsumerOptions options)
    {
    }
}

/// <summary>An embedded cluster of one broker, started for one scenario and disposed with it.</summary>
internal sealed class EmbeddedClusterUnderTest(EmbeddedKafkaCluster cluster) : ClusterUnderTest
{
    public override string Name => "embedded cluster";

    public override string BootstrapServers => cluster.BootstrapServers;

    public override bool DeduplicatesRetriedBatches => false;

    /// <summary>About 5 s per rebalance with session.timeout.ms=6000, 11 s for an eviction; room for a loaded machine.</summary>
    public override TimeSpan GroupChangeTimeout => TimeSpan.FromSeconds(30);

    public override string? OutageUnsupportedReason => null;

    public static EmbeddedClusterUnderTest Start() => new(EmbeddedKafkaCluster.Start());

    public override Task CreateTopicAsync(string topic, int partitions)
    {
        cluster.CreateTopic(topic, partitions);
        return Task.CompletedTask;
    }

    public override Task SetBrokersDownAsync()
    {
        for (var broker = 1; broker <= cluster.BrokerCount; broker++)
        {
            cluster.SetBrokerDown(broker);
        }

        return Task.CompletedTask;
    }

    public override Task SetBrokersUpAsync()
    {
        for (var broker = 1; broker <= cluster.BrokerCount; broker++)
        {
            cluster.SetBrokerUp(broker);
        }

        return Task.CompletedTask;
    }

    public override ValueTask DisposeAsync() => cluster.DisposeAsync();

    /// <summary>
    /// session.timeout.ms=6000 and 500 ms heartbeats: rebalances of ~5 s instead of 44 s (KafkaProbe.FastGroup); under the
    /// consumer group protocol the cluster's own session timeout and heartbeat interval instead (KafkaProbe.FastConsumerGroups).
    /// </summary>
    protected override void AddGroupSettings(KafkaConsumerOptions options)
    {
        if (options.GroupProtocol == Confluent.Kafka.GroupProtocol.Consumer)
        {
            KafkaProbe.FastConsumerGroups(cluster);
        }
        else
        {
            KafkaProbe.FastGroup(options.Config);
        }
    }
}
