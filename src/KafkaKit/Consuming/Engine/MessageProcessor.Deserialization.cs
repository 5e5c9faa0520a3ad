using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Diagnostics;
using KafkaKit.Serialization;

namespace KafkaKit.Consuming;

/// <content>Deserialization on the handler side: synchronous deserializers inline, async ones awaited.</content>
internal sealed partial class MessageProcessor<TKey, TValue>
{
    private long _deserializerUnavailableSince;

    /// <summary>
    /// Gets how long a deserializer's service (e.g. a schema registry) has been unreachable while records waited for it,
    /// or null when it is not (health reports Degraded meanwhile).
    /// </summary>
    public TimeSpan? DeserializerUnavailableFor =>
        Interlocked.Read(ref _deserializerUnavailableSince) is var since and not 0 ? Stopwatch.GetElapsedTime(since) : null;

    /// <summary>
    /// Deserializes a record; completes synchronously with synchronous deserializers. While an async deserializer
    /// throws <see cref="SerializationUnavailableException"/>, retries with backoff (the record's partition waits; its
    /// buffer fills and the partition is paused). Other exceptions propagate to the error policy.
    /// </summary>
    private ValueTask<ConsumeResult<TKey, TValue>> DeserializeAsync(ConsumeResult<byte[]?, byte[]?> raw, CancellationToken cancellationToken)
    {
        if (_keyDeserializer is not AsyncDeserializer<TKey> && _valueDeserializer is not AsyncDeserializer<TValue>)
        {
            return new ValueTask<ConsumeResult<TKey, TValue>>(Deserialize(raw));
        }

        return DeserializeWithRetryAsync(raw, cancellationToken);
    }

    private async ValueTask<ConsumeResult<TKey, TValue>> DeserializeWithRetryAsync(ConsumeResult<byte[]?, byte[]?> raw, CancellationToken cancellationToken)
    {
        var delay = SerdesBackoff.First;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var result = await DeserializeOnceAsync(raw).ConfigureAwait(false);
                if (attempt > 1 || Interlocked.Read(ref _deserializerUnavailableSince) != 0)
                {
                    Interlocked.Exchange(ref _deserializerUnavailableSince, 0);
                    if (attempt > 1)
                    {
                        SerializationLog.ConsumeRecovered(_logger, _name, raw.Topic, raw.Partition.Value, raw.Offset.Value, attempt);
                    }
                }

                return result;
            }
            catch (SerializationUnavailableException e)
            {
                Interlocked.CompareExchange(ref _deserializerUnavailableSince, Stopwatch.GetTimestamp(), 0);
                if (attempt == 1)
                {
                    SerializationLog.ConsumeWaiting(_logger, _name, raw.Topic, raw.Partition.Value, raw.Offset.Value, e.Message);
                }

                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                delay = SerdesBackoff.Next(delay);
            }
        }
    }

    private ValueTask<ConsumeResult<TKey, TValue>> DeserializeOnceAsync(ConsumeResult<byte[]?, byte[]?> raw) =>
        DeserializeOnceAsync(_keyDeserializer, _valueDeserializer, raw);

    /// <summary>Deserializes a record once with <paramref name="keys"/> and <paramref name="values"/>, awaiting async ones (the share consumer uses it too).</summary>
    internal static async ValueTask<ConsumeResult<TKey, TValue>> DeserializeOnceAsync(IDeserializer<TKey> keys, IDeserializer<TValue> values, ConsumeResult<byte[]?, byte[]?> raw)
    {
        var message = raw.Message;
        var keyContext = new SerializationContext(MessageComponentType.Key, raw.Topic, message.Headers);
        var valueContext = new SerializationContext(MessageComponentType.Value, raw.Topic, message.Headers);
        var key = keys is AsyncDeserializer<TKey> asyncKey
            ? await asyncKey.Inner.DeserializeAsync(message.Key, message.Key is null, keyContext).ConfigureAwait(false)
            : keys.Deserialize(message.Key, message.Key is null, keyContext);
        var value = values is AsyncDeserializer<TValue> asyncValue
            ? await asyncValue.Inner.DeserializeAsync(message.Value, message.Value is null, valueContext).ConfigureAwait(false)
            : values.Deserialize(message.Value, message.Value is null, valueContext);
        return Typed(raw, key, value);
    }

    /// <summary>The deserialized record of <paramref name="raw"/>: its position, headers and timestamp with <paramref name="key"/> and <paramref name="value"/>.</summary>
    private static ConsumeResult<TKey, TValue> Typed(ConsumeResult<byte[]?, byte[]?> raw, TKey key, TValue value) => new()
    {
        Topic = raw.Topic, // not TopicPartitionOffset: its getter allocates one per record
        Partition = raw.Partition,
        Offset = raw.Offset,
        LeaderEpoch = raw.LeaderEpoch,
        Message = new Message<TKey, TValue> { Key = key, Value = value, Headers = raw.Message.Headers, Timestamp = raw.Message.Timestamp },
    };
}
