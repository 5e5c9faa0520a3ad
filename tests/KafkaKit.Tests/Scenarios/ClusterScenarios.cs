using System.Collections.Concurrent;
using System.Globalization;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Tests.Consuming;
using KafkaKit.Tests.Producing;
using KafkaKit.Tests.Reliability;
using KafkaKit.Tests.Support;
using PartitionAssignmentStrategy = KafkaKit.Consuming.PartitionAssignmentStrategy;

namespace KafkaKit.Tests.Scenarios;

/// <summary>
/// The end-to-end and fault scenarios, written once against a <see cref="ClusterUnderTest"/> and run by one fixture per
/// cluster: <see cref="EmbeddedClusterScenarioTests"/> (always, in CI too) and <c>RealBroker.RealBrokerScenarioTests</c>
/// (against a real broker, skipped with the reason when none is available). Where the embedded cluster and a broker
/// differ, a scenario takes its expectation from the cluster (for example duplicates: zero on a broker, counted on the
/// embedded cluster).
/// </summary>
/// <remarks>Every scenario creates its own topics and groups; none keeps state in the fixture instance.</remarks>
public abstract partial class ClusterScenarios
{
    /// <summary>Starts (or returns) the cluster of one scenario; marks the test skipped when there is none.</summary>
    private protected abstract Task<ClusterUnderTest> StartClusterAsync();

    /// <summary>
    /// A KafkaKit producer writes 10,000 keyed messages to 6 partitions; a KafkaKit group of two members (settled before
    /// the first message) handles them. Every message is handled once, each partition in offset order (so each key in
    /// its order), and the committed offsets reach the end offsets, also after both members stopped.
    /// </summary>
    [Test]
    [CancelAfter(180_000)]
    public async Task EndToEnd_ProducerToSixPartitionsAndTwoMemberGroup_AllHandledOnceInPartitionOrderAndCommittedAtTheEnd()
    {
        const int count = 10_000;
        const int keys = 60;
        await using var run = await StartAsync("e2e", partitions: 6);
        var order = new HandlingOrder();
        KafkaConsumer<string, string> Member(string name) => run.Member<string>(name, (r, _) =>
        {
            var seq = ReliabilityKit.Seq(r.Message.Value);
            order.Observe(r.Partition.Value, r.Offset.Value, r.Message.Key, seq);
            run.Ledger.Record(seq);
            return ValueTask.CompletedTask;
        });

        await using var a = Member("a");
        await using var b = Member("b");
        await run.StartSettledAsync(a, b);
        var outcomes = new ProducerTestKit.Outcomes();
        int undelivered;
        await using (var producer = ProducerTestKit.Build<string, string>(ProducerTestKit.Options(run.Servers), name: "e2e-producer"))
        {
            for (var i = 0; i < count; i++)
            {
                var message = new Message<string, string> { Key = $"key-{i % keys}", Value = i.ToString(CultureInfo.InvariantCulture) };
                await producer.EnqueueAsync(run.Topic, message, outcomes.Record);
            }

            undelivered = await producer.FlushAsync();
        }

        await Wait.ForAsync(() => run.Ledger.Distinct == count, TimeSpan.FromSeconds(120), $"{count} messages handled");
        var (committed, ends) = await ReliabilityKit.WaitForCommittedAtEndAsync(run.Servers, run.Group, run.Topic, run.Partitions, TimeSpan.FromSeconds(60));
        await Task.WhenAll(a.StopAsync(), b.StopAsync());
        var afterStop = run.Committed();
        var written = ends.Values.Sum();

        run.Row("end to end, 6 partitions, group of 2", count, run.Ledger.Distinct, run.Ledger.Duplicates, 0, run.Ledger.Missing(count).Count);
        TestContext.Out.WriteLine($"{written} records written for {count} messages; committed {ConsumerTestKit.Format(committed)}");
        Assert.Multiple(() =>
        {
            Assert.That(undelivered, Is.Zero);
            Assert.That(outcomes.Delivered, Is.EqualTo(count), outcomes.ToString());
            Assert.That(run.Ledger.Missing(count), Is.Empty, "every message handled");
            Assert.That(run.Ledger.Duplicates, Is.Zero, "each message handled once: the group was settled before the first message and nothing failed");
            Assert.That(order.Violations, Is.Empty, "each partition handled in offset order, each key in its order");
            Assert.That(written - count, run.AllowedDuplicates(), "records written twice by the producer");
            Assert.That(afterStop, Is.EqualTo(ends), "committed offsets = end offsets after both members stopped");
            Assert.That(new[] { a.Fault, b.Fault }, Is.All.Null);
            Assert.That(run.Failures(), Is.Zero, "no fatal error, callback failure or stop on error");
        });
    }

    /// <summary>
    /// Two members consume a steady stream while a third joins and leaves twice (each time waiting until it handled
    /// something, and until the two own everything again). The group's committed offsets, sampled every 500 ms, never move
    /// backwards; every message is handled; the committed offsets reach the end. Re-deliveries are counted: on the
    /// embedded cluster revoke-time commits are refused for the whole join phase, so eager rebalances re-deliver more.
    /// </summary>
    [TestCase(GroupProtocol.Classic, PartitionAssignmentStrategy.Range)]
    [TestCase(GroupProtocol.Classic, PartitionAssignmentStrategy.CooperativeSticky)]
    [TestCase(GroupProtocol.Consumer, PartitionAssignmentStrategy.CooperativeSticky)] // the broker assigns; KafkaKit's default strategy is dropped
    [CancelAfter(240_000)]
    public async Task Churn_ThirdMemberJoinsAndLeavesTwiceUnderLoad_CommittedNeverDecreasesAndNothingLost(GroupProtocol protocol, PartitionAssignmentStrategy strategy)
    {
        const int cycles = 2;
        await using var run = await StartAsync("churn", partitions: 6, protocol: protocol);
        var callsBy = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        var members = new List<KafkaConsumer<string, string>>();
        KafkaConsumer<string, string> Member(string name)
        {
            var member = run.Member<string>(
                name,
                async (r, ct) =>
                {
                    await Task.Delay(Random.Shared.Next(0, 3), ct);
                    run.Ledger.Record(ReliabilityKit.Seq(r.Message.Key));
                    callsBy.AddOrUpdate(name, 1, static (_, n) => n + 1);
                },
                o =>
                {
                    o.AssignmentStrategy = strategy;
                    o.RevokeTimeout = TimeSpan.FromSeconds(2);
                    o.ShutdownTimeout = TimeSpan.FromSeconds(15);
                });
            members.Add(member);
            return member;
        }

        await using var a = Member("a");
        await using var b = Member("b");
        await run.StartSettledAsync(a, b);
        await using var stream = run.Stream();
        await using var sampler = new CommittedOffsetsSampler(run.Servers, run.Group, run.Topic, run.Partitions, TimeSpan.FromMilliseconds(500));
        var cycleTimes = new List<string>();
        for (var cycle = 1; cycle <= cycles; cycle++)
        {
            var began = System.Diagnostics.Stopwatch.StartNew();
            await using var c = Member("c" + cycle.ToString(CultureInfo.InvariantCulture));
            await c.StartAsync();
            await Wait.ForAsync(() => c.Assignment.Count > 0 && callsBy.ContainsKey(c.Name), run.Cluster.GroupChangeTimeout, $"{c.Name} joins and handles");
            var joined = began.Elapsed;
            await c.StopAsync();
            await run.WaitForSettledAsync(() => a.Assignment.Count, () => b.Assignment.Count);
            cycleTimes.Add($"{c.Name}: handling {joined.TotalSeconds:F1} s after its start, left and settled after {began.Elapsed.TotalSeconds:F1} s");
        }

        var end = await run.DrainAsync(stream);
        await Task.WhenAll(a.StopAsync(), b.StopAsync());
        await sampler.StopAsync();
        var final = run.Committed();

        run.Row($"churn, {(protocol == GroupProtocol.Consumer ? "consumer protocol" : strategy.ToString())}, a third member joins and leaves {cycles}x", end);
        TestContext.Out.WriteLine(
            $"{string.Join("; ", cycleTimes)}; {run.Logs.Count(2002)} revokes, {members.Sum(m => m.CommitFailures)} refused commits, " +
            $"{sampler.Samples} committed-offset samples; committed at the end {ConsumerTestKit.Format(end.Committed)}");
        Assert.Multiple(() =>
        {
            Assert.That(sampler.Decreases, Is.Empty, "a committed offset moved backwards");
            Assert.That(end.Lost, Is.Zero, "no message lost");
            Assert.That(final, Is.EqualTo(end.Ends), "committed offsets = end offsets after the members stopped");
            Assert.That(members.Select(m => m.Fault), Is.All.Null, "no member faulted");
            Assert.That(members.Select(m => m.State), Is.All.EqualTo(KafkaConsumerState.Stopped));
            Assert.That(run.Failures(), Is.Zero, "no fatal error, callback failure or stop on error");
            Assert.That(sampler.Samples, Is.GreaterThanOrEqualTo(4), "committed offsets were sampled throughout");
        });
    }

    /// <summary>
    /// Starts a run: the cluster, a topic of <paramref name="partitions"/> named after <paramref name="name"/>, a group.
    /// With <paramref name="brokersGoDown"/>, marks the test skipped first when the cluster cannot take its brokers down.
    /// </summary>
    private protected async Task<ScenarioRun> StartAsync(string name, int partitions, bool brokersGoDown = false, GroupProtocol protocol = GroupProtocol.Classic)
    {
        var cluster = await StartClusterAsync();
        if (brokersGoDown && cluster.OutageUnsupportedReason is { } reason)
        {
            await cluster.DisposeAsync();
            Assert.Ignore(reason);
        }

        return await ScenarioRun.StartAsync(cluster, name, partitions, protocol);
    }
}
