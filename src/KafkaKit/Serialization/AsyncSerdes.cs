using Confluent.Kafka;

namespace KafkaKit.Serialization;

/// <summary>
/// The headers of a message whose async-serialized key and/or value were computed before it entered the producer: the
/// bytes travel with the message (Confluent.Kafka passes a message's headers to the serializers), so the synchronous
/// <see cref="PreSerialized{T}"/> hands them to librdkafka on whatever thread enqueues the message.
/// </summary>
internal sealed class SerializedHeaders : Headers
{
    public SerializedHeaders(Headers? original)
    {
        if (original is not null)
        {
            foreach (var header in original)
            {
                Add(header);
            }
        }
    }

    public byte[]? KeyBytes { get; set; }

    public byte[]? ValueBytes { get; set; }
}

/// <summary>The synchronous serializer librdkafka's producer calls for a component KafkaKit serialized asynchronously beforehand.</summary>
/// <typeparam name="T">The key or value type.</typeparam>
internal sealed class PreSerialized<T> : ISerializer<T>
{
    public static readonly PreSerialized<T> Instance = new();

    public byte[]? Serialize(T data, SerializationContext context) =>
        context.Headers is SerializedHeaders serialized
            ? context.Component == MessageComponentType.Key ? serialized.KeyBytes : serialized.ValueBytes
            : throw new InvalidOperationException(
                $"The {context.Component.ToString().ToLowerInvariant()} serializer of this producer is asynchronous: produce through the KafkaKit producer (EnqueueAsync, TryEnqueue, ProduceAsync), not through Inner.");
}

/// <summary>Carries an async deserializer through the consumer's synchronous deserializer slot; the consumer awaits it on the handler side.</summary>
/// <typeparam name="T">The key or value type.</typeparam>
internal sealed class AsyncDeserializer<T>(IAsyncDeserializer<T> inner) : IDeserializer<T>
{
    public IAsyncDeserializer<T> Inner { get; } = inner;

    public T Deserialize(ReadOnlySpan<byte> data, bool isNull, SerializationContext context) =>
        throw new InvalidOperationException("An async deserializer is awaited by the consumer, never called synchronously.");
}

/// <summary>The backoff of serdes retries while a service they depend on is unreachable.</summary>
internal static class SerdesBackoff
{
    public static readonly TimeSpan First = TimeSpan.FromMilliseconds(200);

    public static readonly TimeSpan Max = TimeSpan.FromSeconds(10);

    public static TimeSpan Next(TimeSpan current) => current >= Max / 2 ? Max : current * 2;
}
