using Confluent.Kafka;
using KafkaKit.Diagnostics;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Consuming;

/// <summary>
/// The owned partitions' workers: hands fetched messages to them, pauses a partition whose buffer is full and resumes
/// it when drained, keeps the buffered-bytes estimate, stores completed offsets, and drains, cancels and retires
/// workers whose partitions leave.
/// </summary>
/// <remarks>
/// Poll thread only (rebalance callbacks run there too), except <see cref="Assignment"/>, a snapshot any thread reads.
/// The drain and cancel waits block the poll thread on purpose (see <see cref="Drain"/>); their bounds run on the
/// consumer's <see cref="TimeProvider"/>.
/// </remarks>
internal sealed class PartitionSet
{
    private static readonly TimeSpan CancelGrace = TimeSpan.FromSeconds(1);

    private readonly string _name;
    private readonly KafkaConsumerOptions _options;
    private readonly OffsetCommitter _committer;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly CancellationToken _stopHard;
    private readonly Func<ConsumeResult<byte[]?, byte[]?>, CancellationToken, ValueTask<bool>> _process;
    private readonly RetryTopicRouter? _retryTopics;
    private readonly BatchDispatch? _batch;
    private readonly Dictionary<TopicPartition, PartitionWorker> _workers = [];
    private PartitionWorker? _last; // the worker of the last dispatched message: consecutive messages mostly share a partition
    private volatile TopicPartition[] _assignment = [];
    private long _bufferedBytes; // estimate of all buffers, exact at each maintenance

    /// <summary>Initializes a new instance of the <see cref="PartitionSet"/> class.</summary>
    /// <param name="name">The consumer's name, for logs.</param>
    /// <param name="options">The buffer limits (<see cref="KafkaConsumerOptions.PartitionBufferSize"/>, <see cref="KafkaConsumerOptions.MaxBufferedBytes"/>).</param>
    /// <param name="committer">Stores the workers' completed offsets.</param>
    /// <param name="logger">The consumer's logger.</param>
    /// <param name="time">The time source of the drain and cancel bounds.</param>
    /// <param name="process">Handles one message on a worker (see <see cref="PartitionWorker.Start"/>).</param>
    /// <param name="stopHard">Cancels every worker (the stop's hard bound).</param>
    /// <param name="retryTopics">With <see cref="ConsumerErrorAction.RetryTopics"/>: holds a retry topic's partition until its next record is due.</param>
    /// <param name="batch">With a batch handler, the batch dispatch the workers use instead of <paramref name="process"/>.</param>
    public PartitionSet(
        string name,
        KafkaConsumerOptions options,
        OffsetCommitter committer,
        ILogger logger,
        TimeProvider time,
        Func<ConsumeResult<byte[]?, byte[]?>, CancellationToken, ValueTask<bool>> process,
        CancellationToken stopHard,
        RetryTopicRouter? retryTopics = null,
        BatchDispatch? batch = null)
    {
        _name = name;
        _options = options;
        _committer = committer;
        _logger = logger;
        _time = time;
        _process = process;
        _stopHard = stopHard;
        _retryTopics = retryTopics;
        _batch = batch;
    }

    /// <summary>Gets the owned partitions (a snapshot, any thread; a new array at each change).</summary>
    public TopicPartition[] Assignment => _assignment;

    /// <summary>Gets the number of partitions paused because their buffers are full.</summary>
    public int PausedCount { get; private set; }

    /// <summary>Gets the estimated memory of all buffers, bytes (exact after each <see cref="Maintain"/>).</summary>
    public long BufferedBytes => _bufferedBytes;

    /// <summary>Gets the workers (for inspection).</summary>
    public IReadOnlyCollection<PartitionWorker> Workers => _workers.Values;

    /// <summary>Starts a worker for each partition and publishes the new <see cref="Assignment"/>.</summary>
    /// <param name="partitions">The newly assigned partitions.</param>
    public void Add(IEnumerable<TopicPartition> partitions)
    {
        foreach (var partition in partitions)
        {
            var worker = new PartitionWorker(partition, _stopHard, _options.Ordering, _options.MaxConcurrency, _retryTopics);
            _workers[partition] = worker;
            _last = null;
            worker.Start(_process, _batch);
        }

        _assignment = [.. _workers.Keys];
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
    /// <param name="consumer">The client.</param>
    /// <param name="result">The fetched message.</param>
    public void Dispatch(IConsumer<byte[]?, byte[]?> consumer, ConsumeResult<byte[]?, byte[]?> result)
    {
        var worker = _last;
        if (worker is null || worker.Partition.Partition.Value != result.Partition.Value || !string.Equals(worker.Partition.Topic, result.Topic, StringComparison.Ordinal))
        {
            if (!_workers.TryGetValue(result.TopicPartition, out worker))
            {
                return; // not owned any more: the partition's next owner receives it
            }

            _last = worker;
        }

        if (worker.IsStopping)
        {
            return; // being revoked: the partition's next owner receives it
        }

        if (_retryTopics is not null && Hold(consumer, worker, result))
        {
            return; // fetched again once due
        }

        _bufferedBytes += worker.Write(result);
        if (!worker.Paused && (worker.Buffered >= _options.PartitionBufferSize || _bufferedBytes >= _options.MaxBufferedBytes))
        {
            consumer.Pause([worker.Partition]);
            worker.Paused = true;
            PausedCount++;
            ConsumerLog.PartitionPaused(_logger, _name, worker.Partition.Topic, worker.Partition.Partition.Value, worker.Buffered, _bufferedBytes);
        }
    }

    /// <summary>Resumes partitions whose buffers drained to half, and stores completed offsets.</summary>
    /// <param name="consumer">The client.</param>
    public void Maintain(IConsumer<byte[]?, byte[]?> consumer)
    {
        var total = 0L;
        foreach (var worker in _workers.Values)
        {
            total += worker.BufferedBytes;
        }

        _bufferedBytes = total;
        foreach (var worker in _workers.Values)
        {
            if (worker.HeldUntil is { } due && due <= _retryTopics!.NowMs)
            {
                Release(consumer, worker);
            }

            if (worker.Paused && !worker.IsStopping && worker.HeldUntil is null
                && worker.Buffered <= _options.PartitionBufferSize / 2 && total <= _options.MaxBufferedBytes / 2)
            {
                consumer.Resume([worker.Partition]);
                worker.Paused = false;
                PausedCount--;
                ConsumerLog.PartitionResumed(_logger, _name, worker.Partition.Topic, worker.Partition.Partition.Value);
            }

            _committer.Store(consumer, worker.Offsets);
        }
    }

    /// <summary>Removes the workers of partitions that leave the assignment and publishes the new <see cref="Assignment"/>.</summary>
    /// <param name="partitions">The revoked or lost partitions.</param>
    /// <returns>Their workers (partitions without one are skipped).</returns>
    public PartitionWorker[] Take(IEnumerable<TopicPartitionOffset> partitions)
    {
        var taken = new List<PartitionWorker>();
        foreach (var partition in partitions)
        {
            if (_workers.Remove(partition.TopicPartition, out var worker))
            {
                _last = null;
                taken.Add(worker);
            }
        }

        _assignment = [.. _workers.Keys];
        return [.. taken];
    }

    /// <summary>Releases a worker whose partition left the assignment: nothing more is stored for it.</summary>
    /// <remarks>
    /// A partition paused because its buffer was full is resumed first: librdkafka keeps an application pause across
    /// unassign and assign, so a partition assigned back to this member later would otherwise never be fetched again.
    /// </remarks>
    /// <param name="consumer">The client.</param>
    /// <param name="worker">A worker from <see cref="Take"/>.</param>
    public void Retire(IConsumer<byte[]?, byte[]?> consumer, PartitionWorker worker)
    {
        if (worker.Paused || worker.HeldUntil is not null)
        {
            PausedCount -= worker.Paused ? 1 : 0;
            worker.HeldUntil = null;
            try
            {
                consumer.Resume([worker.Partition]);
                worker.Paused = false;
            }
            catch (KafkaException e)
            {
                ConsumerLog.ClientError(_logger, _name, $"resuming {worker.Partition} on release failed: {e.Error.Reason}", OffsetCommitter.ErrorCodeOf(e));
            }
        }

        worker.Offsets.Release();
        worker.Dispose();
    }

    /// <summary>
    /// Holds a retry topic's partition whose next record is not due yet: pauses it and rewinds it to that record, so
    /// nothing waits in memory, other partitions go on and polling goes on (<c>max.poll.interval.ms</c> is not at risk);
    /// <see cref="Maintain"/> resumes it when the record is due. While held, later records librdkafka had already fetched
    /// are dropped: they are fetched again after the rewind.
    /// </summary>
    /// <returns>Whether <paramref name="result"/> was held (not dispatched).</returns>
    private bool Hold(IConsumer<byte[]?, byte[]?> consumer, PartitionWorker worker, ConsumeResult<byte[]?, byte[]?> result)
    {
        if (worker.HeldUntil is not null)
        {
            return true;
        }

        if (_retryTopics!.DueOf(result) is not { } due || due <= _retryTopics.NowMs)
        {
            return false;
        }

        try
        {
            consumer.Pause([worker.Partition]);
            consumer.Seek(result.TopicPartitionOffset);
        }
        catch (KafkaException e)
        {
            // Never drop it: handled early rather than skipped past.
            ConsumerLog.RetryHoldFailed(_logger, _name, worker.Partition.Topic, worker.Partition.Partition.Value, e.Error.Reason);
            if (!worker.Paused)
            {
                consumer.Resume([worker.Partition]);
            }

            return false;
        }

        worker.HeldUntil = due;
        ConsumerLog.RetryHeld(_logger, _name, worker.Partition.Topic, worker.Partition.Partition.Value, result.Offset.Value, DateTimeOffset.FromUnixTimeMilliseconds(due));
        return true;
    }

    /// <summary>Ends the hold of a partition whose record is due: resumes it unless its buffer keeps it paused.</summary>
    private void Release(IConsumer<byte[]?, byte[]?> consumer, PartitionWorker worker)
    {
        worker.HeldUntil = null;
        if (!worker.Paused)
        {
            consumer.Resume([worker.Partition]);
        }

        ConsumerLog.RetryReleased(_logger, _name, worker.Partition.Topic, worker.Partition.Partition.Value);
    }

    /// <summary>Stops every worker taking messages (stop step 1).</summary>
    /// <returns>The workers and a task that completes when all of them ended.</returns>
    public (PartitionWorker[] Workers, Task Drained) BeginStopAll()
    {
        var workers = _workers.Values.ToArray();
        foreach (var worker in workers)
        {
            worker.BeginStop();
        }

        return (workers, Task.WhenAll(workers.Select(w => w.Run)));
    }

    /// <summary>Stores every worker's completed offset and releases the workers (stop step 3); <see cref="Assignment"/> is kept until <see cref="Clear"/>.</summary>
    /// <param name="consumer">The client.</param>
    public void StoreAndReleaseAll(IConsumer<byte[]?, byte[]?> consumer)
    {
        foreach (var worker in _workers.Values)
        {
            _committer.Store(consumer, worker.Offsets);
            worker.Dispose();
        }

        // The workers are done (drained, or cancelled after ShutdownTimeout): release them now, so that a revoke
        // during the commit retries or inside Close() finds nothing to drain and does not wait RevokeTimeout again
        // for a handler that ignores its token.
        _workers.Clear();
        _last = null;
    }

    /// <summary>Releases whatever workers are left and empties <see cref="Assignment"/> (the stop's end).</summary>
    public void Clear()
    {
        foreach (var worker in _workers.Values)
        {
            worker.Dispose();
        }

        _workers.Clear();
        _last = null;
        _assignment = [];
    }

    /// <summary>Stops the workers taking messages, waits up to <paramref name="timeout"/> (or a hard stop), then cancels the rest.</summary>
    /// <remarks>
    /// Used inside the revoke callback, on the poll thread, which blocks here on purpose: librdkafka's rebalance protocol
    /// requires the revoke to finish before the partitions move, and this thread never runs handlers, so it cannot
    /// deadlock them.
    /// </remarks>
    /// <param name="workers">Workers from <see cref="Take"/>.</param>
    /// <param name="timeout">The bound (<see cref="KafkaConsumerOptions.RevokeTimeout"/>, or what is left of the stop's).</param>
    public void Drain(PartitionWorker[] workers, TimeSpan timeout)
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
            Wait(all, timeout, _stopHard);
        }

        if (!all.IsCompleted)
        {
            CancelRunning(workers, timeout);
        }
    }

    /// <summary>Cancels the workers still running, logs how many (after <paramref name="timeout"/>), and waits a short grace for them.</summary>
    /// <param name="workers">The workers.</param>
    /// <param name="timeout">The bound that passed, for the log line.</param>
    public void CancelRunning(PartitionWorker[] workers, TimeSpan timeout)
    {
        var running = workers.Where(w => !w.Run.IsCompleted).ToArray();
        foreach (var worker in running)
        {
            worker.Cancel();
        }

        ConsumerLog.HandlersCancelled(_logger, _name, running.Length, timeout);
        AwaitCancelled(running);
    }

    /// <summary>
    /// Waits (poll thread) for cancelled workers to end: a handler that honours its token ends at once; one that ignores
    /// it is not waited for beyond a short grace.
    /// </summary>
    /// <param name="cancelled">The cancelled workers.</param>
    public void AwaitCancelled(PartitionWorker[] cancelled)
    {
        if (cancelled.Length > 0)
        {
            Wait(Task.WhenAll(cancelled.Select(w => w.Run)), CancelGrace, CancellationToken.None);
        }
    }

    /// <summary>Blocks the calling (poll) thread until <paramref name="task"/> ends, <paramref name="timeout"/> passes on the time source, or <paramref name="cancel"/> is cancelled.</summary>
    private void Wait(Task task, TimeSpan timeout, CancellationToken cancel)
    {
        var bounded = task.WaitAsync(timeout, _time, cancel);
        ((IAsyncResult)bounded).AsyncWaitHandle.WaitOne();
        _ = bounded.Exception; // a timeout or cancellation only ends the wait: observed here so it is not reported as unobserved
    }
}
