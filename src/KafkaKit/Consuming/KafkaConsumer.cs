using Confluent.Kafka;
using KafkaKit.Diagnostics;
using KafkaKit.Internal;
using Microsoft.Extensions.Logging;
using Polly;

namespace KafkaKit.Consuming;

/// <summary>
/// A consumer-group member that polls on one dedicated thread and hands messages to an async handler on the thread pool,
/// with at-least-once offsets, rebalance handling and bounded graceful shutdown. Built by
/// <see cref="KafkaConsumerBuilder{TKey, TValue}"/>; hosted by DI's <c>AddConsumer</c>.
/// </summary>
/// <typeparam name="TKey">The message key type.</typeparam>
/// <typeparam name="TValue">The message value type.</typeparam>
/// <remarks>
/// <para>
/// The poll thread never runs handlers and keeps polling while handlers are slow: a partition whose buffer
/// (<see cref="KafkaConsumerOptions.PartitionBufferSize"/>, <see cref="KafkaConsumerOptions.MaxBufferedBytes"/>) is full is
/// paused and resumed when it has drained to half, so
/// <c>max.poll.interval.ms</c> is not exceeded because of a slow handler.
/// </para>
/// <para>
/// Offsets: <c>enable.auto.commit=true</c>, <c>enable.auto.offset.store=false</c>. The offset after a message is stored
/// only once every earlier message of its partition completed, and only while the partition is assigned; stored offsets
/// are committed every <see cref="KafkaConsumerOptions.CommitInterval"/>, when partitions are revoked (librdkafka commits
/// the revoked partitions' final offsets before the member rejoins), and synchronously on stop.
/// </para>
/// <para>
/// Rebalance callbacks run on the poll thread. On revoke, the revoked partitions' handlers get
/// <see cref="KafkaConsumerOptions.RevokeTimeout"/> to finish (then are cancelled), their final offsets are stored, the
/// revoked callback runs, and once it returns librdkafka commits those offsets before the member rejoins the group. On
/// loss (session timeout, fencing), handlers are cancelled and nothing is committed. The assigned callback does no network
/// call: each assignment's start offsets are looked up afterwards, on another thread, and logged as one line (event 2001).
/// Exceptions from user callbacks are logged and never reach librdkafka.
/// </para>
/// </remarks>
public sealed partial class KafkaConsumer<TKey, TValue> : IAsyncDisposable
{
    private const int PausedPollMs = 5;
    private static readonly TimeSpan MaintenanceInterval = TimeSpan.FromMilliseconds(10);

    private readonly ConsumerConfig _config;
    private readonly KafkaConsumerOptions _options;
    private readonly DeadLetterPublisher? _deadLetters;
    private readonly RetryTopicRouter? _retryTopics;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ClientLogSummariser _logSummariser;
    private readonly PatternSubscriptionWatch? _patternWatch;
    private readonly OffsetCommitter _committer;
    private readonly MessageProcessor<TKey, TValue> _processor;
    private readonly PartitionSet _partitions;
    private readonly RebalanceHandler _rebalance;
    private readonly ConsumerStatistics _statistics;
    private readonly TransactionCoordinator? _transactions;
    private readonly CancellationTokenSource _stopHard = new();
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IConsumer<byte[]?, byte[]?>? _consumer;
    private int _state = (int)KafkaConsumerState.Created;
    private volatile bool _stopRequested;
    private bool _disposed;
    private Exception? _fault;
    private long _lastPollTimestamp;
    private TopicPartition[]? _watchedAssignment; // poll thread only: the assignment the pattern watch last saw

    internal KafkaConsumer(
        string name,
        ConsumerConfig config,
        KafkaConsumerOptions options,
        IDeserializer<TKey> keyDeserializer,
        IDeserializer<TValue> valueDeserializer,
        Func<ConsumeResult<TKey, TValue>, CancellationToken, ValueTask> handler,
        ResiliencePipeline retry,
        bool firstAttemptOutsidePipeline,
        DeadLetterPublisher? deadLetters,
        RebalanceCallbacks callbacks,
        ILogger logger,
        TimeProvider timeProvider,
        RetryTopicRouter? retryTopics = null,
        Func<IReadOnlyList<ConsumeResult<TKey, TValue>>, CancellationToken, ValueTask>? batchHandler = null,
        TransactionCoordinator? transactions = null)
    {
        Name = name;
        _retryTopics = retryTopics;
        _config = config;
        _options = options;
        _deadLetters = deadLetters;
        _logger = logger;
        _time = timeProvider;
        _logSummariser = new ClientLogSummariser(logger, name, timeProvider);
        _patternWatch = PatternSubscriptionWatch.For(name, options.Topics, config, logger, () => State == KafkaConsumerState.Running ? ClientHandle : null);
        _committer = new OffsetCommitter(name, config.GroupId, logger, storesOffsets: transactions is null);
        _processor = new MessageProcessor<TKey, TValue>(
            name, config.GroupId, options, keyDeserializer, valueDeserializer, handler, retry, firstAttemptOutsidePipeline, deadLetters, Fail, logger, timeProvider, retryTopics)
        {
            BatchHandler = batchHandler,
        };
        var batch = batchHandler is null ? null : new BatchDispatch(options.Batch.MaxBatchSize, options.Batch.MaxBatchWait, timeProvider, _processor.ProcessBatchAsync);
        _partitions = new PartitionSet(name, options, _committer, logger, timeProvider, _processor.ProcessAsync, _stopHard.Token, retryTopics, batch);
        _rebalance = new RebalanceHandler(name, config, options, callbacks, _partitions, _committer, () => _stopRequested, logger, timeProvider);
        _statistics = new ConsumerStatistics(name, config.GroupId, () => _partitions.Assignment, logger);
        _transactions = transactions;
        if (transactions is not null)
        {
            transactions.Attach(_partitions, Fail);
            _rebalance.Transactions = transactions;
        }

        MaxPollInterval = TimeSpan.FromMilliseconds(config.MaxPollIntervalMs ?? KafkaConsumerOptions.DefaultMaxPollIntervalMs);
    }

    /// <summary>Gets the consumer's name (its <c>client.id</c>).</summary>
    public string Name { get; }

    /// <summary>
    /// Gets how long a deserializer's service (e.g. a schema registry) has been unreachable while records waited for it,
    /// or <see langword="null"/> when it is not (health reports Degraded meanwhile).
    /// </summary>
    internal TimeSpan? DeserializerUnavailableFor => _processor.DeserializerUnavailableFor;

    /// <summary>Gets the consumer group id.</summary>
    public string GroupId => _config.GroupId;

    /// <summary>Gets the life-cycle state.</summary>
    public KafkaConsumerState State => (KafkaConsumerState)Volatile.Read(ref _state);

    /// <summary>Gets the error that stopped the consumer when <see cref="State"/> is <see cref="KafkaConsumerState.Faulted"/>.</summary>
    public Exception? Fault => Volatile.Read(ref _fault);

    /// <summary>Gets the partitions currently assigned to this member (a snapshot).</summary>
    public IReadOnlyList<TopicPartition> Assignment => _partitions.Assignment;

    /// <summary>Gets how long ago the poll thread last returned from a poll, or <see langword="null"/> before the first poll.</summary>
    public TimeSpan? SinceLastPoll
    {
        get
        {
            var last = Interlocked.Read(ref _lastPollTimestamp);
            return last == 0 ? null : _time.GetElapsedTime(last);
        }
    }

    /// <summary>Gets <c>max.poll.interval.ms</c> as configured (default 300,000 ms).</summary>
    public TimeSpan MaxPollInterval { get; }

    /// <summary>Gets the librdkafka handle while the client exists (for health probes through a dependent admin client).</summary>
    internal Handle? ClientHandle
    {
        get
        {
            try
            {
                return _consumer?.Handle;
            }
            catch (ObjectDisposedException)
            {
                return null;
            }
        }
    }

    /// <summary>Gets the librdkafka properties the client is built with (KafkaKit's defaults and the user's, merged).</summary>
    internal ConsumerConfig Config => _config;

    /// <summary>Gets the dead-letter publisher with <see cref="ConsumerErrorAction.DeadLetter"/>, or <see langword="null"/>.</summary>
    internal DeadLetterPublisher? DeadLetters => _deadLetters;

    /// <summary>Gets the number of offset commits that failed so far (each logged; later commits carry the offsets).</summary>
    public long CommitFailures => _committer.Failures;

    /// <summary>Waits until the poll thread has stopped, for whatever reason (never throws); <see cref="State"/> then says how.</summary>
    /// <returns>A task that completes when the consumer has stopped.</returns>
#pragma warning disable VSTHRD003 // the task of a completion source this class owns and completes (continuations run asynchronously)
    internal Task WhenStoppedAsync() => _stopped.Task;
#pragma warning restore VSTHRD003

    /// <summary>Gets the exactly-once commit path of a transactional consumer, or <see langword="null"/>.</summary>
    internal TransactionCoordinator? Transactions => _transactions;

    /// <summary>Gets the options the consumer was built with.</summary>
    internal KafkaConsumerOptions Options => _options;

    /// <summary>Gets the lag and group state from librdkafka's statistics (for the readiness check).</summary>
    internal ConsumerStatistics Statistics => _statistics;

    /// <summary>
    /// Creates the librdkafka consumer, subscribes and starts the poll thread. Returns at once: joining the group and
    /// reaching the cluster happen in the background (failures are logged and retried).
    /// </summary>
    /// <param name="cancellationToken">Not used beyond an early check; present for the hosting contract.</param>
    /// <returns>A completed task.</returns>
    /// <exception cref="InvalidOperationException">The consumer was started before.</exception>
    /// <exception cref="ArgumentException">librdkafka refused a property (unknown name or bad value).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The consumer was disposed.</exception>
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (Volatile.Read(ref _disposed))
        {
            throw new ObjectDisposedException(GetType().FullName, $"Consumer '{Name}' was disposed; build a new consumer to consume again.");
        }

        if (Interlocked.CompareExchange(ref _state, (int)KafkaConsumerState.Running, (int)KafkaConsumerState.Created) != (int)KafkaConsumerState.Created)
        {
            throw new InvalidOperationException($"Consumer '{Name}' was started before; a consumer runs once.");
        }

        ConsumerLog.Starting(_logger, Name, _config.GroupId, string.Join(", ", _options.Topics), GroupProtocolRules.Describe(_config.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal)),
            _config.Get("auto.offset.reset") ?? "latest");
        ConsumerLog.Configuration(_logger, Name, ConfigText.Redacted(_config));
        try
        {
            _consumer = new ConsumerBuilder<byte[]?, byte[]?>(_config)
                .SetErrorHandler((_, error) => OnError(error))
                .SetLogHandler((_, message) => ClientLog.Forward(_logSummariser, message))
                .SetOffsetsCommittedHandler((_, committed) => _committer.OnCommitted(committed, _partitions.Assignment))
                .SetStatisticsHandler((_, json) => _statistics.OnStatistics(json))
                .SetPartitionsAssignedHandler((c, partitions) => _rebalance.OnAssigned(c, partitions))
                .SetPartitionsRevokedHandler((c, partitions) => _rebalance.OnRevoked(c, partitions))
                .SetPartitionsLostHandler((c, partitions) => _rebalance.OnLost(c, partitions))
                .Build();
            _consumer.Subscribe(_retryTopics is null ? _options.Topics : [.. _options.Topics, .. _retryTopics.Topics]);
        }
        catch
        {
            Volatile.Write(ref _state, (int)KafkaConsumerState.Faulted);
            _consumer?.Dispose();
            _stopped.TrySetResult();
            throw;
        }

        _statistics.Observe();
        new Thread(PollLoop) { IsBackground = true, Name = $"kafkakit-poll-{Name}" }.Start();
        return Task.CompletedTask;
    }

    /// <summary>
    /// Stops gracefully: stops dispatching, waits for running handlers up to <see cref="KafkaConsumerOptions.ShutdownTimeout"/>
    /// (then cancels them), stores and commits the handled offsets synchronously, leaves the group (<c>Close()</c>) and
    /// releases the client. Idempotent. Returns at the latest <see cref="KafkaConsumerOptions.ShutdownTimeout"/> +
    /// <see cref="KafkaConsumerOptions.CloseTimeout"/> + 5 s after the call; past that the poll thread finishes in the
    /// background (event 2014).
    /// </summary>
    /// <param name="cancellationToken">The host's shutdown bound: when cancelled, running handlers are cancelled at once and the stop returns without waiting further.</param>
    /// <returns>A task that completes when the consumer has stopped, or when the bound passed.</returns>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (State == KafkaConsumerState.Created)
        {
            Volatile.Write(ref _state, (int)KafkaConsumerState.Stopped);
            _stopped.TrySetResult();
            return;
        }

        _stopRequested = true;
        var bound = _options.ShutdownTimeout + _options.CloseTimeout + TimeSpan.FromSeconds(5);
        using var registration = cancellationToken.Register(static s => ((CancellationTokenSource)s!).Cancel(), _stopHard);
        try
        {
            await _stopped.Task.WaitAsync(bound, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            ConsumerLog.StopTimedOut(_logger, Name, bound);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            ConsumerLog.StopAbandoned(_logger, Name);
        }
    }

    /// <summary>Stops the consumer (see <see cref="StopAsync"/>) and releases it.</summary>
    /// <returns>A task that completes when stopped.</returns>
    public async ValueTask DisposeAsync()
    {
        Volatile.Write(ref _disposed, true);
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        if (_stopped.Task.IsCompleted)
        {
            _stopHard.Dispose();
        }
    }

    private void OnError(Error error)
    {
        if (error.IsFatal)
        {
            ConsumerLog.Fatal(_logger, Name, error.Reason, error.Code);
            Fail(new KafkaException(error));
            return;
        }

        if (_logSummariser.ShouldLog(LogLevel.Warning, error.Reason))
        {
            ConsumerLog.ClientError(_logger, Name, error.Reason, error.Code);
        }
    }

    /// <summary>Records the error that stops the consumer (the first one wins) and asks the poll loop to stop; any thread.</summary>
    private void Fail(Exception fault)
    {
        if (Interlocked.CompareExchange(ref _fault, fault, null) is null)
        {
            ConsumerLog.Faulted(_logger, fault, Name, fault.Message.TrimEnd('.'));
        }

        _stopRequested = true;
    }
}
