using System.Runtime.CompilerServices;
using Confluent.Kafka;
using KafkaKit.Diagnostics;
using KafkaKit.Serialization;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Producing;

#pragma warning disable VSTHRD103 // .Result is read only after IsCompletedSuccessfully: it never blocks

/// <summary>
/// A producer whose key and/or value serializer is asynchronous (<see cref="IAsyncSerializer{T}"/>, e.g. a schema
/// registry serde). Each call awaits the serializers on the caller's path, before the message enters the backpressure
/// gate, then hands the message with its bytes to the core producer (where <see cref="PreSerialized{T}"/> passes them to
/// librdkafka). No thread waits: the registry's I/O is awaited, never blocked on, and never runs on librdkafka's threads.
/// </summary>
internal sealed class AsyncSerializingProducer<TKey, TValue> : IKafkaProducer<TKey, TValue>
{
    private readonly KafkaProducer<TKey, TValue> _core;
    private readonly IAsyncSerializer<TKey>? _key;
    private readonly IAsyncSerializer<TValue>? _value;
    private readonly KafkaProducerOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private long _unavailableSince;
    private Deadline? _deadline;

    public AsyncSerializingProducer(KafkaProducer<TKey, TValue> core, IAsyncSerializer<TKey>? key, IAsyncSerializer<TValue>? value, KafkaProducerOptions options, TimeProvider timeProvider, ILogger logger)
    {
        _core = core;
        _key = key;
        _value = value;
        _options = options;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    public string Name => _core.Name;

    public long QueuedMessages => _core.QueuedMessages;

    public Error? FatalError => _core.FatalError;

    public IProducer<TKey, TValue> Inner => _core.Inner;

    /// <summary>Gets the core producer (circuit state for health).</summary>
    internal KafkaProducer<TKey, TValue> Core => _core;

    /// <summary>Gets since when the serializers' service has been unreachable (the most recent call failed), or null.</summary>
    internal DateTimeOffset? UnavailableSince => Interlocked.Read(ref _unavailableSince) is var ticks and not 0 ? new DateTimeOffset(ticks, TimeSpan.Zero) : null;

    public ValueTask EnqueueAsync(string topic, Message<TKey, TValue> message, Action<DeliveryReport<TKey, TValue>>? onDelivery = null, CancellationToken cancellationToken = default)
    {
        // Not completed: the slow path enqueues too (one state machine for both; its task backs the returned ValueTask).
        var serialized = SerializeAsync(topic, message, enqueue: true, onDelivery, cancellationToken, out var enqueuing);
        return !enqueuing && serialized.IsCompletedSuccessfully
            ? _core.EnqueueAsync(topic, serialized.Result, onDelivery, cancellationToken)
            : new ValueTask(serialized.AsTask());
    }

    public bool TryEnqueue(string topic, Message<TKey, TValue> message, Action<DeliveryReport<TKey, TValue>>? onDelivery = null)
    {
        var serialized = SerializeAsync(topic, message, enqueue: false, null, CancellationToken.None, out _);
        if (serialized.IsCompleted)
        {
#pragma warning disable VSTHRD002 // completed: GetResult returns (or throws) at once
            return _core.TryEnqueue(topic, serialized.GetAwaiter().GetResult(), onDelivery);
#pragma warning restore VSTHRD002
        }

        // TryEnqueue never waits, and the serializer is still at work (Confluent's registry serdes always finish on
        // another thread, even with the schema id cached). A false would say "queue full" when it is not, so the caller is
        // told to use EnqueueAsync instead. The started call's outcome is observed (a late failure is not unobserved).
        _ = serialized.AsTask().ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        throw new NotSupportedException(
            $"TryEnqueue cannot be used on producer '{Name}': its asynchronous {(_key is not null && _value is not null ? "key and value serializers" : _key is not null ? "key serializer" : "value serializer")} did not complete without waiting (schema registry serializers such as Avro or JSON Schema never do), and TryEnqueue never waits. "
            + "Use EnqueueAsync: it completes synchronously when the serializer and the queue allow, and otherwise waits asynchronously (no thread blocked) within MaxBlock.");
    }

    public ValueTask<DeliveryResult<TKey, TValue>> ProduceAsync(string topic, Message<TKey, TValue> message, CancellationToken cancellationToken = default)
    {
        ValueTask<Message<TKey, TValue>> serialized;
        try
        {
            serialized = SerializeAsync(topic, message, enqueue: false, null, cancellationToken, out _);
        }
        catch (Exception e)
        {
            return ValueTask.FromException<DeliveryResult<TKey, TValue>>(e);
        }

        return serialized.IsCompletedSuccessfully
            ? _core.ProduceAsync(topic, serialized.Result, cancellationToken)
            : ProduceAfterAsync(serialized, topic, cancellationToken);
    }

    public ValueTask<int> FlushAsync(CancellationToken cancellationToken = default) => _core.FlushAsync(cancellationToken);

    public int Flush(TimeSpan timeout) => _core.Flush(timeout);

    public ValueTask DisposeAsync() => _core.DisposeAsync();

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] // awaited once by the caller, as any ValueTask
    private async ValueTask<DeliveryResult<TKey, TValue>> ProduceAfterAsync(ValueTask<Message<TKey, TValue>> serialized, string topic, CancellationToken cancellationToken) =>
        await _core.ProduceAsync(topic, await serialized.ConfigureAwait(false), cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Serializes the async components into a copy of the message that carries their bytes in its headers. When the
    /// serializers have not completed and <paramref name="enqueue"/> is set, the returned task also enqueues the message
    /// (<paramref name="enqueuing"/> is then true, also if that task happened to complete at once).
    /// </summary>
    private ValueTask<Message<TKey, TValue>> SerializeAsync(string topic, Message<TKey, TValue> message, bool enqueue, Action<DeliveryReport<TKey, TValue>>? onDelivery, CancellationToken cancellationToken, out bool enqueuing)
    {
        enqueuing = false;
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentNullException.ThrowIfNull(message);
        if (_core.FatalError is { } fatal)
        {
            throw new ProducerFaultedException(fatal);
        }

        var headers = new SerializedHeaders(message.Headers);
        var carrier = new Message<TKey, TValue> { Key = message.Key, Value = message.Value, Timestamp = message.Timestamp, Headers = headers };
        Task<byte[]>? key = null;
        Task<byte[]>? value = null;
        try
        {
            key = _key?.SerializeAsync(message.Key, new SerializationContext(MessageComponentType.Key, topic, headers));
            value = _value?.SerializeAsync(message.Value, new SerializationContext(MessageComponentType.Value, topic, headers));
        }
        catch (Exception e)
        {
            return ValueTask.FromException<Message<TKey, TValue>>(Translate(e, key is null && _key is not null ? MessageComponentType.Key : MessageComponentType.Value, topic, carrier));
        }

        if ((key is null || key.IsCompletedSuccessfully) && (value is null || value.IsCompletedSuccessfully))
        {
            headers.KeyBytes = key?.Result;
            headers.ValueBytes = value?.Result;
            if (Interlocked.Read(ref _unavailableSince) != 0)
            {
                Recovered(topic);
            }

            return new ValueTask<Message<TKey, TValue>>(carrier);
        }

        enqueuing = enqueue;
        return SerializeSlowAsync(key, value, topic, carrier, enqueue, onDelivery, cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] // each caller above consumes the ValueTask once
    private async ValueTask<Message<TKey, TValue>> SerializeSlowAsync(Task<byte[]>? key, Task<byte[]>? value, string topic, Message<TKey, TValue> carrier, bool enqueue, Action<DeliveryReport<TKey, TValue>>? onDelivery, CancellationToken cancellationToken)
    {
        var headers = (SerializedHeaders)carrier.Headers;
        var started = _timeProvider.GetTimestamp();
        var delay = SerdesBackoff.First;
        while (true)
        {
            var component = MessageComponentType.Key;
            try
            {
                // Each attempt is bounded by what is left of MaxBlock (a registry client retries inside one call).
                var left = _options.MaxBlock - _timeProvider.GetElapsedTime(started);
                headers.KeyBytes = key is null ? null : await BoundedAsync(key, left, cancellationToken).ConfigureAwait(false);
                component = MessageComponentType.Value;
                left = _options.MaxBlock - _timeProvider.GetElapsedTime(started);
                headers.ValueBytes = value is null ? null : await BoundedAsync(value, left, cancellationToken).ConfigureAwait(false);
                break;
            }
            catch (Exception e) when (e is SerializationUnavailableException or TimeoutException || IsDeadline(e, component == MessageComponentType.Key ? key : value, cancellationToken))
            {
                var unavailable = e as SerializationUnavailableException ?? Abandoned(key, value, e);
                Interlocked.CompareExchange(ref _unavailableSince, _timeProvider.GetUtcNow().UtcTicks, 0);
                var waited = _timeProvider.GetElapsedTime(started);
                if (_options.Backpressure == ProducerBackpressure.Fail || waited + delay > _options.MaxBlock)
                {
                    SerializationLog.ProduceUnavailable(_logger, Name, topic, waited, unavailable.Message);
                    if (ReferenceEquals(unavailable, e))
                    {
                        throw;
                    }

                    throw unavailable;
                }

                SerializationLog.ProduceWaiting(_logger, Name, topic, delay, unavailable.Message);
                await Task.Delay(delay, _timeProvider, cancellationToken).ConfigureAwait(false);
                delay = SerdesBackoff.Next(delay);

                // Serialize again: the failed component and, if it had not run yet, the other.
                key = _key?.SerializeAsync(carrier.Key, new SerializationContext(MessageComponentType.Key, topic, headers));
                value = _value?.SerializeAsync(carrier.Value, new SerializationContext(MessageComponentType.Value, topic, headers));
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException("The serialization of the message was cancelled; it was not enqueued.", cancellationToken);
            }
            catch (Exception e)
            {
                throw Translate(e, component, topic, carrier);
            }
        }

        if (Interlocked.Read(ref _unavailableSince) != 0)
        {
            Recovered(topic);
        }

        // Outside the loop: the core's own exceptions (queue full, cancelled, refused) are not serialization failures.
        if (enqueue)
        {
            await _core.EnqueueAsync(topic, carrier, onDelivery, cancellationToken).ConfigureAwait(false);
        }

        return carrier;
    }

    /// <summary>
    /// The serializer's task bounded by what is left of MaxBlock (a <see cref="TimeoutException"/> when it runs out); the
    /// task itself when it has completed. No state machine of its own: awaited directly by the serialization loop.
    /// </summary>
    /// <remarks>
    /// With a token that can be cancelled the bound is a timer of this call's own. Without one (the usual case) the call
    /// waits on a token shared by every call whose bound ends in the same <see cref="DeadlineStep"/>: one timer per step
    /// instead of one per message, which cost a fifth of an awaited Avro produce's throughput. The bound then ends up to
    /// one step after MaxBlock.
    /// </remarks>
    private Task<byte[]> BoundedAsync(Task<byte[]> serializing, TimeSpan left, CancellationToken cancellationToken) =>
        serializing.IsCompleted ? serializing
        : cancellationToken.CanBeCanceled ? serializing.WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, _timeProvider, cancellationToken)
        : serializing.WaitAsync(SharedDeadline(left));

    /// <summary>The granularity of the shared deadlines of <see cref="BoundedAsync"/>.</summary>
    internal static readonly TimeSpan DeadlineStep = TimeSpan.FromMilliseconds(100);

    /// <summary>A token cancelled when <paramref name="left"/> has passed, rounded up to the next <see cref="DeadlineStep"/>, shared by the calls whose bound ends in that step.</summary>
    private CancellationToken SharedDeadline(TimeSpan left)
    {
        var now = _timeProvider.GetTimestamp();
        var step = (long)(DeadlineStep.TotalSeconds * _timeProvider.TimestampFrequency);
        var at = (now + (long)(Math.Max(left.TotalSeconds, 0) * _timeProvider.TimestampFrequency) + step) / step * step;
        var deadline = Volatile.Read(ref _deadline);
        if (deadline?.At != at)
        {
            // Not disposed: its timer holds it until it fires (at most MaxBlock plus a step), then nothing does. Two
            // callers racing here make one more token of the same step, which is harmless.
            deadline = new Deadline(at, new CancellationTokenSource(_timeProvider.GetElapsedTime(now, at), _timeProvider));
            Volatile.Write(ref _deadline, deadline);
        }

        return deadline.Source.Token;
    }

    /// <summary>Whether <paramref name="e"/> is the shared deadline of <see cref="BoundedAsync"/> ending the wait for <paramref name="awaited"/> (which has not completed), not the caller's cancellation or the serializer's own.</summary>
    private static bool IsDeadline(Exception e, Task<byte[]>? awaited, CancellationToken cancellationToken) =>
        e is OperationCanceledException && !cancellationToken.CanBeCanceled && awaited is { IsCompleted: false };

    /// <summary>Observes the abandoned calls' outcomes (a late failure is not an unobserved task exception) and says why they were abandoned.</summary>
    private SerializationUnavailableException Abandoned(Task<byte[]>? key, Task<byte[]>? value, Exception timeout)
    {
        foreach (var serializing in new[] { key, value })
        {
            _ = serializing?.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        return new SerializationUnavailableException($"The serializer did not complete within MaxBlock ({_options.MaxBlock}); its service is slow or unreachable.", timeout);
    }

    private void Recovered(string topic)
    {
        if (Interlocked.Exchange(ref _unavailableSince, 0) is var since and not 0)
        {
            SerializationLog.ProduceRecovered(_logger, Name, topic, _timeProvider.GetUtcNow() - new DateTimeOffset(since, TimeSpan.Zero));
        }
    }

    /// <summary>As Confluent.Kafka reports a failing synchronous serializer: a <see cref="ProduceException{TKey, TValue}"/> with the serialization error code.</summary>
    private static Exception Translate(Exception e, MessageComponentType component, string topic, Message<TKey, TValue> message) =>
        e is SerializationUnavailableException or OperationCanceledException or ArgumentException
            ? e
            : new ProduceException<TKey, TValue>(
                new Error(component == MessageComponentType.Key ? ErrorCode.Local_KeySerialization : ErrorCode.Local_ValueSerialization, $"The {component.ToString().ToLowerInvariant()} could not be serialized for topic '{topic}': {e.Message}"),
                new DeliveryResult<TKey, TValue> { Topic = topic, Message = message, Status = PersistenceStatus.NotPersisted },
                e);

    private sealed record Deadline(long At, CancellationTokenSource Source);
}
