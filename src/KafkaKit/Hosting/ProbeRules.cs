using Confluent.Kafka;
using KafkaKit.Consuming;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Polly.CircuitBreaker;

namespace KafkaKit.Hosting;

/// <summary>What one consumer's state says about its liveness and readiness (no I/O).</summary>
/// <param name="State">The life-cycle state.</param>
/// <param name="FaultMessage">The fault's message when faulted.</param>
/// <param name="SinceLastPoll">How long ago the poll thread last polled, or null before the first poll.</param>
/// <param name="MaxPollInterval">max.poll.interval.ms.</param>
/// <param name="AssignedPartitions">How many partitions are assigned.</param>
/// <param name="JoinState">cgrp.join_state from the last statistics, or null without statistics.</param>
/// <param name="TotalLag">The total lag (messages) from the last statistics, or null when unknown.</param>
/// <param name="DeserializerUnavailableFor">How long a deserializer's service has been unreachable, or null.</param>
internal readonly record struct ConsumerProbeView(
    KafkaConsumerState State,
    string? FaultMessage,
    TimeSpan? SinceLastPoll,
    TimeSpan MaxPollInterval,
    int AssignedPartitions,
    string? JoinState,
    long? TotalLag,
    TimeSpan? DeserializerUnavailableFor);

/// <summary>What one share consumer's state says about its liveness and readiness (no I/O).</summary>
/// <param name="State">The life-cycle state.</param>
/// <param name="FaultMessage">The fault's message when faulted.</param>
/// <param name="SinceLastRun">How long ago the poll thread last ran (polled or looked at its batch's outcomes), or null before it started.</param>
/// <param name="BatchWait">How long the current batch has been handled and how many records await an outcome, or null between batches.</param>
/// <param name="MaxPollInterval">The share consumer's MaxPollInterval.</param>
/// <param name="Counts">The accepted, released, rejected and dead-lettered counts, for the description.</param>
internal readonly record struct ShareConsumerProbeView(
    KafkaConsumerState State,
    string? FaultMessage,
    TimeSpan? SinceLastRun,
    (TimeSpan For, int Pending)? BatchWait,
    TimeSpan MaxPollInterval,
    string Counts);

/// <summary>What one producer's state says about its liveness and readiness (no I/O).</summary>
/// <param name="FatalError">The fatal error that faulted it, or null.</param>
/// <param name="Circuit">The circuit breaker's state, or null without one.</param>
/// <param name="SerializerUnavailableSince">Since when a serializer's service has been unreachable, or null.</param>
/// <param name="QueuedMessages">Messages awaiting delivery reports.</param>
internal readonly record struct ProducerProbeView(
    Error? FatalError,
    CircuitState? Circuit,
    DateTimeOffset? SerializerUnavailableSince,
    long QueuedMessages);

/// <summary>One client's liveness and readiness.</summary>
/// <param name="Live">The liveness status: Healthy or Unhealthy.</param>
/// <param name="Ready">The readiness status.</param>
/// <param name="Description">Why.</param>
internal readonly record struct ProbeVerdict(HealthStatus Live, HealthStatus Ready, string Description);

/// <summary>
/// The liveness and readiness rules (docs/operations.md). Not live: the process should be restarted (faulted,
/// stopped, a poll thread stalled beyond max.poll.interval.ms). Live but not ready (Unhealthy): not started,
/// stopping, a producer's circuit open. Live, maybe not ready (Degraded): a consumer without partitions, rebalancing,
/// catching up beyond <see cref="KafkaKitHealthCheckOptions.MaxConsumerLag"/>, or waiting for a deserializer's service.
/// </summary>
internal static class ProbeRules
{
    public static ProbeVerdict Consumer(ConsumerProbeView v, long? maxLag)
    {
        if (Lifecycle(v.State, v.FaultMessage) is { } notRunning)
        {
            return notRunning;
        }

        if (v.SinceLastPoll is { } since && since > v.MaxPollInterval)
        {
            return new(HealthStatus.Unhealthy, HealthStatus.Unhealthy, $"the poll thread has not polled for {since.TotalSeconds:F0} s (max.poll.interval.ms is {v.MaxPollInterval.TotalMilliseconds:F0})");
        }

        var lag = v.TotalLag is { } total ? $", lag {total} messages" : string.Empty;
        if (v.AssignedPartitions == 0)
        {
            return new(HealthStatus.Healthy, HealthStatus.Degraded, "running, no partition assigned (joining the group, rebalancing, or more members than partitions)");
        }

        if (v.JoinState is { } joinState && joinState != "steady")
        {
            return new(HealthStatus.Healthy, HealthStatus.Degraded, $"rebalancing (group join state '{joinState}'), {v.AssignedPartitions} partitions assigned{lag}");
        }

        if (v.DeserializerUnavailableFor is { } unavailable)
        {
            return new(HealthStatus.Healthy, HealthStatus.Degraded, $"the deserializer's service (schema registry) has been unreachable for {unavailable.TotalSeconds:F0} s; records wait and are retried");
        }

        if (maxLag is { } max && v.TotalLag > max)
        {
            return new(HealthStatus.Healthy, HealthStatus.Degraded, $"catching up: lag {v.TotalLag} messages is above MaxConsumerLag {max}, {v.AssignedPartitions} partitions assigned");
        }

        return new(HealthStatus.Healthy, HealthStatus.Healthy, $"running, {v.AssignedPartitions} partitions assigned{lag}");
    }

    /// <summary>
    /// A share consumer: not live when faulted, stopped or its poll thread has not run for MaxPollInterval; live but
    /// Degraded when it has waited longer than that for the outcomes of one batch (slow or stuck handlers: the poll thread
    /// itself is fine, and librdkafka refuses the next poll until the batch is acknowledged).
    /// </summary>
    public static ProbeVerdict ShareConsumer(ShareConsumerProbeView v)
    {
        if (Lifecycle(v.State, v.FaultMessage) is { } notRunning)
        {
            return notRunning;
        }

        if (v.SinceLastRun is { } since && since > v.MaxPollInterval)
        {
            return new(HealthStatus.Unhealthy, HealthStatus.Unhealthy, $"the poll thread has not run for {since.TotalSeconds:F0} s (MaxPollInterval is {v.MaxPollInterval.TotalSeconds:F0} s)");
        }

        if (v.BatchWait is { } wait && wait.For > v.MaxPollInterval)
        {
            return new(HealthStatus.Healthy, HealthStatus.Degraded, $"waiting {wait.For.TotalSeconds:F0} s (MaxPollInterval is {v.MaxPollInterval.TotalSeconds:F0} s) for the handlers of {wait.Pending} records of the current batch; no new poll until they finish; {v.Counts}");
        }

        return new(HealthStatus.Healthy, HealthStatus.Healthy, $"running: {v.Counts}");
    }

    /// <summary>The verdict of a consumer (regular or share) that is not running, or null when it runs.</summary>
    private static ProbeVerdict? Lifecycle(KafkaConsumerState state, string? faultMessage) => state switch
    {
        KafkaConsumerState.Faulted => new(HealthStatus.Unhealthy, HealthStatus.Unhealthy, $"stopped on error: {faultMessage}"),
        KafkaConsumerState.Stopped => new(HealthStatus.Unhealthy, HealthStatus.Unhealthy, "stopped"),
        KafkaConsumerState.Stopping => new(HealthStatus.Healthy, HealthStatus.Unhealthy, "stopping"),
        KafkaConsumerState.Created => new(HealthStatus.Healthy, HealthStatus.Unhealthy, "not started"),
        _ => null,
    };

    public static ProbeVerdict Producer(ProducerProbeView v)
    {
        if (v.FatalError is { } fatal)
        {
            return new(HealthStatus.Unhealthy, HealthStatus.Unhealthy, $"faulted by a fatal error: {fatal.Reason} ({fatal.Code})");
        }

        if (v.Circuit is CircuitState.Open or CircuitState.HalfOpen or CircuitState.Isolated)
        {
            return new(HealthStatus.Healthy, HealthStatus.Unhealthy, $"circuit {v.Circuit.ToString()!.ToLowerInvariant()}: ProduceAsync fails fast until a trial produce succeeds; {v.QueuedMessages} messages awaiting delivery reports");
        }

        if (v.SerializerUnavailableSince is { } since)
        {
            return new(HealthStatus.Healthy, HealthStatus.Degraded, $"the serializer's service (schema registry) has been unreachable since {since:O}");
        }

        return new(HealthStatus.Healthy, HealthStatus.Healthy, $"{v.QueuedMessages} messages awaiting delivery reports");
    }
}
