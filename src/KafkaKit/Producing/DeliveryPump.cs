using System.Diagnostics;

namespace KafkaKit.Producing;

/// <summary>
/// The one dedicated thread per producer that serves librdkafka's delivery reports and events (errors, statistics):
/// it polls, pushes a full queue's batches out when an enqueue starts waiting for room, and flushes while a flush was
/// asked for. Every delivery callback therefore runs on this thread, one at a time, in librdkafka's order (per
/// partition: offset order).
/// </summary>
/// <remarks>
/// <para>
/// A full queue cannot grow a batch, so waiting out <c>linger.ms</c> only stalls the producer (with <c>linger.ms=1000</c>
/// and a queue of 100 messages, 1,000 messages would take 10 s). When an enqueue starts waiting for room the pump
/// therefore flushes for one <see cref="PulseSlice"/>: librdkafka ignores <c>linger.ms</c> while <c>rd_kafka_flush</c>
/// runs, so the batches queued at that moment (large: the queue is full) are sent at once; the Java client likewise
/// sends batches at once while producers are blocked on buffer memory ("exhausted"). The flush is kept that short on
/// purpose: while it runs librdkafka sends every newly enqueued message at once too, in batches of a few messages, which
/// cut a saturated producer's throughput by a quarter (measured with a 10,000-message queue). While enqueues keep waiting
/// without a delivery freeing room, the pulse repeats every <see cref="StallSlice"/>.
/// </para>
/// <para>
/// Confluent.Kafka's own background poll thread is switched off (<c>dotnet.producer.enable.background.poll=false</c>): two
/// pollers would run callbacks concurrently and out of order.
/// </para>
/// </remarks>
internal sealed class DeliveryPump
{
    /// <summary>The longest poll while idle: how soon the thread notices a flush request or a waiting enqueue.</summary>
    internal static readonly TimeSpan IdleSlice = TimeSpan.FromMilliseconds(20);

    /// <summary>The longest flush call: how often flush requests are checked against their deadlines.</summary>
    internal static readonly TimeSpan FlushSlice = TimeSpan.FromMilliseconds(50);

    /// <summary>The flush that sends the queued batches at once when an enqueue starts waiting for room.</summary>
    internal static readonly TimeSpan PulseSlice = TimeSpan.FromMilliseconds(1);

    /// <summary>How often the pulse repeats while enqueues keep waiting (a batch held back by in-flight limits, a race with the broker thread's wake-up).</summary>
    internal static readonly TimeSpan StallSlice = TimeSpan.FromMilliseconds(50);

    private readonly Func<TimeSpan, int> _poll;
    private readonly Func<TimeSpan, int> _flush;
    private readonly Action<Exception> _onError;
    private readonly Thread _thread;
    private readonly object _lock = new();
    private readonly List<FlushRequest> _requests = [];
    private int _waiting;
    private int _waitsStarted;
    private bool _stopping;

    /// <summary>Initializes a new instance of the <see cref="DeliveryPump"/> class and starts its thread.</summary>
    /// <param name="poll">librdkafka's poll with a timeout (serves callbacks; blocking).</param>
    /// <param name="flush">librdkafka's flush with a timeout (sends lingering batches, serves callbacks; returns what is outstanding).</param>
    /// <param name="onError">Told of an exception escaping poll or flush (the thread goes on).</param>
    /// <param name="name">The producer's name, for the thread name.</param>
    public DeliveryPump(Func<TimeSpan, int> poll, Func<TimeSpan, int> flush, Action<Exception> onError, string name)
    {
        _poll = poll;
        _flush = flush;
        _onError = onError;
        _thread = new Thread(Run) { IsBackground = true, Name = $"kafkakit-producer-{name}" };
        _thread.Start();
    }

    /// <summary>Gets how many enqueues are waiting for room.</summary>
    public int Waiting => Volatile.Read(ref _waiting);

    /// <summary>Gets whether the calling thread is the pump's (a delivery callback is running).</summary>
    public bool IsCurrentThread => Thread.CurrentThread == _thread;

    /// <summary>An enqueue starts waiting for room: the pump sends the queued batches at once (see the remarks).</summary>
    public void EnterWait()
    {
        Interlocked.Increment(ref _waiting);
        Interlocked.Increment(ref _waitsStarted);
    }

    /// <summary>An enqueue stopped waiting (it got room, gave up or was cancelled).</summary>
    public void ExitWait() => Interlocked.Decrement(ref _waiting);

    /// <summary>Asks the pump to flush until nothing is outstanding or <paramref name="timeout"/> passed.</summary>
    /// <param name="timeout">The longest wait; <see cref="Timeout.InfiniteTimeSpan"/> for none.</param>
    /// <param name="cancellationToken">Ends the wait (messages stay queued).</param>
    /// <returns>What librdkafka still had outstanding: 0 when every message has its outcome.</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The pump stopped (the producer is being disposed).</exception>
    public Task<int> FlushAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<int>(cancellationToken);
        }

        var deadline = timeout == Timeout.InfiniteTimeSpan ? long.MaxValue : Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        var request = new FlushRequest(deadline);
        request.Watch(cancellationToken); // before the pump can see (and complete) the request
        lock (_lock)
        {
            if (_stopping)
            {
                request.Fail(new ObjectDisposedException(nameof(DeliveryPump), "The producer is being disposed."));
                return request.Task;
            }

            _requests.Add(request);
        }

        return request.Task;
    }

    /// <summary>Stops the thread after its current slice and fails pending flush requests. Idempotent.</summary>
    public void Stop()
    {
        List<FlushRequest> pending;
        lock (_lock)
        {
            if (_stopping)
            {
                return;
            }

            _stopping = true;
            pending = [.. _requests];
            _requests.Clear();
        }

        if (!IsCurrentThread)
        {
            _thread.Join();
        }

        foreach (var request in pending)
        {
            request.Fail(new ObjectDisposedException(nameof(DeliveryPump), "The producer was disposed during the flush."));
        }
    }

    private void Run()
    {
        var pulsedFor = 0;
        var nextPulse = 0L;
        while (true)
        {
            TimeSpan? flushFor;
            lock (_lock)
            {
                if (_stopping)
                {
                    return;
                }

                _requests.RemoveAll(r => r.Task.IsCompleted);
                flushFor = _requests.Count > 0 ? UntilFirstDeadline() : null;
            }

            try
            {
                if (flushFor is not { } slice)
                {
                    var waitsStarted = Volatile.Read(ref _waitsStarted);
                    var now = Stopwatch.GetTimestamp();
                    if (Volatile.Read(ref _waiting) > 0 && (waitsStarted != pulsedFor || now >= nextPulse))
                    {
                        pulsedFor = waitsStarted;
                        nextPulse = now + (long)(StallSlice.TotalSeconds * Stopwatch.Frequency);
                        _flush(PulseSlice);
                    }
                    else
                    {
                        _poll(IdleSlice);
                    }

                    continue;
                }

                var outstanding = _flush(slice);
                lock (_lock)
                {
                    var now = Stopwatch.GetTimestamp();
                    foreach (var request in _requests)
                    {
                        if (outstanding == 0 || now >= request.Deadline)
                        {
                            request.Complete(outstanding);
                        }
                    }
                }
            }
            catch (Exception e)
            {
                // Never let an exception end the thread (or the process): report it and serve on, without spinning.
                _onError(e);
                Thread.Sleep(IdleSlice);
            }
        }
    }

    private TimeSpan UntilFirstDeadline()
    {
        var first = _requests.Min(r => r.Deadline);
        if (first == long.MaxValue)
        {
            return FlushSlice;
        }

        var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), first);
        return left <= TimeSpan.Zero ? TimeSpan.Zero : left < FlushSlice ? left : FlushSlice;
    }

    private sealed class FlushRequest(long deadline)
    {
        private readonly TaskCompletionSource<int> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private CancellationTokenRegistration _registration;

        public long Deadline { get; } = deadline;

#pragma warning disable VSTHRD003 // the task of a completion source this class owns and completes
        public Task<int> Task => _done.Task;
#pragma warning restore VSTHRD003

        public void Watch(CancellationToken cancellationToken)
        {
            if (cancellationToken.CanBeCanceled)
            {
                _registration = cancellationToken.Register(static (state, token) => ((FlushRequest)state!)._done.TrySetCanceled(token), this);
            }
        }

        public void Complete(int outstanding)
        {
            _registration.Dispose();
            _done.TrySetResult(outstanding);
        }

        public void Fail(Exception exception)
        {
            _registration.Dispose();
            _done.TrySetException(exception);
        }
    }
}
