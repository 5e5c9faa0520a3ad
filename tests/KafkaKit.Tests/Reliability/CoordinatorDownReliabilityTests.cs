using System.Diagnostics;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Consuming;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Reliability;

/// <summary>The group coordinator goes down during periodic commits, and again during the shutdown commit.</summary>
[TestFixture]
[Category(ReliabilityKit.Category)]
[Parallelizable(ParallelScope.Self)] // fixtures overlap (most of their time is spent waiting on the cluster); tests within one run in sequence
public sealed class CoordinatorDownReliabilityTests
{
    private const string Topic = "coord-down";
    private const string Group = "coord-down-group";
    private const int Partitions = 2;
    private const int Coordinator = 3;

    /// <summary>Shorter than session.timeout.ms (6 s): the member keeps its partitions through the outage.</summary>
    private static readonly TimeSpan Outage = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Broker 3 is the pinned group coordinator; the partition leaders are brokers 1 and 2, so fetching goes on while the
    /// coordinator is down. First outage: during the periodic commits of a running member. Second outage: it starts just
    /// before StopAsync and ends <see cref="Outage"/> later, while the stop retries its final commit.
    /// </summary>
    [Test]
    [CancelAfter(150_000)]
    public async Task Stop_CoordinatorDownDuringCommitsAndDuringShutdownCommit_StopIsBoundedAndNextMemberHandlesEverything()
    {
        var clock = Stopwatch.StartNew();
        await using var cluster = EmbeddedKafkaCluster.Start(brokers: 3);
        cluster.CreateTopic(Topic, Partitions, replicationFactor: 3);
        cluster.SetPartitionLeader(Topic, 0, 1);
        cluster.SetPartitionLeader(Topic, 1, 2);
        cluster.SetGroupCoordinator(Group, Coordinator);

        var ledger = new Ledger();
        var logs = new CapturingLoggerFactory();
        KafkaConsumer<string, string> Member(string name)
        {
            var options = ReliabilityKit.ConsumerOptions(cluster, Group, Topic);
            options.ShutdownTimeout = TimeSpan.FromSeconds(5);
            options.CloseTimeout = TimeSpan.FromSeconds(5);
            return new KafkaConsumerBuilder<string, string>(name, options)
                .SetLoggerFactory(logs)
                .SetHandler((r, _) =>
                {
                    ledger.Record(ReliabilityKit.Seq(r.Message.Key));
                    return ValueTask.CompletedTask;
                })
                .Build();
        }

        var a = Member("a");
        await using var stream = new NumberedStream(cluster, Topic, Partitions);
        await a.StartAsync();
        await Wait.ForAsync(() => ledger.Distinct >= 200, TimeSpan.FromSeconds(30), "a consumes");

        // Outage 1: periodic commits meet a coordinator that is down; they succeed again once it is back.
        var failuresBefore = a.CommitFailures;
        cluster.SetBrokerDown(Coordinator);
        var down = Stopwatch.StartNew();
        var handledAtDown = ledger.Distinct;
        await Wait.ForAsync(() => down.Elapsed >= Outage, Outage + TimeSpan.FromSeconds(5), "outage 1 lasts its time");
        var handledDuringOutage = ledger.Distinct - handledAtDown;
        cluster.SetBrokerUp(Coordinator);
        var endsAtUp = KafkaProbe.EndOffsets(cluster.BootstrapServers, Topic, Partitions);
        await ConsumerTestKit.WaitForCommittedAsync(cluster, Group, Topic, Partitions, c => endsAtUp.All(e => c[e.Key] >= e.Value), TimeSpan.FromSeconds(30), "commits resume after outage 1");
        var outage1Recovery = down.Elapsed - Outage;

        // Outage 2: the coordinator goes down just before the stop and comes back while the stop is retrying its commit.
        await Wait.ForAsync(() => ledger.Distinct >= handledAtDown + handledDuringOutage + 100, TimeSpan.FromSeconds(30), "a consumes after outage 1");
        cluster.SetBrokerDown(Coordinator);
        var down2 = Stopwatch.StartNew();
        var bringUp = Task.Run(async () =>
        {
            await Wait.ForAsync(() => down2.Elapsed >= Outage, Outage + TimeSpan.FromSeconds(5), "outage 2 lasts its time");
            cluster.SetBrokerUp(Coordinator);
        });
        var (stopTook, stopError) = await TimedStopAsync(a);
        await bringUp;
        var afterStop = KafkaProbe.Committed(cluster.BootstrapServers, Group, Topic, Partitions);

        // A new member takes over and handles everything, including what a handled but could not commit.
        await using var b = Member("b");
        await b.StartAsync();
        await Wait.ForAsync(() => b.Assignment.Count == Partitions, TimeSpan.FromSeconds(40), "b owns both partitions");
        var produced = await stream.StopAsync();
        await Wait.ForAsync(() => ledger.Missing(produced).Count == 0, TimeSpan.FromSeconds(60), $"every one of {produced} messages handled");
        var (committed, ends) = await ReliabilityKit.WaitForCommittedAtEndAsync(cluster, Group, Topic, Partitions, TimeSpan.FromSeconds(30));
        var lost = ledger.Missing(produced).Count;
        await b.StopAsync();

        var bound = TimeSpan.FromSeconds(10); // ShutdownTimeout + CloseTimeout
        TestContext.Out.WriteLine(
            $"outage 1: {a.CommitFailures - failuresBefore} commit failures, {handledDuringOutage} handled while down, commits resumed {outage1Recovery.TotalSeconds:F1} s after it came back; " +
            $"outage 2: StopAsync took {stopTook.TotalSeconds:F1} s (bound {bound.TotalSeconds:F0} s), committed after the stop {ConsumerTestKit.Format(afterStop)}, commit failures of a {a.CommitFailures}; " +
            $"stop log: {string.Join(" / ", logs.Lines.Where(l => l.EventId.Id is 2010 or 2014 or 2016 or 2022).Select(l => l.Message))}");
        ReliabilityKit.Row("group coordinator down during commits and the shutdown commit", produced, ledger.Distinct, ledger.Duplicates, 0, lost, clock.Elapsed);
        Assert.Multiple(() =>
        {
            Assert.That(stopError, Is.Null, "no exception escapes StopAsync");
            Assert.That(stopTook, Is.LessThanOrEqualTo(bound + TimeSpan.FromSeconds(1)), "the stop stays within ShutdownTimeout + CloseTimeout");
            Assert.That(a.State, Is.EqualTo(KafkaConsumerState.Stopped));
            Assert.That(a.Fault, Is.Null);
            Assert.That(b.Fault, Is.Null);
            Assert.That(lost, Is.Zero, "no message lost");
            Assert.That(committed, Is.EqualTo(ends), "committed offsets reach the end offsets");
            Assert.That(logs.Count(2006) + logs.Count(2013) + logs.Count(2018), Is.Zero, "no fatal error, callback failure or stop on error");
        });
        await a.DisposeAsync();
    }

    /// <summary>
    /// The coordinator stays down for the whole stop (it comes back only after StopAsync returned): the final commit and
    /// leaving the group cannot succeed. Measures the stop's real bound: librdkafka's Close() itself is not bounded by
    /// CloseTimeout, so StopAsync returns at its own bound while the client goes on closing in the background.
    /// </summary>
    [Test]
    [CancelAfter(150_000)]
    public async Task Stop_CoordinatorDownThroughoutTheStop_StopReturnsAtItsBoundAndNextMemberHandlesEverything()
    {
        var clock = Stopwatch.StartNew();
        await using var cluster = EmbeddedKafkaCluster.Start(brokers: 3);
        cluster.CreateTopic(Topic, Partitions, replicationFactor: 3);
        cluster.SetPartitionLeader(Topic, 0, 1);
        cluster.SetPartitionLeader(Topic, 1, 2);
        cluster.SetGroupCoordinator(Group, Coordinator);
        var ledger = new Ledger();
        var logs = new CapturingLoggerFactory();
        var shutdownTimeout = TimeSpan.FromSeconds(2);
        var closeTimeout = TimeSpan.FromSeconds(2);
        KafkaConsumer<string, string> Member(string name)
        {
            var options = ReliabilityKit.ConsumerOptions(cluster, Group, Topic);
            options.ShutdownTimeout = shutdownTimeout;
            options.CloseTimeout = closeTimeout;
            return new KafkaConsumerBuilder<string, string>(name, options)
                .SetLoggerFactory(logs)
                .SetHandler((r, _) =>
                {
                    ledger.Record(ReliabilityKit.Seq(r.Message.Key));
                    return ValueTask.CompletedTask;
                })
                .Build();
        }

        var a = Member("a");
        await using var stream = new NumberedStream(cluster, Topic, Partitions);
        await a.StartAsync();
        await ConsumerTestKit.WaitForCommittedAsync(cluster, Group, Topic, Partitions, c => c.Values.All(o => o >= 100), TimeSpan.FromSeconds(30), "a handles and commits");

        cluster.SetBrokerDown(Coordinator);
        var stopClock = Stopwatch.StartNew();
        var (stopTook, stopError) = await TimedStopAsync(a);
        var stateAtReturn = a.State;
        await Wait.ForAsync(() => a.State == KafkaConsumerState.Stopped, TimeSpan.FromSeconds(60), "a's client finishes closing in the background");
        var closedAfter = stopClock.Elapsed;
        cluster.SetBrokerUp(Coordinator);

        await using var b = Member("b");
        await b.StartAsync();
        await Wait.ForAsync(() => b.Assignment.Count == Partitions, TimeSpan.FromSeconds(40), "b owns both partitions");
        var produced = await stream.StopAsync();
        await Wait.ForAsync(() => ledger.Missing(produced).Count == 0, TimeSpan.FromSeconds(60), $"every one of {produced} messages handled");
        var (committed, ends) = await ReliabilityKit.WaitForCommittedAtEndAsync(cluster, Group, Topic, Partitions, TimeSpan.FromSeconds(30));
        var lost = ledger.Missing(produced).Count;
        await b.StopAsync();

        var documented = shutdownTimeout + closeTimeout;
        var implemented = documented + TimeSpan.FromSeconds(5); // StopAsync's wait: ShutdownTimeout + CloseTimeout + 5 s
        TestContext.Out.WriteLine(
            $"coordinator down throughout: StopAsync returned after {stopTook.TotalSeconds:F1} s in state {stateAtReturn} (ShutdownTimeout + CloseTimeout = {documented.TotalSeconds:F0} s; StopAsync waits at most {implemented.TotalSeconds:F0} s); " +
            $"the client finished closing {closedAfter.TotalSeconds:F1} s after the stop request; stop-timeout logs (2014): {logs.Count(2014)}");
        ReliabilityKit.Row("group coordinator down throughout the stop", produced, ledger.Distinct, ledger.Duplicates, 0, lost, clock.Elapsed);
        Assert.Multiple(() =>
        {
            Assert.That(stopError, Is.Null, "no exception escapes StopAsync");
            Assert.That(stopTook, Is.LessThanOrEqualTo(implemented + TimeSpan.FromSeconds(1)), "StopAsync returns at its bound even though Close() cannot finish");
            Assert.That(a.Fault, Is.Null);
            Assert.That(lost, Is.Zero, "no message lost");
            Assert.That(committed, Is.EqualTo(ends), "committed offsets reach the end offsets");
            Assert.That(logs.Count(2006) + logs.Count(2013) + logs.Count(2018), Is.Zero, "no fatal error, callback failure or stop on error");
        });
        await a.DisposeAsync();
    }

    /// <summary>Stops <paramref name="consumer"/>, returning how long that took and what it threw (nothing is expected).</summary>
    private static async Task<(TimeSpan Took, Exception? Error)> TimedStopAsync(KafkaConsumer<string, string> consumer)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            await consumer.StopAsync();
            return (clock.Elapsed, null);
        }
        catch (Exception e)
        {
            return (clock.Elapsed, e);
        }
    }
}
