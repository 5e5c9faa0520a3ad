using System.Globalization;
using System.Text;
using Confluent.Kafka;
using KafkaKit.Diagnostics;
using KafkaKit.Internal;
using KafkaKit.Producing;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Consuming;

/// <summary>
/// Produces failed messages, byte for byte, to a dead-letter topic with headers saying where they came from and why
/// they failed. The producer is created at the first failure (or by <see cref="Connect"/>), is idempotent with <c>acks=all</c>, and connects like its
/// consumer: it inherits the consumer's effective librdkafka properties (bootstrap servers, <c>security.protocol</c>,
/// <c>ssl.*</c>, <c>sasl.*</c>, <c>socket.*</c>, <c>client.rack</c>, <c>debug</c>...) except the consumer-only ones,
/// with <c>client.id</c> = the consumer's <c>client.id</c> + <c>"-dlt"</c>. Its librdkafka log lines and errors go to
/// the consumer's logger.
/// </summary>
internal sealed class DeadLetterPublisher : IDisposable
{
    /// <summary>Header with the source topic.</summary>
    public const string OriginalTopicHeader = "kafkakit-dlt-original-topic";

    /// <summary>Header with the source partition (decimal text).</summary>
    public const string OriginalPartitionHeader = "kafkakit-dlt-original-partition";

    /// <summary>Header with the source offset (decimal text).</summary>
    public const string OriginalOffsetHeader = "kafkakit-dlt-original-offset";

    /// <summary>Header with the consumer group that failed the message.</summary>
    public const string ConsumerGroupHeader = "kafkakit-dlt-consumer-group";

    /// <summary>Header with the exception's full type name.</summary>
    public const string ExceptionTypeHeader = "kafkakit-dlt-exception-type";

    /// <summary>Header with the exception's message.</summary>
    public const string ExceptionMessageHeader = "kafkakit-dlt-exception-message";

    /// <summary>Header with the broker's delivery count of the failed record (decimal text; share groups only).</summary>
    public const string DeliveryCountHeader = "kafkakit-dlt-delivery-count";

    /// <summary>
    /// The properties a producer must not inherit from its consumer: librdkafka's consumer-only properties (scope C in
    /// its CONFIGURATION.md, as Confluent.Kafka 2.16's <see cref="ConsumerConfig"/> lists them, plus their aliases),
    /// and <c>statistics.interval.ms</c> (the dead-letter producer has no statistics handler).
    /// </summary>
    internal static readonly HashSet<string> NotInherited = new(StringComparer.Ordinal)
    {
        "group.id", "group.instance.id", "partition.assignment.strategy", "session.timeout.ms", "heartbeat.interval.ms",
        "group.protocol.type", "group.protocol", "group.remote.assignor", "coordinator.query.interval.ms",
        "max.poll.interval.ms", "max.poll.records", "enable.auto.commit", "auto.commit.enable", "auto.commit.interval.ms",
        "enable.auto.offset.store", "auto.offset.reset", "queued.min.messages", "queued.max.messages.kbytes",
        "fetch.wait.max.ms", "fetch.queue.backoff.ms", "max.partition.fetch.bytes", "fetch.message.max.bytes",
        "fetch.max.bytes", "fetch.min.bytes", "fetch.error.backoff.ms", "isolation.level", "enable.partition.eof",
        "check.crcs", "consume.callback.max.messages", "offset.store.method", "offset.store.path",
        "offset.store.sync.interval.ms", "share.acknowledgement.mode", "statistics.interval.ms",
    };

    private readonly object _gate = new();
    private readonly string _name;
    private readonly string _client;
    private readonly string? _topic;
    private readonly ILogger _logger;
    private readonly ClientLogSummariser _logSummariser;
    private IProducer<byte[]?, byte[]?>? _producer;
    private bool _closed;

    /// <summary>Initializes a new instance of the <see cref="DeadLetterPublisher"/> class.</summary>
    /// <param name="consumerName">The consumer's name, for logs.</param>
    /// <param name="consumerConfig">The consumer's effective librdkafka properties.</param>
    /// <param name="topic">The dead-letter topic, or <see langword="null"/> for the source topic + <c>".DLT"</c>.</param>
    /// <param name="logger">The consumer's logger.</param>
    /// <param name="client">The kind of client it serves, for logs ("Consumer", "Share consumer").</param>
    public DeadLetterPublisher(string consumerName, IReadOnlyDictionary<string, string> consumerConfig, string? topic, ILogger logger, string client = "Consumer")
    {
        _name = consumerName;
        _client = client;
        _topic = topic;
        _logger = logger;
        _logSummariser = new ClientLogSummariser(logger, consumerName + "-dlt", TimeProvider.System);
        Config = ProducerConfigFor(consumerConfig);
    }

    /// <summary>Gets the dead-letter producer's librdkafka properties.</summary>
    internal IReadOnlyDictionary<string, string> Config { get; }

    /// <summary>Produces <paramref name="failed"/> to its dead-letter topic and waits for the broker's acknowledgement.</summary>
    /// <param name="failed">The failed record.</param>
    /// <param name="error">Why it failed.</param>
    /// <param name="groupId">The consumer group, for a header.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <param name="origin">Where the record was first consumed from when it comes from a retry topic; <see langword="null"/> for <paramref name="failed"/> itself.</param>
    /// <param name="deliveryCount">The share group's delivery count of the record, written as <see cref="DeliveryCountHeader"/>; <see langword="null"/> for none.</param>
    /// <returns>The dead-letter topic.</returns>
    /// <exception cref="ObjectDisposedException">The publisher was closed (the consumer stopped).</exception>
    public async Task<string> PublishAsync(ConsumeResult<byte[]?, byte[]?> failed, Exception error, string groupId, CancellationToken cancellationToken, RecordOrigin? origin = null, int? deliveryCount = null)
    {
        var (sourceTopic, sourcePartition, sourceOffset) = origin ?? new RecordOrigin(failed.Topic, failed.Partition.Value, failed.Offset.Value);
        var topic = _topic ?? sourceTopic + ".DLT";
        var headers = new Headers();
        foreach (var header in failed.Message.Headers ?? [])
        {
            headers.Add(header.Key, header.GetValueBytes());
        }

        headers.Add(OriginalTopicHeader, Encoding.UTF8.GetBytes(sourceTopic));
        headers.Add(OriginalPartitionHeader, Encoding.UTF8.GetBytes(sourcePartition.ToString(CultureInfo.InvariantCulture)));
        headers.Add(OriginalOffsetHeader, Encoding.UTF8.GetBytes(sourceOffset.ToString(CultureInfo.InvariantCulture)));
        headers.Add(ConsumerGroupHeader, Encoding.UTF8.GetBytes(groupId));
        headers.Add(ExceptionTypeHeader, Encoding.UTF8.GetBytes(error.GetType().FullName ?? error.GetType().Name));
        headers.Add(ExceptionMessageHeader, Encoding.UTF8.GetBytes(error.Message));
        if (deliveryCount is { } count)
        {
            headers.Add(DeliveryCountHeader, Encoding.UTF8.GetBytes(count.ToString(CultureInfo.InvariantCulture)));
        }

        // A deserializer may name more of the failure (e.g. the schema id): string entries of the exception's Data whose
        // key starts with "kafkakit-dlt-" become headers.
        foreach (System.Collections.DictionaryEntry entry in error.Data)
        {
            if (entry.Key is string key && key.StartsWith("kafkakit-dlt-", StringComparison.Ordinal) && entry.Value is string value)
            {
                headers.Add(key, Encoding.UTF8.GetBytes(value));
            }
        }

        await ProduceAsync(
            topic,
            new Message<byte[]?, byte[]?> { Key = failed.Message.Key, Value = failed.Message.Value, Headers = headers, Timestamp = failed.Message.Timestamp },
            cancellationToken).ConfigureAwait(false);
        return topic;
    }

    /// <summary>Produces <paramref name="message"/> (a retry record, see <see cref="RetryTopicRouter"/>) and waits for the broker's acknowledgement.</summary>
    /// <exception cref="ObjectDisposedException">The publisher was closed (the consumer stopped).</exception>
    /// <exception cref="ProduceException{TKey, TValue}">The broker did not acknowledge it (after librdkafka's own retries, within <c>message.timeout.ms</c>).</exception>
    internal Task ProduceAsync(string topic, Message<byte[]?, byte[]?> message, CancellationToken cancellationToken) =>
        Producer().ProduceAsync(topic, message, cancellationToken);

    /// <summary>
    /// Creates the producer now (not at the first failure) and waits at most <paramref name="timeout"/> for a metadata
    /// answer, so that its first connections (the bootstrap connection, which librdkafka closes once it knows the
    /// brokers) are made and closed before the caller's own client starts. Blocks: call it on a dedicated thread.
    /// </summary>
    /// <param name="timeout">The bound of the metadata request.</param>
    /// <exception cref="KafkaException">No metadata arrived within <paramref name="timeout"/>.</exception>
    /// <exception cref="ObjectDisposedException">The publisher was closed.</exception>
    internal void Connect(TimeSpan timeout)
    {
        using var admin = new DependentAdminClientBuilder(Producer().Handle).Build();
        admin.GetMetadata(timeout); // all topics: a request naming the dead-letter topic could create it (auto-creation)
    }

    /// <summary>
    /// Waits for outstanding dead-letter messages at most <paramref name="flushTimeout"/>, purges the rest (their
    /// <see cref="PublishAsync"/> calls fail, so their source offsets are not committed) and releases the producer.
    /// Idempotent; later <see cref="PublishAsync"/> calls throw <see cref="ObjectDisposedException"/>.
    /// </summary>
    /// <param name="flushTimeout">The flush bound; zero or less purges at once.</param>
    public void Close(TimeSpan flushTimeout)
    {
        IProducer<byte[]?, byte[]?>? producer;
        lock (_gate)
        {
            producer = _closed ? null : _producer;
            _closed = true;
        }

        if (producer is null)
        {
            _logSummariser.Dispose();
            return;
        }

        var bound = flushTimeout > TimeSpan.Zero ? flushTimeout : TimeSpan.Zero;
        var undelivered = producer.Flush(bound);
        if (undelivered > 0)
        {
            ConsumerLog.DeadLetterPurged(_logger, _client, _name, undelivered, bound);
            Librdkafka.TryPurge(producer.Handle, inFlight: true);
        }

        producer.Dispose();
        _logSummariser.Dispose();
    }

    /// <summary>Closes without waiting for outstanding dead-letter messages (see <see cref="Close"/>).</summary>
    public void Dispose() => Close(TimeSpan.Zero);

    /// <summary>The dead-letter producer's properties: KafkaKit's producer defaults, then the consumer's inherited ones.</summary>
    /// <param name="consumerConfig">The consumer's effective librdkafka properties.</param>
    /// <returns>The producer's properties.</returns>
    internal static Dictionary<string, string> ProducerConfigFor(IReadOnlyDictionary<string, string> consumerConfig)
    {
        var config = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in KafkaProducerOptions.DefaultConfig)
        {
            config[key] = value;
        }

        foreach (var (key, value) in consumerConfig)
        {
            // dotnet.* are Confluent.Kafka's own client settings (consume-result fields, delivery-report switches), not
            // connection settings: the producer keeps Confluent's defaults, which deliver reports.
            if (!NotInherited.Contains(key) && !key.StartsWith("dotnet.", StringComparison.Ordinal))
            {
                config[key] = value;
            }
        }

        config["client.id"] = (consumerConfig.TryGetValue("client.id", out var id) ? id : "kafkakit") + "-dlt";
        return config;
    }

    private IProducer<byte[]?, byte[]?> Producer()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            if (_producer is null)
            {
                _producer = new ProducerBuilder<byte[]?, byte[]?>(Config)
                    .SetLogHandler((_, message) => ClientLog.Forward(_logSummariser, message))
                    .SetErrorHandler((_, error) =>
                    {
                        if (_logSummariser.ShouldLog(LogLevel.Warning, error.Reason))
                        {
                            ConsumerLog.DeadLetterProducerError(_logger, _client, _name, error.Reason, error.Code);
                        }
                    })
                    .Build();
                ConsumerLog.DeadLetterProducerCreated(_logger, _client, _name, ConfigText.Redacted(Config));
            }

            return _producer;
        }
    }
}
