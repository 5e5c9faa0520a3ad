using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using Confluent.Kafka;
using Confluent.SchemaRegistry;
using KafkaKit.Serialization;

namespace KafkaKit.SchemaRegistry;

/// <summary>
/// Wraps Confluent's Schema Registry serdes (Avro, JSON Schema, Protobuf, your own) so KafkaKit can tell a registry
/// that cannot be reached (transient: <see cref="SerializationUnavailableException"/>, retried, never dead-lettered)
/// from data that does not decode with its schema (poison: <see cref="InvalidDataException"/>, the consumer's
/// error policy). Every message names the topic, the component, the subject or schema id and what to do.
/// </summary>
public static class SchemaRegistrySerdes
{
    /// <summary>The dead-letter header with the schema id of a record that failed to deserialize (decimal text).</summary>
    public const string SchemaIdHeader = "kafkakit-dlt-schema-id";

    /// <summary>Wraps a registry serializer.</summary>
    /// <typeparam name="T">The key or value type.</typeparam>
    /// <param name="serializer">The serializer (e.g. Confluent's <c>AvroSerializer&lt;T&gt;</c>).</param>
    /// <param name="format">The format's name for messages, e.g. "Avro".</param>
    /// <returns>A serializer that throws <see cref="SerializationUnavailableException"/> when the registry cannot be reached and <see cref="InvalidOperationException"/> with a clear message otherwise.</returns>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    public static IAsyncSerializer<T> Classify<T>(IAsyncSerializer<T> serializer, string format)
    {
        ArgumentNullException.ThrowIfNull(serializer);
        ArgumentException.ThrowIfNullOrEmpty(format);
        return new ClassifyingSerializer<T>(serializer, format);
    }

    /// <summary>Wraps a registry deserializer.</summary>
    /// <typeparam name="T">The key or value type.</typeparam>
    /// <param name="deserializer">The deserializer (e.g. Confluent's <c>AvroDeserializer&lt;T&gt;</c>).</param>
    /// <param name="format">The format's name for messages, e.g. "Avro".</param>
    /// <returns>
    /// A deserializer that throws <see cref="SerializationUnavailableException"/> when the registry cannot be reached and
    /// <see cref="InvalidDataException"/> (with the schema id in its <see cref="Exception.Data"/> under
    /// <see cref="SchemaIdHeader"/>, which becomes a dead-letter header) when the bytes do not decode.
    /// </returns>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    public static IAsyncDeserializer<T> Classify<T>(IAsyncDeserializer<T> deserializer, string format)
    {
        ArgumentNullException.ThrowIfNull(deserializer);
        ArgumentException.ThrowIfNullOrEmpty(format);
        return new ClassifyingDeserializer<T>(deserializer, format);
    }

    /// <summary>Tells whether a registry client failure means the registry could not be reached (or answered 5xx, 408, 429).</summary>
    /// <param name="error">The exception from a registry client or serde.</param>
    /// <returns><see langword="true"/> for transport errors, timeouts, retriable statuses and refused credentials.</returns>
    public static bool IsUnreachable(Exception error) => error switch
    {
        SchemaRegistryException e => (int)e.Status >= 500 || e.Status is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests or HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden,
        HttpRequestException => true,
        TaskCanceledException or TimeoutException => true,
        AggregateException { InnerExceptions.Count: > 0 } e => e.InnerExceptions.All(IsUnreachable),
        _ => error.InnerException is { } inner && IsUnreachable(inner),
    };

    /// <summary>Reads the schema id of Confluent's wire format (magic byte 0, 4-byte big-endian id), or null.</summary>
    internal static int? SchemaId(ReadOnlySpan<byte> data) =>
        data.Length >= 5 && data[0] == 0 ? BinaryPrimitives.ReadInt32BigEndian(data[1..5]) : null;

    internal static string Describe(Exception error)
    {
        var registry = error as SchemaRegistryException ?? error.InnerException as SchemaRegistryException;
        var auth = registry?.Status is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden
            || (error is HttpRequestException && error.Message.Contains("Unauthorized", StringComparison.Ordinal));
        return auth
            ? $"the registry refused the credentials ({error.Message}): check KafkaKit:SchemaRegistry:BasicAuthUserInfo (user:password)"
            : error.Message;
    }

    private sealed class ClassifyingSerializer<T>(IAsyncSerializer<T> inner, string format) : IAsyncSerializer<T>
    {
        public Task<byte[]> SerializeAsync(T data, SerializationContext context)
        {
            Task<byte[]> serializing;
            try
            {
                serializing = inner.SerializeAsync(data, context);
            }
            catch (Exception e)
            {
                return Task.FromException<byte[]>(Translate(e, context));
            }

            // The steady state (schema id cached) completes synchronously: no state machine, no second task.
            return serializing.IsCompletedSuccessfully ? serializing : AwaitAsync(serializing, context);
        }

        private async Task<byte[]> AwaitAsync(Task<byte[]> serializing, SerializationContext context)
        {
            try
            {
#pragma warning disable VSTHRD003 // the task was started by this call (the inner serializer's), it is awaited once
                return await serializing.ConfigureAwait(false);
#pragma warning restore VSTHRD003
            }
            catch (Exception e)
            {
                throw Translate(e, context);
            }
        }

        private Exception Translate(Exception e, SerializationContext context) => e switch
        {
            _ when IsUnreachable(e) => new SerializationUnavailableException(
                $"The schema registry could not be reached to serialize the {Component(context)} of a {typeof(T).Name} for topic '{context.Topic}' ({format}): {Describe(e)}. Nothing was enqueued; the produce can be retried once the registry answers.",
                e),
            SchemaRegistryException { ErrorCode: 40401 or 40403 } r => new InvalidOperationException(
                $"The {format} schema of {typeof(T).Name} is not registered for the {Component(context)} of topic '{context.Topic}' (registry: {r.Message}): register it under the subject named by the subject name strategy, or turn KafkaKit:SchemaRegistry:AutoRegisterSchemas on.",
                e),
            SchemaRegistryException r when r.ErrorCode == 409 || r.Status == HttpStatusCode.Conflict => new InvalidOperationException(
                $"The registry refused the {format} schema of {typeof(T).Name} for the {Component(context)} of topic '{context.Topic}' as incompatible (registry: {r.Message}): make the change compatible (e.g. give an added field a default) or change the subject's compatibility level.",
                e),
            SchemaRegistryException r => new InvalidOperationException(
                $"The registry refused the {format} schema of {typeof(T).Name} for the {Component(context)} of topic '{context.Topic}': {r.Message} (error code {r.ErrorCode.ToString(CultureInfo.InvariantCulture)}).",
                e),
            _ => e,
        };
    }

    private sealed class ClassifyingDeserializer<T>(IAsyncDeserializer<T> inner, string format) : IAsyncDeserializer<T>
    {
        public async Task<T> DeserializeAsync(ReadOnlyMemory<byte> data, bool isNull, SerializationContext context)
        {
            try
            {
                return await inner.DeserializeAsync(data, isNull, context).ConfigureAwait(false);
            }
            catch (Exception e) when (IsUnreachable(e))
            {
                throw new SerializationUnavailableException(
                    $"The schema registry could not be reached to deserialize the {Component(context)} of a record of topic '{context.Topic}' (schema id {Id(data)}, {format}): {Describe(e)}",
                    e);
            }
            catch (Exception e)
            {
                var id = SchemaId(data.Span);
                var why = id is null
                    ? $"it does not start with the schema registry framing (magic byte 0 and a 4-byte schema id; {data.Length} bytes): it was not written by a registry serializer"
                    : e is SchemaRegistryException { ErrorCode: 40403 }
                        ? $"schema id {id} is not known by the registry: the record was written against another registry, or the schema was deleted"
                        : $"it does not decode with schema id {id} as {typeof(T).Name}: {e.Message}";
                var poison = new InvalidDataException($"The {Component(context)} of a record of topic '{context.Topic}' is not valid {format}: {why}.", e);
                if (id is not null)
                {
                    poison.Data[SchemaIdHeader] = id.Value.ToString(CultureInfo.InvariantCulture);
                }

                throw poison;
            }
        }

        private static string Id(ReadOnlyMemory<byte> data) => SchemaId(data.Span)?.ToString(CultureInfo.InvariantCulture) ?? "none";
    }

    private static string Component(SerializationContext context) => context.Component == MessageComponentType.Key ? "key" : "value";
}
