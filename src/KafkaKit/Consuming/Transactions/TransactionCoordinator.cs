using System.Runtime.ExceptionServices;
using Confluent.Kafka;
using KafkaKit.Diagnostics;
using KafkaKit.Internal;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Consuming;

/// <summary>
/// The exactly-once commit path of a transactional consumer (KIP-98, KIP-447): one transactional producer, one open
/// transaction at a time holding the output of the records handled since the last commit, and their offsets added with
/// <c>SendOffsetsToTransaction</c> (with the consumer's group metadata) before <c>CommitTransaction</c>.
/// </summary>
/// <remarks>
/// <para>
/// Handler calls hold a lease on the open transaction (<see cref="EnterAsync"/> / <see cref="Exit"/>, thread pool). When
/// the transaction is full (<see cref="ConsumerTransactionOptions.MaxRecords"/>) or old enough
/// (<see cref="ConsumerTransactionOptions.MaxInterval"/>), or must be aborted, the gate closes: new handler calls wait,
/// and once no lease is held the poll thread commits (or aborts, rewinds and has the records handled again) and opens
/// the next transaction. The poll thread keeps polling while it waits for the leases to end.
/// </para>
/// <para>
/// Threads: everything except the lease calls and <see cref="Produce"/> runs on the poll thread (inside the poll loop,
/// the revoke and lost callbacks and the stop sequence). Each blocking Confluent.Kafka transaction call runs on a
/// short-lived dedicated thread while the poll thread waits for it, bounded by
/// <see cref="ConsumerTransactionOptions.OperationTimeout"/> plus 5 s: a call that overruns its own timeout (seen with
/// <c>SendOffsetsToTransaction</c>) leaves the outcome unknown, so the consumer stops with a fault and the producer is
/// not disposed under the running call.
/// </para>
/// <para>
/// The offsets sent are those this class records at each successful handler call (the offset after the last handled
/// record per partition), not the engine's offset tracker: a lease ends inside the handler call, before the worker
/// reports completion, and the transactional mode requires <see cref="ConsumerOrdering.Partition"/>, so the last handled
/// record of a partition is also its highest contiguous one.
/// </para>
/// </remarks>
internal sealed class TransactionCoordinator : IDisposable
{
    private static readonly TimeSpan CallGrace = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan RecentDispatch = TimeSpan.FromSeconds(1);

    private readonly string _name;
    private readonly ConsumerTransactionOptions _options;
    private readonly ProducerConfig _config;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ClientLogSummariser _logSummariser;
    private readonly object _gate = new();
    private readonly Dictionary<TopicPartition, long> _handled = []; // under _gate: offset after the last handled record
    private readonly Dictionary<TopicPartition, long> _rewind = []; // poll thread: where an abort restarts each partition
    private IProducer<byte[]?, byte[]?>? _producer;
    private PartitionSet? _partitions;
    private Action<Exception> _fail = static _ => { };
    private TaskCompletionSource _open = NewSignal();
    private TaskCompletionSource? _drained;
    private int _active;
    private volatile bool _closing;
    private int _records;
    private long _firstRecordAt;
    private string? _abortReason;
    private volatile bool _unusable;
    private Task? _overrun;
    private long _commits;
    private long _aborts;
    private long _lastDispatch; // poll thread: timestamp of the last dispatched record
    private long _transaction; // under _gate: the open transaction's number (1 for the first)

    /// <summary>Initializes a new instance of the <see cref="TransactionCoordinator"/> class.</summary>
    /// <param name="name">The consumer's name.</param>
    /// <param name="consumerConfig">The consumer's effective librdkafka properties (the producer connects like it).</param>
    /// <param name="options">The transaction options.</param>
    /// <param name="logger">The consumer's logger.</param>
    /// <param name="time">The time source of the batch interval and the call bounds.</param>
    public TransactionCoordinator(string name, IReadOnlyDictionary<string, string> consumerConfig, ConsumerTransactionOptions options, ILogger logger, TimeProvider time)
    {
        _name = name;
        _options = options;
        _logger = logger;
        _time = time;
        _logSummariser = new ClientLogSummariser(logger, name + "-txn", time);
        _config = new ProducerConfig(DeadLetterPublisher.ProducerConfigFor(consumerConfig))
        {
            ClientId = name + "-txn",
            TransactionalId = options.TransactionalId(name),
            EnableIdempotence = true,
        };
    }

    /// <summary>Gets the producer's <c>transactional.id</c>.</summary>
    public string TransactionalId => _config.TransactionalId;

    /// <summary>Gets how many transactions were committed.</summary>
    public long Commits => Interlocked.Read(ref _commits);

    /// <summary>Gets how many transactions were aborted.</summary>
    public long Aborts => Interlocked.Read(ref _aborts);

    /// <summary>Gets or sets a callback told the number of each committed transaction (poll thread), the numbers <see cref="TransactionContext.Transaction"/> carries; for tests.</summary>
    internal Action<long>? TransactionCommitted { get; set; }

    /// <summary>
    /// Gets whether records were dispatched in the last second, or the open transaction holds handled records or is
    /// closing (poll thread): the poll thread then polls in short slices, so that a commit follows the last handler call
    /// of a transaction at once instead of after a long poll that started while the records were still buffered.
    /// </summary>
    public bool Pending => _closing || Volatile.Read(ref _records) > 0 || _time.GetElapsedTime(_lastDispatch) < RecentDispatch;

    /// <summary>Gets whether the gate is closed and no lease is held: <see cref="Maintain"/> can end the transaction now (any thread, approximate).</summary>
    public bool ReadyToEnd => _closing && Volatile.Read(ref _active) == 0;

    /// <summary>Connects the coordinator to its consumer (constructor of the consumer).</summary>
    /// <param name="partitions">The consumer's workers (for the rewind after an abort).</param>
    /// <param name="fail">Stops the consumer with a fault.</param>
    public void Attach(PartitionSet partitions, Action<Exception> fail)
    {
        _partitions = partitions;
        _fail = fail;
    }

    /// <summary>Builds the producer, initializes transactions (fencing an older instance with the same id) and opens the first transaction (poll thread, before the first poll).</summary>
    public void Start()
    {
        var started = _time.GetTimestamp();
        _producer = new ProducerBuilder<byte[]?, byte[]?>(_config)
            .SetLogHandler((_, message) => ClientLog.Forward(_logSummariser, message))
            .SetErrorHandler((_, error) => OnProducerError(error))
            .Build();
        var producer = _producer;
        var deadline = _time.GetTimestamp() + (long)(_options.OperationTimeout.TotalSeconds * _time.TimestampFrequency);
        bool ready;
        try
        {
            ready = Retry("InitTransactions", () => producer.InitTransactions(Left(deadline)), deadline);
        }
        catch (KafkaException e)
        {
            Unusable("InitTransactions", $"{e.Error.Reason} ({e.Error.Code})");
            return;
        }

        if (!ready)
        {
            if (!_unusable)
            {
                Unusable("InitTransactions", $"did not succeed within {_options.OperationTimeout}");
            }
        }
        else if (Begin())
        {
            TransactionLog.Initialized(_logger, _name, TransactionalId, _time.GetElapsedTime(started));
        }
    }

    /// <summary>Takes a lease on the open transaction for one handler call, waiting while the gate is closed (thread pool).</summary>
    /// <param name="cancellationToken">The worker's token.</param>
    /// <returns>The handler call's context.</returns>
    public async ValueTask<TransactionContext> EnterAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task open;
            lock (_gate)
            {
                if (_unusable)
                {
                    throw new HandlerUnavailableException(
                        $"Consumer '{_name}': the transactional producer ({TransactionalId}) can no longer be used, so no record is handled.",
                        new InvalidOperationException("The transactional producer is unusable."));
                }

                if (!_closing && _records + _active >= _options.MaxRecords)
                {
                    _closing = true; // full: later calls wait for the next transaction
                }

                if (!_closing)
                {
                    _active++;
                    return new TransactionContext(this, _transaction);
                }

                open = _open.Task;
            }

            await open.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Ends a lease (thread pool).</summary>
    /// <param name="context">The lease's context.</param>
    /// <param name="record">The record the call handled.</param>
    /// <param name="handled">Whether the handler returned normally.</param>
    public void Exit(TransactionContext context, TopicPartitionOffset record, bool handled)
    {
        context.Close();
        lock (_gate)
        {
            _active--;
            if (handled)
            {
                _handled[record.TopicPartition] = record.Offset.Value + 1;
                if (_records++ == 0)
                {
                    _firstRecordAt = _time.GetTimestamp();
                }

                if (_records >= _options.MaxRecords)
                {
                    _closing = true; // full: commit now, not at the next call
                }
            }
            else if (context.Produced > 0)
            {
                // Output of a call that did not complete cannot be taken back: the whole transaction must go.
                _abortReason ??= $"a handler call for {record} produced {context.Produced} messages and did not complete";
                _closing = true;
            }

            if (_closing && _active == 0)
            {
                _drained?.TrySetResult();
            }
        }
    }

    /// <summary>Produces one serialized message into the open transaction (handler thread).</summary>
    /// <param name="topic">The topic.</param>
    /// <param name="message">The message.</param>
    public void Produce(string topic, Message<byte[]?, byte[]?> message) =>
        (_producer ?? throw new InvalidOperationException("The transactional producer is not started.")).Produce(topic, message);

    /// <summary>Notes where a partition restarts if the open transaction aborts: its first dispatched record since the last commit (poll thread).</summary>
    /// <param name="result">A record dispatched to a worker.</param>
    public void Dispatched(ConsumeResult<byte[]?, byte[]?> result)
    {
        _lastDispatch = _time.GetTimestamp();
        if (!_rewind.ContainsKey(result.TopicPartition) && _partitions!.Assignment.Contains(result.TopicPartition))
        {
            _rewind[result.TopicPartition] = result.Offset.Value;
        }
    }

    /// <summary>Closes the gate when the transaction is full, old enough or doomed, and commits or aborts once no lease is held (poll thread).</summary>
    /// <param name="consumer">The client.</param>
    public void Maintain(IConsumer<byte[]?, byte[]?> consumer)
    {
        if (_unusable)
        {
            return;
        }

        lock (_gate)
        {
            if (!_closing && _records > 0 && _time.GetElapsedTime(_firstRecordAt) >= _options.MaxInterval)
            {
                _closing = true;
            }

            if (!_closing || _active > 0)
            {
                return;
            }
        }

        End(consumer, rewind: true, commitBound: _options.OperationTimeout);
        Reopen();
    }

    /// <summary>
    /// Revoke, before the revoked partitions' handlers are drained (poll thread): a commit that was waiting for running
    /// calls is completed first, so that a revoked partition's call waiting at the closed gate can run and the drain
    /// does not wait <see cref="KafkaConsumerOptions.RevokeTimeout"/> for nothing.
    /// </summary>
    /// <param name="consumer">The client.</param>
    /// <param name="bound">The revoke's bound.</param>
    public void BeforeDrain(IConsumer<byte[]?, byte[]?> consumer, TimeSpan bound)
    {
        bool closing;
        lock (_gate)
        {
            closing = _closing;
        }

        if (_unusable || !closing)
        {
            return;
        }

        if (!CloseAndWait(bound))
        {
            lock (_gate)
            {
                _abortReason ??= $"handler calls still running after {bound} at a revoke";
            }
        }

        End(consumer, rewind: true, commitBound: bound < _options.OperationTimeout ? bound : _options.OperationTimeout);
        Reopen();
    }

    /// <summary>
    /// Revoke (poll thread, inside the callback, after the revoked partitions' handlers were drained): waits for the
    /// other partitions' running calls, then commits the open transaction, the revoked partitions' final offsets with
    /// it, before they move; on failure aborts it (the revoked partitions' next owners start from the last commit) and
    /// rewinds the partitions kept.
    /// </summary>
    /// <param name="consumer">The client.</param>
    /// <param name="revoked">The revoked partitions.</param>
    /// <param name="bound">What is left of the revoke's bound.</param>
    public void OnRevoked(IConsumer<byte[]?, byte[]?> consumer, IReadOnlyList<TopicPartitionOffset> revoked, TimeSpan bound)
    {
        if (!_unusable)
        {
            if (!CloseAndWait(bound))
            {
                lock (_gate)
                {
                    _abortReason ??= $"handler calls still running after {bound} at a revoke";
                }
            }

            End(consumer, rewind: true, commitBound: bound < _options.OperationTimeout ? bound : _options.OperationTimeout);
        }

        foreach (var partition in revoked)
        {
            _rewind.Remove(partition.TopicPartition);
            lock (_gate)
            {
                _handled.Remove(partition.TopicPartition);
            }
        }

        Reopen();
    }

    /// <summary>Loss (poll thread): the open transaction holds output for partitions another member may handle now, so it is aborted at the next maintenance.</summary>
    /// <param name="lost">The lost partitions.</param>
    public void OnLost(IReadOnlyList<TopicPartitionOffset> lost)
    {
        lock (_gate)
        {
            _closing = true;
            _abortReason ??= "partitions lost";
            foreach (var partition in lost)
            {
                _handled.Remove(partition.TopicPartition);
            }
        }

        foreach (var partition in lost)
        {
            _rewind.Remove(partition.TopicPartition);
        }
    }

    /// <summary>Stop (poll thread, after the handlers drained or were cancelled): commits the open transaction, or aborts it when it cannot be committed, within the stop's bound. No new transaction is opened.</summary>
    /// <param name="consumer">The client.</param>
    /// <param name="bound">What is left of the stop's bound (<see cref="KafkaConsumerOptions.ShutdownTimeout"/>).</param>
    public void Finish(IConsumer<byte[]?, byte[]?> consumer, TimeSpan bound)
    {
        if (_unusable || _producer is null)
        {
            return;
        }

        if (!CloseAndWait(bound))
        {
            lock (_gate)
            {
                _abortReason ??= "handler calls still running at stop";
            }
        }

        int records;
        lock (_gate)
        {
            records = _records;
        }

        var committed = End(consumer, rewind: false, commitBound: bound < _options.OperationTimeout ? bound : _options.OperationTimeout);
        TransactionLog.Finished(_logger, _name, committed ? "committed" : "aborted", records);
        _unusable = true; // stopped: no further transaction (the workers were drained or cancelled before)
    }

    /// <summary>Releases the producer, unless a transaction call is still running on it.</summary>
    public void Dispose()
    {
        if (_overrun is { IsCompleted: false })
        {
            TransactionLog.CallStillRunning(_logger, _name, "a transaction call");
        }
        else
        {
            _producer?.Dispose();
        }

        _logSummariser.Dispose();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Commits (or aborts) the open transaction; the gate is closed and no lease is held.</summary>
    /// <returns>Whether the transaction was committed (or was empty).</returns>
    private bool End(IConsumer<byte[]?, byte[]?> consumer, bool rewind, TimeSpan commitBound)
    {
        List<TopicPartitionOffset> offsets;
        int records;
        string? abortReason;
        lock (_gate)
        {
            offsets = [.. _handled.Select(h => new TopicPartitionOffset(h.Key, h.Value))];
            records = _records;
            abortReason = _abortReason;
        }

        if (abortReason is null && records == 0)
        {
            return true; // nothing handled: the open transaction holds nothing
        }

        if (abortReason is null)
        {
            abortReason = Commit(consumer, offsets, commitBound);
            if (abortReason is null)
            {
                foreach (var offset in offsets)
                {
                    _rewind[offset.TopicPartition] = offset.Offset.Value;
                }

                Interlocked.Increment(ref _commits);
                TransactionLog.Committed(_logger, _name, records, string.Join(", ", offsets));
                TransactionCommitted?.Invoke(Volatile.Read(ref _transaction));
                lock (_gate)
                {
                    _handled.Clear();
                    _records = 0;
                }

                return !_unusable && Begin();
            }
        }

        if (!_unusable)
        {
            Abort(consumer, abortReason, records, rewind);
        }

        return false;
    }

    /// <summary>Sends the offsets and commits.</summary>
    /// <returns><see langword="null"/> when committed; otherwise why the transaction must be aborted (also when the producer became unusable).</returns>
    private string? Commit(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartitionOffset> offsets, TimeSpan bound)
    {
        var producer = _producer!;
        var deadline = _time.GetTimestamp() + (long)(bound.TotalSeconds * _time.TimestampFrequency);
        try
        {
            var metadata = consumer.ConsumerGroupMetadata;
            if (offsets.Count > 0
                && !Retry("SendOffsetsToTransaction", () => producer.SendOffsetsToTransaction(offsets, metadata, Left(deadline)), deadline))
            {
                return _unusable ? "the producer is unusable" : "SendOffsetsToTransaction did not succeed in time";
            }

            return Retry("CommitTransaction", () => producer.CommitTransaction(Left(deadline)), deadline)
                ? null
                : _unusable ? "the producer is unusable" : "CommitTransaction did not succeed in time";
        }
        catch (KafkaException e)
        {
            return $"{e.Error.Reason} ({e.Error.Code})"; // abortable (or unknown): abort, then handle again
        }
    }

    /// <summary>Runs a transaction call, again while it fails with a retriable error and time is left.</summary>
    /// <returns>Whether it succeeded; <see langword="false"/> when the time ran out or the producer became unusable.</returns>
    /// <exception cref="KafkaException">An abortable error (or one that is neither retriable nor fatal).</exception>
    private bool Retry(string operation, Action call, long deadline)
    {
        while (true)
        {
            try
            {
                return Call(operation, call, Left(deadline));
            }
            catch (KafkaRetriableException e) when (Left(deadline) > TimeSpan.Zero)
            {
                TransactionLog.Retrying(_logger, _name, operation, e.Error.Reason, e.Error.Code, Left(deadline));
            }
            catch (KafkaRetriableException)
            {
                return false;
            }
        }
    }

    /// <summary>
    /// Aborts the open transaction and, unless stopping, has the kept partitions handled again from where the aborted
    /// transaction started: their workers (idle, waiting at the gate, or with buffered records) are cancelled and replaced,
    /// and each partition is sought back.
    /// </summary>
    private void Abort(IConsumer<byte[]?, byte[]?> consumer, string reason, int records, bool rewind)
    {
        var partitions = _partitions!;
        var kept = rewind ? partitions.Assignment : [];
        if (rewind)
        {
            var workers = partitions.Take(kept.Select(p => new TopicPartitionOffset(p, Offset.Unset)));
            foreach (var worker in workers)
            {
                worker.Cancel();
            }

            partitions.AwaitCancelled(workers);
            foreach (var worker in workers)
            {
                partitions.Retire(consumer, worker);
            }
        }

        lock (_gate)
        {
            if (_active > 0)
            {
                // A handler ignores its cancelled token and may still produce: a new transaction could take its output.
                Unusable("AbortTransaction", $"{_active} handler calls did not end after cancellation");
                return;
            }
        }

        var producer = _producer!;
        var deadline = _time.GetTimestamp() + (long)(_options.OperationTimeout.TotalSeconds * _time.TimestampFrequency);
        try
        {
            if (!Retry("AbortTransaction", () => producer.AbortTransaction(Left(deadline)), deadline))
            {
                if (!_unusable)
                {
                    Unusable("AbortTransaction", "did not succeed in time");
                }

                return;
            }
        }
        catch (KafkaException e)
        {
            Unusable("AbortTransaction", $"{e.Error.Reason} ({e.Error.Code})");
            return;
        }

        Interlocked.Increment(ref _aborts);
        lock (_gate)
        {
            _handled.Clear();
            _records = 0;
            _abortReason = null;
        }

        var positions = new List<TopicPartitionOffset>();
        if (rewind)
        {
            partitions.Add(kept);
            try
            {
                foreach (var partition in kept)
                {
                    if (_rewind.TryGetValue(partition, out var offset))
                    {
                        var position = new TopicPartitionOffset(partition, offset);
                        consumer.Seek(position);
                        positions.Add(position);
                    }
                }
            }
            catch (KafkaException e)
            {
                Unusable("Seek", $"rewinding after the abort failed: {e.Error.Reason} ({e.Error.Code})");
                return;
            }

            Begin();
        }

        TransactionLog.Aborted(_logger, _name, reason, records, positions.Count == 0 ? "their last commit" : string.Join(", ", positions));
    }

    private bool Begin()
    {
        try
        {
            _producer!.BeginTransaction();
            lock (_gate)
            {
                _transaction++;
            }

            return true;
        }
        catch (KafkaException e)
        {
            Unusable("BeginTransaction", $"{e.Error.Reason} ({e.Error.Code})");
            return false;
        }
    }

    /// <summary>Closes the gate and waits (poll thread, blocking on purpose like the revoke's drain) until no lease is held or <paramref name="bound"/> passes.</summary>
    private bool CloseAndWait(TimeSpan bound)
    {
        Task drained;
        lock (_gate)
        {
            _closing = true;
            if (_active == 0)
            {
                return true;
            }

            _drained = NewSignal();
            drained = _drained.Task;
        }

        var waited = drained.WaitAsync(bound, _time);
        ((IAsyncResult)waited).AsyncWaitHandle.WaitOne();
        _ = waited.Exception;
        return drained.IsCompleted;
    }

    /// <summary>Opens the gate for the next transaction: waiting handler calls go on.</summary>
    private void Reopen()
    {
        TaskCompletionSource open;
        lock (_gate)
        {
            if (_abortReason is not null && !_unusable)
            {
                return; // still to abort (a loss): the next maintenance does it
            }

            _closing = false;
            _drained = null;
            open = _open;
            _open = NewSignal();
        }

        open.TrySetResult();
    }

    /// <summary>
    /// Runs a blocking Confluent.Kafka transaction call on a dedicated thread and waits for it (poll thread) at most
    /// <paramref name="timeout"/> + 5 s. A fatal error (fenced by a newer instance with the same transactional.id:
    /// PRODUCER_FENCED, INVALID_PRODUCER_EPOCH; or any other) or an overrun makes the producer unusable and stops the
    /// consumer.
    /// </summary>
    /// <returns><see langword="true"/> when the call succeeded, <see langword="false"/> when the producer became unusable.</returns>
    /// <exception cref="KafkaException">A non-fatal error of the call (abortable or retriable).</exception>
    private bool Call(string operation, Action call, TimeSpan timeout)
    {
        var task = Task.Factory.StartNew(call, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var waited = task.WaitAsync(timeout + CallGrace, _time);
        ((IAsyncResult)waited).AsyncWaitHandle.WaitOne();
        _ = waited.Exception;
        if (!task.IsCompleted)
        {
            _overrun = task;
            Unusable(operation, $"did not return within {timeout + CallGrace}, so the transaction's outcome is unknown");
            return false;
        }

        if (task.Exception?.InnerException is { } error)
        {
            if (error is KafkaException kafka && (kafka.Error.IsFatal || kafka.Error.Code is ErrorCode.ProducerFenced or ErrorCode.InvalidProducerEpoch))
            {
                Unusable(operation, $"{kafka.Error.Reason} ({kafka.Error.Code})");
                return false;
            }

            ExceptionDispatchInfo.Throw(error);
        }

        return true;
    }

    private void Unusable(string operation, string reason)
    {
        _unusable = true;
        TransactionLog.Unusable(_logger, _name, operation, reason);
        _fail(new InvalidOperationException(
            $"Consumer '{_name}': the transactional producer ({TransactionalId}) can no longer be used: {operation}: {reason}. "
            + "The open transaction is not committed (its output stays invisible to read_committed readers) and the consumer stops; "
            + "a newer instance with the same transactional.id fences this one (KIP-98): give every running instance its own TransactionalIdPrefix."));
    }

    private void OnProducerError(Error error)
    {
        if (error.IsFatal)
        {
            _fail(new KafkaException(error)); // fenced or otherwise unusable: the next transaction call reports it too
        }

        if (_logSummariser.ShouldLog(LogLevel.Warning, error.Reason))
        {
            TransactionLog.ProducerError(_logger, _name, error.Reason, error.Code);
        }
    }

    private TimeSpan Left(long deadline)
    {
        var left = TimeSpan.FromSeconds((deadline - _time.GetTimestamp()) / (double)_time.TimestampFrequency);
        return left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }
}
