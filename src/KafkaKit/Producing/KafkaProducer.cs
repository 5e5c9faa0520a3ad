using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using Confluent.Kafka;
using KafkaKit.Diagnostics;
using KafkaKit.Internal;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.CircuitBreaker;

namespace KafkaKit.Producing;

/// <summary>The KafkaKit producer over a Confluent.Kafka producer; see <see cref="IKafkaProducer{TKey, TValue}"/>.</summary>
internal sealed class KafkaProducer<TKey, TValue> : IKafkaProducer<TKey, TValue>
{
    /// <summary>How often an enqueue looks again at once when librdkafka is full with nothing of ours in flight.</summary>
    private const int YieldsBeforeDelay = 10;

    /// <summary>How long disposal serves the failure reports of purged messages (they are local; this is ample).</summary>
    private static readonly TimeSpan PurgeReportTimeout = TimeSpan.FromSeconds(5);

    /// <summary>How often a faulted producer purges what is still queued in librdkafka (see <see cref="PurgeQueuedIfFaulted"/>).</summary>
    private static readonly TimeSpan FaultedPurgeInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>librdkafka's default <c>message.max.bytes</c>.</summary>
    private const int DefaultMessageMaxBytes = 1_000_000;

    private readonly IProducer<TKey, TValue> _producer;
    private readonly KafkaProducerOptions _options;
    private readonly BackpressureGate _gate;
    private readonly IDisposable _queueGauge;
    private readonly ResiliencePipeline _pipeline;
    private readonly bool _firstAttemptOutsidePipeline;
    private readonly CircuitBreakerStateProvider? _circuit;
    private readonly ILogger _logger;
    private readonly TimeProvider _timeProvider;
    private readonly Action<DeliveryReport<TKey, TValue>>? _onDeliveryFailed;
    private readonly Action<DeliveryReport<TKey, TValue>> _withoutCallback;
    private readonly ConcurrentBag<DeliverySource<TKey, TValue>> _sources = [];
    private readonly CancellationTokenSource _disposing = new();
    private readonly MessageSize _size;
    private readonly int _maxMessageBytes;
    private readonly DeliveryPump _pump;
    private readonly ClientLogSummariser _logSummariser;
    private Error? _fatalError;
    private int _disposed;
    private int _producing;
    private Task? _disposal;
    private long _callbackErrors;
    private long _nextFaultedPurge; // pump thread only

    internal KafkaProducer(
        string name,
        ProducerConfig config,
        KafkaProducerOptions options,
        ISerializer<TKey> keySerializer,
        ISerializer<TValue> valueSerializer,
        ResiliencePipeline pipeline,
        bool firstAttemptOutsidePipeline,
        CircuitBreakerStateProvider? circuit,
        Action<DeliveryReport<TKey, TValue>>? onDeliveryFailed,
        ILogger logger,
        TimeProvider timeProvider)
    {
        Name = name;
        _options = options;
        _pipeline = pipeline;
        _firstAttemptOutsidePipeline = firstAttemptOutsidePipeline;
        _circuit = circuit;
        _onDeliveryFailed = onDeliveryFailed;
        _logger = logger;
        _timeProvider = timeProvider;
        _withoutCallback = OnDeliveryWithoutCallback;
        _size = MessageSize.For(config);
        _maxMessageBytes = config.MessageMaxBytes ?? DefaultMessageMaxBytes;
        _logSummariser = new ClientLogSummariser(logger, name, timeProvider);

        // librdkafka checks the properties together here (each one alone was checked at Build), before the limits below
        // are read.
        // KafkaKit's delivery pump serves delivery reports on one thread (see DeliveryPump), instead of Confluent's poll thread.
        var clientConfig = new ProducerConfig(config.ToDictionary(p => p.Key, p => p.Value));
        clientConfig.Set(ConfigPropertyNames.Producer.EnableBackgroundPoll, "false");

        // The gate enforces the configured queue limits; librdkafka gets 10 % headroom. librdkafka frees a message's room
        // only after its delivery handler returned, while the gate frees it inside the handler: without headroom the
        // next enqueue could meet librdkafka's Local_QueueFull in the steady state of a saturated producer.
        if (config.QueueBufferingMaxMessages is > 0 and var configuredMessages)
        {
            clientConfig.QueueBufferingMaxMessages = (int)Math.Min(int.MaxValue, configuredMessages + Math.Max(100L, configuredMessages / 10));
        }

        var configuredKbytes = config.QueueBufferingMaxKbytes ?? 1_048_576;
        clientConfig.QueueBufferingMaxKbytes = (int)Math.Min(int.MaxValue, configuredKbytes + Math.Max(64L, configuredKbytes / 10));
        try
        {
            _producer = new ProducerBuilder<TKey, TValue>(clientConfig)
                .SetKeySerializer(keySerializer)
                .SetValueSerializer(valueSerializer)
                .SetErrorHandler((_, error) => OnError(error))
                .SetLogHandler((_, message) => ClientLog.Forward(_logSummariser, message))
                .Build();
        }
        catch (InvalidOperationException e)
        {
            throw new ArgumentException($"Producer '{name}': librdkafka refused its configuration: {e.Message}", nameof(config), e);
        }

        // queue.buffering.max.messages=0 means "no message limit" to librdkafka (its default is 100,000 messages);
        // queue.buffering.max.kbytes has no such value (default 1,048,576 KB).
        var maxMessages = config.QueueBufferingMaxMessages ?? 100_000;
        _gate = new BackpressureGate(
            maxMessages <= 0 ? BackpressureGate.Unlimited : maxMessages,
            (config.QueueBufferingMaxKbytes ?? 1_048_576) * 1024L);
        ProducerLog.Started(logger, name, config.BootstrapServers ?? "", config.Get("acks") ?? "all", config.Get("enable.idempotence") ?? "false");
        ProducerLog.Configuration(logger, name, ConfigText.Redacted(config));
        _pump = new DeliveryPump(
            timeout =>
            {
                PurgeQueuedIfFaulted();
                return _producer.Poll(timeout);
            },
            timeout =>
            {
                PurgeQueuedIfFaulted();
                return _producer.Flush(timeout);
            },
            e => ProducerLog.PumpFailed(logger, e, name),
            name);
        var gaugeTags = new KeyValuePair<string, object?>[] { new("messaging.system", "kafka"), new("messaging.client.id", name) };
        _queueGauge = KafkaKitMetrics.ObserveQueue(() => [new System.Diagnostics.Metrics.Measurement<long>(_gate.Messages, gaugeTags)]);
    }

    public string Name { get; }

    public long QueuedMessages => _gate.Messages;

    public Error? FatalError => Volatile.Read(ref _fatalError);

    public IProducer<TKey, TValue> Inner => _producer;

    /// <summary>Gets the number of exceptions thrown by delivery callbacks so far.</summary>
    internal long CallbackErrors => Interlocked.Read(ref _callbackErrors);

    /// <summary>Gets the state of the circuit breaker of <c>Retry.CircuitBreaker</c>, or null when there is none.</summary>
    internal CircuitState? Circuit => _circuit?.CircuitState;

    /// <summary>Gets the number of enqueues waiting for room in a full queue.</summary>
    internal int WaitingForRoom => _pump.Waiting;

    public ValueTask EnqueueAsync(string topic, Message<TKey, TValue> message, Action<DeliveryReport<TKey, TValue>>? onDelivery = null, CancellationToken cancellationToken = default)
    {
        var size = Check(topic, message);
        var handler = onDelivery is null ? _withoutCallback : new CallbackDelivery(this, onDelivery).Handler;
        if (KafkaKitTracing.StartProduce(Name, topic, message) is { } activity)
        {
            handler = KafkaKitTracing.EndOnDelivery(activity, handler);
        }

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

        var handler = onDelivery is null ? _withoutCallback : new CallbackDelivery(this, onDelivery).Handler;
        if (KafkaKitTracing.StartProduce(Name, topic, message) is { } activity)
        {
            handler = KafkaKitTracing.EndOnDelivery(activity, handler);
        }

        return TryProduce(topic, message, handler, size);
    }

    public ValueTask<DeliveryResult<TKey, TValue>> ProduceAsync(string topic, Message<TKey, TValue> message, CancellationToken cancellationToken = default)
    {
        long size;
        try
        {
            size = Check(topic, message);
        }
        catch (Exception e)
        {
            return ValueTask.FromException<DeliveryResult<TKey, TValue>>(e);
        }

        var retry = !ReferenceEquals(_pipeline, ResiliencePipeline.Empty);
        if (_firstAttemptOutsidePipeline || !retry)
        {
            // KafkaKit's own retry-only pipeline has nothing to do with a success: the first attempt runs without it (no
            // pipeline cost, and no state machine, on the common path); a retriable failure is handed to the pipeline as
            // its first attempt's outcome, so attempt counting, backoff and logging are the pipeline's as before.
            return ProduceAttemptAsync(topic, message, size, retry, retry ? _timeProvider.GetTimestamp() : 0, cancellationToken);
        }

        // A user-supplied pipeline runs every attempt, the first included.
        return ProduceWithPipelineAsync(topic, message, firstFailure: null, _timeProvider.GetTimestamp(), cancellationToken);
    }

    /// <summary>
    /// Runs the retry pipeline for one <see cref="ProduceAsync"/> call; with <paramref name="firstFailure"/>, the
    /// pipeline's first attempt is that failure (the attempt already made outside the pipeline).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    internal async ValueTask<DeliveryResult<TKey, TValue>> ProduceWithPipelineAsync(string topic, Message<TKey, TValue> message, ProduceException<TKey, TValue>? firstFailure, long started, CancellationToken cancellationToken)
    {
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        RetryBudget.Start(context, started);
        try
        {
            var outcome = await _pipeline.ExecuteOutcomeAsync(
                [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] static async ValueTask<Outcome<DeliveryResult<TKey, TValue>>> (
                    ResilienceContext ctx, (KafkaProducer<TKey, TValue> Producer, string Topic, Message<TKey, TValue> Message, ProduceException<TKey, TValue>? FirstFailure) state) =>
                {
                    if (state.FirstFailure is { } failed && FirstAttempt.Take(ctx))
                    {
                        return Outcome.FromException<DeliveryResult<TKey, TValue>>(failed);
                    }

                    try
                    {
                        var producer = state.Producer;
                        var size = producer.Check(state.Topic, state.Message);
                        return Outcome.FromResult(await producer.ProduceAttemptAsync(state.Topic, state.Message, size, retry: false, started: 0, ctx.CancellationToken).ConfigureAwait(false));
                    }
                    catch (Exception e)
                    {
                        return Outcome.FromException<DeliveryResult<TKey, TValue>>(e);
                    }
                },
                context,
                (Producer: this, Topic: topic, Message: message, FirstFailure: firstFailure)).ConfigureAwait(false);
            if (_circuit is not null && outcome.Exception is BrokenCircuitException open)
            {
                // Polly's exception names no Kafka error; its inner exception is the last failure the breaker counted.
                throw new ProducerCircuitOpenException(
                    topic,
                    (open.InnerException as KafkaException)?.Error ?? new Error(ErrorCode.Local_Fail, "recent produces failed"),
                    open.RetryAfter,
                    open);
            }

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
        return new ValueTask<int>(_pump.FlushAsync(Timeout.InfiniteTimeSpan, cancellationToken));
    }

    public int Flush(TimeSpan timeout)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(timeout, TimeSpan.Zero);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (_pump.IsCurrentThread)
        {
            // Called from a delivery callback: the pump cannot serve a request while it runs this callback.
            return FlushFor(timeout);
        }

        var flush = _pump.FlushAsync(timeout, CancellationToken.None);
#pragma warning disable VSTHRD002 // Flush(TimeSpan) is the documented blocking form; the pump thread does the work.
        return flush.GetAwaiter().GetResult();
#pragma warning restore VSTHRD002
    }

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            // A second caller waits for the first disposal (which never throws).
            return new ValueTask(Volatile.Read(ref _disposal) ?? Task.CompletedTask);
        }

        var disposal = DisposeCoreAsync();
        Volatile.Write(ref _disposal, disposal);
        return new ValueTask(disposal);
    }

    private async Task DisposeCoreAsync()
    {
        await _disposing.CancelAsync().ConfigureAwait(false); // ends enqueues waiting for room (ObjectDisposedException)

        // Stopping the pump, librdkafka's flush, purge and destroy block; run them on a dedicated thread, never the
        // caller's or the pool's.
        await Task.Factory.StartNew(DisposeBlocking, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)
            .ConfigureAwait(false);
        _disposing.Dispose();
    }

    private void DisposeBlocking()
    {
        // A produce call that saw the producer undisposed may still be inside librdkafka's Produce: let it finish, so its
        // message is flushed (or purged and reported) below instead of being destroyed without an outcome.
        var spin = default(SpinWait);
        while (Volatile.Read(ref _producing) != 0)
        {
            spin.SpinOnce();
        }

        // From here this thread is the only one serving delivery reports.
        _pump.Stop();
        ProducerLog.Disposing(_logger, Name, _gate.Messages, _options.FlushTimeoutOnDispose);
        var remaining = FlushFor(_options.FlushTimeoutOnDispose);
        if (remaining > 0 && _gate.Messages > 0)
        {
            // Give every message left its one outcome: purged messages are reported failed (Local_PurgeQueue /
            // Local_PurgeInflight) through their delivery handlers, served by the flush below.
            var undelivered = _gate.Messages;
            if (Librdkafka.TryPurge(_producer.Handle, inFlight: true))
            {
                ProducerLog.Purged(_logger, Name, undelivered);
                FlushFor(PurgeReportTimeout);
            }
        }

        if (_gate.Messages > 0)
        {
            ProducerLog.LostAtDispose(_logger, Name, _gate.Messages);
        }

        _queueGauge.Dispose();
        _producer.Dispose();
        _logSummariser.Dispose();
        ProducerLog.Disposed(_logger, Name);
    }

    /// <summary>Hands a message whose room was taken to librdkafka.</summary>
    /// <returns><see langword="false"/> when librdkafka itself reported its queue full (the room was returned).</returns>
    private bool TryProduce(string topic, Message<TKey, TValue> message, Action<DeliveryReport<TKey, TValue>> handler, long size)
    {
        // Pairs with DisposeBlocking: either this call sees the disposal, or the disposal waits for this call.
        Interlocked.Increment(ref _producing);
        try
        {
            if (Volatile.Read(ref _disposed) != 0)
            {
                _gate.Release(size);
                throw new ObjectDisposedException(GetType().FullName);
            }

            _producer.Produce(topic, message, handler);
            return true;
        }
        catch (ProduceException<TKey, TValue> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
        {
            // librdkafka's own accounting (bytes of non-primitive types, retries) says full: wait like any full queue.
            _gate.Release(size);
            return false;
        }
        catch (ProduceException<TKey, TValue>) when (Librdkafka.FatalError(_producer.Handle) is { } fatal)
        {
            // librdkafka refuses every message from the moment a fatal error is raised (Confluent.Kafka reports it with
            // the fatal error's code, not as fatal), while the error event that reaches OnError waits behind the
            // delivery reports queued before it (a second or more under load): fault here, so every caller gets the
            // one documented exception and the state turns Faulted at once.
            _gate.Release(size);
            Fault(fatal);
            throw new ProducerFaultedException(Volatile.Read(ref _fatalError)!);
        }
        catch (ProduceException<TKey, TValue> e) when (e.Error.Code == ErrorCode.MsgSizeTooLarge)
        {
            // librdkafka's reason ("Broker: Message size too large") names neither the limit nor that it was checked
            // locally: say both, keeping the code and the type.
            _gate.Release(size);
            throw new ProduceException<TKey, TValue>(
                new Error(ErrorCode.MsgSizeTooLarge, $"The message (key, value and headers together) is larger than message.max.bytes = {_maxMessageBytes} bytes; it was not enqueued. Send a smaller message or raise message.max.bytes (and the topic's max.message.bytes on the brokers)."),
                e.DeliveryResult,
                e);
        }
        catch (Exception e) when (e is not ObjectDisposedException)
        {
            _gate.Release(size);
            throw;
        }
        finally
        {
            Interlocked.Decrement(ref _producing);
        }
    }

    private async Task EnqueueSlowAsync(string topic, Message<TKey, TValue> message, Action<DeliveryReport<TKey, TValue>> handler, long size, bool wakeOnNextRelease, CancellationToken cancellationToken)
    {
        var started = _timeProvider.GetTimestamp();
        var fullWithNothingInFlight = 0;
        while (true)
        {
            ThrowIfFaulted();
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
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
                ProducerLog.QueueFull(_logger, Name, topic, waited, _gate.Messages);
                throw new ProducerQueueFullException(topic, waited, _gate.Messages);
            }

            cancellationToken.ThrowIfCancellationRequested();
            ProducerLog.WaitingForRoom(_logger, Name, _gate.Messages);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposing.Token);
            _pump.EnterWait();
            try
            {
                if (wakeOnNextRelease && _gate.Messages == 0)
                {
                    // librdkafka is full though none of this producer's messages awaits a report: its count lags by the
                    // report being served, or messages produced through Inner (not counted here) fill it. No report of
                    // ours will signal room: look again at once a few times, then once per slice (the pump flushes).
                    if (++fullWithNothingInFlight <= YieldsBeforeDelay)
                    {
                        await Task.Yield();
                    }
                    else
                    {
                        await Task.Delay(DeliveryPump.FlushSlice, _timeProvider, linked.Token).ConfigureAwait(false);
                    }
                }
                else
                {
                    await _gate.WaitForRoomAsync(wakeOnNextRelease, _options.MaxBlock - waited, _timeProvider, linked.Token).ConfigureAwait(false);
                }
            }
            catch (TimeoutException)
            {
                // loop: the MaxBlock check above throws the typed error
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // The caller's token, not the linked one, so callers can tell their own cancellation.
                RecordWait(started, topic);
                throw new OperationCanceledException("The wait for room in the producer queue was cancelled; the message was not enqueued.", cancellationToken);
            }
            catch (OperationCanceledException) when (_disposing.IsCancellationRequested)
            {
                throw new ObjectDisposedException(GetType().FullName, "The producer was disposed while the message waited for room; it was not enqueued.");
            }
            finally
            {
                _pump.ExitWait();
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

    /// <summary>Returns a source to the pool (from its awaiter's GetResult, or when its message was never enqueued).</summary>
    internal void ReturnSource(DeliverySource<TKey, TValue> source) => _sources.Add(source);

    /// <summary>
    /// One produce attempt. With room in the queue it returns the pooled source's task itself: no state machine, no
    /// allocation of KafkaKit's. Every exception is delivered through the returned task.
    /// </summary>
    private ValueTask<DeliveryResult<TKey, TValue>> ProduceAttemptAsync(string topic, Message<TKey, TValue> message, long size, bool retry, long started, CancellationToken cancellationToken)
    {
        if (!_sources.TryTake(out var source))
        {
            source = new DeliverySource<TKey, TValue>(this);
        }

        source.Start(topic, message, retry, started, cancellationToken, KafkaKitTracing.StartProduce(Name, topic, message));
        try
        {
            if (!_gate.TryAcquire(size))
            {
                return ProduceAfterWaitAsync(source, size, wakeOnNextRelease: false);
            }

            // Only the awaiter of the returned task recycles the source, so it is still this call's after the hand-over.
            return TryProduce(topic, message, source.Handler, size) ? source.Task : ProduceAfterWaitAsync(source, size, wakeOnNextRelease: true);
        }
        catch (ProduceException<TKey, TValue> e) when (retry && ProduceErrors.IsWorthAnotherAttempt(e.Error))
        {
            source.Abandon(e);
            return ProduceWithPipelineAsync(topic, message, e, started, cancellationToken);
        }
        catch (Exception e)
        {
            source.Abandon(e);
            return ValueTask.FromException<DeliveryResult<TKey, TValue>>(e);
        }
    }

    /// <summary>The attempt of <see cref="ProduceAttemptAsync"/> whose message must wait for room first.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<DeliveryResult<TKey, TValue>> ProduceAfterWaitAsync(DeliverySource<TKey, TValue> source, long size, bool wakeOnNextRelease)
    {
        var task = source.Task;
        try
        {
            await EnqueueSlowAsync(source.Topic, source.Message, source.Handler, size, wakeOnNextRelease, source.CancellationToken).ConfigureAwait(false);
        }
        catch (ProduceException<TKey, TValue> e) when (source.Retry && ProduceErrors.IsWorthAnotherAttempt(e.Error))
        {
            var (topic, message, started, cancellationToken) = (source.Topic, source.Message, source.Started, source.CancellationToken);
            source.Abandon(e);
            return await ProduceWithPipelineAsync(topic, message, e, started, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            source.Abandon(e);
            throw;
        }

        return await task.ConfigureAwait(false);
    }

    private long Check(string topic, Message<TKey, TValue> message)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentNullException.ThrowIfNull(message);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        ThrowIfFaulted();
        return _size.Of(message);
    }

    private void ThrowIfFaulted()
    {
        if (Volatile.Read(ref _fatalError) is { } fatal)
        {
            throw new ProducerFaultedException(fatal);
        }
    }

    /// <summary>Returns the room of a reported message and counts it. Runs on the delivery-report thread (the pump, or the disposing thread at the end) for every message.</summary>
    internal void Account(DeliveryReport<TKey, TValue> report)
    {
        _gate.Release(_size.Of(report.Message));
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
        // Messages purged at dispose are summed up in one log line (Purged) instead of one line each.
        if (Volatile.Read(ref _disposed) == 0
            || report.Error.Code is not (ErrorCode.Local_PurgeQueue or ErrorCode.Local_PurgeInflight))
        {
            ProducerLog.DeliveryFailed(_logger, Name, report.Topic, report.Partition.Value, report.Error.Reason, report.Error.Code);
        }

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
            Fault(error);
            return;
        }

        if (_logSummariser.ShouldLog(LogLevel.Warning, error.Reason))
        {
            ProducerLog.ClientError(_logger, Name, error.Reason, error.Code);
        }
    }

    /// <summary>
    /// Gives the messages still queued in a faulted producer their outcome at once (<see cref="ErrorCode.Local_PurgeQueue"/>)
    /// instead of after <c>message.timeout.ms</c>. Runs on the pump thread before each poll or flush slice.
    /// </summary>
    /// <remarks>
    /// After a fatal error librdkafka sends nothing more; it purges its queues when the error is raised, but a produce
    /// call that passed its fatal-error check just before can still enqueue after that purge, and a message of a
    /// request in flight that fails is queued again for a retry that never comes. Either would wait out
    /// <c>message.timeout.ms</c> (300 s by default). So while a faulted producer has messages awaiting reports, the queues
    /// are purged every <see cref="FaultedPurgeInterval"/>, each time once no produce call is inside librdkafka. Requests
    /// in flight are left alone: the broker's answer is their outcome.
    /// </remarks>
    private void PurgeQueuedIfFaulted()
    {
        if (Volatile.Read(ref _fatalError) is null || _gate.Messages == 0 || Volatile.Read(ref _producing) != 0)
        {
            return;
        }

        var now = Stopwatch.GetTimestamp();
        if (now < _nextFaultedPurge)
        {
            return;
        }

        _nextFaultedPurge = now + (long)(FaultedPurgeInterval.TotalSeconds * Stopwatch.Frequency);
        Librdkafka.TryPurge(_producer.Handle, inFlight: false);
    }

    /// <summary>Puts the producer in the faulted state once (the first fatal error wins; one critical log line).</summary>
    private void Fault(Error error)
    {
        if (Interlocked.CompareExchange(ref _fatalError, error, null) is null)
        {
            ProducerLog.Faulted(_logger, Name, error.Reason, error.Code);
            _gate.Close(); // enqueues waiting for room fail fast instead of waiting out MaxBlock
        }
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

    /// <summary>
    /// Flushes on the calling thread (the disposing thread once the pump stopped, or the pump's own thread) until
    /// nothing is outstanding or the timeout passed.
    /// </summary>
    /// <returns>librdkafka's count of what is still outstanding (0: every message has its outcome).</returns>
    private int FlushFor(TimeSpan timeout) => _producer.Flush(timeout);
}
