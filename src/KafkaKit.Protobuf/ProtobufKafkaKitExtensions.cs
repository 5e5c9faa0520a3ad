using Google.Protobuf;
using KafkaKit.Consuming;
using KafkaKit.Producing;

namespace KafkaKit.Protobuf;

/// <summary>Plain Protocol Buffers values for KafkaKit producers and consumers (see <see cref="ProtobufSerde{T}"/>).</summary>
public static class ProtobufKafkaKitExtensions
{
    /// <summary>Serializes values with <see cref="ProtobufSerde{T}"/> (plain binary, no registry).</summary>
    /// <typeparam name="TKey">The key type (its serializer is unchanged).</typeparam>
    /// <typeparam name="TValue">The generated message type.</typeparam>
    /// <param name="builder">The producer builder.</param>
    /// <returns>The builder.</returns>
    public static KafkaProducerBuilder<TKey, TValue> UseProtobuf<TKey, TValue>(this KafkaProducerBuilder<TKey, TValue> builder)
        where TValue : class, IMessage<TValue>, new()
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.SetValueSerializer(ProtobufSerde<TValue>.Instance);
    }

    /// <summary>Deserializes values with <see cref="ProtobufSerde{T}"/> (plain binary, no registry).</summary>
    /// <typeparam name="TKey">The key type (its deserializer is unchanged).</typeparam>
    /// <typeparam name="TValue">The generated message type.</typeparam>
    /// <param name="builder">The consumer builder.</param>
    /// <returns>The builder.</returns>
    public static KafkaConsumerBuilder<TKey, TValue> UseProtobuf<TKey, TValue>(this KafkaConsumerBuilder<TKey, TValue> builder)
        where TValue : class, IMessage<TValue>, new()
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.SetValueDeserializer(ProtobufSerde<TValue>.Instance);
    }
}
