using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Consuming;

/// <summary>Field cases C8 (partitions lost) and C9 (slow handler versus max.poll.interval.ms).</summary>
[TestFixture]
[Parallelizable(ParallelScope.Self)] // fixtures overlap (most of their time is spent waiting on the cluster); tests within one run in sequence
public sealed class ConsumerRebalanceRegressionTests
{
    private static readonly TimeSpan MaxPollInterval = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan SlowHandlerTime = TimeSpan.FromSeconds(15);

    /// <summary>
    /// The group coordinator (pinned to broker 3; the partitions' leaders are brokers 1 and 2, so fetching goes on) is
    /// taken down for longer than session.timeout.ms. librdkafka then times the session out on its own side
    /// (rd_kafka_cgrp_session_timeout_check: "Consumer group session timed out ... revoking assignment and rejoining
    /// group") and reports the assignment as lost; the mock cluster evicts the member as well. The partition that is
    /// handling a message at that moment also has a full buffer and is paused, so the test also proves that a lost
    /// partition comes back unpaused when it is assigned again (librdkafka keeps an application pause across
    /// unassign/assign).
    /// </summary>
    [Test]
    [CancelAfter(90_000)]
    public async Task Regression_C8_CoordinatorUnreachableBeyondSessionTimeout_LostWithoutCommitThenResumes()
    {
        const int coordinator = 3;
        await using var cluster = EmbeddedKafkaCluster.Start(brokers: 3);
        cluster.CreateTopic("c8", partitions: 2, replicationFactor: 3);
        cluster.SetPartitionLeader("c8", 0, 1);
        cluster.SetPartitionLeader("c8", 1, 2);
        cluster.SetGroupCoordinator("c8-group", coordinator);

        var recorder = new ConsumerRecorder();
        var logs = new CapturingLoggerFactory();
        var options = ConsumerTestKit.Options(cluster, "c8-group", "c8");
        options.AssignmentStrategy = KafkaKit.Consuming.PartitionAssignmentStrategy.CooperativeSticky;
        options.CommitInterval = TimeSpan.FromMilliseconds(500);
        options.PartitionBufferSize = 1;
        options.Config["reconnect.backoff.max.ms"] = "1000"; // reconnect to the coordinator within a second of it coming back

        var blockCalls = 0;
        var blockedTokenCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var consumer = recorder.Attach(new KafkaConsumerBuilder<string, string>("c8", options), "c8")
            .SetLoggerFactory(logs)
            .SetHandler(async (r, ct) =>
            {
                recorder.Record("c8", r);
                if (r.Message.Value == "block" && Interlocked.Increment(ref blockCalls) == 1)
                {
                    try
                    {
                        await Task.Delay(Timeout.Infinite, ct);
                    }
                    catch (OperationCanceledException)
                    {
                        blockedTokenCancelled.TrySetResult();
                        throw;
                    }
                }
            })
            .Build();

        await consumer.StartAsync();
        await Wait.ForAsync(() => consumer.Assignment.Count == 2, TimeSpan.FromSeconds(15), "assigned both partitions");
        KafkaProbe.Produce(cluster.BootstrapServers, "c8", ConsumerTestKit.Messages("a", 5), partition: 0);
        KafkaProbe.Produce(cluster.BootstrapServers, "c8", ConsumerTestKit.Messages("b", 5), partition: 1);
        await Wait.ForAsync(() => recorder.Handled.Count == 10, TimeSpan.FromSeconds(15), "10 messages handled");
        var before = await ConsumerTestKit.WaitForCommittedAsync(cluster, "c8-group", "c8", 2, c => c[0] == 5 && c[1] == 5, TimeSpan.FromSeconds(15), "5 and 5");

        // p0: "block" is in the handler, x0 fills the one-message buffer, x1 and x2 overflow: p0 is paused.
        KafkaProbe.Produce(cluster.BootstrapServers, "c8", [new Message<string, string> { Key = "a", Value = "block" }, .. ConsumerTestKit.Messages("x", 3)], partition: 0);
        await Wait.ForAsync(() => blockCalls == 1 && logs.Count(2019) >= 1, TimeSpan.FromSeconds(15), "block in the handler and p0 paused");

        var clock = Stopwatch.StartNew();
        cluster.SetBrokerDown(coordinator);
        await Wait.ForAsync(() => recorder.EventsOf("c8", "lost").Count > 0, TimeSpan.FromSeconds(30), "the lost callback");
        var lostAfter = clock.Elapsed;
        await blockedTokenCancelled.Task.WaitAsync(TimeSpan.FromSeconds(5));

        cluster.SetBrokerUp(coordinator);
        var duringLoss = KafkaProbe.Committed(cluster.BootstrapServers, "c8-group", "c8", 2);
        clock.Restart();
        await Wait.ForAsync(() => consumer.Assignment.Count == 2 && recorder.Events.Last().Kind == "assigned", TimeSpan.FromSeconds(30), "assigned again after rejoining");
        var rejoinedAfter = clock.Elapsed;

        KafkaProbe.Produce(cluster.BootstrapServers, "c8", ConsumerTestKit.Messages("after", 1), partition: 0);
        KafkaProbe.Produce(cluster.BootstrapServers, "c8", ConsumerTestKit.Messages("after", 1), partition: 1);
        await Wait.ForAsync(() => recorder.Handled.Count(h => h.Value == "after0") == 2, TimeSpan.FromSeconds(20), "new messages handled on both partitions");
        var final = await ConsumerTestKit.WaitForCommittedAsync(cluster, "c8-group", "c8", 2, c => c[0] == 10 && c[1] == 6, TimeSpan.FromSeconds(15), "10 and 6");

        TestContext.Out.WriteLine($"C8: lost callback {lostAfter.TotalMilliseconds:F0} ms after the coordinator went down; assigned again {rejoinedAfter.TotalMilliseconds:F0} ms after it came back; commit failures {consumer.CommitFailures}");
        var p0AfterRejoin = recorder.Handled.Where(h => h.Partition == 0 && h.At > recorder.Events.First(e => e.Kind == "lost").At).Select(h => h.Value).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(recorder.EventsOf("c8", "revoked"), Is.Empty, "a lost assignment is not revoked (no revoke-and-commit)");
            Assert.That(duringLoss, Is.EqualTo(before), "nothing was committed for the lost partitions");
            Assert.That(p0AfterRejoin, Is.EqualTo(new[] { "block", "x0", "x1", "x2", "after0" }), "the cancelled message is handled again, then the rest in order: the lost partition was not left paused");
            Assert.That(final[0], Is.EqualTo(10));
            Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Running));
            Assert.That(consumer.Fault, Is.Null);
            Assert.That(logs.Count(2013), Is.Zero, "no callback failed");
        });
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Regression_C9_HandlerSlowerThanMaxPollInterval_StaysInGroupAndCommitsAfter()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("c9", partitions: 2);
        var recorder = new ConsumerRecorder();
        var options = SlowHandlerOptions(cluster, "c9-group", "c9");
        var slowDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var slowStarted = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var consumer = recorder.Attach(new KafkaConsumerBuilder<string, string>("c9", options), "c9")
            .SetHandler(async (r, ct) =>
            {
                if (r.Message.Value == "slow")
                {
                    slowStarted.TrySetResult(recorder.Now);
                    await Task.Delay(SlowHandlerTime, ct);
                    slowDone.TrySetResult();
                }

                recorder.Record("c9", r);
            })
            .Build();

        await consumer.StartAsync();
        await Wait.ForAsync(() => consumer.Assignment.Count == 2, TimeSpan.FromSeconds(15), "assigned both partitions");
        KafkaProbe.Produce(cluster.BootstrapServers, "c9", [new Message<string, string> { Key = "k", Value = "slow" }], partition: 0);
        var startedAt = await slowStarted.Task.WaitAsync(TimeSpan.FromSeconds(15));

        KafkaProbe.Produce(cluster.BootstrapServers, "c9", ConsumerTestKit.Messages("early", 10), partition: 1);
        await Wait.ForAsync(() => recorder.Handled.Count(h => h.Partition == 1) == 10, TimeSpan.FromSeconds(10), "p1 flows while p0's handler is slow");

        // Past max.poll.interval.ms since the slow call began: the member must still be in the group and p1 still flowing.
        await Wait.ForAsync(() => recorder.Now - startedAt > MaxPollInterval + TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(15), "max.poll.interval.ms passed");
        KafkaProbe.Produce(cluster.BootstrapServers, "c9", ConsumerTestKit.Messages("late", 10), partition: 1);
        await Wait.ForAsync(() => recorder.Handled.Count(h => h.Partition == 1) == 20, TimeSpan.FromSeconds(10), "p1 still flows after max.poll.interval.ms");
        var lateHandledBeforeSlowEnded = !slowDone.Task.IsCompleted;

        await slowDone.Task.WaitAsync(TimeSpan.FromSeconds(15));
        var committed = await ConsumerTestKit.WaitForCommittedAsync(cluster, "c9-group", "c9", 2, c => c[0] == 1 && c[1] == 20, TimeSpan.FromSeconds(10), "p0=1, p1=20");
        KafkaProbe.Produce(cluster.BootstrapServers, "c9", ConsumerTestKit.Messages("after", 1), partition: 0);
        await Wait.ForAsync(() => recorder.Handled.Any(h => h.Value == "after0"), TimeSpan.FromSeconds(10), "p0 flows after the slow message");

        Assert.Multiple(() =>
        {
            Assert.That(lateHandledBeforeSlowEnded, Is.True, "p1's late messages were handled while the slow call was still running");
            Assert.That(recorder.Handled.Count(h => h.Value == "slow"), Is.EqualTo(1), "the slow message is handled once");
            Assert.That(recorder.EventsOf("c9", "revoked"), Is.Empty, "no revoke: the member stayed in the group");
            Assert.That(recorder.EventsOf("c9", "lost"), Is.Empty, "no loss: the member stayed in the group");
            Assert.That(recorder.EventsOf("c9", "assigned"), Has.Count.EqualTo(1), "one assignment only");
            Assert.That(committed[0], Is.EqualTo(1), "the slow message is committed after it completes");
            Assert.That(consumer.Fault, Is.Null);
        });
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Regression_C9_StopDuringSlowHandler_CancelsItWithinShutdownTimeoutAndDoesNotCommitIt()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("c9b", partitions: 1);
        var options = SlowHandlerOptions(cluster, "c9b-group", "c9b");
        options.ShutdownTimeout = TimeSpan.FromSeconds(2);
        var handled = new List<string?>();
        var slowStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var slowCancelled = false;
        await using var consumer = new KafkaConsumerBuilder<string, string>("c9b", options)
            .SetHandler(async (r, ct) =>
            {
                if (r.Message.Value == "slow")
                {
                    slowStarted.TrySetResult();
                    try
                    {
                        await Task.Delay(SlowHandlerTime, ct);
                    }
                    catch (OperationCanceledException)
                    {
                        slowCancelled = ct.IsCancellationRequested;
                        throw;
                    }
                }

                lock (handled)
                {
                    handled.Add(r.Message.Value);
                }
            })
            .Build();

        KafkaProbe.Produce(cluster.BootstrapServers, "c9b", [new Message<string, string> { Key = "k", Value = "m0" }, new Message<string, string> { Key = "k", Value = "slow" }]);
        await consumer.StartAsync();
        await slowStarted.Task.WaitAsync(TimeSpan.FromSeconds(15));
        await ConsumerTestKit.WaitForCommittedAsync(cluster, "c9b-group", "c9b", 1, c => c[0] == 1, TimeSpan.FromSeconds(10), "m0 committed");

        var clock = Stopwatch.StartNew();
        await consumer.StopAsync();
        var stopTook = clock.Elapsed;
        var committed = KafkaProbe.Committed(cluster.BootstrapServers, "c9b-group", "c9b", 1);

        TestContext.Out.WriteLine($"C9: stop during a slow handler took {stopTook.TotalMilliseconds:F0} ms (ShutdownTimeout {options.ShutdownTimeout.TotalSeconds:F0} s)");
        Assert.Multiple(() =>
        {
            Assert.That(stopTook, Is.LessThan(TimeSpan.FromSeconds(5)));
            Assert.That(stopTook, Is.GreaterThanOrEqualTo(options.ShutdownTimeout - TimeSpan.FromMilliseconds(100)), "the handler was given ShutdownTimeout first");
            Assert.That(slowCancelled, Is.True, "the handler's token was cancelled");
            Assert.That(handled, Is.EqualTo(new[] { "m0" }));
            Assert.That(committed[0], Is.EqualTo(1), "the cancelled message's offset is not committed");
            Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Stopped));
        });
    }

    private static KafkaConsumerOptions SlowHandlerOptions(EmbeddedKafkaCluster cluster, string group, string topic)
    {
        var options = ConsumerTestKit.Options(cluster, group, topic);
        options.Config["max.poll.interval.ms"] = ((int)MaxPollInterval.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
        options.RevokeTimeout = TimeSpan.FromSeconds(5);
        options.CommitInterval = TimeSpan.FromMilliseconds(500);
        return options;
    }
}
