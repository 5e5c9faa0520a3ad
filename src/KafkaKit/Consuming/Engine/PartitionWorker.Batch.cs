using Confluent.Kafka;

namespace KafkaKit.Consuming;

/// <summary>What a batch step did: how many leading messages of the batch finished, and whether the worker goes on.</summary>
/// <param name="Done">The messages finished, from the start of the batch (the step completed their offsets); the rest come again in the next batch.</param>
/// <param name="Continue"><see langword="false"/> to end the worker (stopped on an error, or cancelled).</param>
internal readonly record struct BatchOutcome(int Done, bool Continue);

/// <summary>The batch dispatch of a consumer with a batch handler: its limits and its step.</summary>
/// <param name="MaxSize">The most messages in one batch (<see cref="ConsumerBatchOptions.MaxBatchSize"/>).</param>
/// <param name="MaxWait">How long a batch started from an empty buffer waits for more (<see cref="ConsumerBatchOptions.MaxBatchWait"/>).</param>
/// <param name="Time">The time source of <paramref name="MaxWait"/>.</param>
/// <param name="Process">
/// Handles one batch (thread pool) and completes the offsets of the messages it finished in the partition's tracker as
/// soon as they are known (those before a failed one, before its retries); must not keep the list, which the worker reuses.
/// </param>
internal sealed record BatchDispatch(
    int MaxSize,
    TimeSpan MaxWait,
    TimeProvider Time,
    Func<List<ConsumeResult<byte[]?, byte[]?>>, OffsetTracker, CancellationToken, ValueTask<BatchOutcome>> Process);

/// <summary>
/// The batch dispatch (a batch handler, <see cref="ConsumerOrdering.Partition"/> only): the worker's task forms a batch
/// from the buffer (see <see cref="ConsumerBatchOptions"/>), hands it to the step (which completes the offsets of the
/// messages it finished) and keeps the rest (after a <see cref="KafkaBatchException"/>) at the front of the next batch.
/// </summary>
/// <remarks>
/// Messages of the batch being formed still count as buffered (the poll thread's pausing bounds them) until the batch is
/// handed over. A stop or revoke lets the running batch finish and drops the one being formed (not stored: the next
/// owner receives it); a cancel cancels the running batch, whose offsets then stay uncompleted.
/// </remarks>
internal sealed partial class PartitionWorker
{
    private async Task RunBatchAsync(BatchDispatch dispatch)
    {
        var token = _cancel.Token;
        var batch = new List<ConsumeResult<byte[]?, byte[]?>>(Math.Min(dispatch.MaxSize, 1024));
        var handedOver = 0; // batch[..handedOver] were handed over before (kept after a partial failure): not buffered any more
        try
        {
            while (!_stopping)
            {
                if (!await FillAsync(batch, dispatch, token).ConfigureAwait(false) || _stopping)
                {
                    return;
                }

                Unbuffer(batch, handedOver);

                var outcome = await dispatch.Process(batch, Offsets, token).ConfigureAwait(false);
                if (!outcome.Continue)
                {
                    return;
                }

                batch.RemoveRange(0, outcome.Done);
                handedOver = batch.Count;
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // revoked, lost or stopped hard: the batch in hand stays uncompleted
        }
    }

    /// <summary>
    /// Adds buffered messages to <paramref name="batch"/> up to the batch size: at once what is waiting; from an empty
    /// buffer, the first message to arrive and whatever follows within the batch wait.
    /// </summary>
    /// <returns><see langword="false"/> when the buffer was completed (stop or revoke) before the batch had a message.</returns>
    private async ValueTask<bool> FillAsync(List<ConsumeResult<byte[]?, byte[]?>> batch, BatchDispatch dispatch, CancellationToken token)
    {
        var reader = _buffer.Reader;
        var idle = batch.Count == 0 && Buffered == 0; // nothing waiting: this batch may wait for more after its first message
        if (batch.Count == 0 && !await reader.WaitToReadAsync(token).ConfigureAwait(false))
        {
            return false;
        }

        var first = dispatch.Time.GetTimestamp();
        Take(reader, batch, dispatch.MaxSize);
        if (!idle || dispatch.MaxWait <= TimeSpan.Zero)
        {
            return true;
        }

        while (batch.Count < dispatch.MaxSize && !_stopping)
        {
            var left = dispatch.MaxWait - dispatch.Time.GetElapsedTime(first);
            if (left <= TimeSpan.Zero)
            {
                break;
            }

            using var timeout = new CancellationTokenSource(left, dispatch.Time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(token, timeout.Token);
            try
            {
                if (!await reader.WaitToReadAsync(linked.Token).ConfigureAwait(false))
                {
                    break; // completed: the stop or revoke decides what happens to the batch
                }
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested && !token.IsCancellationRequested)
            {
                break;
            }

            Take(reader, batch, dispatch.MaxSize);
        }

        return true;
    }

    /// <summary>Counts the messages of <c>batch[from..]</c> out of the buffer (their batch is handed over), in one update.</summary>
    private void Unbuffer(List<ConsumeResult<byte[]?, byte[]?>> batch, int from)
    {
        var bytes = 0L;
        for (var i = from; i < batch.Count; i++)
        {
            bytes += SizeOf(batch[i]);
        }

        Interlocked.Add(ref _bufferedCount, from - batch.Count);
        Interlocked.Add(ref _bufferedBytes, -bytes);
    }

    private static void Take(System.Threading.Channels.ChannelReader<ConsumeResult<byte[]?, byte[]?>> reader, List<ConsumeResult<byte[]?, byte[]?>> batch, int maxSize)
    {
        while (batch.Count < maxSize && reader.TryRead(out var result))
        {
            batch.Add(result);
        }
    }
}
