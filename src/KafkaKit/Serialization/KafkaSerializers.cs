using System.Text.Json;
using Confluent.Kafka;

namespace KafkaKit.Serialization;

/// <summary>
/// The serializers KafkaKit uses when none is given: Confluent.Kafka's for <see cref="Null"/>, <see cref="Ignore"/>,
/// <see cref="string"/> (UTF-8), <c>byte[]</c>, <see cref="int"/>, <see cref="long"/>, <see cref="float"/> and
/// <see cref="double"/> (big-endian); System.Text.Json (UTF-8 JSON, web defaults: camelCase) for every other type.
/// </summary>
public static class KafkaSerializers
{
    /// <summary>Gets the default serializer for <typeparamref name="T"/>.</summary>
    /// <typeparam name="T">The key or value type.</typeparam>
    /// <param name="jsonOptions">JSON options for non-primitive types; default <see cref="JsonSerializerDefaults.Web"/>.</param>
    /// <returns>The serializer.</returns>
    public static ISerializer<T> SerializerFor<T>(JsonSerializerOptions? jsonOptions = null) =>
        Builtin(typeof(T)) is ISerializer<T> builtin ? builtin : new JsonSerde<T>(jsonOptions);

    /// <summary>Gets the default deserializer for <typeparamref name="T"/>.</summary>
    /// <typeparam name="T">The key or value type.</typeparam>
    /// <param name="jsonOptions">JSON options for non-primitive types; default <see cref="JsonSerializerDefaults.Web"/>.</param>
    /// <returns>The deserializer.</returns>
    public static IDeserializer<T> DeserializerFor<T>(JsonSerializerOptions? jsonOptions = null) =>
        BuiltinDeserializer(typeof(T)) is IDeserializer<T> builtin ? builtin : new JsonSerde<T>(jsonOptions);

    private static object? Builtin(Type type) =>
        type == typeof(Null) ? Serializers.Null
        : type == typeof(string) ? Serializers.Utf8
        : type == typeof(byte[]) ? Serializers.ByteArray
        : type == typeof(int) ? Serializers.Int32
        : type == typeof(long) ? Serializers.Int64
        : type == typeof(float) ? Serializers.Single
        : type == typeof(double) ? Serializers.Double
        : null;

    private static object? BuiltinDeserializer(Type type) =>
        type == typeof(Null) ? Deserializers.Null
        : type == typeof(Ignore) ? Deserializers.Ignore
        : type == typeof(string) ? Deserializers.Utf8
        : type == typeof(byte[]) ? Deserializers.ByteArray
        : type == typeof(int) ? Deserializers.Int32
        : type == typeof(long) ? Deserializers.Int64
        : type == typeof(float) ? Deserializers.Single
        : type == typeof(double) ? Deserializers.Double
        : null;

    private sealed class JsonSerde<T>(JsonSerializerOptions? options) : ISerializer<T>, IDeserializer<T>
    {
        private readonly JsonSerializerOptions _options = options ?? new JsonSerializerOptions(JsonSerializerDefaults.Web);

        public byte[] Serialize(T data, SerializationContext context) => JsonSerializer.SerializeToUtf8Bytes(data, _options);

        public T Deserialize(ReadOnlySpan<byte> data, bool isNull, SerializationContext context)
        {
            if (isNull)
            {
                return default!;
            }

            return JsonSerializer.Deserialize<T>(data, _options)
                ?? throw new InvalidDataException($"The JSON of {context.Component} in topic '{context.Topic}' is 'null', which {typeof(T).Name} does not allow.");
        }
    }
}
