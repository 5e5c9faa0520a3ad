using Confluent.Kafka;
using KafkaKit.Internal;
using KafkaKit.Serialization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Polly;
using Polly.CircuitBreaker;
using Microsoft.Extensions.Options;
using Polly.Retry;

namespace KafkaKit.Producing;

/// <summary>Builds a KafkaKit producer outside dependency injection (DI uses it too).</summary>
/// <typeparam name="TKey">The message key type.</typeparam>
/// <typeparam name="TValue">The message value type.</typeparam>
/// <example>
/// <code>
/// await using var producer = new KafkaProducerBuilder&lt;string, string&gt;("orders", new KafkaProducerOptions { BootstrapServers = "localhost:9092" }).Build();
/// await producer.EnqueueAsync("orders", new Message&lt;string, string&gt; { Key = "42", Value = "created" });
/// </code>
/// </example>
public sealed class KafkaProducerBuilder<TKey, TValue>
{
    private readonly string _name;
    private readonly KafkaProducerOptions _options;
    private ISerializer<TKey>? _keySerializer;
    private ISerializer<TValue>? _valueSerializer;
    private IAsyncSerializer<TKey>? _asyncKeySerializer;
    private IAsyncSerializer<TValue>? _asyncValueSerializer;
    private ILoggerFactory _loggerFactory = NullLoggerFactory.Instance;
    private TimeProvider _timeProvider = TimeProvider.System;
    private ResiliencePipeline? _pipeline;
    private Action<DeliveryReport<TKey, TValue>>? _onDeliveryFailed;
    private KafkaKitOptions? _shared;

    /// <summary>Initializes a new instance of the <see cref="KafkaProducerBuilder{TKey, TValue}"/> class.</summary>
    /// <param name="name">The producer's name: its <c>client.id</c> and the name in logs, metrics and health.</param>
    /// <param name="options">The producer's options.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is null or empty.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="options"/> is null.</exception>
    public KafkaProducerBuilder(string name, KafkaProducerOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(options);
        _name = name;
        _options = options;
    }

    /// <summary>Sets the key serializer. Default: <see cref="KafkaSerializers.SerializerFor{T}"/>.</summary>
    /// <param name="serializer">The serializer; it runs on the enqueuing thread.</param>
    /// <returns>This builder.</returns>
    public KafkaProducerBuilder<TKey, TValue> SetKeySerializer(ISerializer<TKey> serializer)
    {
        _keySerializer = serializer ?? throw new ArgumentNullException(nameof(serializer));
        _asyncKeySerializer = null;
        return this;
    }

    /// <summary>
    /// Sets an asynchronous key serializer (e.g. a Schema Registry serde). Every produce call awaits it on the caller's
    /// path before the message enters the backpressure gate; no thread is blocked while it waits for I/O, and it never
    /// runs on librdkafka's threads. A <see cref="SerializationUnavailableException"/> it throws is retried within
    /// <see cref="KafkaProducerOptions.MaxBlock"/>; any other exception fails the call with a
    /// <see cref="ProduceException{TKey, TValue}"/> (<see cref="ErrorCode.Local_KeySerialization"/>). Nothing is enqueued
    /// before serialization succeeded. <see cref="IKafkaProducer{TKey, TValue}.TryEnqueue"/> returns false while the
    /// serializer has not completed synchronously (e.g. before the schema id is cached).
    /// </summary>
    /// <param name="serializer">The serializer; replaces a synchronous one set before.</param>
    /// <returns>This builder.</returns>
    public KafkaProducerBuilder<TKey, TValue> SetKeySerializer(IAsyncSerializer<TKey> serializer)
    {
        _asyncKeySerializer = serializer ?? throw new ArgumentNullException(nameof(serializer));
        _keySerializer = null;
        return this;
    }

    /// <summary>Sets the value serializer. Default: <see cref="KafkaSerializers.SerializerFor{T}"/>.</summary>
    /// <param name="serializer">The serializer; it runs on the enqueuing thread.</param>
    /// <returns>This builder.</returns>
    public KafkaProducerBuilder<TKey, TValue> SetValueSerializer(ISerializer<TValue> serializer)
    {
        _valueSerializer = serializer ?? throw new ArgumentNullException(nameof(serializer));
        _asyncValueSerializer = null;
        return this;
    }

    /// <summary>
    /// Sets an asynchronous value serializer (e.g. a Schema Registry serde); as for
    /// <see cref="SetKeySerializer(IAsyncSerializer{TKey})"/> (failures: <see cref="ErrorCode.Local_ValueSerialization"/>).
    /// </summary>
    /// <param name="serializer">The serializer; replaces a synchronous one set before.</param>
    /// <returns>This builder.</returns>
    public KafkaProducerBuilder<TKey, TValue> SetValueSerializer(IAsyncSerializer<TValue> serializer)
    {
        _asyncValueSerializer = serializer ?? throw new ArgumentNullException(nameof(serializer));
        _valueSerializer = null;
        return this;
    }

    /// <summary>Sets the logger factory (category <c>KafkaKit.Producer</c>). Default: no logging.</summary>
    /// <param name="loggerFactory">The factory.</param>
    /// <returns>This builder.</returns>
    public KafkaProducerBuilder<TKey, TValue> SetLoggerFactory(ILoggerFactory loggerFactory)
    {
        _loggerFactory = loggerFactory ?? throw new ArgumentNullException(nameof(loggerFactory));
        return this;
    }

    /// <summary>Sets the time source for <see cref="KafkaProducerOptions.MaxBlock"/> and retry delays. Default: <see cref="TimeProvider.System"/>.</summary>
    /// <param name="timeProvider">The time source.</param>
    /// <returns>This builder.</returns>
    public KafkaProducerBuilder<TKey, TValue> SetTimeProvider(TimeProvider timeProvider)
    {
        _timeProvider = timeProvider ?? throw new ArgumentNullException(nameof(timeProvider));
        return this;
    }

    /// <summary>
    /// Replaces the retry pipeline built from <see cref="KafkaProducerOptions.Retry"/> with yours for
    /// <see cref="IKafkaProducer{TKey, TValue}.ProduceAsync"/>. Failed deliveries reach it as
    /// <see cref="ProduceException{TKey, TValue}"/>; <see cref="ProduceErrors.IsRetriable"/> tells which to retry.
    /// </summary>
    /// <param name="pipeline">The pipeline; <see cref="ResiliencePipeline.Empty"/> turns retries off.</param>
    /// <returns>This builder.</returns>
    public KafkaProducerBuilder<TKey, TValue> SetResiliencePipeline(ResiliencePipeline pipeline)
    {
        _pipeline = pipeline ?? throw new ArgumentNullException(nameof(pipeline));
        return this;
    }

    /// <summary>
    /// Sets the handler of failed deliveries of messages enqueued without a per-message callback (each is also logged).
    /// It runs on the producer's delivery-report thread; an exception it throws is logged and counted.
    /// </summary>
    /// <param name="handler">The handler.</param>
    /// <returns>This builder.</returns>
    public KafkaProducerBuilder<TKey, TValue> SetDeliveryFailedHandler(Action<DeliveryReport<TKey, TValue>> handler)
    {
        _onDeliveryFailed = handler ?? throw new ArgumentNullException(nameof(handler));
        return this;
    }

    /// <summary>Builds the producer.</summary>
    /// <returns>The producer; dispose it (asynchronously) to flush and release it.</returns>
    /// <exception cref="OptionsValidationException">
    /// The options are invalid, or librdkafka refuses properties (unknown names, bad values); the message lists every
    /// problem, secret values redacted.
    /// </exception>
    /// <exception cref="ArgumentException">librdkafka refused the combination of properties (each one alone is valid).</exception>
    /// <exception cref="InvalidOperationException">
    /// The librdkafka the application loaded before KafkaKit (see docs/packaging.md) is older than the one Confluent.Kafka
    /// ships with; the message names its file and version and the fix.
    /// </exception>
    public IKafkaProducer<TKey, TValue> Build()
    {
        Librdkafka.DescribeOnce(_loggerFactory.CreateLogger("KafkaKit.Librdkafka"));
        var problems = new List<string>();
        var merged = _options.Resolve(_name, _shared, problems).Values;
        if (problems.Count > 0)
        {
            throw new OptionsValidationException(_name, typeof(KafkaProducerOptions), problems.Distinct());
        }

        var logger = _loggerFactory.CreateLogger("KafkaKit.Producer");
        var circuit = _pipeline is null && _options.Retry.CircuitBreaker ? new CircuitBreakerStateProvider() : null;
        var producer = new KafkaProducer<TKey, TValue>(
            _name,
            new ProducerConfig(merged.ToDictionary(StringComparer.Ordinal)),
            _options,
            _asyncKeySerializer is not null ? PreSerialized<TKey>.Instance : _keySerializer ?? KafkaSerializers.SerializerFor<TKey>(_shared?.Json.ToSerializerOptions()),
            _asyncValueSerializer is not null ? PreSerialized<TValue>.Instance : _valueSerializer ?? KafkaSerializers.SerializerFor<TValue>(_shared?.Json.ToSerializerOptions()),
            _pipeline ?? BuildPipeline(logger, circuit),
            firstAttemptOutsidePipeline: _pipeline is null && _options.Retry.MaxRetryAttempts > 0 && !_options.Retry.CircuitBreaker,
            circuit,
            _onDeliveryFailed,
            logger,
            _timeProvider);
        return _asyncKeySerializer is null && _asyncValueSerializer is null
            ? producer
            : new AsyncSerializingProducer<TKey, TValue>(producer, _asyncKeySerializer, _asyncValueSerializer, _options, _timeProvider, logger);
    }

    internal KafkaProducerBuilder<TKey, TValue> SetShared(KafkaKitOptions shared)
    {
        _shared = shared;
        return this;
    }

    private ResiliencePipeline BuildPipeline(ILogger logger, CircuitBreakerStateProvider? circuit)
    {
        var retry = _options.Retry;
        if (retry.MaxRetryAttempts == 0 && !retry.CircuitBreaker)
        {
            return ResiliencePipeline.Empty;
        }

        var shouldHandle = new PredicateBuilder().Handle<ProduceException<TKey, TValue>>(e => ProduceErrors.IsRetriable(e.Error));
        var builder = new ResiliencePipelineBuilder { TimeProvider = _timeProvider };
        if (retry.MaxRetryAttempts > 0)
        {
            var budget = retry.MaxRetryDuration;
            var timeProvider = _timeProvider;
            var delay = retry.BaseDelay;
            var maxDelay = retry.MaxDelay;
            builder.AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = args => ValueTask.FromResult(
                    args.Outcome.Exception is ProduceException<TKey, TValue> e
                    && ProduceErrors.IsWorthAnotherAttempt(e.Error)
                    && RetryBudget.Left(args.Context, budget, timeProvider) > TimeSpan.Zero),
                MaxRetryAttempts = retry.MaxRetryAttempts,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = delay,
                MaxDelay = maxDelay,
                DelayGenerator = args => ValueTask.FromResult(RetryBudget.CapDelay(args.Context, args.AttemptNumber, budget, delay, maxDelay, timeProvider)),
                OnRetry = args =>
                {
                    if (args.Outcome.Exception is ProduceException<TKey, TValue> e)
                    {
                        Diagnostics.ProducerLog.Retrying(logger, _name, e.DeliveryResult.Topic, e.Error.Code, args.AttemptNumber + 1, args.RetryDelay);
                    }

                    return default;
                },
            });
        }

        if (retry.CircuitBreaker)
        {
            builder.AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                ShouldHandle = shouldHandle,
                FailureRatio = 0.5,
                MinimumThroughput = 10,
                SamplingDuration = TimeSpan.FromSeconds(30),
                BreakDuration = retry.CircuitBreakDuration,
                StateProvider = circuit,
            });
        }

        return builder.Build();
    }
}
