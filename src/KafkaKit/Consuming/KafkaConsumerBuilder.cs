using Confluent.Kafka;
using KafkaKit.Internal;
using KafkaKit.Serialization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;

namespace KafkaKit.Consuming;

/// <summary>Builds a <see cref="KafkaConsumer{TKey, TValue}"/> outside dependency injection (DI uses it too).</summary>
/// <typeparam name="TKey">The message key type.</typeparam>
/// <typeparam name="TValue">The message value type.</typeparam>
/// <example>
/// <code>
/// var options = new KafkaConsumerOptions { BootstrapServers = "localhost:9092", GroupId = "billing" };
/// options.Topics.Add("orders");
/// await using var consumer = new KafkaConsumerBuilder&lt;string, Order&gt;("billing", options)
///     .SetHandler((result, ct) => HandleAsync(result.Message.Value, ct))
///     .Build();
/// await consumer.StartAsync();
/// </code>
/// </example>
public sealed class KafkaConsumerBuilder<TKey, TValue>
{
    private readonly string _name;
    private readonly KafkaConsumerOptions _options;
    private readonly RebalanceCallbacks _callbacks = new();
    private IDeserializer<TKey>? _keyDeserializer;
    private IDeserializer<TValue>? _valueDeserializer;
    private Func<ConsumeResult<TKey, TValue>, CancellationToken, ValueTask>? _handler;
    private Func<IReadOnlyList<ConsumeResult<TKey, TValue>>, CancellationToken, ValueTask>? _batchHandler;
    private Func<ConsumeResult<TKey, TValue>, TransactionContext, CancellationToken, ValueTask>? _transactionalHandler;
    private ILoggerFactory _loggerFactory = NullLoggerFactory.Instance;
    private ResiliencePipeline? _retry;
    private KafkaKitOptions? _shared;
    private TimeProvider _timeProvider = TimeProvider.System;

    /// <summary>Initializes a new instance of the <see cref="KafkaConsumerBuilder{TKey, TValue}"/> class.</summary>
    /// <param name="name">The consumer's name: its <c>client.id</c> and the name in logs, metrics and health.</param>
    /// <param name="options">The consumer's options.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is null or empty.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="options"/> is null.</exception>
    public KafkaConsumerBuilder(string name, KafkaConsumerOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(options);
        _name = name;
        _options = options;
    }

    /// <summary>Sets the message handler. Required.</summary>
    /// <param name="handler">See <see cref="IKafkaMessageHandler{TKey, TValue}.HandleAsync"/> for its contract.</param>
    /// <returns>This builder.</returns>
    public KafkaConsumerBuilder<TKey, TValue> SetHandler(Func<ConsumeResult<TKey, TValue>, CancellationToken, ValueTask> handler)
    {
        _handler = handler ?? throw new ArgumentNullException(nameof(handler));
        return this;
    }

    /// <summary>Sets the message handler. Required.</summary>
    /// <param name="handler">The handler; one instance serves every message.</param>
    /// <returns>This builder.</returns>
    public KafkaConsumerBuilder<TKey, TValue> SetHandler(IKafkaMessageHandler<TKey, TValue> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        _handler = handler.HandleAsync;
        return this;
    }

    /// <summary>
    /// Sets the handler of an exactly-once consumer (consume-transform-produce, KIP-98/KIP-447): what it produces through
    /// its <see cref="TransactionContext"/> is committed in one Kafka transaction with the handled records' offsets.
    /// Requires <see cref="ConsumerTransactionOptions.TransactionalIdPrefix"/> in <see cref="KafkaConsumerOptions.Transactions"/>;
    /// replaces <see cref="SetHandler(Func{ConsumeResult{TKey, TValue}, CancellationToken, ValueTask})"/>.
    /// </summary>
    /// <param name="handler">See <see cref="ITransactionalMessageHandler{TKey, TValue}.HandleAsync"/> for its contract.</param>
    /// <returns>This builder.</returns>
    public KafkaConsumerBuilder<TKey, TValue> SetTransactionalHandler(Func<ConsumeResult<TKey, TValue>, TransactionContext, CancellationToken, ValueTask> handler)
    {
        _transactionalHandler = handler ?? throw new ArgumentNullException(nameof(handler));
        return this;
    }

    /// <summary>Sets the handler of an exactly-once consumer; as for <see cref="SetTransactionalHandler(Func{ConsumeResult{TKey, TValue}, TransactionContext, CancellationToken, ValueTask})"/>.</summary>
    /// <param name="handler">The handler; one instance serves every message.</param>
    /// <returns>This builder.</returns>
    public KafkaConsumerBuilder<TKey, TValue> SetTransactionalHandler(ITransactionalMessageHandler<TKey, TValue> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        _transactionalHandler = handler.HandleAsync;
        return this;
    }

    /// <summary>
    /// Sets a batch handler instead of a message handler: messages are handed over in batches of one partition
    /// (<see cref="KafkaConsumerOptions.Batch"/>). Requires <see cref="KafkaConsumerOptions.Ordering"/> =
    /// <see cref="ConsumerOrdering.Partition"/>; <see cref="Build"/> refuses other orderings and a message handler set too.
    /// </summary>
    /// <param name="handler">See <see cref="IKafkaBatchHandler{TKey, TValue}.HandleAsync"/> for its contract.</param>
    /// <returns>This builder.</returns>
    public KafkaConsumerBuilder<TKey, TValue> SetBatchHandler(Func<IReadOnlyList<ConsumeResult<TKey, TValue>>, CancellationToken, ValueTask> handler)
    {
        _batchHandler = handler ?? throw new ArgumentNullException(nameof(handler));
        return this;
    }

    /// <summary>Sets a batch handler instead of a message handler; as <see cref="SetBatchHandler(Func{IReadOnlyList{ConsumeResult{TKey, TValue}}, CancellationToken, ValueTask})"/>.</summary>
    /// <param name="handler">The handler; one instance serves every batch.</param>
    /// <returns>This builder.</returns>
    public KafkaConsumerBuilder<TKey, TValue> SetBatchHandler(IKafkaBatchHandler<TKey, TValue> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        _batchHandler = handler.HandleAsync;
        return this;
    }

    /// <summary>Sets the key deserializer. Default: <see cref="KafkaSerializers.DeserializerFor{T}"/>.</summary>
    /// <param name="deserializer">The deserializer; it runs on a thread-pool thread before the handler. A failure goes to <see cref="KafkaConsumerOptions.OnError"/>, unretried.</param>
    /// <returns>This builder.</returns>
    public KafkaConsumerBuilder<TKey, TValue> SetKeyDeserializer(IDeserializer<TKey> deserializer)
    {
        _keyDeserializer = deserializer ?? throw new ArgumentNullException(nameof(deserializer));
        return this;
    }

    /// <summary>
    /// Sets an asynchronous key deserializer (e.g. a Schema Registry serde). It is awaited on the handler side (a
    /// thread-pool continuation, never the poll thread; no thread is blocked while it waits for I/O). A
    /// <see cref="SerializationUnavailableException"/> it throws is transient: the record is retried with backoff while
    /// its partition waits, never handed to <see cref="KafkaConsumerOptions.OnError"/>; any other exception goes to
    /// <see cref="KafkaConsumerOptions.OnError"/>, unretried.
    /// </summary>
    /// <param name="deserializer">The deserializer; replaces one set before.</param>
    /// <returns>This builder.</returns>
    public KafkaConsumerBuilder<TKey, TValue> SetKeyDeserializer(IAsyncDeserializer<TKey> deserializer)
    {
        ArgumentNullException.ThrowIfNull(deserializer);
        _keyDeserializer = new AsyncDeserializer<TKey>(deserializer);
        return this;
    }

    /// <summary>Sets the value deserializer. Default: <see cref="KafkaSerializers.DeserializerFor{T}"/>.</summary>
    /// <param name="deserializer">The deserializer; as for <see cref="SetKeyDeserializer(IDeserializer{TKey})"/>.</param>
    /// <returns>This builder.</returns>
    public KafkaConsumerBuilder<TKey, TValue> SetValueDeserializer(IDeserializer<TValue> deserializer)
    {
        _valueDeserializer = deserializer ?? throw new ArgumentNullException(nameof(deserializer));
        return this;
    }

    /// <summary>Sets an asynchronous value deserializer (e.g. a Schema Registry serde); as for <see cref="SetKeyDeserializer(IAsyncDeserializer{TKey})"/>.</summary>
    /// <param name="deserializer">The deserializer; replaces one set before.</param>
    /// <returns>This builder.</returns>
    public KafkaConsumerBuilder<TKey, TValue> SetValueDeserializer(IAsyncDeserializer<TValue> deserializer)
    {
        ArgumentNullException.ThrowIfNull(deserializer);
        _valueDeserializer = new AsyncDeserializer<TValue>(deserializer);
        return this;
    }

    /// <summary>Sets the logger factory (category <c>KafkaKit.Consumer</c>). Default: no logging.</summary>
    /// <param name="loggerFactory">The factory.</param>
    /// <returns>This builder.</returns>
    public KafkaConsumerBuilder<TKey, TValue> SetLoggerFactory(ILoggerFactory loggerFactory)
    {
        _loggerFactory = loggerFactory ?? throw new ArgumentNullException(nameof(loggerFactory));
        return this;
    }

    /// <summary>Replaces the handler retry pipeline built from <see cref="KafkaConsumerOptions.Retry"/>.</summary>
    /// <param name="pipeline">The pipeline; <see cref="ResiliencePipeline.Empty"/> turns retries off.</param>
    /// <returns>This builder.</returns>
    public KafkaConsumerBuilder<TKey, TValue> SetResiliencePipeline(ResiliencePipeline pipeline)
    {
        _retry = pipeline ?? throw new ArgumentNullException(nameof(pipeline));
        return this;
    }

    /// <summary>
    /// Sets the callback run after partitions are assigned (incremental with cooperative-sticky, KIP-429, and with the
    /// consumer group protocol, KIP-848; the whole assignment with eager strategies). Runs on the poll thread. Return start offsets for some partitions to override
    /// the committed offset / <c>auto.offset.reset</c>, or <see langword="null"/>. An exception is logged and ignored.
    /// </summary>
    /// <param name="callback">The callback.</param>
    /// <returns>This builder.</returns>
    public KafkaConsumerBuilder<TKey, TValue> SetPartitionsAssignedHandler(Func<IReadOnlyList<TopicPartition>, IEnumerable<TopicPartitionOffset>?> callback)
    {
        _callbacks.Assigned = callback ?? throw new ArgumentNullException(nameof(callback));
        return this;
    }

    /// <summary>
    /// Sets the callback run after partitions are revoked, once their handlers finished (or were cancelled after
    /// <see cref="KafkaConsumerOptions.RevokeTimeout"/>) and their final offsets were stored. When it returns, librdkafka
    /// commits those offsets (<c>enable.auto.commit</c>) and the member rejoins the group only after that commit; a
    /// failed commit is logged (event 2004) and counted. Runs on the poll thread, inside the rebalance: keep it short. An
    /// exception is logged and ignored.
    /// </summary>
    /// <param name="callback">The callback.</param>
    /// <returns>This builder.</returns>
    public KafkaConsumerBuilder<TKey, TValue> SetPartitionsRevokedHandler(Action<IReadOnlyList<TopicPartitionOffset>> callback)
    {
        _callbacks.Revoked = callback ?? throw new ArgumentNullException(nameof(callback));
        return this;
    }

    /// <summary>
    /// Sets the callback run after partitions are lost (the member was considered dead by the group, e.g. after
    /// <c>session.timeout.ms</c> without heartbeats, or fenced by the broker under the consumer group protocol): their handlers were cancelled and nothing was committed. Runs on
    /// the poll thread. An exception is logged and ignored.
    /// </summary>
    /// <param name="callback">The callback.</param>
    /// <returns>This builder.</returns>
    public KafkaConsumerBuilder<TKey, TValue> SetPartitionsLostHandler(Action<IReadOnlyList<TopicPartitionOffset>> callback)
    {
        _callbacks.Lost = callback ?? throw new ArgumentNullException(nameof(callback));
        return this;
    }

    /// <summary>Builds the consumer (not started).</summary>
    /// <returns>The consumer; call <see cref="KafkaConsumer{TKey, TValue}.StartAsync"/>.</returns>
    /// <exception cref="OptionsValidationException">The options are invalid or no handler is set; the message lists every problem.</exception>
    /// <exception cref="InvalidOperationException">
    /// The librdkafka the application loaded before KafkaKit (see docs/packaging.md) is older than the one Confluent.Kafka
    /// ships with; the message names its file and version and the fix.
    /// </exception>
    public KafkaConsumer<TKey, TValue> Build()
    {
        Librdkafka.DescribeOnce(_loggerFactory.CreateLogger("KafkaKit.Librdkafka"));
        var problems = new List<string>();
        var merged = _options.Resolve(_name, _shared, problems).Values;
        if (_options.Transactions.Enabled)
        {
            if (_transactionalHandler is null)
            {
                problems.Add($"Consumer '{_name}' has Transactions.TransactionalIdPrefix set but no transactional handler: call SetTransactionalHandler (or register one with AddTransactionalConsumer<TKey, TValue, THandler>).");
            }

            if (_handler is not null || _batchHandler is not null)
            {
                problems.Add($"Consumer '{_name}' has Transactions.TransactionalIdPrefix set and a message or batch handler: an exactly-once consumer takes only SetTransactionalHandler.");
            }

            if (_options.OnError == ConsumerErrorAction.RetryTopics)
            {
                problems.Add($"Consumer '{_name}': OnError is RetryTopics, which an exactly-once consumer does not support (a retry write would not be part of the transaction); use DeadLetter, Skip or Stop.");
            }
        }
        else if (_transactionalHandler is not null)
        {
            problems.Add($"Consumer '{_name}' has a transactional handler but Transactions.TransactionalIdPrefix is not set: set it (the producer's transactional.id is '<prefix>-{_name}').");
        }
        else if (_handler is null && _batchHandler is null)
        {
            problems.Add($"Consumer '{_name}' has no handler: call SetHandler or SetBatchHandler (or register one with AddConsumer or AddBatchConsumer).");
        }

        if (_batchHandler is not null)
        {
            ConsumerBatchOptions.ValidateBatchConsumer(_name, _options, _handler is not null, problems);
        }

        if (problems.Count > 0)
        {
            throw new OptionsValidationException(_name, typeof(KafkaConsumerOptions), problems.Distinct());
        }

        var logger = _loggerFactory.CreateLogger("KafkaKit.Consumer");
        DeadLetterPublisher? deadLetters = null;
        if (_options.OnError is ConsumerErrorAction.DeadLetter or ConsumerErrorAction.RetryTopics)
        {
            deadLetters = new DeadLetterPublisher(_name, merged, _options.DeadLetterTopic, logger);
        }

        TransactionCoordinator? transactions = null;
        var handler = _handler;
        if (_options.Transactions.Enabled)
        {
            transactions = new TransactionCoordinator(_name, merged, _options.Transactions, logger, _timeProvider);
            handler = TransactionalHandler(transactions, _transactionalHandler!);
        }

        return new KafkaConsumer<TKey, TValue>(
            _name,
            new ConsumerConfig(merged.ToDictionary(StringComparer.Ordinal)),
            _options,
            _keyDeserializer ?? KafkaSerializers.DeserializerFor<TKey>(_shared?.Json.ToSerializerOptions()),
            _valueDeserializer ?? KafkaSerializers.DeserializerFor<TValue>(_shared?.Json.ToSerializerOptions()),
            handler ?? (static (_, _) => throw new InvalidOperationException("A batch consumer has no message handler.")),
            _retry ?? BuildRetry(logger),
            firstAttemptOutsidePipeline: _retry is null,
            deadLetters,
            _callbacks,
            logger,
            _timeProvider,
            _options.OnError == ConsumerErrorAction.RetryTopics ? new RetryTopicRouter(_options, _timeProvider) : null,
            _batchHandler,
            transactions);
    }

    internal KafkaConsumerBuilder<TKey, TValue> SetShared(KafkaKitOptions shared)
    {
        _shared = shared;
        return this;
    }

    /// <summary>Sets the time source of the consumer's bounds, timestamps and retry delays. Default: <see cref="TimeProvider.System"/>.</summary>
    internal KafkaConsumerBuilder<TKey, TValue> SetTimeProvider(TimeProvider timeProvider)
    {
        _timeProvider = timeProvider ?? throw new ArgumentNullException(nameof(timeProvider));
        return this;
    }

    private ResiliencePipeline BuildRetry(ILogger logger)
    {
        var retry = _options.Retry;
        if (retry.MaxRetryAttempts == 0)
        {
            return ResiliencePipeline.Empty;
        }

        return new ResiliencePipelineBuilder { TimeProvider = _timeProvider }
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = args => ValueTask.FromResult(
                    args.Outcome.Exception is { } e and not HandlerUnavailableException && !(e is OperationCanceledException && args.Context.CancellationToken.IsCancellationRequested)),
                MaxRetryAttempts = retry.MaxRetryAttempts,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = retry.BaseDelay,
                MaxDelay = retry.MaxDelay,
                OnRetry = args =>
                {
                    args.Context.Properties.TryGetValue(MessageProcessor<TKey, TValue>.MessageKey, out var message);
                    var error = args.Outcome.Exception!;
                    Diagnostics.ConsumerLog.HandlerRetry(logger, _name, message?.Topic ?? "?", message?.Partition.Value ?? -1, message?.Offset.Value ?? -1, args.AttemptNumber + 1, args.RetryDelay, error.GetType().Name, error.Message);
                    return default;
                },
            })
            .Build();
    }

    /// <summary>Runs a transactional handler call inside a lease on the open transaction (see <see cref="TransactionCoordinator"/>).</summary>
    private static Func<ConsumeResult<TKey, TValue>, CancellationToken, ValueTask> TransactionalHandler(
        TransactionCoordinator transactions, Func<ConsumeResult<TKey, TValue>, TransactionContext, CancellationToken, ValueTask> handler) =>
        async (result, cancellationToken) =>
        {
            var context = await transactions.EnterAsync(cancellationToken).ConfigureAwait(false);
            var handled = false;
            try
            {
                await handler(result, context, cancellationToken).ConfigureAwait(false);
                handled = true;
            }
            catch (Exception e) when (context.Produced > 0 && e is not HandlerUnavailableException && !(e is OperationCanceledException && cancellationToken.IsCancellationRequested))
            {
                // Its output is in the open transaction and cannot be taken back in part: no retry, no OnError; the
                // transaction is aborted and the consumer stops.
                throw new HandlerUnavailableException(
                    $"Handling {result.Topic} [{result.Partition.Value}] @{result.Offset.Value} failed after producing {context.Produced} messages into the transaction; "
                    + "the transaction is aborted and the consumer stops (a handler must fail before producing for retries and OnError to apply).",
                    e);
            }
            finally
            {
                transactions.Exit(context, result.TopicPartitionOffset, handled);
            }
        };
}
