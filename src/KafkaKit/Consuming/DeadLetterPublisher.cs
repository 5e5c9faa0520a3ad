using System.Globalization;
using System.Text;
using Confluent.Kafka;

namespace KafkaKit.Consuming;

/// <summary>
/// Produces failed messages, byte for byte, to a dead-letter topic with headers saying where they came from and why
/// they failed. The producer is created at the first failure and is idempotent with <c>acks=all</c>.
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

    private readonly Lazy<IProducer<byte[]?, byte[]?>> _producer;
    private readonly string? _topic;

    public DeadLetterPublisher(IDictionary<string, string> producerConfig, string? topic)
    {
        _topic = topic;
        _producer = new Lazy<IProducer<byte[]?, byte[]?>>(
            () => new ProducerBuilder<byte[]?, byte[]?>(producerConfig).Build(),
            LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>Produces <paramref name="failed"/> to its dead-letter topic and waits for the broker's acknowledgement.</summary>
    /// <returns>The dead-letter topic.</returns>
    public async Task<string> PublishAsync(ConsumeResult<byte[]?, byte[]?> failed, Exception error, string groupId, CancellationToken cancellationToken)
    {
        var topic = _topic ?? failed.Topic + ".DLT";
        var headers = new Headers();
        foreach (var header in failed.Message.Headers ?? [])
        {
            headers.Add(header.Key, header.GetValueBytes());
        }

        headers.Add(OriginalTopicHeader, Encoding.UTF8.GetBytes(failed.Topic));
        headers.Add(OriginalPartitionHeader, Encoding.UTF8.GetBytes(failed.Partition.Value.ToString(CultureInfo.InvariantCulture)));
        headers.Add(OriginalOffsetHeader, Encoding.UTF8.GetBytes(failed.Offset.Value.ToString(CultureInfo.InvariantCulture)));
        headers.Add(ConsumerGroupHeader, Encoding.UTF8.GetBytes(groupId));
        headers.Add(ExceptionTypeHeader, Encoding.UTF8.GetBytes(error.GetType().FullName ?? error.GetType().Name));
        headers.Add(ExceptionMessageHeader, Encoding.UTF8.GetBytes(error.Message));

        // A deserializer may name more of the failure (e.g. the schema id): string entries of the exception's Data whose
        // key starts with "kafkakit-dlt-" become headers.
        foreach (System.Collections.DictionaryEntry entry in error.Data)
        {
            if (entry.Key is string key && key.StartsWith("kafkakit-dlt-", StringComparison.Ordinal) && entry.Value is string value)
            {
                headers.Add(key, Encoding.UTF8.GetBytes(value));
            }
        }
        await _producer.Value.ProduceAsync(
            topic,
            new Message<byte[]?, byte[]?> { Key = failed.Message.Key, Value = failed.Message.Value, Headers = headers, Timestamp = failed.Message.Timestamp },
            cancellationToken).ConfigureAwait(false);
        return topic;
    }

    public void Dispose()
    {
        if (_producer.IsValueCreated)
        {
            _producer.Value.Flush(TimeSpan.FromSeconds(10));
            _producer.Value.Dispose();
        }
    }
}
