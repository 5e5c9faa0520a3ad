using System.Threading.Tasks.Sources;
using Confluent.Kafka;

namespace KafkaKit.Producing;

/// <summary>
/// A pooled, reusable completion for one awaited delivery: the delivery report sets it, the awaiting
/// <c>ProduceAsync</c> reads it and returns it to the pool. One instance serves many deliveries, so an awaited produce
/// allocates no Task or TaskCompletionSource.
/// </summary>
internal sealed class DeliverySource<TKey, TValue> : IValueTaskSource<DeliveryReport<TKey, TValue>>
{
    private ManualResetValueTaskSourceCore<DeliveryReport<TKey, TValue>> _core = new() { RunContinuationsAsynchronously = true };

    private readonly Action<DeliveryReport<TKey, TValue>> _account;

    public DeliverySource(Action<DeliveryReport<TKey, TValue>> account)
    {
        _account = account;
        Handler = OnDelivery;
    }

    /// <summary>Gets the delivery handler bound to this instance (allocated once, reused).</summary>
    public Action<DeliveryReport<TKey, TValue>> Handler { get; }

    public ValueTask<DeliveryReport<TKey, TValue>> Task => new(this, _core.Version);

    public void Reset() => _core.Reset();

    public DeliveryReport<TKey, TValue> GetResult(short token) => _core.GetResult(token);

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    private void OnDelivery(DeliveryReport<TKey, TValue> report)
    {
        _account(report);
        _core.SetResult(report);
    }
}
