using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Producing;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Polly.CircuitBreaker;

namespace KafkaKit.Hosting;

/// <summary>The health of one KafkaKit client, as the health check sees it.</summary>
internal abstract class KafkaClientHealth
{
    public abstract string Name { get; }

    /// <summary>Gets the librdkafka handle to probe the cluster through, or null when the client is not running.</summary>
    public abstract Handle? Handle { get; }

    /// <summary>Judges the client's own state (no I/O).</summary>
    public abstract (HealthStatus Status, string Description) Evaluate();

    /// <summary>Judges the client's liveness and readiness from its own state (no I/O).</summary>
    /// <param name="maxConsumerLag">The lag threshold of readiness, or null.</param>
    public abstract ProbeVerdict Judge(long? maxConsumerLag);

    /// <summary>Gets a consumer's total lag from the last statistics, or null (producers, statistics off).</summary>
    public virtual long? Lag => null;

    public static KafkaClientHealth For<TKey, TValue>(IKafkaProducer<TKey, TValue> producer) => new ProducerHealth<TKey, TValue>(producer);

    public static KafkaClientHealth For<TKey, TValue>(KafkaConsumer<TKey, TValue> consumer) => new ConsumerHealth<TKey, TValue>(consumer);

    public static KafkaClientHealth For<TKey, TValue>(Sharing.KafkaShareConsumer<TKey, TValue> consumer) => new ShareConsumerHealth<TKey, TValue>(consumer);

    /// <summary>A share consumer's health: its state and its poll thread (no cluster probe: it has no Confluent.Kafka handle).</summary>
    private sealed class ShareConsumerHealth<TKey, TValue>(Sharing.KafkaShareConsumer<TKey, TValue> consumer) : KafkaClientHealth
    {
        public override string Name => $"share consumer '{consumer.Name}' (share group '{consumer.GroupId}')";

        public override Handle? Handle => null;

        public override (HealthStatus, string) Evaluate()
        {
            var verdict = Judge(null);
            return (verdict.Ready == HealthStatus.Healthy ? HealthStatus.Healthy : verdict.Live == HealthStatus.Unhealthy ? HealthStatus.Unhealthy : verdict.Ready, verdict.Description);
        }

        public override ProbeVerdict Judge(long? maxConsumerLag) => ProbeRules.ShareConsumer(new(
            consumer.State,
            consumer.Fault?.Message,
            consumer.SinceLastRun,
            consumer.BatchWait,
            consumer.Options.MaxPollInterval,
            $"{consumer.Accepted} accepted, {consumer.Released} released, {consumer.Rejected} rejected, {consumer.DeadLettered} dead-lettered (and accepted)"));
    }

    private sealed class ProducerHealth<TKey, TValue>(IKafkaProducer<TKey, TValue> producer) : KafkaClientHealth
    {
        public override string Name => $"producer '{producer.Name}'";

        public override Handle? Handle => producer.FatalError is null ? TryHandle(() => producer.Inner.Handle) : null;

        public override (HealthStatus, string) Evaluate()
        {
            if (producer.FatalError is { } fatal)
            {
                return (HealthStatus.Unhealthy, $"faulted by a fatal error: {fatal.Reason} ({fatal.Code})");
            }

            if (producer is AsyncSerializingProducer<TKey, TValue> { UnavailableSince: { } since })
            {
                return (HealthStatus.Degraded, $"the serializer's service (schema registry) has been unreachable since {since:O}; produces wait within MaxBlock, then fail with SerializationUnavailableException");
            }

            if ((producer as KafkaProducer<TKey, TValue> ?? (producer as AsyncSerializingProducer<TKey, TValue>)?.Core) is { Circuit: CircuitState.Open or CircuitState.HalfOpen or CircuitState.Isolated } p)
            {
                return (HealthStatus.Degraded, $"circuit {p.Circuit.ToString()!.ToLowerInvariant()}: most recent produces failed with retriable errors, ProduceAsync fails fast (ProducerCircuitOpenException) until a trial produce succeeds; {producer.QueuedMessages} messages awaiting delivery reports");
            }

            return (HealthStatus.Healthy, $"{producer.QueuedMessages} messages awaiting delivery reports");
        }

        public override ProbeVerdict Judge(long? maxConsumerLag) => ProbeRules.Producer(new(
            producer.FatalError,
            (producer as KafkaProducer<TKey, TValue> ?? (producer as AsyncSerializingProducer<TKey, TValue>)?.Core)?.Circuit,
            (producer as AsyncSerializingProducer<TKey, TValue>)?.UnavailableSince,
            producer.QueuedMessages));
    }

    private sealed class ConsumerHealth<TKey, TValue>(KafkaConsumer<TKey, TValue> consumer) : KafkaClientHealth
    {
        public override string Name => $"consumer '{consumer.Name}' (group '{consumer.GroupId}')";

        public override Handle? Handle => consumer.State == KafkaConsumerState.Running ? consumer.ClientHandle : null;

        public override (HealthStatus, string) Evaluate()
        {
            switch (consumer.State)
            {
                case KafkaConsumerState.Faulted:
                    return (HealthStatus.Unhealthy, $"stopped on error: {consumer.Fault?.Message}");
                case KafkaConsumerState.Stopped or KafkaConsumerState.Stopping:
                    return (HealthStatus.Unhealthy, $"{consumer.State.ToString().ToLowerInvariant()}");
                case KafkaConsumerState.Created:
                    return (HealthStatus.Degraded, "not started");
            }

            if (consumer.SinceLastPoll is { } since && since > consumer.MaxPollInterval)
            {
                return (HealthStatus.Unhealthy, $"the poll thread has not polled for {since.TotalSeconds:F0} s (max.poll.interval.ms is {consumer.MaxPollInterval.TotalMilliseconds:F0})");
            }

            if (consumer.DeserializerUnavailableFor is { } unavailable)
            {
                return (HealthStatus.Degraded, $"the deserializer's service (schema registry) has been unreachable for {unavailable.TotalSeconds:F0} s; records wait and are retried, none is failed for it");
            }

            return consumer.Assignment.Count == 0
                ? (HealthStatus.Healthy, "running, waiting for a partition assignment")
                : (HealthStatus.Healthy, $"running, {consumer.Assignment.Count} partitions assigned");
        }

        public override long? Lag => consumer.Statistics.TotalLag;

        public override ProbeVerdict Judge(long? maxConsumerLag) => ProbeRules.Consumer(
            new(
                consumer.State,
                consumer.Fault?.Message,
                consumer.SinceLastPoll,
                consumer.MaxPollInterval,
                consumer.Assignment.Count,
                consumer.Statistics.JoinState,
                consumer.Statistics.TotalLag,
                consumer.DeserializerUnavailableFor),
            maxConsumerLag);
    }

    private static Handle? TryHandle(Func<Handle> get)
    {
        try
        {
            return get();
        }
        catch (ObjectDisposedException)
        {
            return null;
        }
    }
}
