using System.Diagnostics.CodeAnalysis;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Internal;
using KafkaKit.Serialization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KafkaKit.Sharing;

/// <summary>Builds a <see cref="KafkaShareConsumer{TKey, TValue}"/> outside dependency injection (DI uses it too).</summary>
/// <typeparam name="TKey">The record key type.</typeparam>
/// <typeparam name="TValue">The record value type.</typeparam>
/// <example>
/// <code>
/// var options = new KafkaShareConsumerOptions { BootstrapServers = "localhost:9092", GroupId = "mailers" };
/// options.Topics.Add("emails");
/// await using var consumer = new KafkaShareConsumerBuilder&lt;string, Email&gt;("mailer", options)
///     .SetHandler((result, ct) => SendAsync(result.Message.Value, ct))
///     .Build();
/// await consumer.StartAsync();
/// </code>
/// </example>
[Experimental(KafkaShareConsumer.DiagnosticId)]
public sealed class KafkaShareConsumerBuilder<TKey, TValue>
{
    private readonly string _name;
    private readonly KafkaShareConsumerOptions _options;
    private IDeserializer<TKey>? _keyDeserializer;
    private IDeserializer<TValue>? _valueDeserializer;
    private Func<ConsumeResult<TKey, TValue>, CancellationToken, ValueTask>? _handler;
    private ILoggerFactory _loggerFactory = NullLoggerFactory.Instance;
    private KafkaKitOptions? _shared;

    /// <summary>Initializes a new instance of the <see cref="KafkaShareConsumerBuilder{TKey, TValue}"/> class.</summary>
    /// <param name="name">The share consumer's name: its <c>client.id</c> and the name in logs, metrics and health.</param>
    /// <param name="options">The share consumer's options.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is null or empty.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="options"/> is null.</exception>
    public KafkaShareConsumerBuilder(string name, KafkaShareConsumerOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(options);
        _name = name;
        _options = options;
    }

    /// <summary>
    /// Sets the record handler. Required. It runs on a thread-pool thread, at most
    /// <see cref="KafkaShareConsumerOptions.MaxConcurrency"/> calls at once, in no particular order. Completing accepts the
    /// record; throwing releases it for redelivery, or on the last delivery attempt
    /// (<see cref="KafkaShareConsumerOptions.MaxDeliveryAttempts"/>) rejects or dead-letters it. Its token is cancelled
    /// when a stop outlives <see cref="KafkaShareConsumerOptions.ShutdownTimeout"/>; a cancelled record is released. The
    /// record carries its delivery count in the header <see cref="ShareHeaders.DeliveryCount"/> (read it with
    /// <see cref="ShareHeaders.DeliveryCountOf"/>).
    /// </summary>
    /// <param name="handler">The handler.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="handler"/> is null.</exception>
    public KafkaShareConsumerBuilder<TKey, TValue> SetHandler(Func<ConsumeResult<TKey, TValue>, CancellationToken, ValueTask> handler)
    {
        _handler = handler ?? throw new ArgumentNullException(nameof(handler));
        return this;
    }

    /// <summary>Sets the record handler; as <see cref="SetHandler(Func{ConsumeResult{TKey, TValue}, CancellationToken, ValueTask})"/>.</summary>
    /// <param name="handler">The handler; one instance serves every record.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="handler"/> is null.</exception>
    public KafkaShareConsumerBuilder<TKey, TValue> SetHandler(IKafkaMessageHandler<TKey, TValue> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        _handler = handler.HandleAsync;
        return this;
    }

    /// <summary>Sets the key deserializer. Default: <see cref="KafkaSerializers.DeserializerFor{T}"/>. It runs on a thread-pool thread; a failure is final for the record (rejected or dead-lettered).</summary>
    /// <param name="deserializer">The deserializer.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="deserializer"/> is null.</exception>
    public KafkaShareConsumerBuilder<TKey, TValue> SetKeyDeserializer(IDeserializer<TKey> deserializer)
    {
        _keyDeserializer = deserializer ?? throw new ArgumentNullException(nameof(deserializer));
        return this;
    }

    /// <summary>
    /// Sets an asynchronous key deserializer (e.g. a Schema Registry serde), awaited on the handler side. A
    /// <see cref="SerializationUnavailableException"/> releases the record for redelivery; any other exception is final
    /// for the record (rejected or dead-lettered).
    /// </summary>
    /// <param name="deserializer">The deserializer.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="deserializer"/> is null.</exception>
    public KafkaShareConsumerBuilder<TKey, TValue> SetKeyDeserializer(IAsyncDeserializer<TKey> deserializer)
    {
        ArgumentNullException.ThrowIfNull(deserializer);
        _keyDeserializer = new AsyncDeserializer<TKey>(deserializer);
        return this;
    }

    /// <summary>Sets the value deserializer; as <see cref="SetKeyDeserializer(IDeserializer{TKey})"/>.</summary>
    /// <param name="deserializer">The deserializer.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="deserializer"/> is null.</exception>
    public KafkaShareConsumerBuilder<TKey, TValue> SetValueDeserializer(IDeserializer<TValue> deserializer)
    {
        _valueDeserializer = deserializer ?? throw new ArgumentNullException(nameof(deserializer));
        return this;
    }

    /// <summary>Sets an asynchronous value deserializer; as <see cref="SetKeyDeserializer(IAsyncDeserializer{TKey})"/>.</summary>
    /// <param name="deserializer">The deserializer.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="deserializer"/> is null.</exception>
    public KafkaShareConsumerBuilder<TKey, TValue> SetValueDeserializer(IAsyncDeserializer<TValue> deserializer)
    {
        ArgumentNullException.ThrowIfNull(deserializer);
        _valueDeserializer = new AsyncDeserializer<TValue>(deserializer);
        return this;
    }

    /// <summary>Sets the logger factory (category <c>KafkaKit.ShareConsumer</c>). Default: no logging.</summary>
    /// <param name="loggerFactory">The factory.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="loggerFactory"/> is null.</exception>
    public KafkaShareConsumerBuilder<TKey, TValue> SetLoggerFactory(ILoggerFactory loggerFactory)
    {
        _loggerFactory = loggerFactory ?? throw new ArgumentNullException(nameof(loggerFactory));
        return this;
    }

    /// <summary>
    /// Validates the options (every problem at once) and builds the share consumer; nothing connects until
    /// <see cref="KafkaShareConsumer{TKey, TValue}.StartAsync"/>.
    /// </summary>
    /// <returns>The share consumer, not started.</returns>
    /// <exception cref="OptionsValidationException">
    /// The options are invalid, a librdkafka property is unknown or has a bad value, or no handler was set; the failures
    /// list every problem, each naming the setting.
    /// </exception>
    /// <exception cref="InvalidOperationException">The librdkafka the application loaded before KafkaKit is older than the one Confluent.Kafka ships with.</exception>
    public KafkaShareConsumer<TKey, TValue> Build()
    {
        Librdkafka.DescribeOnce(_loggerFactory.CreateLogger("KafkaKit.Librdkafka"));
        var problems = new List<string>();
        var merged = _options.Resolve(_name, _shared, problems).Values;
        if (_handler is null)
        {
            problems.Add($"ShareConsumer '{_name}' has no handler: call SetHandler (or register one with AddShareConsumer).");
        }

        if (problems.Count > 0)
        {
            throw new OptionsValidationException(_name, typeof(KafkaShareConsumerOptions), problems.Distinct());
        }

        return new KafkaShareConsumer<TKey, TValue>(
            _name,
            merged.ToDictionary(StringComparer.Ordinal),
            _options,
            _keyDeserializer ?? KafkaSerializers.DeserializerFor<TKey>(_shared?.Json.ToSerializerOptions()),
            _valueDeserializer ?? KafkaSerializers.DeserializerFor<TValue>(_shared?.Json.ToSerializerOptions()),
            _handler!,
            _loggerFactory.CreateLogger("KafkaKit.ShareConsumer"));
    }

    internal KafkaShareConsumerBuilder<TKey, TValue> SetShared(KafkaKitOptions shared)
    {
        _shared = shared;
        return this;
    }
}
