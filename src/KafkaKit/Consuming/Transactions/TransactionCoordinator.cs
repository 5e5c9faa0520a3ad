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
/// (<see cref="ConsumerTransactionOptions.MaxInterval"/>), or must be aborted, the gate closes: new handler calls wait.
/// Once no lease is held, the consumer's transaction thread (one dedicated long-lived thread, woken by the call that
/// ended the last lease) commits and opens the next transaction; an abort (and the rewind that has the records handled
/// again) is left to the poll thread, which also ends the transaction itself at a revoke, a loss and the stop, after
/// the transaction thread finished what it was doing (one thread at a time ends a transaction).
/// </para>
/// <para>
/// Threads: the lease calls and <see cref="Produce"/> run on handler threads; the normal commits on the transaction
/// thread, which runs its blocking Confluent.Kafka calls itself; everything else on the poll thread (inside the poll
/// loop, the revoke and lost callbacks and the stop sequence), where each blocking call runs on a short-lived dedicated
/// thread while the poll thread waits for it. Every call is bounded by <see cref="ConsumerTransactionOptions.OperationTimeout"/>
/// plus 5 s (the poll thread's maintenance watches the transaction thread's calls): a call that overruns its own
/// timeout (seen with <c>SendOffsetsToTransaction</c>) leaves the outcome unknown, so the consumer stops with a fault
/// and the producer is not disposed under the running call.
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
    private static readonly TimeSpan FlushSlice = TimeSpan.FromMilliseconds(1);

    private readonly string _name;
    private readonly ConsumerTransactionOptions _options;
    private readonly ProducerConfig _config;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ClientLogSummariser _logSummariser;
    private readonly object _gate = new();
    private readonly object _ending = new(); // held by the thread ending a transaction: the transaction thread or the poll thread
    private readonly object _wake = new(); // the transaction thread waits on it for _wakeRequested
    private readonly Dictionary<TopicPartition, long> _handled = []; // under _gate: offset after the last handled record
    private readonly Dictionary<TopicPartition, long> _committedAt = []; // under _gate: each partition's last committed position
    private readonly Dictionary<TopicPartition, long> _firstDispatched = []; // poll thread: first record dispatched since the assignment
    private IProducer<byte[]?, byte[]?>? _producer;
    private IConsumer<byte[]?, byte[]?>? _consumer;
    private Thread? _committer;
    private bool _wakeRequested; // under _wake
    private volatile bool _stopping;
    private long _callDeadline; // transaction thread: when its running call counts as overrun (0: no call running)
    private string _callOperation = string.Empty;
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

    /// <summary>Gets or sets a callback told the number of each committed transaction (the thread that committed it: the transaction thread, or the poll thread at a revoke or the stop), the numbers <see cref="TransactionContext.Transaction"/> carries; for tests.</summary>
    internal Action<long>? TransactionCommitted { get; set; }

    /// <summary>
    /// Gets whether records were dispatched in the last second, or the open transaction holds handled records or is
    /// closing (poll thread): the poll thread then polls in short slices, so that a commit follows the last handler call
    /// of a transaction at once instead of after a long poll that started while the records were still buffered.
    /// </summary>
    public bool Pending => _closing || Volatile.Read(ref _records) > 0 || _time.GetElapsedTime(_lastDispatch) < RecentDispatch;

    /// <summary>Gets whether the gate is closed, no lease is held and the transaction must be aborted: <see cref="Maintain"/> can abort it now (any thread, approximate).</summary>
    public bool ReadyToEnd => _closing && Volatile.Read(ref _active) == 0 && Volatile.Read(ref _abortReason) is not null;

    /// <summary>Connects the coordinator to its consumer (constructor of the consumer).</summary>
    /// <param name="partitions">The consumer's workers (for the rewind after an abort).</param>
    /// <param name="fail">Stops the consumer with a fault.</param>
    public void Attach(PartitionSet partitions, Action<Exception> fail)
    {
        _partitions = partitions;
        _fail = fail;
    }

    /// <summary>Builds the producer, initializes transactions (fencing an older instance with the same id), opens the first transaction and starts the transaction thread (poll thread, before the first poll).</summary>
    /// <param name="consumer">The client (the transaction thread reads its group metadata).</param>
    public void Start(IConsumer<byte[]?, byte[]?> consumer)
    {
        _consumer = consumer;
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
            _committer = new Thread(CommitLoop) { IsBackground = true, Name = $"kafkakit-txn-{_name}" };
            _committer.Start();
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

            if (!_closing || _active > 0)
            {
                return;
            }

            _drained?.TrySetResult();
            if (_abortReason is not null)
            {
                return; // the poll thread aborts it
            }
        }

        Wake();
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
        if (!_firstDispatched.ContainsKey(result.TopicPartition) && _partitions!.Assignment.Contains(result.TopicPartition))
        {
            _firstDispatched[result.TopicPartition] = result.Offset.Value;
        }
    }

    /// <summary>
    /// Closes the gate when the transaction is old enough; once no lease is held has the transaction thread commit it,
    /// or aborts it when doomed; stops the consumer when a call of the transaction thread overran its bound (poll thread).
    /// </summary>
    /// <param name="consumer">The client.</param>
    public void Maintain(IConsumer<byte[]?, byte[]?> consumer)
    {
        if (_unusable)
        {
            return;
        }

        var callDeadline = Volatile.Read(ref _callDeadline);
        if (callDeadline != 0 && _time.GetTimestamp() > callDeadline)
        {
            Unusable(_callOperation, $"did not return within {_options.OperationTimeout + CallGrace}, so the transaction's outcome is unknown");
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

            if (_abortReason is null)
            {
                Wake(); // a commit: the transaction thread's
                return;
            }
        }

        if (!Monitor.TryEnter(_ending))
        {
            return; // the transaction thread is still at it: the next maintenance aborts
        }

        try
        {
            End(consumer, rewind: true, commitBound: _options.OperationTimeout);
            Reopen();
        }
        finally
        {
            Monitor.Exit(_ending);
        }
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
        if (!EnterEnding())
        {
            return;
        }

        try
        {
            BeforeDrainEntered(consumer, bound);
        }
        finally
        {
            Monitor.Exit(_ending);
        }
    }

    /// <summary>Revoke, the transaction thread idle: see <see cref="BeforeDrain"/>.</summary>
    private void BeforeDrainEntered(IConsumer<byte[]?, byte[]?> consumer, TimeSpan bound)
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
        var entered = EnterEnding();
        try
        {
            OnRevokedEntered(consumer, revoked, bound);
        }
        finally
        {
            if (entered)
            {
                Monitor.Exit(_ending);
            }
        }
    }

    /// <summary>Revoke, the transaction thread idle (or overrun: then the producer is unusable): see <see cref="OnRevoked"/>.</summary>
    private void OnRevokedEntered(IConsumer<byte[]?, byte[]?> consumer, IReadOnlyList<TopicPartitionOffset> revoked, TimeSpan bound)
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
            _firstDispatched.Remove(partition.TopicPartition);
            lock (_gate)
            {
                _handled.Remove(partition.TopicPartition);
                _committedAt.Remove(partition.TopicPartition);
            }
        }

        Reopen();
    }

    /// <summary>Loss (poll thread): the open transaction holds output for partitions another member may handle now, so it is aborted at the next maintenance.</summary>
    /// <param name="lost">The lost partitions.</param>
    public void OnLost(IReadOnlyList<TopicPartitionOffset> lost)
    {
        var entered = EnterEnding(); // a commit under way ends first, as if it had ended before the loss
        lock (_gate)
        {
            _closing = true;
            _abortReason ??= "partitions lost";
            foreach (var partition in lost)
            {
                _handled.Remove(partition.TopicPartition);
                _committedAt.Remove(partition.TopicPartition);
            }
        }

        foreach (var partition in lost)
        {
            _firstDispatched.Remove(partition.TopicPartition);
        }

        if (entered)
        {
            Monitor.Exit(_ending);
        }
    }

    /// <summary>Stop (poll thread, after the handlers drained or were cancelled): commits the open transaction, or aborts it when it cannot be committed, within the stop's bound. No new transaction is opened.</summary>
    /// <param name="consumer">The client.</param>
    /// <param name="bound">What is left of the stop's bound (<see cref="KafkaConsumerOptions.ShutdownTimeout"/>).</param>
    public void Finish(IConsumer<byte[]?, byte[]?> consumer, TimeSpan bound)
    {
        if (_unusable || _producer is null || !EnterEnding())
        {
            return;
        }

        try
        {
            FinishEntered(consumer, bound);
        }
        finally
        {
            Monitor.Exit(_ending);
        }
    }

    /// <summary>Releases the producer, unless a transaction call is still running on it.</summary>
    public void Dispose()
    {
        _stopping = true;
        lock (_wake)
        {
            Monitor.Pulse(_wake);
        }

        if (_overrun is { IsCompleted: false } || Volatile.Read(ref _callDeadline) != 0
            || _committer?.Join(_options.OperationTimeout + CallGrace) == false)
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

    /// <summary>Stop, the transaction thread idle: see <see cref="Finish"/>.</summary>
    private void FinishEntered(IConsumer<byte[]?, byte[]?> consumer, TimeSpan bound)
    {
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

    /// <summary>
    /// The transaction thread: woken when the gate is closed and no lease is held, commits the open transaction and
    /// opens the next one; when the commit fails, leaves the gate closed with the reason for the poll thread to abort.
    /// </summary>
    private void CommitLoop()
    {
        try
        {
            while (true)
            {
                lock (_wake)
                {
                    while (!_wakeRequested && !_stopping)
                    {
                        Monitor.Wait(_wake);
                    }

                    _wakeRequested = false;
                }

                if (_stopping)
                {
                    return;
                }

                lock (_ending)
                {
                    CommitReady();
                }
            }
        }
        catch (Exception e)
        {
            _unusable = true;
            _fail(e);
        }
    }

    /// <summary>Commits the open transaction if the gate is closed, no lease is held and nothing dooms it (transaction thread, holding <see cref="_ending"/>).</summary>
    private void CommitReady()
    {
        lock (_gate)
        {
            if (_unusable || _stopping || !_closing || _active > 0 || _abortReason is not null)
            {
                return;
            }
        }

        var abortReason = Commit(_consumer!, _options.OperationTimeout);
        if (abortReason is null)
        {
            Reopen();
        }
        else if (!_unusable)
        {
            lock (_gate)
            {
                _abortReason ??= abortReason; // the poll thread aborts and rewinds (ReadyToEnd)
            }
        }
    }

    /// <summary>Wakes the transaction thread.</summary>
    private void Wake()
    {
        lock (_wake)
        {
            if (!_wakeRequested)
            {
                _wakeRequested = true;
                Monitor.Pulse(_wake);
            }
        }
    }

    /// <summary>Waits (poll thread) until the transaction thread is not ending a transaction, at most as long as its calls are bounded; otherwise the producer is unusable.</summary>
    /// <returns>Whether the poll thread holds <see cref="_ending"/>.</returns>
    private bool EnterEnding()
    {
        var bound = _options.OperationTimeout + CallGrace;
        if (Monitor.TryEnter(_ending, bound))
        {
            return true;
        }

        if (!_unusable)
        {
            Unusable(_callOperation, $"the transaction thread's call did not return within {bound}, so the transaction's outcome is unknown");
        }

        return false;
    }

    /// <summary>Commits (or aborts) the open transaction; the gate is closed and no lease is held.</summary>
    /// <returns>Whether the transaction was committed (or was empty).</returns>
    private bool End(IConsumer<byte[]?, byte[]?> consumer, bool rewind, TimeSpan commitBound)
    {
        int records;
        lock (_gate)
        {
            records = _records;
        }

        var abortReason = Commit(consumer, commitBound);
        if (abortReason is null)
        {
            return !_unusable;
        }

        if (!_unusable)
        {
            Abort(consumer, abortReason, records, rewind);
        }

        return false;
    }

    /// <summary>Commits the open transaction and begins the next one (the gate is closed and no lease is held; the caller holds <see cref="_ending"/>).</summary>
    /// <returns><see langword="null"/> when committed or empty; otherwise why the transaction must be aborted.</returns>
    private string? Commit(IConsumer<byte[]?, byte[]?> consumer, TimeSpan bound)
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

        if (abortReason is not null || records == 0)
        {
            return abortReason; // nothing handled: the open transaction holds nothing
        }

        abortReason = SendAndCommit(consumer, offsets, bound);
        if (abortReason is not null)
        {
            return abortReason;
        }

        Interlocked.Increment(ref _commits);
        TransactionLog.Committed(_logger, _name, records, string.Join(", ", offsets));
        TransactionCommitted?.Invoke(Volatile.Read(ref _transaction));
        lock (_gate)
        {
            foreach (var offset in offsets)
            {
                _committedAt[offset.TopicPartition] = offset.Offset.Value;
            }

            _handled.Clear();
            _records = 0;
        }

        if (!_unusable)
        {
            Begin();
        }

        return null;
    }

    /// <summary>Sends the offsets and commits.</summary>
    /// <returns><see langword="null"/> when committed; otherwise why the transaction must be aborted (also when the producer became unusable).</returns>
    private string? SendAndCommit(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartitionOffset> offsets, TimeSpan bound)
    {
        var producer = _producer!;
        var deadline = _time.GetTimestamp() + (long)(bound.TotalSeconds * _time.TimestampFrequency);
        try
        {
            Deliver(producer, deadline);
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

    /// <summary>
    /// Has the transaction's messages sent at once and waits until they are acknowledged, in 1 ms <c>Flush</c> slices,
    /// for at most half the time left: <c>CommitTransaction</c> waits for them too, but checks only every 10 ms while
    /// Confluent.Kafka's background thread serves the delivery reports, so a commit right after the last produce would
    /// take about 10 ms longer than the deliveries. A delivery that does not complete is left to <c>CommitTransaction</c>,
    /// which reports it.
    /// </summary>
    private void Deliver(IProducer<byte[]?, byte[]?> producer, long deadline)
    {
        var until = _time.GetTimestamp() + ((deadline - _time.GetTimestamp()) / 2);
        while (producer.Flush(FlushSlice) > 0 && Left(until) > TimeSpan.Zero)
        {
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
                    long offset; // its last commit, else where it started
                    lock (_gate)
                    {
                        offset = _committedAt.GetValueOrDefault(partition, -1);
                    }

                    if (offset >= 0 || _firstDispatched.TryGetValue(partition, out offset))
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
        if (Thread.CurrentThread == _committer)
        {
            // The transaction thread is dedicated: it runs the call itself, and the poll thread's maintenance bounds it.
            _callOperation = operation;
            Volatile.Write(ref _callDeadline, _time.GetTimestamp() + (long)((timeout + CallGrace).TotalSeconds * _time.TimestampFrequency));
            try
            {
                call();
                return true;
            }
            catch (KafkaException kafka) when (kafka.Error.IsFatal || kafka.Error.Code is ErrorCode.ProducerFenced or ErrorCode.InvalidProducerEpoch)
            {
                Unusable(operation, $"{kafka.Error.Reason} ({kafka.Error.Code})");
                return false;
            }
            finally
            {
                Volatile.Write(ref _callDeadline, 0);
            }
        }

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
