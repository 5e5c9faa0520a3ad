namespace KafkaKit.Producing;

/// <summary>
/// KafkaKit's own count of messages and bytes handed to librdkafka and not yet reported, held against librdkafka's
/// queue limits (<c>queue.buffering.max.messages</c>, <c>queue.buffering.max.kbytes</c>) so a full queue is met by an
/// asynchronous wait instead of <c>Local_QueueFull</c>.
/// </summary>
/// <remarks>
/// <see cref="TryAcquire"/> and <see cref="Release"/> are lock-free and allocation-free. Waiters park on a shared
/// signal that delivery reports raise once the queue has drained below a low-water mark (90 % of each limit) or is
/// empty, so a saturated producer resumes in batches rather than waking once per delivery report.
/// </remarks>
internal sealed class BackpressureGate
{
    /// <summary>The limit that means "no limit" (librdkafka's <c>queue.buffering.max.messages=0</c>).</summary>
    internal const long Unlimited = long.MaxValue;

    private readonly long _maxMessages;
    private readonly long _maxBytes;
    private readonly long _lowWaterMessages;
    private readonly long _lowWaterBytes;
    private long _messages;
    private long _bytes;
    private int _waiters;
    private volatile bool _closed;
    private int _wakeOnNextRelease;
    private TaskCompletionSource _signal = NewSignal();

    /// <summary>Initializes a new instance of the <see cref="BackpressureGate"/> class.</summary>
    /// <param name="maxMessages">The most messages in flight, 1 or more (<see cref="Unlimited"/> for no limit).</param>
    /// <param name="maxBytes">The most key + value bytes in flight, 1 or more (<see cref="Unlimited"/> for no limit).</param>
    internal BackpressureGate(long maxMessages, long maxBytes)
    {
        _maxMessages = Math.Max(1, maxMessages);
        _maxBytes = Math.Max(1, maxBytes);
        _lowWaterMessages = _maxMessages - Math.Max(1, _maxMessages / 10);
        _lowWaterBytes = _maxBytes - Math.Max(1, _maxBytes / 10);
    }

    /// <summary>Gets the number of messages handed to librdkafka and not yet reported.</summary>
    internal long Messages => Volatile.Read(ref _messages);

    /// <summary>Gets the bytes (key + value) handed to librdkafka and not yet reported.</summary>
    internal long Bytes => Volatile.Read(ref _bytes);

    /// <summary>Gets the message limit.</summary>
    internal long MaxMessages => _maxMessages;

    /// <summary>Gets the number of callers waiting for room.</summary>
    internal int Waiters => Volatile.Read(ref _waiters);

    /// <summary>Takes room for one message of <paramref name="bytes"/> bytes if there is room.</summary>
    /// <param name="bytes">The message's key + value size in bytes.</param>
    /// <returns><see langword="true"/> when the room was taken.</returns>
    internal bool TryAcquire(long bytes)
    {
        // The message count never goes past the limit, not even for a moment: a refused caller must not make a
        // concurrent one see a full queue that is not full (TryEnqueue and Backpressure.Fail would fail spuriously).
        long messages;
        var current = Volatile.Read(ref _messages);
        while (true)
        {
            if (current >= _maxMessages && current != 0)
            {
                return false;
            }

            var seen = Interlocked.CompareExchange(ref _messages, current + 1, current);
            if (seen == current)
            {
                messages = current + 1;
                break;
            }

            current = seen;
        }

        // An empty queue always admits one message, so one larger than the byte limit still reaches librdkafka (which
        // then reports it with its own, precise error).
        var total = Interlocked.Add(ref _bytes, bytes);
        if (messages == 1 || total <= _maxBytes)
        {
            return true;
        }

        Release(bytes);
        return false;
    }

    /// <summary>Returns the room of one reported (or never handed over) message and wakes waiters when due.</summary>
    /// <param name="bytes">The size given to <see cref="TryAcquire"/>.</param>
    internal void Release(long bytes)
    {
        var messages = Interlocked.Decrement(ref _messages);
        var total = Interlocked.Add(ref _bytes, -bytes);
        if (Volatile.Read(ref _waiters) == 0)
        {
            return;
        }

        if (messages == 0
            || (messages <= _lowWaterMessages && total <= _lowWaterBytes)
            || Interlocked.Exchange(ref _wakeOnNextRelease, 0) == 1)
        {
            WakeAll();
        }
    }

    /// <summary>Wakes every waiter at once (they re-check the queue, or the producer's state).</summary>
    internal void WakeAll() => Interlocked.Exchange(ref _signal, NewSignal()).TrySetResult();

    /// <summary>
    /// Ends every wait for good (the producer faulted): current waiters wake, and later waits return at once, also one
    /// that checked the producer's state just before and registers only after this call.
    /// </summary>
    internal void Close()
    {
        _closed = true;
        WakeAll();
    }

    /// <summary>
    /// Waits asynchronously until room may be available. The caller retries <see cref="TryAcquire"/> after it returns.
    /// </summary>
    /// <param name="wakeOnNextRelease">
    /// Wake at the next delivery report instead of at the low-water mark (used after librdkafka itself reported
    /// <c>Local_QueueFull</c>, whose accounting may differ from this gate's).
    /// </param>
    /// <param name="timeout">The longest wait.</param>
    /// <param name="timeProvider">The time source for <paramref name="timeout"/>.</param>
    /// <param name="cancellationToken">Ends the wait.</param>
    /// <returns>A task that completes when room may be available.</returns>
    /// <exception cref="TimeoutException"><paramref name="timeout"/> passed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    internal async Task WaitForRoomAsync(bool wakeOnNextRelease, TimeSpan timeout, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _waiters);
        try
        {
            var signal = Volatile.Read(ref _signal);
            if (wakeOnNextRelease)
            {
                Volatile.Write(ref _wakeOnNextRelease, 1);
            }

            // Re-check after registering: a release (or Close) between the caller's failed TryAcquire and the
            // registration above saw no waiter and raised nothing.
            if (_closed || Messages == 0 || (!wakeOnNextRelease && Messages <= _lowWaterMessages && Bytes <= _lowWaterBytes))
            {
                return;
            }

            await signal.Task.WaitAsync(timeout, timeProvider, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _waiters);
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
