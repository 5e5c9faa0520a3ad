using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Confluent.Kafka;
using KafkaKit.Diagnostics;
using KafkaKit.Internal;
using Polly;

namespace KafkaKit.Consuming;

/// <content>
/// Batches (a consumer with a batch handler): deserialize the batch, run the batch handler with the retry pipeline, and
/// on failure either the partial path (<see cref="KafkaBatchException"/>: the messages before the index are done, the
/// failed one is retried alone and then goes to the error policy, the rest come again) or the error policy for every
/// message of the batch.
/// </content>
internal sealed partial class MessageProcessor<TKey, TValue>
{
    /// <summary>Gets the batch handler of a batch consumer, or <see langword="null"/>.</summary>
    public Func<IReadOnlyList<ConsumeResult<TKey, TValue>>, CancellationToken, ValueTask>? BatchHandler { get; init; }

    /// <summary>Processes one batch (a batch worker's step; thread pool). Takes one <see cref="KafkaConsumerOptions.MaxConcurrency"/> slot.</summary>
    /// <param name="raw">The fetched messages, of one partition, in offset order; read only (the worker reuses the list).</param>
    /// <param name="offsets">The partition's tracker: the messages done are completed in it (those before a failed one at once, before its retries).</param>
    /// <param name="cancellationToken">The worker's token: cancelled on revoke timeout, loss or a hard stop.</param>
    /// <returns>How many leading messages are done (handled, dead-lettered or skipped) and whether the worker goes on.</returns>
    public async ValueTask<BatchOutcome> ProcessBatchAsync(List<ConsumeResult<byte[]?, byte[]?>> raw, OffsetTracker offsets, CancellationToken cancellationToken)
    {
        await _concurrency.WaitAsync(cancellationToken).ConfigureAwait(false);
        using var activity = KafkaKitTracing.StartProcessBatch(_name, _groupId, raw);
        try
        {
            var batch = new List<ConsumeResult<TKey, TValue>>(raw.Count);
            foreach (var message in raw)
            {
                try
                {
                    batch.Add(await DeserializeAsync(message, cancellationToken).ConfigureAwait(false));
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return new BatchOutcome(0, false);
                }
                catch (Exception e) when (batch.Count == 0)
                {
                    // never handed to the handler, not retried: the error policy, then the rest in the next batch
                    KafkaKitTracing.Fail(activity, e);
                    return await FailAsync(message, e, "deserialization", cancellationToken).ConfigureAwait(false) ? Done(raw, offsets, 0, 1, true) : new BatchOutcome(0, false);
                }
                catch (Exception)
                {
                    break; // the batch ends before it; it comes first in the next batch (and goes to the error policy there)
                }
            }

            activity?.SetTag("messaging.batch.message_count", batch.Count);
            var started = _time.GetTimestamp();
            var (outcome, handled) = await HandleBatchAsync(raw, batch, offsets, activity, cancellationToken).ConfigureAwait(false);
            if (KafkaKitMetrics.ConsumedMessages.Enabled || KafkaKitMetrics.ProcessDuration.Enabled || KafkaKitMetrics.BatchSize.Enabled)
            {
                var tags = KafkaKitMetrics.Tags(_name, raw[0].Topic);
                KafkaKitMetrics.BatchSize.Record(batch.Count, tags);
                if (handled > 0)
                {
                    KafkaKitMetrics.ConsumedMessages.Add(handled, tags); // per message handled, like the per-message mode
                    KafkaKitMetrics.ProcessDuration.Record(_time.GetElapsedTime(started).TotalSeconds, tags);
                }
            }

            return outcome;
        }
        finally
        {
            _concurrency.Release();
        }
    }

    /// <returns>The outcome, and how many messages the handler handled (not counting dead-lettered or skipped ones).</returns>
    private async ValueTask<(BatchOutcome Outcome, int Handled)> HandleBatchAsync(
        List<ConsumeResult<byte[]?, byte[]?>> raw, List<ConsumeResult<TKey, TValue>> batch, OffsetTracker offsets, Activity? activity, CancellationToken cancellationToken)
    {
        KafkaBatchException? partial;
        try
        {
            partial = await CallBatchAsync(batch, raw[0].TopicPartitionOffset, firstFailure: null, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (Failed(e, activity, cancellationToken) is { } stop)
        {
            return (stop, 0);
        }
        catch (Exception e)
        {
            // the whole batch failed after retries: the error policy for each message, in order (Stop: nothing of it done);
            // the exception is logged once, with the first message
            for (var i = 0; i < batch.Count; i++)
            {
                var stage = i == 0 ? "batch handler" : $"batch handler, the error logged with @{raw[0].Offset.Value}";
                if (!await FailAsync(raw[i], e, stage, cancellationToken, logException: i == 0).ConfigureAwait(false))
                {
                    return (Done(raw, offsets, 0, i, false), 0);
                }
            }

            return (Done(raw, offsets, 0, batch.Count, true), 0);
        }

        if (partial is null)
        {
            return (Done(raw, offsets, 0, batch.Count, true), batch.Count);
        }

        // KafkaBatchException: the messages before the index are done; the failed one is retried alone, then the error
        // policy; the ones after it come again in the next batch.
        var index = partial.FailedIndex;
        var failed = raw[index];
        Done(raw, offsets, 0, index, true); // committable now, whatever the retries of the failed one take
        ConsumerLog.BatchMessageFailed(_logger, partial.InnerException!, _name, failed.Topic, failed.Partition.Value, failed.Offset.Value, index, batch.Count);
        try
        {
            _ = await CallBatchAsync([batch[index]], failed.TopicPartitionOffset, ExceptionDispatchInfo.Capture(partial.InnerException!), cancellationToken).ConfigureAwait(false);
            return (Done(raw, offsets, index, index + 1, true), index + 1);
        }
        catch (Exception e) when (Failed(e, activity, cancellationToken) is not null)
        {
            return (new BatchOutcome(index, false), index);
        }
        catch (Exception e)
        {
            var done = await FailAsync(failed, e, "batch handler", cancellationToken).ConfigureAwait(false);
            return (done ? Done(raw, offsets, index, index + 1, true) : new BatchOutcome(index, false), index);
        }
    }

    /// <summary>Completes the offsets of <c>raw[from..to)</c>; the outcome of a batch whose first <paramref name="to"/> messages are done.</summary>
    private static BatchOutcome Done(List<ConsumeResult<byte[]?, byte[]?>> raw, OffsetTracker offsets, int from, int to, bool goOn)
    {
        offsets.CompleteRange(raw, from, to);
        return new BatchOutcome(to, goOn);
    }

    /// <summary>Marks the span failed; for a cancellation or a handler that cannot be created, the outcome that ends the worker (nothing more done), otherwise null (the error policy applies).</summary>
    private BatchOutcome? Failed(Exception error, Activity? activity, CancellationToken cancellationToken)
    {
        if (error is OperationCanceledException && cancellationToken.IsCancellationRequested)
        {
            return new BatchOutcome(0, false);
        }

        KafkaKitTracing.Fail(activity, error);
        if (error is HandlerUnavailableException)
        {
            _fail(error); // a configuration error: no retry, no OnError; nothing of the batch committed
            return new BatchOutcome(0, false);
        }

        return null;
    }

    /// <summary>
    /// Calls the batch handler with the retry pipeline (the first call outside KafkaKit's own pipeline, or
    /// <paramref name="firstFailure"/> as the first attempt's outcome). A <see cref="KafkaBatchException"/> whose index is
    /// inside a batch of more than one message ends the retries and is returned; any other failure after the retries is thrown.
    /// </summary>
    private async ValueTask<KafkaBatchException?> CallBatchAsync(
        IReadOnlyList<ConsumeResult<TKey, TValue>> batch, TopicPartitionOffset first, ExceptionDispatchInfo? firstFailure, CancellationToken cancellationToken)
    {
        var call = new BatchCall(BatchHandler!, batch, firstFailure, _logger, _name);
        var retries = !ReferenceEquals(_retry, ResiliencePipeline.Empty);
        if (!retries)
        {
            firstFailure?.Throw();
            await call.InvokeAsync(cancellationToken).ConfigureAwait(false);
            return call.Partial;
        }

        if (firstFailure is null && _firstAttemptOutsidePipeline)
        {
            try
            {
                await call.InvokeAsync(cancellationToken).ConfigureAwait(false);
                return call.Partial;
            }
            catch (Exception e) when (e is not HandlerUnavailableException && !(e is OperationCanceledException && cancellationToken.IsCancellationRequested))
            {
                call.FirstFailure = ExceptionDispatchInfo.Capture(e);
            }
        }

        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(MessageKey, first);
        try
        {
            await _retry.ExecuteAsync(
                static (ctx, call) =>
                {
                    if (call.FirstFailure is { } failed && FirstAttempt.Take(ctx))
                    {
                        failed.Throw();
                    }

                    return call.InvokeAsync(ctx.CancellationToken);
                },
                context,
                call).ConfigureAwait(false);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }

        return call.Partial;
    }

    /// <summary>One batch handler call and its retries: a partial failure (a <see cref="KafkaBatchException"/> with an index inside a batch of several) is kept, not retried.</summary>
    private sealed class BatchCall(
        Func<IReadOnlyList<ConsumeResult<TKey, TValue>>, CancellationToken, ValueTask> handler,
        IReadOnlyList<ConsumeResult<TKey, TValue>> batch,
        ExceptionDispatchInfo? firstFailure,
        Microsoft.Extensions.Logging.ILogger logger,
        string name)
    {
        public ExceptionDispatchInfo? FirstFailure { get; set; } = firstFailure;

        public KafkaBatchException? Partial { get; private set; }

        public async ValueTask InvokeAsync(CancellationToken cancellationToken)
        {
            try
            {
                await handler(batch, cancellationToken).ConfigureAwait(false);
            }
            catch (KafkaBatchException e) when (batch.Count > 1 && e.FailedIndex < batch.Count)
            {
                Partial = e;
            }
            catch (KafkaBatchException e) when (batch.Count == 1 && e.FailedIndex == 0)
            {
                ExceptionDispatchInfo.Throw(e.InnerException!); // the one message failed: retried like any failure
            }
            catch (KafkaBatchException e)
            {
                ConsumerLog.BatchIndexOutOfRange(logger, name, e.FailedIndex, batch.Count);
                throw;
            }
        }
    }
}
