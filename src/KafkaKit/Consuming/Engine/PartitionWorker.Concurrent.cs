using System.Runtime.ExceptionServices;
using Confluent.Kafka;

namespace KafkaKit.Consuming;

/// <summary>
/// The dispatch of <see cref="ConsumerOrdering.Key"/> and <see cref="ConsumerOrdering.Unordered"/>: the worker's task
/// reads the buffer in offset order and hands each message to a lane, a task that handles its messages one at a time in
/// offset order. With <see cref="ConsumerOrdering.Key"/> a lane holds the messages of one key (null keys share one lane)
/// while it has any; with <see cref="ConsumerOrdering.Unordered"/> every message gets a lane of its own.
/// </summary>
/// <remarks>
/// At most <c>maxInFlight</c> (<see cref="KafkaConsumerOptions.MaxConcurrency"/>) lanes run per partition; a message
/// waiting in a lane still counts as buffered (so the poll thread's pausing bounds it) until its handler call starts.
/// Messages finish in any order: the <see cref="OffsetTracker"/> keeps the committable offset behind the oldest unfinished
/// one. A stop or revoke stops lanes taking messages; a cancel cancels the calls in flight; <see cref="PartitionWorker.Run"/>
/// ends when the reader and every lane ended.
/// </remarks>
internal sealed partial class PartitionWorker
{
    private readonly ConsumerOrdering _ordering;
    private readonly int _maxInFlight;
    private ExceptionDispatchInfo? _laneFailure;

    private async Task RunConcurrentAsync(Func<ConsumeResult<byte[]?, byte[]?>, CancellationToken, ValueTask<bool>> process)
    {
        var token = _cancel.Token; // read once: the source is disposed when the worker retires, possibly before a lane ends
        var reader = _buffer.Reader;
        var slots = new SemaphoreSlim(_maxInFlight, _maxInFlight); // lanes running; never disposed (no wait handle is used)
        var lanes = _ordering == ConsumerOrdering.Key ? new Dictionary<LaneKey, Queue<ConsumeResult<byte[]?, byte[]?>>>() : null;
        try
        {
            while (!_stopping && await reader.WaitToReadAsync(token).ConfigureAwait(false))
            {
                while (!_stopping && reader.TryRead(out var result))
                {
                    var key = new LaneKey(result.Message.Key);
                    if (lanes is not null)
                    {
                        lock (lanes)
                        {
                            if (lanes.TryGetValue(key, out var queue))
                            {
                                queue.Enqueue(result); // the key's lane runs: it takes the message after the ones before
                                continue;
                            }
                        }
                    }

                    await slots.WaitAsync(token).ConfigureAwait(false);
                    if (lanes is not null)
                    {
                        lock (lanes)
                        {
                            lanes.Add(key, new Queue<ConsumeResult<byte[]?, byte[]?>>()); // only this task adds lanes
                        }
                    }

                    _ = RunLaneAsync(result, key, lanes, slots, process, token);
                }
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // revoked, lost or stopped hard: the lanes end with their calls cancelled
        }
        finally
        {
            for (var i = 0; i < _maxInFlight; i++)
            {
                await slots.WaitAsync(CancellationToken.None).ConfigureAwait(false); // every lane ended
            }

            await AwaitAcksAsync().ConfigureAwait(false);
        }

        _laneFailure?.Throw();
    }

    private async Task RunLaneAsync(
        ConsumeResult<byte[]?, byte[]?> first,
        LaneKey key,
        Dictionary<LaneKey, Queue<ConsumeResult<byte[]?, byte[]?>>>? lanes,
        SemaphoreSlim slots,
        Func<ConsumeResult<byte[]?, byte[]?>, CancellationToken, ValueTask<bool>> process,
        CancellationToken token)
    {
        await Task.Yield(); // off the reader's task: it goes on reading
        var result = first;
        var laneOpen = lanes is not null;
        try
        {
            while (true)
            {
                Unbuffer(result);
                if (!await process(result, token).ConfigureAwait(false))
                {
                    _stopping = true; // cancelled, or the consumer stops on this message: nothing more starts here
                    return;
                }

                Finish(result);
                if (lanes is null || !TakeNext(lanes, key, out result))
                {
                    laneOpen = false; // TakeNext removed it: the key may already have a new lane, which is not this one's to remove
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // revoked, lost or stopped hard: the message in hand stays uncompleted
        }
        catch (Exception e)
        {
            _stopping = true;
            Interlocked.CompareExchange(ref _laneFailure, ExceptionDispatchInfo.Capture(e), null);
        }
        finally
        {
            if (laneOpen)
            {
                lock (lanes!)
                {
                    lanes.Remove(key); // messages left in it are dropped like buffered ones: not stored, the next owner receives them
                }
            }

            slots.Release();
        }
    }

    /// <summary>Takes the lane's next message, unless the worker is stopping or the lane is empty (then the lane ends).</summary>
    private bool TakeNext(Dictionary<LaneKey, Queue<ConsumeResult<byte[]?, byte[]?>>> lanes, LaneKey key, out ConsumeResult<byte[]?, byte[]?> next)
    {
        lock (lanes)
        {
            if (!_stopping && lanes[key].TryDequeue(out next!))
            {
                return true;
            }

            lanes.Remove(key); // under the lock: a message of this key read after this starts a new lane
            next = null!;
            return false;
        }
    }

    /// <summary>A message key compared byte for byte; all null keys are one key (not equal to the empty key).</summary>
    private readonly struct LaneKey(byte[]? bytes) : IEquatable<LaneKey>
    {
        private readonly byte[]? _bytes = bytes;

        public bool Equals(LaneKey other) =>
            _bytes is null ? other._bytes is null : other._bytes is not null && _bytes.AsSpan().SequenceEqual(other._bytes);

        public override bool Equals(object? obj) => obj is LaneKey other && Equals(other);

        public override int GetHashCode()
        {
            if (_bytes is null)
            {
                return -1;
            }

            var hash = default(HashCode);
            hash.AddBytes(_bytes);
            return hash.ToHashCode();
        }
    }
}
