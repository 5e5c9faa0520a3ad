using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Producing;
using KafkaKit.Testing;

namespace KafkaKit.Benchmarks;

/// <summary>
/// What every benchmark shares: the embedded cluster, the payload and the client settings, so KafkaKit and the raw
/// Confluent.Kafka baseline run with the same librdkafka configuration against the same cluster.
/// </summary>
internal static class BenchmarkEnvironment
{
    /// <summary>The value size of every benchmark message, bytes.</summary>
    public const int ValueSize = 100;

    /// <summary>The longest a single invocation may wait for its messages before it fails (instead of hanging CI).</summary>
    public static readonly TimeSpan InvocationTimeout = TimeSpan.FromSeconds(120);

    /// <summary>
    /// The consumers' <c>fetch.wait.max.ms</c> (librdkafka default 500 ms), the same on both sides. The embedded cluster
    /// answers a fetch that found no data only when this wait runs out, even if data arrives meanwhile (a real broker
    /// answers at once), so a consumer idle at the end of its partitions sees new messages up to this late. 5 ms bounds
    /// that start-up latency of each consume invocation to a few percent of it.
    /// </summary>
    public const int FetchWaitMaxMs = 5;

    /// <summary>The longest a consumer may take to join its group in a global setup.</summary>
    public static readonly TimeSpan JoinTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The librdkafka producer properties both sides use. <c>enable.idempotence</c> and <c>acks</c> are KafkaKit's
    /// defaults; the raw producer gets them explicitly so both run the same protocol.
    /// </summary>
    public static readonly KeyValuePair<string, string>[] ProducerProperties =
    [
        new("linger.ms", "5"),
        new("enable.idempotence", "true"),
        new("acks", "all"),
    ];

    /// <summary>Starts a one-broker embedded cluster (one per benchmark case: cases never share brokers or topics).</summary>
    /// <returns>The running cluster.</returns>
    public static EmbeddedKafkaCluster StartCluster() => EmbeddedKafkaCluster.Start(brokers: 1);

    /// <summary>Creates a 100-byte value with a fixed pattern (compression is off, so the content does not matter).</summary>
    /// <returns>The value.</returns>
    public static byte[] NewValue()
    {
        var value = new byte[ValueSize];
        for (var i = 0; i < value.Length; i++)
        {
            value[i] = (byte)('a' + (i % 26));
        }

        return value;
    }

    /// <summary>Builds a raw Confluent producer with the shared properties and quiet log/error handlers.</summary>
    /// <param name="cluster">The cluster.</param>
    /// <param name="extra">More librdkafka properties, or none.</param>
    /// <returns>The producer.</returns>
    public static IProducer<Null, byte[]> RawProducer(EmbeddedKafkaCluster cluster, params KeyValuePair<string, string>[] extra) =>
        RawProducer<Null>(cluster, extra);

    /// <summary>Builds a raw Confluent producer of <typeparamref name="TKey"/> keys with the shared properties and quiet log/error handlers.</summary>
    /// <typeparam name="TKey">The key type.</typeparam>
    /// <param name="cluster">The cluster.</param>
    /// <param name="extra">More librdkafka properties, or none.</param>
    /// <returns>The producer.</returns>
    public static IProducer<TKey, byte[]> RawProducer<TKey>(EmbeddedKafkaCluster cluster, params KeyValuePair<string, string>[] extra)
    {
        var config = new ProducerConfig { BootstrapServers = cluster.BootstrapServers };
        foreach (var (key, value) in ProducerProperties.Concat(extra))
        {
            config.Set(key, value);
        }

        return new ProducerBuilder<TKey, byte[]>(config)
            .SetLogHandler(static (_, _) => { })
            .SetErrorHandler(static (_, _) => { })
            .Build();
    }

    /// <summary>Builds a KafkaKit producer with the shared properties.</summary>
    /// <param name="cluster">The cluster.</param>
    /// <param name="onDeliveryFailed">Counts failed deliveries (of messages enqueued without a callback).</param>
    /// <param name="extra">More librdkafka properties, or none.</param>
    /// <returns>The producer.</returns>
    public static IKafkaProducer<Null, byte[]> KafkaKitProducer(EmbeddedKafkaCluster cluster, Action<DeliveryReport<Null, byte[]>> onDeliveryFailed, params KeyValuePair<string, string>[] extra)
    {
        var options = new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers };
        foreach (var (key, value) in ProducerProperties.Concat(extra))
        {
            options.Config[key] = value;
        }

        return new KafkaProducerBuilder<Null, byte[]>("kafkakit-bench-producer", options)
            .SetDeliveryFailedHandler(onDeliveryFailed)
            .Build();
    }

    /// <summary>
    /// Builds a raw Confluent consumer configured like KafkaKit's engine: auto-commit of explicitly stored offsets,
    /// earliest reset, cooperative-sticky, and the short session the embedded cluster needs.
    /// </summary>
    /// <param name="cluster">The cluster.</param>
    /// <param name="groupId">The group id.</param>
    /// <returns>The consumer (not subscribed).</returns>
    public static IConsumer<Ignore, byte[]> RawConsumer(EmbeddedKafkaCluster cluster, string groupId)
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = cluster.BootstrapServers,
            GroupId = groupId,
            EnableAutoCommit = true,
            EnableAutoOffsetStore = false,
            AutoCommitIntervalMs = 5000,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            PartitionAssignmentStrategy = Confluent.Kafka.PartitionAssignmentStrategy.CooperativeSticky,
            SessionTimeoutMs = 6000,
            HeartbeatIntervalMs = 500,
            FetchWaitMaxMs = FetchWaitMaxMs,
        };
        return new ConsumerBuilder<Ignore, byte[]>(config)
            .SetLogHandler(static (_, _) => { })
            .SetErrorHandler(static (_, _) => { })
            .Build();
    }

    /// <summary>The KafkaKit consumer options matching <see cref="RawConsumer"/> (everything else is KafkaKit's default).</summary>
    /// <param name="cluster">The cluster.</param>
    /// <param name="groupId">The group id.</param>
    /// <param name="topic">The topic.</param>
    /// <returns>The options.</returns>
    public static KafkaConsumerOptions KafkaKitConsumerOptions(EmbeddedKafkaCluster cluster, string groupId, string topic)
    {
        var options = new KafkaConsumerOptions { BootstrapServers = cluster.BootstrapServers, GroupId = groupId };
        options.Topics.Add(topic);
        options.Config["session.timeout.ms"] = "6000";
        options.Config["heartbeat.interval.ms"] = "500";
        options.Config["fetch.wait.max.ms"] = FetchWaitMaxMs.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return options;
    }

    /// <summary>
    /// Builds a producer that holds what it is given until flushed: <c>linger.ms</c> of a minute and batches large
    /// enough for a whole invocation (<c>batch.num.messages</c>, <c>batch.size</c>, <c>message.max.bytes</c>), so the
    /// consume benchmarks can queue a batch outside the measurement and release it to the cluster with one flush.
    /// </summary>
    /// <param name="cluster">The cluster.</param>
    /// <returns>The producer (byte keys: null for unkeyed messages).</returns>
    public static IProducer<byte[]?, byte[]> HoldingProducer(EmbeddedKafkaCluster cluster) => RawProducer<byte[]?>(
        cluster,
        new("linger.ms", "60000"),
        new("batch.num.messages", "1000000"),
        new("batch.size", "100000000"),
        new("message.max.bytes", "100000000"));

    /// <summary>Polls a raw consumer until it owns <paramref name="partitions"/> partitions (the group join, outside any measurement).</summary>
    /// <param name="consumer">The subscribed consumer.</param>
    /// <param name="partitions">The expected partition count.</param>
    /// <exception cref="InvalidOperationException">The join did not complete within <see cref="JoinTimeout"/>, or a message arrived early.</exception>
    public static void JoinRaw(IConsumer<Ignore, byte[]> consumer, int partitions)
    {
        var deadline = DateTime.UtcNow + JoinTimeout;
        while (consumer.Assignment.Count < partitions)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"The raw consumer owned {consumer.Assignment.Count} of {partitions} partitions after {JoinTimeout}.");
            }

            if (consumer.Consume(TimeSpan.FromMilliseconds(50)) is not null)
            {
                throw new InvalidOperationException("The raw consumer received a message before the benchmark fed any.");
            }
        }
    }

    /// <summary>Waits until a KafkaKit consumer owns <paramref name="partitions"/> partitions.</summary>
    /// <typeparam name="TKey">The key type.</typeparam>
    /// <typeparam name="TValue">The value type.</typeparam>
    /// <param name="consumer">The started consumer.</param>
    /// <param name="partitions">The expected partition count.</param>
    /// <returns>A task that completes once joined.</returns>
    /// <exception cref="InvalidOperationException">The join did not complete within <see cref="JoinTimeout"/>.</exception>
    public static async Task JoinKafkaKitAsync<TKey, TValue>(KafkaConsumer<TKey, TValue> consumer, int partitions)
    {
        var deadline = DateTime.UtcNow + JoinTimeout;
        while (consumer.Assignment.Count < partitions)
        {
            if (DateTime.UtcNow > deadline || consumer.State != KafkaConsumerState.Running)
            {
                throw new InvalidOperationException($"The KafkaKit consumer owned {consumer.Assignment.Count} of {partitions} partitions after {JoinTimeout} (state {consumer.State}, fault {consumer.Fault?.Message}).");
            }

            await Task.Delay(20).ConfigureAwait(false);
        }
    }
}
