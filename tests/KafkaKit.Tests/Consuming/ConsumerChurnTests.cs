using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Consuming;

/// <summary>Group churn under steady load: offsets stay monotonic and nothing is lost, with eager and cooperative rebalancing.</summary>
[TestFixture]
[Parallelizable(ParallelScope.Self)] // fixtures overlap (most of their time is spent waiting on the cluster); tests within one run in sequence
public sealed class ConsumerChurnTests
{
    /// <summary>
    /// How long the third member keeps joining and leaving. The field report used 60 s; on the embedded cluster every
    /// rebalance of a non-empty group takes session.timeout.ms - 1 s (5 s here), so 30 s already gives 3 join/leave
    /// cycles (~6-10 rebalances, more with cooperative-sticky's two-phase rebalances) per strategy while keeping the suite
    /// short. Raise it locally for a soak run.
    /// </summary>
    private static readonly TimeSpan ChurnDuration = TimeSpan.FromSeconds(30);

    /// <summary>How long a joining member waits for an assignment before it leaves again.</summary>
    private static readonly TimeSpan MaxMemberLife = TimeSpan.FromSeconds(4);

    /// <summary>The pause between a member leaving and the next one joining.</summary>
    private static readonly TimeSpan RejoinPause = TimeSpan.FromSeconds(1.5);

    private const string Topic = "churn";
    private const int Partitions = 6;

    [TestCase(KafkaKit.Consuming.PartitionAssignmentStrategy.Range)]
    [TestCase(KafkaKit.Consuming.PartitionAssignmentStrategy.CooperativeSticky)]
    [CancelAfter(150_000)]
    public async Task Churn_ThirdMemberJoinsAndLeavesUnderLoad_CommittedNeverDecreasesAndEveryMessageHandled(KafkaKit.Consuming.PartitionAssignmentStrategy strategy)
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic(Topic, Partitions);
        var group = "churn-" + strategy;
        var logs = new CapturingLoggerFactory();
        var handled = new ConcurrentDictionary<long, int>();
        var callsBy = new ConcurrentDictionary<string, int>();
        var recorder = new ConsumerRecorder();
        var calls = 0L;
        var members = new List<KafkaConsumer<string, string>>();

        KafkaConsumer<string, string> Member(string name)
        {
            var options = ConsumerTestKit.Options(cluster, group, Topic);
            options.AssignmentStrategy = strategy;
            options.CommitInterval = TimeSpan.FromMilliseconds(500);
            options.RevokeTimeout = TimeSpan.FromSeconds(2);
            options.ShutdownTimeout = TimeSpan.FromSeconds(15);
            var member = recorder.Attach(new KafkaConsumerBuilder<string, string>(name, options), name)
                .SetLoggerFactory(logs)
                .SetHandler(async (r, ct) =>
                {
                    var delay = Random.Shared.Next(0, 3);
                    if (delay > 0)
                    {
                        await Task.Delay(delay, ct);
                    }

                    handled.AddOrUpdate(long.Parse(r.Message.Value, CultureInfo.InvariantCulture), 1, (_, n) => n + 1);
                    callsBy.AddOrUpdate(name, 1, (_, n) => n + 1);
                    recorder.Record(name, r);
                    Interlocked.Increment(ref calls);
                })
                .Build();
            lock (members)
            {
                members.Add(member);
            }

            return member;
        }

        await using var a = Member("a");
        await using var b = Member("b");
        await a.StartAsync();
        await b.StartAsync();
        await using var producer = new SteadyProducer(cluster, Topic);

        // Sample the group's committed offsets every second: none may ever move backwards.
        await using var sampler = new CommittedOffsetsSampler(cluster.BootstrapServers, group, Topic, Partitions, TimeSpan.FromSeconds(1));

        var churn = Stopwatch.StartNew();
        var cycles = 0;
        while (churn.Elapsed < ChurnDuration)
        {
            var c = Member("c" + (++cycles).ToString(CultureInfo.InvariantCulture));
            await c.StartAsync();
            await Wait.UntilAsync(() => c.Assignment.Count > 0 && callsBy.ContainsKey(c.Name), MaxMemberLife);
            await c.StopAsync();
            await c.DisposeAsync();
            var left = Stopwatch.StartNew();
            await Wait.UntilAsync(() => left.Elapsed >= RejoinPause, RejoinPause + TimeSpan.FromSeconds(1));
        }

        var churnTime = churn.Elapsed;
        var produced = await producer.StopAsync();
        await Wait.ForAsync(() => handled.Count == produced, TimeSpan.FromSeconds(60), $"every produced message handled at least once ({produced}; have {handled.Count})");

        // End in a settled group so the final commit is not a revoke-time commit (which the embedded cluster refuses
        // during the whole join phase, see DESIGN.md): a leaves, b takes everything over and catches up, then b stops.
        var ends = KafkaProbe.EndOffsets(cluster.BootstrapServers, Topic, Partitions);
        await a.StopAsync();
        await Wait.ForAsync(() => b.Assignment.Count == Partitions, TimeSpan.FromSeconds(30), "b owns every partition after a left");
        var atTakeover = KafkaProbe.Committed(cluster.BootstrapServers, group, Topic, Partitions);
        var assignedAt = Enumerable.Range(0, Partitions).ToDictionary(p => p, p => recorder.EventsOf("b", "assigned").Last(e => e.Partitions.Contains(p)).At);
        bool CaughtUp()
        {
            var done = ends.Where(e => atTakeover[e.Key] == e.Value).Select(e => e.Key).ToHashSet();
            foreach (var h in recorder.Handled)
            {
                if (h.Consumer == "b" && h.Offset == ends[h.Partition] - 1 && h.At > assignedAt[h.Partition])
                {
                    done.Add(h.Partition);
                }
            }

            return done.Count == Partitions;
        }

        await Wait.ForAsync(
            CaughtUp,
            TimeSpan.FromSeconds(30),
            "b handled every partition up to its end");
        await b.StopAsync();
        await sampler.StopAsync();

        var final = KafkaProbe.Committed(cluster.BootstrapServers, group, Topic, Partitions);
        var redeliveries = Interlocked.Read(ref calls) - produced;
        var commitFailures = members.Sum(m => m.CommitFailures);
        TestContext.Out.WriteLine(
            $"{strategy}: {churnTime.TotalSeconds:F0} s of churn, {cycles} join/leave cycles, {logs.Count(2002)} revokes, {logs.Count(2003)} losses; " +
            $"produced {produced}, handler calls {calls}, re-deliveries {redeliveries} ({100.0 * redeliveries / produced:F2} %), " +
            $"refused commits {commitFailures}, committed-offset samples {sampler.Samples}; final committed {ConsumerTestKit.Format(final)}; ends {ConsumerTestKit.Format(ends)}");

        Assert.Multiple(() =>
        {
            Assert.That(sampler.Decreases, Is.Empty, "a committed offset moved backwards");
            Assert.That(handled.Keys.Order(), Is.EqualTo(Enumerable.Range(0, (int)produced).Select(i => (long)i)), "every produced message handled at least once");
            Assert.That(members.Select(m => m.Fault), Is.All.Null, "no member faulted");
            Assert.That(members.Select(m => m.State), Is.All.EqualTo(KafkaConsumerState.Stopped));
            Assert.That(logs.Count(2013) + logs.Count(2018), Is.Zero, "no callback failure, no fault");
            Assert.That(logs.Count(2004) + logs.Count(2023), Is.EqualTo(commitFailures), "every refused commit is logged (2004, or 2023 for a retried final commit) and counted");
            Assert.That(final, Is.EqualTo(ends), "the last member's stop committed everything");
            Assert.That(sampler.Samples, Is.GreaterThanOrEqualTo((int)ChurnDuration.TotalSeconds / 2), "committed offsets were sampled throughout");
            Assert.That(cycles, Is.GreaterThanOrEqualTo(2));
        });
    }
}
