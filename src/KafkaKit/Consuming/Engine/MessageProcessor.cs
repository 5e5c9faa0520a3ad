using System.Runtime.ExceptionServices;
using Confluent.Kafka;
using KafkaKit.Diagnostics;
using KafkaKit.Internal;
using Microsoft.Extensions.Logging;
using Polly;

namespace KafkaKit.Consuming;

/// <summary>
/// Processes one fetched message on a worker (thread pool): deserializes it, runs the handler (the first call outside
/// the retry pipeline, a failure handed over to it), and applies <see cref="KafkaConsumerOptions.OnError"/> to what still
/// fails: skip, dead-letter, or stop the consumer.
/// </summary>
/// <typeparam name="TKey">The message key type.</typeparam>
/// <typeparam name="TValue">The message value type.</typeparam>
/// <remarks>At most <see cref="KafkaConsumerOptions.MaxConcurrency"/> messages are processed at once, over all partitions.</remarks>
internal sealed partial class MessageProcessor<TKey, TValue>
{
    /// <summary>The resilience-context property carrying the message being retried, for retry logs.</summary>
    internal static readonly ResiliencePropertyKey<TopicPartitionOffset> MessageKey = new("KafkaKit.Message");

    private readonly string _name;
    private readonly string _groupId;
    private readonly KafkaConsumerOptions _options;
    private readonly IDeserializer<TKey> _keyDeserializer;
    private readonly IDeserializer<TValue> _valueDeserializer;
    private readonly Func<ConsumeResult<TKey, TValue>, CancellationToken, ValueTask> _handler;
    private readonly ResiliencePipeline _retry;
    private readonly bool _firstAttemptOutsidePipeline;
    private readonly DeadLetterPublisher? _deadLetters;
    private readonly RetryTopicRouter? _retryTopics;
    private readonly SemaphoreSlim _concurrency;
    private readonly Action<Exception> _fail;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;

    /// <summary>Initializes a new instance of the <see cref="MessageProcessor{TKey, TValue}"/> class.</summary>
    /// <param name="name">The consumer's name, for logs, metrics and traces.</param>
    /// <param name="groupId">The consumer group, for traces and dead-letter headers.</param>
    /// <param name="options">The consumer's options (<see cref="KafkaConsumerOptions.OnError"/>, <see cref="KafkaConsumerOptions.MaxConcurrency"/>).</param>
    /// <param name="keyDeserializer">The key deserializer.</param>
    /// <param name="valueDeserializer">The value deserializer.</param>
    /// <param name="handler">The user's handler.</param>
    /// <param name="retry">The retry pipeline, or <see cref="ResiliencePipeline.Empty"/>.</param>
    /// <param name="firstAttemptOutsidePipeline">Whether the first call runs outside <paramref name="retry"/> (KafkaKit's own retry-only pipeline).</param>
    /// <param name="deadLetters">The dead-letter publisher with <see cref="ConsumerErrorAction.DeadLetter"/>, otherwise <see langword="null"/>.</param>
    /// <param name="fail">Stops the consumer with a fault (any thread).</param>
    /// <param name="logger">The consumer's logger.</param>
    /// <param name="time">The time source of the process-duration metric.</param>
    /// <param name="retryTopics">The retry-topic routes with <see cref="ConsumerErrorAction.RetryTopics"/> (which then also needs <paramref name="deadLetters"/>), otherwise <see langword="null"/>.</param>
    public MessageProcessor(
        string name,
        string groupId,
        KafkaConsumerOptions options,
        IDeserializer<TKey> keyDeserializer,
        IDeserializer<TValue> valueDeserializer,
        Func<ConsumeResult<TKey, TValue>, CancellationToken, ValueTask> handler,
        ResiliencePipeline retry,
        bool firstAttemptOutsidePipeline,
        DeadLetterPublisher? deadLetters,
        Action<Exception> fail,
        ILogger logger,
        TimeProvider time,
        RetryTopicRouter? retryTopics = null)
    {
        _name = name;
        _groupId = groupId;
        _options = options;
        _keyDeserializer = keyDeserializer;
        _valueDeserializer = valueDeserializer;
        _handler = handler;
        _retry = retry;
        _firstAttemptOutsidePipeline = firstAttemptOutsidePipeline;
        _deadLetters = deadLetters;
        _retryTopics = retryTopics;
        _fail = fail;
        _logger = logger;
        _time = time;

        // Never disposed: a handler that ignored its cancelled token can still be running after the consumer stopped and
        // releases it when it ends (a disposed SemaphoreSlim would throw there, on a thread-pool thread); it holds no OS handle.
        _concurrency = new SemaphoreSlim(options.MaxConcurrency, options.MaxConcurrency);
    }

    /// <summary>Processes one message (a worker's step; thread pool).</summary>
    /// <param name="raw">The fetched message.</param>
    /// <param name="cancellationToken">The worker's token: cancelled on revoke timeout, loss or a hard stop.</param>
    /// <returns><see langword="true"/> when the message is done (handled, dead-lettered or skipped); <see langword="false"/> when it must stay uncommitted.</returns>
    public async ValueTask<bool> ProcessAsync(ConsumeResult<byte[]?, byte[]?> raw, CancellationToken cancellationToken)
    {
        await _concurrency.WaitAsync(cancellationToken).ConfigureAwait(false);
        using var activity = KafkaKitTracing.StartProcess(_name, _groupId, raw); // the handler runs inside it
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

            var started = _time.GetTimestamp();
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
                _fail(e);
                return false;
            }
            catch (Exception e)
            {
                KafkaKitTracing.Fail(activity, e);
                return await FailAsync(raw, e, "handler", cancellationToken).ConfigureAwait(false);
            }

            if (KafkaKitMetrics.ConsumedMessages.Enabled || KafkaKitMetrics.ProcessDuration.Enabled)
            {
                var tags = KafkaKitMetrics.Tags(_name, raw.Topic);
                KafkaKitMetrics.ConsumedMessages.Add(1, tags);
                KafkaKitMetrics.ProcessDuration.Record(_time.GetElapsedTime(started).TotalSeconds, tags);
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
        return Typed(raw, key, value);
    }

    /// <summary>Applies the error policy to a message that failed at <paramref name="stage"/>; returns whether the worker goes on.</summary>
    /// <param name="raw">The message.</param>
    /// <param name="error">Why it failed.</param>
    /// <param name="stage">Where it failed, for the log line.</param>
    /// <param name="cancellationToken">Cancelled when the partition is revoked or the consumer stops.</param>
    /// <param name="logException">Whether the log line carries the exception; false for the later messages of a batch that failed as a whole (the first one's line has it).</param>
    /// <returns>True when the message is done (skipped, dead-lettered or handed to a retry topic); false when the consumer stops.</returns>
    private async ValueTask<bool> FailAsync(ConsumeResult<byte[]?, byte[]?> raw, Exception error, string stage, CancellationToken cancellationToken, bool logException = true)
    {
        var action = _options.OnError;
        ConsumerLog.MessageFailed(_logger, action == ConsumerErrorAction.Stop || !logException ? null : error, _name, raw.Topic, raw.Partition.Value, raw.Offset.Value, stage, action);
        KafkaKitMetrics.HandlerErrors.Add(1, new KeyValuePair<string, object?>("kafkakit.action", action.ToString()), new KeyValuePair<string, object?>("messaging.destination.name", raw.Topic));
        switch (action)
        {
            case ConsumerErrorAction.Skip:
                return true;
            case ConsumerErrorAction.DeadLetter or ConsumerErrorAction.RetryTopics when _deadLetters is not null:
                try
                {
                    // A dead letter returns once the broker acknowledged it; a retry write is handed to the worker, which
                    // completes the offset once it is acknowledged (the partition goes on meanwhile). Either way the
                    // source offset is stored only after the acknowledgement.
                    await ForwardAsync(_deadLetters, raw, error, cancellationToken).ConfigureAwait(false);
                    return true;
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return false;
                }
                catch (Exception e)
                {
                    _fail(new InvalidOperationException($"Dead-lettering {raw.Topic} [{raw.Partition.Value}] @{raw.Offset.Value} failed; the consumer stops so the message is not lost.", e));
                    return false;
                }

            default:
                _fail(new InvalidOperationException(
                    $"Handling {raw.Topic} [{raw.Partition.Value}] @{raw.Offset.Value} failed ({stage}); OnError is Stop, so the consumer stops and offset {raw.Offset.Value} is not committed (the partition's next owner receives this message first). "
                    + "To go on past such a message, set the consumer's OnError to DeadLetter (the message goes to the dead-letter topic) or Skip.",
                    error));
                return false;
        }
    }

    /// <summary>
    /// Writes a failed record to its dead-letter topic and waits for the broker's acknowledgement, or starts its write to
    /// the next retry topic (<see cref="ConsumerErrorAction.RetryTopics"/>) and hands the write to the record's worker
    /// (<see cref="RetryTopicRouter.AddWrite"/>).
    /// </summary>
    private async Task ForwardAsync(DeadLetterPublisher publisher, ConsumeResult<byte[]?, byte[]?> raw, Exception error, CancellationToken cancellationToken)
    {
        if (_retryTopics?.Next(raw, error) is { } retry)
        {
            _retryTopics.AddWrite(raw, WriteRetryAsync(publisher, raw, retry, cancellationToken));
            return;
        }

        var topic = await publisher.PublishAsync(raw, error, _groupId, cancellationToken, _retryTopics?.OriginOf(raw)).ConfigureAwait(false);
        ConsumerLog.DeadLettered(_logger, _name, raw.Topic, raw.Partition.Value, raw.Offset.Value, topic);
    }

    /// <summary>Writes a retry record; a failure stops the consumer (the source offset stays uncommitted) and faults the task.</summary>
    private async Task WriteRetryAsync(DeadLetterPublisher publisher, ConsumeResult<byte[]?, byte[]?> raw, RetryRecord retry, CancellationToken cancellationToken)
    {
        try
        {
            await publisher.ProduceAsync(retry.Topic, retry.Message, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (!(e is OperationCanceledException && cancellationToken.IsCancellationRequested))
        {
            _fail(new InvalidOperationException($"Writing {raw.TopicPartitionOffset} to retry topic {retry.Topic} failed; the consumer stops so the message is not lost (its offset is not committed).", e));
            throw;
        }

        ConsumerLog.RetryScheduled(_logger, _name, raw.Topic, raw.Partition.Value, raw.Offset.Value, retry.Topic, retry.Tier, DateTimeOffset.FromUnixTimeMilliseconds(retry.DueMs));
    }
}
