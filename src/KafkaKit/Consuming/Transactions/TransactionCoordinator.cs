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
internal sealed partial class TransactionCoordinator : IDisposable
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
                _abortReason ??= $"a handler call for {record.Topic} [{record.Partition.Value}] @{record.Offset.Value} produced {context.Produced} messages and did not complete";
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

    /// <summary>Offsets as the other log lines write them: <c>topic [partition] @offset</c>.</summary>
    private static string Describe(IEnumerable<TopicPartitionOffset> offsets) =>
        string.Join(", ", offsets.Select(o => $"{o.Topic} [{o.Partition.Value}] @{o.Offset.Value}"));
}
