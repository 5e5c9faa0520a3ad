using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Hosting;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Polly.CircuitBreaker;

namespace KafkaKit.Tests.Hosting;

/// <summary>Each client state maps to the liveness and readiness docs/operations.md documents. No cluster.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class ProbeRulesTests
{
    private static readonly TimeSpan MaxPoll = TimeSpan.FromMinutes(5);

    private static ConsumerProbeView Running(int assigned = 3, string? joinState = "steady", long? lag = 0, TimeSpan? sinceLastPoll = null, TimeSpan? deserializerDown = null) =>
        new(KafkaConsumerState.Running, null, sinceLastPoll ?? TimeSpan.FromMilliseconds(10), MaxPoll, assigned, joinState, lag, deserializerDown);

    public static IEnumerable<TestCaseData> ConsumerStates()
    {
        yield return new TestCaseData(Running(), null, HealthStatus.Healthy, HealthStatus.Healthy, "3 partitions assigned").SetName("Consumer_RunningAssignedSteady_LiveReady");
        yield return new TestCaseData(Running(lag: null, joinState: null), null, HealthStatus.Healthy, HealthStatus.Healthy, "3 partitions assigned").SetName("Consumer_RunningWithoutStatistics_LiveReady");
        yield return new TestCaseData(Running(assigned: 0), null, HealthStatus.Healthy, HealthStatus.Degraded, "no partition assigned").SetName("Consumer_NoAssignmentYet_LiveReadyDegraded");
        yield return new TestCaseData(Running(joinState: "wait-sync"), null, HealthStatus.Healthy, HealthStatus.Degraded, "rebalancing (group join state 'wait-sync')").SetName("Consumer_Rebalancing_LiveReadyDegraded");
        yield return new TestCaseData(Running(lag: 1_001), 1_000L, HealthStatus.Healthy, HealthStatus.Degraded, "catching up: lag 1001 messages is above MaxConsumerLag 1000").SetName("Consumer_LagAboveThreshold_LiveReadyDegraded");
        yield return new TestCaseData(Running(lag: 1_000), 1_000L, HealthStatus.Healthy, HealthStatus.Healthy, "lag 1000 messages").SetName("Consumer_LagAtThreshold_LiveReady");
        yield return new TestCaseData(Running(lag: 1_000_000), null, HealthStatus.Healthy, HealthStatus.Healthy, "lag 1000000 messages").SetName("Consumer_LagWithoutThreshold_LiveReady");
        yield return new TestCaseData(Running(lag: null), 10L, HealthStatus.Healthy, HealthStatus.Healthy, "3 partitions assigned").SetName("Consumer_LagUnknownWithThreshold_LiveReady");
        yield return new TestCaseData(Running(deserializerDown: TimeSpan.FromSeconds(30)), null, HealthStatus.Healthy, HealthStatus.Degraded, "unreachable for 30 s").SetName("Consumer_DeserializerServiceDown_LiveReadyDegraded");
        yield return new TestCaseData(Running(sinceLastPoll: TimeSpan.FromMinutes(6)), null, HealthStatus.Unhealthy, HealthStatus.Unhealthy, "has not polled for 360 s").SetName("Consumer_PollStalledBeyondMaxPollInterval_NotLive");
        yield return new TestCaseData(Running() with { State = KafkaConsumerState.Faulted, FaultMessage = "handler failed" }, null, HealthStatus.Unhealthy, HealthStatus.Unhealthy, "stopped on error: handler failed").SetName("Consumer_Faulted_NotLive");
        yield return new TestCaseData(Running() with { State = KafkaConsumerState.Stopped }, null, HealthStatus.Unhealthy, HealthStatus.Unhealthy, "stopped").SetName("Consumer_Stopped_NotLive");
        yield return new TestCaseData(Running() with { State = KafkaConsumerState.Stopping }, null, HealthStatus.Healthy, HealthStatus.Unhealthy, "stopping").SetName("Consumer_Stopping_LiveNotReady");
        yield return new TestCaseData(Running() with { State = KafkaConsumerState.Created, SinceLastPoll = null }, null, HealthStatus.Healthy, HealthStatus.Unhealthy, "not started").SetName("Consumer_NotStarted_LiveNotReady");
    }

    /// <param name="view">A <see cref="ConsumerProbeView"/> (internal, so passed as object).</param>
    [TestCaseSource(nameof(ConsumerStates))]
    public void Consumer_State_MapsToDocumentedLiveAndReady(object view, long? maxLag, HealthStatus live, HealthStatus ready, string description)
    {
        var verdict = ProbeRules.Consumer((ConsumerProbeView)view, maxLag);

        Assert.Multiple(() =>
        {
            Assert.That(verdict.Live, Is.EqualTo(live), "live");
            Assert.That(verdict.Ready, Is.EqualTo(ready), "ready");
            Assert.That(verdict.Description, Does.Contain(description));
        });
    }

    public static IEnumerable<TestCaseData> ProducerStates()
    {
        var healthy = new ProducerProbeView(null, CircuitState.Closed, null, 4);
        yield return new TestCaseData(healthy, HealthStatus.Healthy, HealthStatus.Healthy, "4 messages awaiting").SetName("Producer_CircuitClosed_LiveReady");
        yield return new TestCaseData(healthy with { Circuit = null }, HealthStatus.Healthy, HealthStatus.Healthy, "4 messages awaiting").SetName("Producer_NoCircuitBreaker_LiveReady");
        yield return new TestCaseData(healthy with { Circuit = CircuitState.Open }, HealthStatus.Healthy, HealthStatus.Unhealthy, "circuit open").SetName("Producer_CircuitOpen_LiveNotReady");
        yield return new TestCaseData(healthy with { Circuit = CircuitState.HalfOpen }, HealthStatus.Healthy, HealthStatus.Unhealthy, "circuit halfopen").SetName("Producer_CircuitHalfOpen_LiveNotReady");
        yield return new TestCaseData(healthy with { SerializerUnavailableSince = DateTimeOffset.UnixEpoch }, HealthStatus.Healthy, HealthStatus.Degraded, "unreachable since 1970").SetName("Producer_SerializerServiceDown_LiveReadyDegraded");
        yield return new TestCaseData(healthy with { FatalError = new Error(ErrorCode.InvalidProducerEpoch, "fenced", true) }, HealthStatus.Unhealthy, HealthStatus.Unhealthy, "faulted by a fatal error: fenced").SetName("Producer_Faulted_NotLive");
    }

    /// <param name="view">A <see cref="ProducerProbeView"/> (internal, so passed as object).</param>
    [TestCaseSource(nameof(ProducerStates))]
    public void Producer_State_MapsToDocumentedLiveAndReady(object view, HealthStatus live, HealthStatus ready, string description)
    {
        var verdict = ProbeRules.Producer((ProducerProbeView)view);

        Assert.Multiple(() =>
        {
            Assert.That(verdict.Live, Is.EqualTo(live), "live");
            Assert.That(verdict.Ready, Is.EqualTo(ready), "ready");
            Assert.That(verdict.Description, Does.Contain(description));
        });
    }
}
