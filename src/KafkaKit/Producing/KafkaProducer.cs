using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using Confluent.Kafka;
using KafkaKit.Diagnostics;
using KafkaKit.Internal;
using Microsoft.Extensions.Logging;
using Polly;

namespace KafkaKit.Producing;

/// <summary>The KafkaKit producer over a Confluent.Kafka producer; see <see cref="IKafkaProducer{TKey, TValue}"/>.</summary>
internal sealed class KafkaProducer<TKey, TValue> : IKafkaProducer<TKey, TValue>
{
    private static readonly TimeSpan FlushSlice = TimeSpan.FromMilliseconds(100);

    private readonly IProducer<TKey, TValue> _producer;
    private readonly KafkaProducerOptions _options;
    private readonly BackpressureGate _gate;
    private readonly ResiliencePipeline _pipeline;
    private readonly ILogger _logger;
    private readonly TimeProvider _timeProvider;
    private readonly Action<DeliveryReport<TKey, TValue>>? _onDeliveryFailed;
    private readonly Action<DeliveryReport<TKey, TValue>> _accountOnly;
    private readonly Action<DeliveryReport<TKey, TValue>> _withoutCallback;
    private readonly ConcurrentBag<DeliverySource<TKey, TValue>> _sources = [];
    private readonly CancellationTokenSource _disposing = new();
    private Error? _fatalError;
    private int _disposed;
    private long _callbackErrors;

    internal KafkaProducer(
        string name,
        ProducerConfig config,
        KafkaProducerOptions options,
        ISerializer<TKey> keySerializer,
        ISerializer<TValue> valueSerializer,
        ResiliencePipeline pipeline,
        Action<DeliveryReport<TKey, TValue>>? onDeliveryFailed,
        ILogger logger,
        TimeProvider timeProvider)
    {
        Name = name;
        _options = options;
        _pipeline = pipeline;
        _onDeliveryFailed = onDeliveryFailed;
        _logger = logger;
        _timeProvider = timeProvider;
        _accountOnly = Account;
        _withoutCallback = OnDeliveryWithoutCallback;
        _gate = new BackpressureGate(
            config.QueueBufferingMaxMessages ?? 100_000,
            (config.QueueBufferingMaxKbytes ?? 1_048_576) * 1024L);
        _producer = new ProducerBuilder<TKey, TValue>(config)
            .SetKeySerializer(keySerializer)
            .SetValueSerializer(valueSerializer)
            .SetErrorHandler((_, error) => OnError(error))
            .SetLogHandler((_, message) => ClientLog.Forward(logger, message))
            .Build();
        ProducerLog.Started(logger, name, ConfigText.Redacted(config));
    }

    public string Name { get; }

    public long QueuedMessages => _gate.Messages;

    public Error? FatalError => Volatile.Read(ref _fatalError);

    public IProducer<TKey, TValue> Inner => _producer;

    /// <summary>Gets the number of exceptions thrown by delivery callbacks so far.</summary>
    internal long CallbackErrors => Interlocked.Read(ref _callbackErrors);

    public ValueTask EnqueueAsync(string topic, Message<TKey, TValue> message, Action<DeliveryReport<TKey, TValue>>? onDelivery = null, CancellationToken cancellationToken = default)
    {
        var size = Check(topic, message);
        var handler = onDelivery is null ? _withoutCallback : new CallbackDelivery(this, onDelivery).Handler;
        if (_gate.TryAcquire(size))
        {
            if (TryProduce(topic, message, handler, size))
            {
                return ValueTask.CompletedTask;
            }

            return new ValueTask(EnqueueSlowAsync(topic, message, handler, size, wakeOnNextRelease: true, cancellationToken));
        }

        return new ValueTask(EnqueueSlowAsync(topic, message, handler, size, wakeOnNextRelease: false, cancellationToken));
    }

    public bool TryEnqueue(string topic, Message<TKey, TValue> message, Action<DeliveryReport<TKey, TValue>>? onDelivery = null)
    {
        var size = Check(topic, message);
        if (!_gate.TryAcquire(size))
        {
            return false;
        }

        return TryProduce(topic, message, onDelivery is null ? _withoutCallback : new CallbackDelivery(this, onDelivery).Handler, size);
    }

    public async ValueTask<DeliveryResult<TKey, TValue>> ProduceAsync(string topic, Message<TKey, TValue> message, CancellationToken cancellationToken = default)
    {
        Check(topic, message);
        if (ReferenceEquals(_pipeline, ResiliencePipeline.Empty))
        {
            return await ProduceOnceAsync(topic, message, cancellationToken).ConfigureAwait(false);
        }

        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        try
        {
            var outcome = await _pipeline.ExecuteOutcomeAsync(
                static async (ctx, state) =>
                {
                    try
                    {
                        return Outcome.FromResult(await state.Producer.ProduceOnceAsync(state.Topic, state.Message, ctx.CancellationToken).ConfigureAwait(false));
                    }
                    catch (Exception e)
                    {
                        return Outcome.FromException<DeliveryResult<TKey, TValue>>(e);
                    }
                },
                context,
                (Producer: this, Topic: topic, Message: message)).ConfigureAwait(false);
            outcome.ThrowIfException();
            return outcome.Result!;
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    public ValueTask<int> FlushAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return new ValueTask<int>(FlushOnDedicatedThreadAsync(Timeout.InfiniteTimeSpan, cancellationToken));
    }

    public int Flush(TimeSpan timeout)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(timeout, TimeSpan.Zero);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return _producer.Flush(timeout);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _disposing.CancelAsync().ConfigureAwait(false); // ends enqueues waiting for room
        ProducerLog.Disposing(_logger, Name, _gate.Messages, _options.FlushTimeoutOnDispose);
        var remaining = await FlushOnDedicatedThreadAsync(_options.FlushTimeoutOnDispose, CancellationToken.None).ConfigureAwait(false);
        if (remaining > 0 && _gate.Messages > 0)
        {
            // Give every message left its one outcome: purged messages are reported failed (Local_PurgeQueue /
            // Local_PurgeInflight) through the delivery handlers, served by Confluent's poll thread.
            var undelivered = _gate.Messages;
            if (Librdkafka.TryPurge(_producer.Handle))
            {
                ProducerLog.Purged(_logger, Name, undelivered);
                await FlushOnDedicatedThreadAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false);
            }
        }

        if (_gate.Messages > 0)
        {
            ProducerLog.LostAtDispose(_logger, Name, _gate.Messages);
        }

        _producer.Dispose();
        _disposing.Dispose();
        ProducerLog.Disposed(_logger, Name);
    }

    /// <summary>Hands a message whose room was taken to librdkafka.</summary>
    /// <returns><see langword="false"/> when librdkafka itself reported its queue full (the room was returned).</returns>
    private bool TryProduce(string topic, Message<TKey, TValue> message, Action<DeliveryReport<TKey, TValue>> handler, long size)
    {
        try
        {
            _producer.Produce(topic, message, handler);
            return true;
        }
        catch (ProduceException<TKey, TValue> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
        {
            // librdkafka's own accounting (bytes of non-primitive types, retries) says full: wait like any full queue.
            _gate.Release(size);
            return false;
        }
        catch
        {
            _gate.Release(size);
            throw;
        }
    }

    private async Task EnqueueSlowAsync(string topic, Message<TKey, TValue> message, Action<DeliveryReport<TKey, TValue>> handler, long size, bool wakeOnNextRelease, CancellationToken cancellationToken)
    {
        var started = _timeProvider.GetTimestamp();
        while (true)
        {
            if (!wakeOnNextRelease && _gate.TryAcquire(size))
            {
                if (TryProduce(topic, message, handler, size))
                {
                    RecordWait(started, topic);
                    return;
                }

                wakeOnNextRelease = true;
                continue;
            }

            var waited = _timeProvider.GetElapsedTime(started);
            if (_options.Backpressure == ProducerBackpressure.Fail || waited >= _options.MaxBlock)
            {
                RecordWait(started, topic);
                throw new ProducerQueueFullException(topic, waited, _gate.Messages);
            }

            ThrowIfFaulted();
            ProducerLog.WaitingForRoom(_logger, Name, _gate.Messages);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposing.Token);
            try
            {
                await _gate.WaitForRoomAsync(wakeOnNextRelease, _options.MaxBlock - waited, _timeProvider, linked.Token).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // loop: the MaxBlock check above throws the typed error
            }
            catch (OperationCanceledException) when (_disposing.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new ObjectDisposedException(GetType().FullName, "The producer was disposed while the message waited for room; it was not enqueued.");
            }

            wakeOnNextRelease = false;
        }
    }

    private void RecordWait(long started, string topic)
    {
        if (KafkaKitMetrics.BackpressureWait.Enabled)
        {
            KafkaKitMetrics.BackpressureWait.Record(_timeProvider.GetElapsedTime(started).TotalSeconds, KafkaKitMetrics.Tags(Name, topic));
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<DeliveryResult<TKey, TValue>> ProduceOnceAsync(string topic, Message<TKey, TValue> message, CancellationToken cancellationToken)
    {
        if (!_sources.TryTake(out var source))
        {
            source = new DeliverySource<TKey, TValue>(_accountOnly);
        }

        source.Reset();
        var pending = source.Task;
        var size = MessageSize.Of(message);
        if (!_gate.TryAcquire(size))
        {
            await EnqueueSlowAsync(topic, message, source.Handler, size, wakeOnNextRelease: false, cancellationToken).ConfigureAwait(false);
        }
        else if (!TryProduce(topic, message, source.Handler, size))
        {
            await EnqueueSlowAsync(topic, message, source.Handler, size, wakeOnNextRelease: true, cancellationToken).ConfigureAwait(false);
        }

        var report = await pending.ConfigureAwait(false);
        _sources.Add(source);
        if (report.Error.IsError)
        {
            throw new ProduceException<TKey, TValue>(report.Error, report);
        }

        return report;
    }

    private long Check(string topic, Message<TKey, TValue> message)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentNullException.ThrowIfNull(message);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        ThrowIfFaulted();
        return MessageSize.Of(message);
    }

    private void ThrowIfFaulted()
    {
        if (Volatile.Read(ref _fatalError) is { } fatal)
        {
            throw new ProducerFaultedException(fatal);
        }
    }

    // Runs on Confluent's delivery-report thread for every message.
    private void Account(DeliveryReport<TKey, TValue> report)
    {
        _gate.Release(MessageSize.Of(report.Message));
        if (KafkaKitMetrics.SentMessages.Enabled)
        {
            var tags = KafkaKitMetrics.Tags(Name, report.Topic);
            if (report.Error.IsError)
            {
                tags.Add("error.type", report.Error.Code.ToString());
            }

            KafkaKitMetrics.SentMessages.Add(1, tags);
        }
    }

    private void OnDeliveryWithoutCallback(DeliveryReport<TKey, TValue> report)
    {
        Account(report);
        if (report.Error.IsError)
        {
            ReportUnhandledFailure(report);
        }
    }

    private void ReportUnhandledFailure(DeliveryReport<TKey, TValue> report)
    {
        ProducerLog.DeliveryFailed(_logger, Name, report.Topic, report.Partition.Value, report.Error.Reason, report.Error.Code);
        if (_onDeliveryFailed is null)
        {
            return;
        }

        try
        {
            _onDeliveryFailed(report);
        }
        catch (Exception e)
        {
            CountCallbackError(report.Topic);
            ProducerLog.DeliveryFailedHandlerFailed(_logger, e, Name);
        }
    }

    private void CountCallbackError(string topic)
    {
        Interlocked.Increment(ref _callbackErrors);
        KafkaKitMetrics.CallbackErrors.Add(1, KafkaKitMetrics.Tags(Name, topic));
    }

    private void OnError(Error error)
    {
        if (error.IsFatal)
        {
            if (Interlocked.CompareExchange(ref _fatalError, error, null) is null)
            {
                ProducerLog.Faulted(_logger, Name, error.Reason, error.Code);
            }

            return;
        }

        ProducerLog.ClientError(_logger, Name, error.Reason, error.Code);
    }

    /// <summary>Wraps a user delivery callback: accounting first, then the callback, whose exceptions stop nothing.</summary>
    private sealed class CallbackDelivery(KafkaProducer<TKey, TValue> producer, Action<DeliveryReport<TKey, TValue>> callback)
    {
        public Action<DeliveryReport<TKey, TValue>> Handler => Invoke;

        private void Invoke(DeliveryReport<TKey, TValue> report)
        {
            producer.Account(report);
            try
            {
                callback(report);
            }
            catch (Exception e)
            {
                producer.CountCallbackError(report.Topic);
                ProducerLog.DeliveryCallbackFailed(producer._logger, e, producer.Name, report.Topic);
            }
        }
    }

    private Task<int> FlushOnDedicatedThreadAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        // rd_kafka_flush blocks; run it in slices on a dedicated thread so neither the caller nor the pool is blocked.
        return Task.Factory.StartNew(
            () =>
            {
                var deadline = timeout == Timeout.InfiniteTimeSpan ? long.MaxValue : Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
                while (true)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var left = TimeSpan.FromSeconds((deadline - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency);
                    var remaining = _producer.Flush(left < FlushSlice ? (left < TimeSpan.Zero ? TimeSpan.Zero : left) : FlushSlice);
                    if (remaining == 0 || Stopwatch.GetTimestamp() >= deadline)
                    {
                        return remaining;
                    }
                }
            },
            cancellationToken,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);
    }
}
