using System.Threading.Channels;
using Confluent.Kafka;

namespace KafkaKit.Consuming;

/// <summary>
/// One owned partition: a bounded buffer filled by the poll thread and a task on the thread pool that hands its messages
/// to the handler one at a time, in offset order, recording the offset after the last completed message.
/// </summary>
/// <remarks>
/// Fields marked "poll thread" are touched only by the poll thread; <see cref="Completed"/> is written by the worker and
/// read by the poll thread, which is the only one to store offsets.
/// </remarks>
internal sealed class PartitionWorker
{
    private readonly Channel<ConsumeResult<byte[]?, byte[]?>> _buffer;
    private readonly CancellationTokenSource _cancel;
    private long _completed = Offset.Unset.Value;
    private volatile bool _stopping;

    internal PartitionWorker(TopicPartition partition, int bufferSize, CancellationToken stopHard)
    {
        Partition = partition;
        ResumeAt = bufferSize / 2;
        _buffer = Channel.CreateBounded<ConsumeResult<byte[]?, byte[]?>>(new BoundedChannelOptions(bufferSize)
        {
            SingleReader = true,
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _cancel = CancellationTokenSource.CreateLinkedTokenSource(stopHard);
    }

    public TopicPartition Partition { get; }

    /// <summary>Gets the offset after the last message whose handling completed, or <see cref="Offset.Unset"/>.</summary>
    public long Completed => Volatile.Read(ref _completed);

    /// <summary>Gets or sets the last offset stored in librdkafka (poll thread).</summary>
    public long Stored { get; set; } = Offset.Unset.Value;

    /// <summary>Gets the messages fetched while the buffer was full, in order (poll thread).</summary>
    public Queue<ConsumeResult<byte[]?, byte[]?>> Overflow { get; } = new();

    /// <summary>Gets or sets whether the partition is paused in librdkafka (poll thread).</summary>
    public bool Paused { get; set; }

    public Task Run { get; private set; } = Task.CompletedTask;

    /// <summary>Gets the number of messages waiting in the buffer.</summary>
    public int Buffered => _buffer.Reader.Count;

    /// <summary>
    /// Gets the buffer level at or below which a paused partition resumes (half the buffer): resuming before the buffer
    /// is empty lets the refetch overlap with handling the rest, so a fast handler does not stall on every cycle.
    /// </summary>
    public int ResumeAt { get; }

    public bool IsStopping => _stopping;

    public CancellationToken Token => _cancel.Token;

    /// <summary>Starts handing buffered messages to <paramref name="process"/> on the thread pool.</summary>
    /// <param name="process">Handles one message; returns false to end this worker (the message stays uncompleted).</param>
    public void Start(Func<ConsumeResult<byte[]?, byte[]?>, CancellationToken, ValueTask<bool>> process) =>
        Run = Task.Run(() => RunAsync(process));

    /// <summary>Offers a fetched message to the buffer (poll thread).</summary>
    /// <returns><see langword="false"/> when the buffer is full.</returns>
    public bool TryWrite(ConsumeResult<byte[]?, byte[]?> result) => _buffer.Writer.TryWrite(result);

    /// <summary>Stops taking buffered messages; the running call (if any) finishes. Buffered messages are dropped: their offsets are not stored, so the partition's next owner receives them.</summary>
    public void BeginStop()
    {
        _stopping = true;
        Overflow.Clear();
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
                    if (!await process(result, _cancel.Token).ConfigureAwait(false))
                    {
                        return;
                    }

                    Volatile.Write(ref _completed, result.Offset.Value + 1);
                }
            }
        }
        catch (OperationCanceledException) when (_cancel.IsCancellationRequested)
        {
            // revoked, lost or stopped hard: the message in hand stays uncompleted
        }
    }
}
