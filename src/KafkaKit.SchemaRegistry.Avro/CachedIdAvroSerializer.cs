using System.Collections.Concurrent;
using Avro.IO;
using Avro.Specific;
using Confluent.Kafka;

namespace KafkaKit.SchemaRegistry.Avro;

/// <summary>
/// Confluent's Avro serializer with a synchronous steady state for generated (<see cref="ISpecificRecord"/>) types and
/// the Avro primitives string, int, long, float, double and bool. The
/// first record of a topic goes through Confluent's serializer (subject naming, registration or look-up, compatibility:
/// all Confluent's); its output gives the schema id. Later records of that topic and type are written here, with the
/// same writer Confluent uses (<see cref="SpecificWriter{T}"/> of the type's schema, or of the Avro primitive) behind the same 5-byte prefix
/// (magic byte 0, big-endian schema id): the same bytes, without Confluent's per-record lock, task chain and buffers.
/// </summary>
/// <remarks>
/// Not used with <c>UseLatestVersion</c> (the writer schema is then the subject's latest, resolved by Confluent), nor for
/// <c>GenericRecord</c>, <c>byte[]</c>, <c>Null</c> or a value whose runtime type is not exactly <typeparamref name="T"/>:
/// those always go through Confluent. Thread-safe: Confluent shares one writer between threads too; the buffer is per thread.
/// </remarks>
internal sealed class CachedIdAvroSerializer<T> : IAsyncSerializer<T>
{
    [ThreadStatic]
    private static MemoryStream? t_buffer;

    private readonly IAsyncSerializer<T> _confluent;
    private readonly SpecificWriter<T>? _writer;
    private readonly ConcurrentDictionary<string, byte[]> _prefixes = new(StringComparer.Ordinal);

    public CachedIdAvroSerializer(IAsyncSerializer<T> confluent, bool useLatestVersion)
    {
        _confluent = confluent;
        if (!useLatestVersion && WriterSchema() is { } schema)
        {
            _writer = new SpecificWriter<T>(schema);
        }
    }

    public Task<byte[]> SerializeAsync(T data, SerializationContext context)
    {
        if (_writer is not null && data is not null && data.GetType() == typeof(T) && _prefixes.TryGetValue(context.Topic, out var prefix))
        {
            return Task.FromResult(Write(prefix, data));
        }

        return FirstAsync(data, context);
    }

    private async Task<byte[]> FirstAsync(T data, SerializationContext context)
    {
        var bytes = await _confluent.SerializeAsync(data, context).ConfigureAwait(false);
        if (_writer is not null && data is not null && data.GetType() == typeof(T) && bytes is { Length: >= 5 } && bytes[0] == 0)
        {
            _prefixes.TryAdd(context.Topic, bytes[..5]);
        }

        return bytes;
    }

    /// <summary>The writer schema exactly as Confluent's serializer determines it for <typeparamref name="T"/>, or null where Confluent's path must be kept.</summary>
    private static global::Avro.Schema? WriterSchema()
    {
        var type = typeof(T);
        if (typeof(ISpecificRecord).IsAssignableFrom(type))
        {
            return type.GetConstructor(Type.EmptyTypes) is null ? null : ((ISpecificRecord)Activator.CreateInstance(type)!).Schema;
        }

        var primitive = type == typeof(string) ? "string"
            : type == typeof(int) ? "int"
            : type == typeof(long) ? "long"
            : type == typeof(float) ? "float"
            : type == typeof(double) ? "double"
            : type == typeof(bool) ? "boolean"
            : null; // byte[] (written raw by Confluent), Null, GenericRecord, fixed: Confluent's path
        return primitive is null ? null : global::Avro.Schema.Parse(primitive);
    }

    private byte[] Write(byte[] prefix, T data)
    {
        var buffer = t_buffer ??= new MemoryStream(256);
        buffer.SetLength(0);
        buffer.Write(prefix);
        _writer!.Write(data, new BinaryEncoder(buffer));
        return buffer.ToArray();
    }
}
