using System.Threading.Channels;
using Confluent.Kafka;

namespace KafkaKit.Consuming;

/// <summary>
/// One owned partition: a buffer filled by the poll thread (which bounds it by pausing the partition) and a task on the thread pool that hands its messages
/// to the handler, reporting each completed message to the partition's <see cref="OffsetTracker"/>: one at a time in offset order with
/// <see cref="ConsumerOrdering.Partition"/>, otherwise concurrently per key or per message (see PartitionWorker.Concurrent.cs).
/// </summary>
/// <remarks>
/// Fields marked "poll thread" are touched only by the poll thread; the tracker is fed by both (see its remarks), and
/// only the poll thread stores offsets.
/// </remarks>
internal sealed partial class PartitionWorker
{
    private readonly Channel<ConsumeResult<byte[]?, byte[]?>> _buffer;
    private readonly CancellationTokenSource _cancel;
    private volatile bool _stopping;
    private readonly List<Task> _acks = []; // completions waiting for a write's acknowledgement (see Finish)
    private int _bufferedCount;
    private long _bufferedBytes;

    internal PartitionWorker(TopicPartition partition, CancellationToken stopHard, ConsumerOrdering ordering = ConsumerOrdering.Partition, int maxInFlight = 1, RetryTopicRouter? retryWrites = null)
    {
        Partition = partition;
        _ordering = ordering;
        _maxInFlight = maxInFlight;
        RetryWrites = retryWrites;

        // In order: one message at a time, each completed before the next starts. A retry-topic write completes its
        // message later, on the broker's acknowledgement, while the next ones go on: out of order.
        Offsets = new OffsetTracker(partition, inOrder: ordering == ConsumerOrdering.Partition && retryWrites is null);

        // Unbounded: the poll thread bounds it (pausing the partition); a message already fetched is never refused.
        _buffer = Channel.CreateUnbounded<ConsumeResult<byte[]?, byte[]?>>(new UnboundedChannelOptions
        {
            SingleReader = true,
            SingleWriter = true,
        });
        _cancel = CancellationTokenSource.CreateLinkedTokenSource(stopHard);
    }

    public TopicPartition Partition { get; }

    /// <summary>Gets the partition's finished and stored offsets.</summary>
    public OffsetTracker Offsets { get; }

    /// <summary>
    /// Gets where the worker asks whether a handled message's completion waits for a retry-topic write the broker has
    /// not acknowledged yet (<see cref="ConsumerErrorAction.RetryTopics"/>), or <see langword="null"/>.
    /// </summary>
    public RetryTopicRouter? RetryWrites { get; }

    /// <summary>Gets or sets whether the partition is paused in librdkafka (poll thread).</summary>
    public bool Paused { get; set; }

    /// <summary>Gets or sets when the retry record this partition is paused and rewound at is due (Unix ms UTC), or <see langword="null"/> (poll thread).</summary>
    public long? HeldUntil { get; set; }

    public Task Run { get; private set; } = Task.CompletedTask;

    /// <summary>Gets the number of messages waiting in the buffer.</summary>
    public int Buffered => Volatile.Read(ref _bufferedCount);

    /// <summary>Gets the estimated memory of the messages waiting in the buffer (see <see cref="SizeOf"/>), bytes.</summary>
    public long BufferedBytes => Volatile.Read(ref _bufferedBytes);

    public bool IsStopping => _stopping;

    public CancellationToken Token => _cancel.Token;

    /// <summary>Starts handing buffered messages to <paramref name="process"/> on the thread pool.</summary>
    /// <param name="process">Handles one message; returns false to end this worker (the message stays uncompleted).</param>
    /// <param name="batch">With a batch handler, the batch dispatch used instead of <paramref name="process"/> (see PartitionWorker.Batch.cs).</param>
    public void Start(Func<ConsumeResult<byte[]?, byte[]?>, CancellationToken, ValueTask<bool>> process, BatchDispatch? batch = null) =>
        Run = batch is not null ? Task.Run(() => RunBatchAsync(batch))
            : _ordering == ConsumerOrdering.Partition ? Task.Run(() => RunAsync(process)) : Task.Run(() => RunConcurrentAsync(process));

    /// <summary>Estimates the memory a buffered message holds: key, value and header bytes plus ~128 bytes of objects.</summary>
    public static long SizeOf(ConsumeResult<byte[]?, byte[]?> result)
    {
        var message = result.Message;
        long size = 128 + (message.Key?.Length ?? 0) + (message.Value?.Length ?? 0);
        if (message.Headers is { } headers)
        {
            for (var i = 0; i < headers.Count; i++) // by index: Headers' enumerator is a class (an allocation per message, twice)
            {
                var header = headers[i];
                size += 32 + header.Key.Length + (header.GetValueBytes()?.Length ?? 0);
            }
        }

        return size;
    }

    /// <summary>Adds a fetched message to the buffer (poll thread).</summary>
    /// <returns>The message's estimated size, bytes.</returns>
    public long Write(ConsumeResult<byte[]?, byte[]?> result)
    {
        var size = SizeOf(result);
        Interlocked.Increment(ref _bufferedCount);
        Interlocked.Add(ref _bufferedBytes, size);
        Offsets.Track(result.Offset.Value);
        _buffer.Writer.TryWrite(result);
        return size;
    }

    /// <summary>Stops taking buffered messages; the running call (if any) finishes. Buffered messages are dropped: their offsets are not stored, so the partition's next owner receives them.</summary>
    public void BeginStop()
    {
        _stopping = true;
        _buffer.Writer.TryComplete();
    }

    /// <summary>Cancels the running handler call.</summary>
    public void Cancel()
    {
        BeginStop();
        try
        {
            _cancel.Cancel();
        }
        catch (AggregateException)
        {
            // a handler's cancellation callback threw; the worker ends anyway
        }
        catch (ObjectDisposedException)
        {
            // the worker was retired and disposed meanwhile (its partition revoked during the stop's drain)
        }
    }

    public void Dispose() => _cancel.Dispose();

    private async Task RunAsync(Func<ConsumeResult<byte[]?, byte[]?>, CancellationToken, ValueTask<bool>> process)
    {
        var reader = _buffer.Reader;
        try
        {
            while (!_stopping && await reader.WaitToReadAsync(_cancel.Token).ConfigureAwait(false))
            {
                while (!_stopping && reader.TryRead(out var result))
                {
                    Unbuffer(result);
                    if (!await process(result, _cancel.Token).ConfigureAwait(false))
                    {
                        return;
                    }

                    Finish(result);
                }
            }
        }
        catch (OperationCanceledException) when (_cancel.IsCancellationRequested)
        {
            // revoked, lost or stopped hard: the message in hand stays uncompleted
        }
        finally
        {
            await AwaitAcksAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Completes a processed message: at once, or once the write it waits for (see <see cref="RetryWrites"/>) was
    /// acknowledged, so the partition goes on meanwhile and the offset is never stored before the acknowledgement; a
    /// failed write leaves it uncompleted (the consumer stops).
    /// </summary>
    private void Finish(ConsumeResult<byte[]?, byte[]?> result)
    {
        if (RetryWrites is null || !RetryWrites.TryTakeWrite(result, out var ack))
        {
            Offsets.Complete(result.Offset.Value);
            return;
        }

        var offset = result.Offset.Value;
        var completed = ack.ContinueWith(
            (write, state) =>
            {
                _ = write.Exception; // observed: the processor reported the failure
                if (write.IsCompletedSuccessfully)
                {
                    ((OffsetTracker)state!).Complete(offset);
                }
            },
            Offsets,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        lock (_acks)
        {
            _acks.RemoveAll(static a => a.IsCompleted);
            _acks.Add(completed);
        }
    }

    /// <summary>Waits for the acknowledgements completions still wait for, so a drain or stop stores their offsets; ends at once when cancelled.</summary>
    private async Task AwaitAcksAsync()
    {
        Task[] pending;
        lock (_acks)
        {
            pending = [.. _acks];
        }

        if (pending.Length > 0)
        {
            try
            {
                await Task.WhenAll(pending).WaitAsync(_cancel.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // revoked, lost or stopped hard: those offsets stay uncompleted
            }
            catch (ObjectDisposedException)
            {
                // the worker was retired meanwhile
            }
        }
    }

    /// <summary>Counts a message out of the buffer: its handler call starts.</summary>
    private void Unbuffer(ConsumeResult<byte[]?, byte[]?> result)
    {
        Interlocked.Decrement(ref _bufferedCount);
        Interlocked.Add(ref _bufferedBytes, -SizeOf(result));
    }
}
