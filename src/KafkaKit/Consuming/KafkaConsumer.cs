using System.Diagnostics;
using System.Runtime.ExceptionServices;
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
    /// <summary>The resilience-context property carrying the message being retried, for retry logs.</summary>
    internal static readonly ResiliencePropertyKey<TopicPartitionOffset> MessageKey = new("KafkaKit.Message");

    private const int PausedPollMs = 5;
    private const long OffsetTailBase = -2000; // librdkafka's RD_KAFKA_OFFSET_TAIL_BASE: -2000 - n starts n messages before the end
    private static readonly TimeSpan MaintenanceInterval = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan StartLookupTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan CancelGrace = TimeSpan.FromSeconds(1);

    private readonly ConsumerConfig _config;
    private readonly KafkaConsumerOptions _options;
    private readonly IDeserializer<TKey> _keyDeserializer;
    private readonly IDeserializer<TValue> _valueDeserializer;
    private readonly Func<ConsumeResult<TKey, TValue>, CancellationToken, ValueTask> _handler;
    private readonly ResiliencePipeline _retry;
    private readonly bool _firstAttemptOutsidePipeline;
    private readonly DeadLetterPublisher? _deadLetters;
    private readonly RebalanceCallbacks _callbacks;
    private readonly ILogger _logger;
    private readonly ClientLogSummariser _logSummariser;
    private readonly PatternSubscriptionWatch? _patternWatch;
    private readonly Dictionary<TopicPartition, PartitionWorker> _workers = [];
    private readonly SemaphoreSlim _concurrency;
    private readonly CancellationTokenSource _stopHard = new();
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IConsumer<byte[]?, byte[]?>? _consumer;
    private volatile TopicPartition[] _assignment = [];
    private int _state = (int)KafkaConsumerState.Created;
    private volatile bool _stopRequested;
    private bool _disposed;
    private Exception? _fault;
    private long _lastPollTimestamp;
    private int _pausedCount; // poll thread only
    private TopicPartition[]? _watchedAssignment; // poll thread only: the assignment the pattern watch last saw
    private long _bufferedBytes; // poll thread only: estimate of all buffers, exact at each maintenance
    private List<System.Diagnostics.Metrics.Measurement<long>> _lags = [];
    private IDisposable? _lagGauge;
    private long _commitFailures;
    private long? _shutdownDeadline; // poll thread: the Stopwatch timestamp that bounds the drain once stopping
    private Task _startLookup = Task.CompletedTask; // poll thread: the start-position lookups of the assignments (LogStartPositions)

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
        ILogger logger)
    {
        Name = name;
        _config = config;
        _options = options;
        _keyDeserializer = keyDeserializer;
        _valueDeserializer = valueDeserializer;
        _handler = handler;
        _retry = retry;
        _firstAttemptOutsidePipeline = firstAttemptOutsidePipeline;
        _deadLetters = deadLetters;
        _callbacks = callbacks;
        _logger = logger;
        _logSummariser = new ClientLogSummariser(logger, name, TimeProvider.System);
        _patternWatch = PatternSubscriptionWatch.For(name, options.Topics, config, logger, () => State == KafkaConsumerState.Running ? ClientHandle : null);
        _concurrency = new SemaphoreSlim(options.MaxConcurrency, options.MaxConcurrency);
        MaxPollInterval = TimeSpan.FromMilliseconds(config.MaxPollIntervalMs ?? KafkaConsumerOptions.DefaultMaxPollIntervalMs);
    }

    /// <summary>Gets the consumer's name (its <c>client.id</c>).</summary>
    public string Name { get; }

    /// <summary>Gets the consumer group id.</summary>
    public string GroupId => _config.GroupId;

    /// <summary>Gets the life-cycle state.</summary>
    public KafkaConsumerState State => (KafkaConsumerState)Volatile.Read(ref _state);

    /// <summary>Gets the error that stopped the consumer when <see cref="State"/> is <see cref="KafkaConsumerState.Faulted"/>.</summary>
    public Exception? Fault => Volatile.Read(ref _fault);

    /// <summary>Gets the partitions currently assigned to this member (a snapshot).</summary>
    public IReadOnlyList<TopicPartition> Assignment => _assignment;

    /// <summary>Gets how long ago the poll thread last returned from a poll, or <see langword="null"/> before the first poll.</summary>
    public TimeSpan? SinceLastPoll
    {
        get
        {
            var last = Interlocked.Read(ref _lastPollTimestamp);
            return last == 0 ? null : Stopwatch.GetElapsedTime(last);
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
    public long CommitFailures => Interlocked.Read(ref _commitFailures);

    /// <summary>Waits until the poll thread has stopped, for whatever reason (never throws); <see cref="State"/> then says how.</summary>
    /// <returns>A task that completes when the consumer has stopped.</returns>
#pragma warning disable VSTHRD003 // the task of a completion source this class owns and completes (continuations run asynchronously)
    internal Task WhenStoppedAsync() => _stopped.Task;
#pragma warning restore VSTHRD003

    /// <summary>Gets the options the consumer was built with.</summary>
    internal KafkaConsumerOptions Options => _options;

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

        ConsumerLog.Starting(_logger, Name, _config.GroupId, string.Join(", ", _options.Topics), _options.AssignmentStrategy.ToString(),
            _config.Get("auto.offset.reset") ?? "latest");
        ConsumerLog.Configuration(_logger, Name, ConfigText.Redacted(_config));
        try
        {
            _consumer = new ConsumerBuilder<byte[]?, byte[]?>(_config)
                .SetErrorHandler((_, error) => OnError(error))
                .SetLogHandler((_, message) => ClientLog.Forward(_logSummariser, message))
                .SetOffsetsCommittedHandler((_, committed) => OnCommitted(committed))
                .SetStatisticsHandler((_, json) => OnStatistics(json))
                .SetPartitionsAssignedHandler((_, partitions) => OnAssigned(partitions))
                .SetPartitionsRevokedHandler((_, partitions) => OnRevoked(partitions))
                .SetPartitionsLostHandler((_, partitions) => OnLost(partitions))
                .Build();
            _consumer.Subscribe(_options.Topics);
        }
        catch
        {
            Volatile.Write(ref _state, (int)KafkaConsumerState.Faulted);
            _consumer?.Dispose();
            _stopped.TrySetResult();
            throw;
        }

        _lagGauge = KafkaKitMetrics.ObserveLag(() => Volatile.Read(ref _lags));
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
            await _stopped.Task.WaitAsync(bound, cancellationToken).ConfigureAwait(false);
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

        // _concurrency is not disposed: a handler that ignored its cancelled token can still be running and releases it
        // when it ends (a disposed SemaphoreSlim would throw there, on a thread-pool thread); it holds no OS handle.
        if (_stopped.Task.IsCompleted)
        {
            _stopHard.Dispose();
        }
    }

    // ---- poll thread -------------------------------------------------------------------------------------------

    private void PollLoop()
    {
        var consumer = _consumer!;
        var pollMs = (int)_options.PollTimeout.TotalMilliseconds;
        var lastMaintenance = 0L;
        try
        {
            while (!_stopRequested)
            {
                ConsumeResult<byte[]?, byte[]?>? result = null;
                try
                {
                    // While a partition is paused, poll in short slices so it resumes as soon as its buffer drains.
                    result = consumer.Consume(_pausedCount > 0 ? Math.Min(pollMs, PausedPollMs) : pollMs);
                }
                catch (ConsumeException e)
                {
                    ConsumerLog.ConsumeFailed(_logger, Name, e.Error.Reason, e.Error.Code);
                    if (e.Error.IsFatal)
                    {
                        Fail(e);
                    }
                }

                Interlocked.Exchange(ref _lastPollTimestamp, Stopwatch.GetTimestamp());
                if (result is { IsPartitionEOF: false })
                {
                    Dispatch(consumer, result);
                }

                if (result is null || Stopwatch.GetElapsedTime(lastMaintenance) >= MaintenanceInterval)
                {
                    lastMaintenance = Stopwatch.GetTimestamp();
                    Maintain(consumer);
                    WatchPatterns();
                }
            }
        }
        catch (Exception e)
        {
            Fail(e);
        }

        Shutdown(consumer);
    }

    /// <summary>
    /// Buffers a fetched message for its partition's worker; pauses the partition when its buffer holds
    /// <see cref="KafkaConsumerOptions.PartitionBufferSize"/> messages or all buffers together hold
    /// <see cref="KafkaConsumerOptions.MaxBufferedBytes"/>.
    /// </summary>
    /// <remarks>
    /// Pausing is the exception, not the rhythm: librdkafka drops what it prefetched for a paused partition and fetches
    /// it again only some hundred milliseconds after the resume, so buffers are sized like librdkafka's own prefetch
    /// queue and a partition resumes at half, while the rest is still being handled.
    /// </remarks>
    private void Dispatch(IConsumer<byte[]?, byte[]?> consumer, ConsumeResult<byte[]?, byte[]?> result)
    {
        if (!_workers.TryGetValue(result.TopicPartition, out var worker) || worker.IsStopping)
        {
            return; // not owned any more: the partition's next owner receives it
        }

        _bufferedBytes += worker.Write(result);
        if (!worker.Paused && (worker.Buffered >= _options.PartitionBufferSize || _bufferedBytes >= _options.MaxBufferedBytes))
        {
            consumer.Pause([worker.Partition]);
            worker.Paused = true;
            _pausedCount++;
            ConsumerLog.PartitionPaused(_logger, Name, worker.Partition, worker.Buffered, _bufferedBytes);
        }
    }

    /// <summary>
    /// Has the pattern watch list the matched topics at the first poll and after each assignment change: librdkafka
    /// rejoins the group whenever the topics its patterns match change.
    /// </summary>
    private void WatchPatterns()
    {
        var assignment = _assignment;
        if (_patternWatch is not null && !ReferenceEquals(assignment, _watchedAssignment))
        {
            _watchedAssignment = assignment;
            _patternWatch.Signal();
        }
    }

    /// <summary>Resumes partitions whose buffers drained to half, and stores completed offsets.</summary>
    private void Maintain(IConsumer<byte[]?, byte[]?> consumer)
    {
        var total = 0L;
        foreach (var worker in _workers.Values)
        {
            total += worker.BufferedBytes;
        }

        _bufferedBytes = total;
        foreach (var worker in _workers.Values)
        {
            if (worker.Paused && !worker.IsStopping
                && worker.Buffered <= _options.PartitionBufferSize / 2 && total <= _options.MaxBufferedBytes / 2)
            {
                consumer.Resume([worker.Partition]);
                worker.Paused = false;
                _pausedCount--;
                ConsumerLog.PartitionResumed(_logger, Name, worker.Partition);
            }

            Store(consumer, worker);
        }
    }

    private void Store(IConsumer<byte[]?, byte[]?> consumer, PartitionWorker worker)
    {
        var completed = worker.Completed;
        if (completed <= worker.Stored)
        {
            return; // nothing new; offsets never move backwards
        }

        try
        {
            consumer.StoreOffset(new TopicPartitionOffset(worker.Partition, completed));
            worker.Stored = completed;
        }
        catch (KafkaException e) when (ErrorCodeOf(e) == ErrorCode.Local_State)
        {
            // the partition is no longer assigned (a rebalance is under way): its next owner starts from the last commit
        }
        catch (KafkaException e)
        {
            // Store runs inside rebalance callbacks too: an exception there would reach librdkafka. The offset stays
            // unstored; the message is delivered again (at least once).
            ConsumerLog.StoreFailed(_logger, Name, worker.Partition, completed, e.Error.Reason, ErrorCodeOf(e));
        }
    }

    /// <summary>The error of a failed librdkafka call; for a per-partition failure, the first partition's error.</summary>
    private static ErrorCode ErrorCodeOf(KafkaException e) => e switch
    {
        TopicPartitionOffsetException partial => partial.Results.Select(r => r.Error.Code).FirstOrDefault(c => c != ErrorCode.NoError, e.Error.Code),
        TopicPartitionException partial => partial.Results.Select(r => r.Error.Code).FirstOrDefault(c => c != ErrorCode.NoError, e.Error.Code),
        _ => e.Error.Code,
    };

    /// <summary>Commits the stored offsets synchronously.</summary>
    /// <returns>The error when the commit failed (logged and counted), or <see langword="null"/> (also when there was nothing to commit).</returns>
    /// <param name="consumer">The client.</param>
    /// <param name="stopping">Whether the stop's final commit is being made: a refusal it will retry is logged as information, not as a warning.</param>
    private Error? Commit(IConsumer<byte[]?, byte[]?> consumer, bool stopping = false)
    {
        try
        {
            var committed = consumer.Commit();
            ConsumerLog.Committed(_logger, Name, string.Join(", ", committed));
            return null;
        }
        catch (KafkaException e) when (ErrorCodeOf(e) == ErrorCode.Local_NoOffset)
        {
            return null; // nothing stored since the last commit
        }
        catch (KafkaException e)
        {
            // A per-partition refusal surfaces as Local_Partial: classify it by the partitions' own error, so a commit
            // refused with REBALANCE_IN_PROGRESS is recognised (and retried at stop) whichever way librdkafka reports it.
            var error = new Error(ErrorCodeOf(e), e.Error.Reason);
            Interlocked.Increment(ref _commitFailures);
            KafkaKitMetrics.CommitFailures.Add(1, new KeyValuePair<string, object?>("messaging.consumer.group.name", GroupId));
            if (stopping && IsRetriableCommitError(error.Code))
            {
                ConsumerLog.FinalCommitRetrying(_logger, Name, error.Reason, error.Code);
            }
            else
            {
                ConsumerLog.CommitFailed(_logger, Name, error.Reason, error.Code);
            }

            return error;
        }
    }

    /// <summary>
    /// Stop steps 1-4 run while still polling, so a rebalance that starts meanwhile (another member leaving, say) can
    /// complete: a group member that stops polling cannot rejoin, and its commits would be refused until it is evicted.
    /// Nothing is dispatched: every partition is paused and fetched messages are dropped unhandled (their offsets are
    /// not stored, so the partitions' next owners receive them).
    /// </summary>
    private void Shutdown(IConsumer<byte[]?, byte[]?> consumer)
    {
        Volatile.Write(ref _state, (int)KafkaConsumerState.Stopping);
        var deadline = Stopwatch.GetTimestamp() + (long)(_options.ShutdownTimeout.TotalSeconds * Stopwatch.Frequency);
        _shutdownDeadline = deadline;
        try
        {
            ConsumerLog.StopStep(_logger, Name, "stop dispatching, drain running handlers");
            var workers = _workers.Values.ToArray();
            foreach (var worker in workers)
            {
                worker.BeginStop();
            }

            TryPause(consumer);
            var drained = Task.WhenAll(workers.Select(w => w.Run));
            while (!drained.IsCompleted && !_stopHard.IsCancellationRequested && Stopwatch.GetTimestamp() < deadline)
            {
                PollWithoutDispatch(consumer);
            }

            if (!drained.IsCompleted)
            {
                CancelRunning(workers, _options.ShutdownTimeout);
            }

            ConsumerLog.StopStep(_logger, Name, "store and commit handled offsets");
            foreach (var worker in _workers.Values)
            {
                Store(consumer, worker);
                worker.Dispose();
            }

            // The workers are done (drained, or cancelled after ShutdownTimeout): release them now, so that a revoke
            // during the commit retries or inside Close() finds nothing to drain and does not wait RevokeTimeout again
            // for a handler that ignores its token.
            _workers.Clear();

            // A commit refused because the group is rebalancing (or its coordinator moved) succeeds once this member has
            // rejoined, which needs polls: retry until the shutdown bound.
            while (Commit(consumer, stopping: true) is { } error && IsRetriableCommitError(error.Code)
                && !_stopHard.IsCancellationRequested && Stopwatch.GetTimestamp() < deadline)
            {
                var retryAt = Stopwatch.GetTimestamp() + (Stopwatch.Frequency / 5);
                while (Stopwatch.GetTimestamp() < retryAt)
                {
                    PollWithoutDispatch(consumer);
                }
            }

            ConsumerLog.StopStep(_logger, Name, "leave the group");
            try
            {
                consumer.Close();
            }
            catch (Exception e)
            {
                ConsumerLog.CloseFailed(_logger, e, Name);
            }
        }
        finally
        {
            foreach (var worker in _workers.Values)
            {
                worker.Dispose();
            }

            _workers.Clear();
            _assignment = [];

            // A start-position lookup calls into the client from its own thread: let it end (it gives up once a stop was
            // requested, and its calls are bounded by StartLookupTimeout) before the native handle goes. Blocking is
            // fine on this dedicated thread.
            ((IAsyncResult)_startLookup).AsyncWaitHandle.WaitOne();
            _patternWatch?.WaitForCheck();
            consumer.Dispose();
            _logSummariser.Dispose();
            // Dead-letter messages still in flight get what is left of the stop's bound (ShutdownTimeout from the start
            // of the stop, then CloseTimeout), so StopAsync returns within its documented bound; the rest is purged.
            _deadLetters?.Close(_stopHard.IsCancellationRequested ? TimeSpan.Zero : Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline) + _options.CloseTimeout);
            _lagGauge?.Dispose();
            var final = Fault is null ? KafkaConsumerState.Stopped : KafkaConsumerState.Faulted;
            Volatile.Write(ref _state, (int)final);
            ConsumerLog.Stopped(_logger, Name, final);
            _stopped.TrySetResult();
        }
    }

    private static bool IsRetriableCommitError(ErrorCode code) => code is ErrorCode.RebalanceInProgress or ErrorCode.IllegalGeneration
        or ErrorCode.NotCoordinatorForGroup or ErrorCode.GroupLoadInProgress or ErrorCode.GroupCoordinatorNotAvailable
        or ErrorCode.Local_WaitCoord or ErrorCode.Local_Transport or ErrorCode.RequestTimedOut or ErrorCode.Local_TimedOut;

    private void PollWithoutDispatch(IConsumer<byte[]?, byte[]?> consumer)
    {
        try
        {
            _ = consumer.Consume(50); // serves rebalance callbacks; a message returned here is dropped unhandled
            Interlocked.Exchange(ref _lastPollTimestamp, Stopwatch.GetTimestamp());
            TryPause(consumer);
        }
        catch (ConsumeException e)
        {
            ConsumerLog.ConsumeFailed(_logger, Name, e.Error.Reason, e.Error.Code);
        }
    }

    private static void TryPause(IConsumer<byte[]?, byte[]?> consumer)
    {
        try
        {
            var assignment = consumer.Assignment;
            if (assignment.Count > 0)
            {
                consumer.Pause(assignment);
            }
        }
        catch (KafkaException)
        {
            // assignment changing under a rebalance: the next poll pauses it
        }
    }

    /// <summary>Stops the workers taking messages, waits up to <paramref name="timeout"/> (or a hard stop), then cancels the rest.</summary>
    /// <remarks>
    /// Used inside the revoke callback, on the poll thread, which blocks here on purpose: librdkafka's rebalance protocol
    /// requires the revoke to finish before the partitions move, and this thread never runs handlers, so it cannot
    /// deadlock them.
    /// </remarks>
    private void Drain(PartitionWorker[] workers, TimeSpan timeout)
    {
        if (workers.Length == 0)
        {
            return;
        }

        foreach (var worker in workers)
        {
            worker.BeginStop();
        }

        var all = Task.WhenAll(workers.Select(w => w.Run));
        if (!_stopHard.IsCancellationRequested)
        {
            WaitHandle.WaitAny([((IAsyncResult)all).AsyncWaitHandle, _stopHard.Token.WaitHandle], timeout);
        }

        if (!all.IsCompleted)
        {
            CancelRunning(workers, timeout);
        }
    }

    private void CancelRunning(PartitionWorker[] workers, TimeSpan timeout)
    {
        var running = workers.Where(w => !w.Run.IsCompleted).ToArray();
        foreach (var worker in running)
        {
            worker.Cancel();
        }

        ConsumerLog.HandlersCancelled(_logger, Name, running.Length, timeout);
        AwaitCancelled(running);
    }

    /// <summary>
    /// Waits (poll thread) for cancelled workers to end: a handler that honours its token ends at once; one that ignores
    /// it is not waited for beyond a short grace.
    /// </summary>
    private static void AwaitCancelled(PartitionWorker[] cancelled)
    {
        if (cancelled.Length > 0)
        {
            ((IAsyncResult)Task.WhenAll(cancelled.Select(w => w.Run))).AsyncWaitHandle.WaitOne(CancelGrace);
        }
    }

    private List<TopicPartitionOffset> OnAssigned(List<TopicPartition> partitions)
    {
        foreach (var partition in _stopRequested ? [] : partitions)
        {
            var worker = new PartitionWorker(partition, _stopHard.Token);
            _workers[partition] = worker;
            worker.Start(ProcessAsync);
        }

        _assignment = [.. _workers.Keys];
        IEnumerable<TopicPartitionOffset>? chosen = null;
        if (_callbacks.Assigned is { } assigned)
        {
            try
            {
                chosen = assigned(partitions);
            }
            catch (Exception e)
            {
                ConsumerLog.CallbackFailed(_logger, e, Name, "partitions-assigned");
            }
        }

        var starts = partitions.Select(p => new TopicPartitionOffset(p, Offset.Unset)).ToList();
        if (chosen is not null)
        {
            foreach (var choice in chosen)
            {
                var index = starts.FindIndex(s => s.TopicPartition == choice.TopicPartition);
                if (index >= 0)
                {
                    starts[index] = choice;
                }
            }
        }

        // The start positions take network round trips to find (up to StartLookupTimeout): never here, where librdkafka
        // waits for this callback before it fetches the partitions and before this member can take its next rebalance
        // step. One lookup at a time, in rebalance order, on a thread of its own; only when the line will be written, and
        // nothing in the rebalance waits for it, so its timing does not depend on the log level.
        if (starts.Count > 0 && _logger.IsEnabled(LogLevel.Information))
        {
            _startLookup = _startLookup.ContinueWith(
                _ => LogStartPositions(starts), CancellationToken.None, TaskContinuationOptions.LongRunning, TaskScheduler.Default);
        }

        return starts;
    }

    /// <summary>
    /// Finds each newly assigned partition's start offset and why, and logs them as one line (event 2001). Runs on a
    /// thread of its own after the assignment callback returned; bounded by <see cref="StartLookupTimeout"/>.
    /// </summary>
    /// <remarks>
    /// The committed offsets are read just after the assignment, before this member can have committed anything newer
    /// for them (its first commit comes at the next <see cref="KafkaConsumerOptions.CommitInterval"/> tick at the
    /// earliest). Where no offset is committed, the offset <c>auto.offset.reset</c> leads to is read from the partition's
    /// watermarks: the low one for earliest, the high one for latest.
    /// </remarks>
    private void LogStartPositions(List<TopicPartitionOffset> starts)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(StartLookupTimeout.TotalSeconds * Stopwatch.Frequency);
        TimeSpan Left() => TimeSpan.FromSeconds(Math.Max(0, deadline - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency);
        var consumer = _consumer!;
        var reset = _config.AutoOffsetReset ?? AutoOffsetReset.Latest;
        var resetName = reset.ToString().ToLowerInvariant();
        var resetTarget = reset switch
        {
            AutoOffsetReset.Earliest => Offset.Beginning,
            AutoOffsetReset.Latest => Offset.End,
            _ => Offset.Unset,
        };
        try
        {
            // 1. The group's committed offsets, for the partitions the assigned callback left to them (one request).
            Dictionary<TopicPartition, Offset>? committed = null;
            var committedFailure = "lookup skipped while stopping";
            var toLookUp = starts.Where(s => !ChosenByCallback(s.Offset)).Select(s => s.TopicPartition).ToList();
            if (toLookUp.Count > 0 && !_stopRequested)
            {
                try
                {
                    committed = consumer.Committed(toLookUp, Left()).ToDictionary(c => c.TopicPartition, c => c.Offset);
                }
                catch (KafkaException e)
                {
                    committedFailure = e.Error.Reason;
                }
            }

            // 2. Where each partition starts: a number, or a logical offset (beginning, end, n before the end) with why.
            var targets = new List<(TopicPartition Partition, Offset Target, string Why)>(starts.Count);
            foreach (var start in starts)
            {
                if (ChosenByCallback(start.Offset))
                {
                    var how = start.Offset.Value >= 0 ? string.Empty
                        : start.Offset == Offset.Beginning ? "beginning, "
                        : start.Offset == Offset.End ? "end, "
                        : $"{OffsetTailBase - start.Offset.Value} before the end, ";
                    targets.Add((start.TopicPartition, start.Offset, $"{how}set by the partitions-assigned callback"));
                }
                else if (committed is null)
                {
                    targets.Add((start.TopicPartition, Offset.Unset, $"committed offset unknown: {committedFailure}; else {resetName}: auto.offset.reset"));
                }
                else if (committed.TryGetValue(start.TopicPartition, out var offset) && !offset.IsSpecial)
                {
                    targets.Add((start.TopicPartition, offset, "committed"));
                }
                else
                {
                    targets.Add((start.TopicPartition, resetTarget, resetTarget == Offset.Unset
                        ? "no committed offset and auto.offset.reset=error: the partition reports an error"
                        : $"{resetName}: auto.offset.reset, no committed offset"));
                }
            }

            // 3. The watermarks the logical offsets stand for: one ListOffsets per kind for all partitions
            //    (timestamp -2 is the earliest offset, -1 the latest).
            var earliest = Watermarks(consumer, targets.Where(t => t.Target == Offset.Beginning || t.Target.Value <= OffsetTailBase).Select(t => t.Partition), Offset.Beginning.Value, Left);
            var latest = Watermarks(consumer, targets.Where(t => t.Target == Offset.End || t.Target.Value <= OffsetTailBase).Select(t => t.Partition), Offset.End.Value, Left);
            var positions = targets.Select(t =>
            {
                long? number = t.Target.Value >= 0 ? t.Target.Value
                    : t.Target == Offset.Beginning ? Find(earliest, t.Partition)
                    : t.Target == Offset.End ? Find(latest, t.Partition)
                    : t.Target.Value <= OffsetTailBase && Find(latest, t.Partition) is { } high
                        ? Math.Max(Find(earliest, t.Partition) ?? 0, high - (OffsetTailBase - t.Target.Value))
                        : null;
                var at = number?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?";
                return $"{t.Partition.Topic} [{t.Partition.Partition.Value}] @{at} ({t.Why})";
            });
            ConsumerLog.Assigned(_logger, Name, starts.Count, string.Join(", ", positions));
        }
        catch (ObjectDisposedException)
        {
            // the consumer stopped meanwhile
        }
    }

    private static long? Find(Dictionary<TopicPartition, long>? offsets, TopicPartition partition) =>
        offsets is not null && offsets.TryGetValue(partition, out var offset) ? offset : null;

    /// <summary>The earliest (-2) or latest (-1) offset of each partition in one request; <see langword="null"/> when it failed or time ran out.</summary>
    private Dictionary<TopicPartition, long>? Watermarks(IConsumer<byte[]?, byte[]?> consumer, IEnumerable<TopicPartition> partitions, long which, Func<TimeSpan> left)
    {
        var list = partitions.Select(p => new TopicPartitionTimestamp(p, new Timestamp(which, TimestampType.NotAvailable))).ToList();
        if (list.Count == 0 || _stopRequested || left() <= TimeSpan.Zero)
        {
            return null;
        }

        try
        {
            return consumer.OffsetsForTimes(list, left()).Where(o => o.Offset.Value >= 0).ToDictionary(o => o.TopicPartition, o => o.Offset.Value);
        }
        catch (KafkaException)
        {
            return null; // logged as "?"
        }
    }

    /// <summary>Whether the assigned callback chose this start (a concrete offset, beginning, end or n before the end), rather than leaving it to the committed offset.</summary>
    private static bool ChosenByCallback(Offset offset) =>
        offset.Value >= 0 || offset == Offset.Beginning || offset == Offset.End || offset.Value <= OffsetTailBase;

    private void OnRevoked(List<TopicPartitionOffset> partitions)
    {
        var started = Stopwatch.GetTimestamp();
        var workers = TakeWorkers(partitions);

        // While stopping, a revoke (another member joined or left meanwhile) is bounded by what is left of ShutdownTimeout.
        var timeout = _options.RevokeTimeout;
        if (_shutdownDeadline is { } deadline)
        {
            var left = TimeSpan.FromSeconds(Math.Max(0, deadline - started) / (double)Stopwatch.Frequency);
            timeout = left < timeout ? left : timeout;
        }

        Drain(workers, timeout);
        foreach (var worker in workers)
        {
            Store(_consumer!, worker);
            Retire(_consumer!, worker);
        }

        // No commit here: once this callback returns, librdkafka removes the partitions and, with enable.auto.commit
        // (always on in KafkaKit), commits their stored offsets and waits for that commit before the member rejoins
        // (rd_kafka_assignment_serve_removals; not for a lost assignment). A commit here as well would only keep the
        // group waiting one more round trip; its outcome reaches OnCommitted (logged and counted when it fails).
        ConsumerLog.Revoked(_logger, Name, partitions.Count, string.Join(", ", partitions.Select(p => p.TopicPartition)), Stopwatch.GetElapsedTime(started));
        Invoke(_callbacks.Revoked, partitions, "partitions-revoked");
    }

    private void OnLost(List<TopicPartitionOffset> partitions)
    {
        // Cancel, then give the handlers a short grace to observe it: the partitions can be assigned back to this member
        // at once (a rejoin after a session timeout), and a cancelled call should not overlap the next delivery of the
        // same message.
        var workers = TakeWorkers(partitions);
        foreach (var worker in workers)
        {
            worker.Cancel();
        }

        AwaitCancelled(workers);
        foreach (var worker in workers)
        {
            Retire(_consumer!, worker);
        }

        ConsumerLog.Lost(_logger, Name, partitions.Count, string.Join(", ", partitions.Select(p => p.TopicPartition)));
        Invoke(_callbacks.Lost, partitions, "partitions-lost");
    }

    /// <summary>Releases a worker whose partition left the assignment (poll thread).</summary>
    /// <remarks>
    /// A partition paused because its buffer was full is resumed first: librdkafka keeps an application pause across
    /// unassign and assign, so a partition assigned back to this member later would otherwise never be fetched again.
    /// </remarks>
    private void Retire(IConsumer<byte[]?, byte[]?> consumer, PartitionWorker worker)
    {
        if (worker.Paused)
        {
            _pausedCount--;
            try
            {
                consumer.Resume([worker.Partition]);
                worker.Paused = false;
            }
            catch (KafkaException e)
            {
                ConsumerLog.ClientError(_logger, Name, $"resuming {worker.Partition} on release failed: {e.Error.Reason}", ErrorCodeOf(e));
            }
        }

        worker.Dispose();
    }

    private PartitionWorker[] TakeWorkers(List<TopicPartitionOffset> partitions)
    {
        var taken = new List<PartitionWorker>(partitions.Count);
        foreach (var partition in partitions)
        {
            if (_workers.Remove(partition.TopicPartition, out var worker))
            {
                taken.Add(worker);
            }
        }

        _assignment = [.. _workers.Keys];
        return [.. taken];
    }

    private void Invoke(Action<IReadOnlyList<TopicPartitionOffset>>? callback, List<TopicPartitionOffset> partitions, string name)
    {
        if (callback is null)
        {
            return;
        }

        try
        {
            callback(partitions);
        }
        catch (Exception e)
        {
            ConsumerLog.CallbackFailed(_logger, e, Name, name);
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

    /// <summary>
    /// Keeps each assigned partition's <c>consumer_lag</c> from librdkafka's statistics (emitted every
    /// <c>statistics.interval.ms</c>, off by default) for the <c>kafkakit.consumer.lag</c> gauge. Runs on the poll thread.
    /// </summary>
    private void OnStatistics(string json)
    {
        try
        {
            using var document = System.Text.Json.JsonDocument.Parse(json);
            var lags = new List<System.Diagnostics.Metrics.Measurement<long>>();
            if (document.RootElement.TryGetProperty("topics", out var topics))
            {
                foreach (var topic in topics.EnumerateObject())
                {
                    if (!topic.Value.TryGetProperty("partitions", out var partitions))
                    {
                        continue;
                    }

                    foreach (var partition in partitions.EnumerateObject())
                    {
                        if (partition.Name == "-1" || !partition.Value.TryGetProperty("consumer_lag", out var lag) || lag.GetInt64() < 0
                            || !_assignment.Contains(new TopicPartition(topic.Name, int.Parse(partition.Name, System.Globalization.CultureInfo.InvariantCulture))))
                        {
                            continue;
                        }

                        lags.Add(new(lag.GetInt64(), [
                            new("messaging.system", "kafka"),
                            new("messaging.client.id", Name),
                            new("messaging.consumer.group.name", GroupId),
                            new("messaging.destination.name", topic.Name),
                            new("messaging.destination.partition.id", partition.Name),
                        ]));
                    }
                }
            }

            Volatile.Write(ref _lags, lags);
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or FormatException or InvalidOperationException)
        {
            ConsumerLog.ClientError(_logger, Name, $"unreadable librdkafka statistics: {e.Message}", ErrorCode.Local_Fail);
        }
    }

    private void OnCommitted(CommittedOffsets committed)
    {
        if (committed.Error.IsError)
        {
            Interlocked.Increment(ref _commitFailures);
            KafkaKitMetrics.CommitFailures.Add(1, new KeyValuePair<string, object?>("messaging.consumer.group.name", GroupId));
            ConsumerLog.CommitFailed(_logger, Name, committed.Error.Reason, committed.Error.Code);
        }
    }

    private void Fail(Exception fault)
    {
        if (Interlocked.CompareExchange(ref _fault, fault, null) is null)
        {
            ConsumerLog.Faulted(_logger, fault, Name, fault.Message.TrimEnd('.'));
        }

        _stopRequested = true;
    }

    // ---- handler side (thread pool) ----------------------------------------------------------------------------

    /// <returns><see langword="true"/> when the message is done (handled, dead-lettered or skipped); <see langword="false"/> when it must stay uncommitted.</returns>
    private async ValueTask<bool> ProcessAsync(ConsumeResult<byte[]?, byte[]?> raw, CancellationToken cancellationToken)
    {
        await _concurrency.WaitAsync(cancellationToken).ConfigureAwait(false);
        using var activity = KafkaKitTracing.StartProcess(Name, GroupId, raw); // the handler runs inside it
        try
        {
            ConsumeResult<TKey, TValue> result;
            try
            {
                // Async deserializers are awaited here (handler side); an unreachable registry is retried, not failed.
                result = await DeserializeAsync(raw, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return false;
            }
            catch (Exception e)
            {
                KafkaKitTracing.Fail(activity, e);
                return await FailAsync(raw, e, "deserialization", cancellationToken).ConfigureAwait(false);
            }

            var started = Stopwatch.GetTimestamp();
            try
            {
                var retries = !ReferenceEquals(_retry, ResiliencePipeline.Empty);
                ExceptionDispatchInfo? firstFailure = null;
                if (!retries || _firstAttemptOutsidePipeline)
                {
                    // KafkaKit's own retry-only pipeline has nothing to do with a success: the first call runs without
                    // it (no pipeline cost per message); a failure is handed to the pipeline as its first attempt's
                    // outcome, so attempt counting, backoff and logging are the pipeline's.
                    try
                    {
                        await _handler(result, cancellationToken).ConfigureAwait(false);
                    }
                    catch (Exception e) when (retries && e is not HandlerUnavailableException && !(e is OperationCanceledException && cancellationToken.IsCancellationRequested))
                    {
                        firstFailure = ExceptionDispatchInfo.Capture(e);
                    }
                }

                if (retries && (firstFailure is not null || !_firstAttemptOutsidePipeline))
                {
                    var context = ResilienceContextPool.Shared.Get(cancellationToken);
                    context.Properties.Set(MessageKey, raw.TopicPartitionOffset);
                    try
                    {
                        await _retry.ExecuteAsync(
                            static (ctx, state) =>
                            {
                                if (state.FirstFailure is { } failed && FirstAttempt.Take(ctx))
                                {
                                    failed.Throw();
                                }

                                return state.Handler(state.Result, ctx.CancellationToken);
                            },
                            context,
                            (Handler: _handler, Result: result, FirstFailure: firstFailure)).ConfigureAwait(false);
                    }
                    finally
                    {
                        ResilienceContextPool.Shared.Return(context);
                    }
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return false;
            }
            catch (HandlerUnavailableException e)
            {
                // A configuration error, not a failure of this message: no retry, no OnError; the offset stays uncommitted.
                KafkaKitTracing.Fail(activity, e);
                Fail(e);
                return false;
            }
            catch (Exception e)
            {
                KafkaKitTracing.Fail(activity, e);
                return await FailAsync(raw, e, "handler", cancellationToken).ConfigureAwait(false);
            }

            if (KafkaKitMetrics.ConsumedMessages.Enabled || KafkaKitMetrics.ProcessDuration.Enabled)
            {
                var tags = KafkaKitMetrics.Tags(Name, raw.Topic);
                KafkaKitMetrics.ConsumedMessages.Add(1, tags);
                KafkaKitMetrics.ProcessDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, tags);
            }

            return true;
        }
        finally
        {
            _concurrency.Release();
        }
    }

    private ConsumeResult<TKey, TValue> Deserialize(ConsumeResult<byte[]?, byte[]?> raw)
    {
        var message = raw.Message;
        var key = _keyDeserializer.Deserialize(message.Key, message.Key is null, new SerializationContext(MessageComponentType.Key, raw.Topic, message.Headers));
        var value = _valueDeserializer.Deserialize(message.Value, message.Value is null, new SerializationContext(MessageComponentType.Value, raw.Topic, message.Headers));
        return new ConsumeResult<TKey, TValue>
        {
            TopicPartitionOffset = raw.TopicPartitionOffset,
            LeaderEpoch = raw.LeaderEpoch,
            Message = new Message<TKey, TValue> { Key = key, Value = value, Headers = message.Headers, Timestamp = message.Timestamp },
        };
    }

    private async ValueTask<bool> FailAsync(ConsumeResult<byte[]?, byte[]?> raw, Exception error, string stage, CancellationToken cancellationToken)
    {
        var action = _options.OnError;
        ConsumerLog.MessageFailed(_logger, error, Name, raw.Topic, raw.Partition.Value, raw.Offset.Value, stage, action);
        KafkaKitMetrics.HandlerErrors.Add(1, new KeyValuePair<string, object?>("kafkakit.action", action.ToString()), new KeyValuePair<string, object?>("messaging.destination.name", raw.Topic));
        switch (action)
        {
            case ConsumerErrorAction.Skip:
                return true;
            case ConsumerErrorAction.DeadLetter when _deadLetters is not null:
                try
                {
                    var topic = await _deadLetters.PublishAsync(raw, error, GroupId, cancellationToken).ConfigureAwait(false);
                    ConsumerLog.DeadLettered(_logger, Name, raw.Topic, raw.Partition.Value, raw.Offset.Value, topic);
                    return true;
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return false;
                }
                catch (Exception e)
                {
                    Fail(new InvalidOperationException($"Dead-lettering {raw.TopicPartitionOffset} failed; the consumer stops so the message is not lost.", e));
                    return false;
                }

            default:
                Fail(new InvalidOperationException(
                    $"Handling {raw.Topic} [{raw.Partition.Value}] @{raw.Offset.Value} failed ({stage}); OnError is Stop, so the consumer stops and offset {raw.Offset.Value} is not committed (the partition's next owner receives this message first). "
                    + "To go on past such a message, set the consumer's OnError to DeadLetter (the message goes to the dead-letter topic) or Skip.",
                    error));
                return false;
        }
    }
}
