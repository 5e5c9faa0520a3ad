using System.Diagnostics;
using System.Threading.Tasks.Sources;
using Confluent.Kafka;
using KafkaKit.Diagnostics;

namespace KafkaKit.Producing;

/// <summary>
/// A pooled, reusable completion for one awaited produce: the <see cref="ValueTask{TResult}"/> that
/// <c>ProduceAsync</c> returns is this source itself, completed by the message's delivery report on the delivery thread.
/// An awaited produce that finds room therefore runs no state machine and allocates no Task, TaskCompletionSource or
/// completion; the awaiting side's <see cref="GetResult"/> hands the source back to the producer's pool.
/// </summary>
/// <remarks>
/// A failure of a first attempt that KafkaKit's retries send again (see <see cref="ProduceErrors.IsRetriable"/>) does not complete the source
/// when retries are on: the retries run on the thread pool, never on the delivery thread, and their final outcome
/// completes it.
/// </remarks>
internal sealed class DeliverySource<TKey, TValue> : IValueTaskSource<DeliveryResult<TKey, TValue>>
{
    private readonly KafkaProducer<TKey, TValue> _producer;
    private ManualResetValueTaskSourceCore<DeliveryResult<TKey, TValue>> _core = new() { RunContinuationsAsynchronously = true };
    private Activity? _activity;
    private ProduceException<TKey, TValue>? _retriableFailure;
    private ExecutionContext? _callerContext;

    public DeliverySource(KafkaProducer<TKey, TValue> producer)
    {
        _producer = producer;
        Handler = OnDelivery;
    }

    /// <summary>Gets the delivery handler bound to this instance (allocated once, reused).</summary>
    public Action<DeliveryReport<TKey, TValue>> Handler { get; }

    /// <summary>Gets the topic of the current produce.</summary>
    public string Topic { get; private set; } = string.Empty;

    /// <summary>Gets the message of the current produce.</summary>
    public Message<TKey, TValue> Message { get; private set; } = null!;

    /// <summary>Gets whether a retriable failure is handed to the producer's retries instead of completing the source.</summary>
    public bool Retry { get; private set; }

    /// <summary>Gets when the call started (the producer's time source), for the retries' time budget.</summary>
    public long Started { get; private set; }

    /// <summary>Gets the caller's token (it bounds only a wait for room, and the retries).</summary>
    public CancellationToken CancellationToken { get; private set; }

    /// <summary>Gets the task that completes with the current produce's outcome.</summary>
    public ValueTask<DeliveryResult<TKey, TValue>> Task => new(this, _core.Version);

    /// <summary>Prepares the source for one produce; the "send" span, when there is one, ends with the delivery report.</summary>
    public void Start(string topic, Message<TKey, TValue> message, bool retry, long started, CancellationToken cancellationToken, Activity? activity)
    {
        Topic = topic;
        Message = message;
        Retry = retry;
        Started = started;
        CancellationToken = cancellationToken;
        _retriableFailure = null;
        if (activity is not null)
        {
            // The span belongs to the message, not to the caller's flow (the caller's current activity is restored).
            _activity = activity;
            Activity.Current = activity.Parent;
        }

        // Retries run in the caller's context (its current activity parents their spans), like the first attempt.
        _callerContext = retry ? ExecutionContext.Capture() : null;
    }

    /// <summary>Ends a produce whose message never reached librdkafka and returns the source to the pool.</summary>
    /// <param name="error">Why the message was not enqueued.</param>
    public void Abandon(Exception error)
    {
        if (_activity is { } activity)
        {
            _activity = null;
            KafkaKitTracing.Fail(activity, error);
            activity.Dispose();
        }

        Release();
    }

    public DeliveryResult<TKey, TValue> GetResult(short token)
    {
        // A second await of the same task: the source was reset (and may serve another call by now). Refuse, and do not
        // return the source to the pool a second time.
        ThrowIfStale(token);

        if (_core.GetStatus(token) == ValueTaskSourceStatus.Pending)
        {
            // Read before completion (a pending task's value taken synchronously): the message is still in flight, and the
            // source stays its own until its delivery report.
            throw new InvalidOperationException("The result of this ProduceAsync task was read before the task completed; await it instead.");
        }

        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            Release();
        }
    }

    public ValueTaskSourceStatus GetStatus(short token)
    {
        ThrowIfStale(token);
        return _core.GetStatus(token);
    }

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    private void ThrowIfStale(short token)
    {
        if (token != _core.Version)
        {
            throw new InvalidOperationException("This ProduceAsync task was awaited more than once (or after its result was read); a ValueTask may be awaited only once. Call AsTask() once to await its result more often.");
        }
    }

    private void Release()
    {
        _core.Reset(); // invalidates the task handed out for this produce
        Topic = string.Empty;
        Message = null!;
        CancellationToken = default;
        _retriableFailure = null;
        _callerContext = null;
        _producer.ReturnSource(this);
    }

    // Runs on the delivery-report thread.
    private void OnDelivery(DeliveryReport<TKey, TValue> report)
    {
        _producer.Account(report);
        if (_activity is { } activity)
        {
            _activity = null;
            KafkaKitTracing.Delivered(activity, report.Partition.Value, report.Offset.Value, report.Error);
            activity.Dispose();
        }

        if (!report.Error.IsError)
        {
            _core.SetResult(report);
            return;
        }

        var failure = new ProduceException<TKey, TValue>(report.Error, report);
        if (Retry && ProduceErrors.IsWorthAnotherAttempt(report.Error))
        {
            _retriableFailure = failure;
            ThreadPool.UnsafeQueueUserWorkItem(static source => source.StartRetries(), this, preferLocal: false);
            return;
        }

        _core.SetException(failure);
    }

    private void StartRetries()
    {
        if (_callerContext is { } context)
        {
            ExecutionContext.Run(context, static state => _ = ((DeliverySource<TKey, TValue>)state!).CompleteWithRetriesAsync(), this);
        }
        else
        {
            _ = CompleteWithRetriesAsync();
        }
    }

    /// <summary>Runs the retries and completes the source with their outcome (never throws).</summary>
    private async Task CompleteWithRetriesAsync()
    {
        try
        {
            _core.SetResult(await _producer.ProduceWithPipelineAsync(Topic, Message, _retriableFailure, Started, CancellationToken).ConfigureAwait(false));
        }
        catch (Exception e)
        {
            _core.SetException(e);
        }
    }
}
