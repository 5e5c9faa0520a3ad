using System.Diagnostics;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Consuming;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Reliability;

/// <summary>A consumer member dies mid-stream and a new member restarts from the group's committed offsets.</summary>
[TestFixture]
[Category(ReliabilityKit.Category)]
[Parallelizable(ParallelScope.Self)] // fixtures overlap (most of their time is spent waiting on the cluster); tests within one run in sequence
public sealed class CrashRestartReliabilityTests
{
    private const string Topic = "crash";
    private const string Group = "crash-group";
    private const int Partitions = 2;
    private const int Coordinator = 3;

    /// <summary>
    /// The crash model. A process crash has three effects the group can see: handlers stop mid-message, nothing handled
    /// since the last periodic commit is committed, and the member never leaves the group (it is evicted after
    /// session.timeout.ms). KafkaKit's stop is graceful by design (even with the host's token already cancelled it commits
    /// what completed and leaves the group), and KafkaKit owns its librdkafka client, so a test cannot kill it half-way
    /// without reaching into internals. The closest honest model in-process: the member loses its group coordinator
    /// (broker 3, pinned; the partition leaders stay up), keeps handling for a while (those completions can never be
    /// committed), then its handlers block and it is stopped with an already-cancelled token. Its final commit and its
    /// LeaveGroup cannot reach the cluster, so what the cluster and the next member see is exactly a crashed member. The
    /// coordinator comes back only after the old client is destroyed.
    /// </summary>
    [Test]
    [CancelAfter(150_000)]
    public async Task Restart_AfterMemberCrashMidStream_EveryMessageHandledAtLeastOnceAndUncommittedWorkRedelivered()
    {
        var clock = Stopwatch.StartNew();
        await using var cluster = EmbeddedKafkaCluster.Start(brokers: 3);
        cluster.CreateTopic(Topic, Partitions, replicationFactor: 3);
        cluster.SetPartitionLeader(Topic, 0, 1);
        cluster.SetPartitionLeader(Topic, 1, 2);
        cluster.SetGroupCoordinator(Group, Coordinator);

        var ledger = new Ledger();
        var byA = new Ledger();
        var logs = new CapturingLoggerFactory();
        var crashing = false;
        var blocked = 0;
        KafkaConsumer<string, string> Member(string name, Ledger? own)
        {
            var options = ReliabilityKit.ConsumerOptions(cluster, Group, Topic);
            options.ShutdownTimeout = TimeSpan.FromSeconds(2);
            options.CloseTimeout = TimeSpan.FromSeconds(2);
            return new KafkaConsumerBuilder<string, string>(name, options)
                .SetLoggerFactory(logs)
                .SetHandler(async (r, ct) =>
                {
                    if (own is not null && Volatile.Read(ref crashing))
                    {
                        Interlocked.Increment(ref blocked);
                        await Task.Delay(Timeout.Infinite, ct); // the process is dying: this call never completes
                    }

                    var seq = ReliabilityKit.Seq(r.Message.Key);
                    ledger.Record(seq);
                    own?.Record(seq);
                })
                .Build();
        }

        await using var stream = new NumberedStream(cluster, Topic, Partitions);
        var a = Member("a", byA);
        await a.StartAsync();
        await ConsumerTestKit.WaitForCommittedAsync(cluster, Group, Topic, Partitions, c => c.Values.All(o => o >= 100), TimeSpan.FromSeconds(30), "a handles and commits");

        // The crash: the coordinator is lost, a handles 100 more messages that it cannot commit, its handlers hang, it dies.
        cluster.SetBrokerDown(Coordinator);
        var atCoordinatorLoss = byA.Distinct;
        await Wait.ForAsync(() => byA.Distinct >= atCoordinatorLoss + 100, TimeSpan.FromSeconds(20), "a handles 100 messages it cannot commit");
        Volatile.Write(ref crashing, true);
        await Wait.ForAsync(() => Volatile.Read(ref blocked) >= 1, TimeSpan.FromSeconds(10), "a handler hangs");
        var handledByAUncommittable = byA.Distinct - atCoordinatorLoss;
        using (var dead = new CancellationTokenSource())
        {
            await dead.CancelAsync();
            await a.StopAsync(dead.Token);
        }

        var died = Stopwatch.StartNew();
        await Wait.ForAsync(() => a.State is KafkaConsumerState.Stopped or KafkaConsumerState.Faulted, TimeSpan.FromSeconds(30), "a's client is destroyed");
        var clientGoneAfter = died.Elapsed;
        cluster.SetBrokerUp(Coordinator);
        var committedAfterCrash = KafkaProbe.Committed(cluster.BootstrapServers, Group, Topic, Partitions);

        // The restart: a new member resumes from the committed offsets.
        var restarted = Stopwatch.StartNew();
        await using var b = Member("b", null);
        await b.StartAsync();
        await Wait.ForAsync(() => b.Assignment.Count == Partitions, TimeSpan.FromSeconds(40), "b owns both partitions");
        var takeover = restarted.Elapsed;
        var produced = await stream.StopAsync();
        await Wait.ForAsync(() => ledger.Missing(produced).Count == 0, TimeSpan.FromSeconds(60), $"every one of {produced} messages handled");
        var (committed, ends) = await ReliabilityKit.WaitForCommittedAtEndAsync(cluster, Group, Topic, Partitions, TimeSpan.FromSeconds(30));
        var lost = ledger.Missing(produced).Count;
        await b.StopAsync();

        TestContext.Out.WriteLine(
            $"a handled {byA.Distinct} ({handledByAUncommittable} after losing its coordinator), {blocked} handler calls hung at the crash; " +
            $"a's client was destroyed {clientGoneAfter.TotalSeconds:F1} s after the stop; committed after the crash {ConsumerTestKit.Format(committedAfterCrash)}; " +
            $"b owned both partitions {takeover.TotalSeconds:F1} s after it started; re-handled {ledger.Duplicates}");
        ReliabilityKit.Row("consumer crash then restart", produced, ledger.Distinct, ledger.Duplicates, 0, lost, clock.Elapsed);
        Assert.Multiple(() =>
        {
            Assert.That(lost, Is.Zero, "no message lost");
            Assert.That(ledger.Duplicates, Is.GreaterThanOrEqualTo(handledByAUncommittable), "what a handled but could not commit is handled again: at least once, not at most once");
            Assert.That(committed, Is.EqualTo(ends), "committed offsets reach the end offsets");
            Assert.That(b.Fault, Is.Null);
            Assert.That(logs.Count(2006) + logs.Count(2013) + logs.Count(2018), Is.Zero, "no fatal error, callback failure or stop on error");
        });
        await a.DisposeAsync();
    }
}
