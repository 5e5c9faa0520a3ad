using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Consuming;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Reliability;

/// <summary>
/// A consumer group whose membership changes all the time for 60 s under steady load: members join, leave gracefully
/// (StopAsync, or DisposeAsync alone), and crash (a member process killed), with eager and cooperative rebalancing.
/// </summary>
[TestFixture]
[Category(ReliabilityKit.Category)]
[Parallelizable(ParallelScope.All)] // both strategies at once, alongside other fixtures: each mostly waits on its own cluster
public sealed class RebalanceStormReliabilityTests
{
    private const int Partitions = 6;

    /// <summary>How long the membership keeps changing.</summary>
    private static readonly TimeSpan StormDuration = TimeSpan.FromSeconds(60);

    /// <summary>
    /// One membership change every 4 s: shorter than a rebalance on the embedded cluster (session.timeout.ms - 1 s = 5 s),
    /// so the group is rebalancing nearly all the time.
    /// </summary>
    private static readonly TimeSpan ChangeEvery = TimeSpan.FromSeconds(4);

    /// <summary>How many messages a member process handles before its crash (so it dies owning partitions, with work not yet committed).</summary>
    private const int WorkBeforeCrash = 50;

    /// <summary>How long a crash waits for <see cref="WorkBeforeCrash"/>.</summary>
    /// <remarks>
    /// Long enough to outlast the storm: a member that joins while the group rebalances every 4 s may own nothing until the
    /// changes stop (eager rebalancing, Range: every member's partitions are revoked at each 5 s round; on a loaded machine
    /// a member joined at 32 s had handled nothing 20 s later). The last crash (at 44 s) then kills its member once the group
    /// has settled after the storm (60 s) and it has worked, so every crash kills a member with work in hand.
    /// </remarks>
    private static readonly TimeSpan CrashWaitsForWork = TimeSpan.FromSeconds(50);

    private static readonly TimeSpan SettleTimeout = TimeSpan.FromSeconds(90);

    /// <summary>The changes, in the order they repeat: per round, two members join in this process and leave (one with StopAsync, one with DisposeAsync alone), and one joins in a process of its own and crashes.</summary>
    private static readonly Change[] Rotation = [Change.Join, Change.JoinProcess, Change.LeaveWithStop, Change.Join, Change.Crash, Change.LeaveWithDispose];

    private enum Change
    {
        Join,
        JoinProcess,
        LeaveWithStop,
        LeaveWithDispose,
        Crash,
    }

    [TestCase(PartitionAssignmentStrategy.Range)]
    [TestCase(PartitionAssignmentStrategy.CooperativeSticky)]
    [CancelAfter(240_000)]
    public async Task Storm_MembersJoinLeaveAndCrashFor60s_CommittedNeverDecreasesNoneLostCommittedAtEnd(PartitionAssignmentStrategy strategy)
    {
        var clock = Stopwatch.StartNew();
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = "storm-" + strategy.ToString().ToLowerInvariant();
        var group = topic + "-group";
        cluster.CreateTopic(topic, Partitions);
        var ledger = new Ledger();
        var logs = new CapturingLoggerFactory();
        var members = new List<KafkaConsumer<string, string>>();
        var processes = new List<MemberProcess>();
        var pending = new List<Task>();
        var changes = new List<string>();
        var crashedWork = new ConcurrentQueue<long>();
        var leaveTimes = new ConcurrentQueue<TimeSpan>();
        var memberOptions = MemberProcess.Options(cluster.BootstrapServers, group, topic, strategy);
        var stopBound = memberOptions.ShutdownTimeout + memberOptions.CloseTimeout + TimeSpan.FromSeconds(5);
        async Task LeaveAsync(KafkaConsumer<string, string> member, bool stopFirst)
        {
            var leaving = Stopwatch.StartNew();
            if (stopFirst)
            {
                await member.StopAsync();
            }

            await member.DisposeAsync();
            leaveTimes.Enqueue(leaving.Elapsed);
        }

        KafkaConsumer<string, string> Member(string name)
        {
            var member = new KafkaConsumerBuilder<string, string>(name, MemberProcess.Options(cluster.BootstrapServers, group, topic, strategy))
                .SetLoggerFactory(logs)
                .SetHandler(async (r, ct) =>
                {
                    await MemberProcess.SimulatedWorkAsync(ct);
                    ledger.Record(ReliabilityKit.Seq(r.Message.Key));
                })
                .Build();
            members.Add(member);
            return member;
        }

        try
        {
            // Two members stay all along; the others come and go.
            var a = Member("a");
            var b = Member("b");
            await a.StartAsync();
            await b.StartAsync();
            await Wait.ForAsync(() => a.Assignment.Count + b.Assignment.Count == Partitions, SettleTimeout, "a and b own every partition");
            await using var stream = new NumberedStream(cluster, topic, Partitions);
            await using var sampler = new CommittedOffsetsSampler(cluster.BootstrapServers, group, topic, Partitions, TimeSpan.FromSeconds(1));

            var joinedHere = new Queue<KafkaConsumer<string, string>>();
            var joinedProcesses = new Queue<MemberProcess>();
            var counts = new ConcurrentDictionary<Change, int>();
            var storm = Stopwatch.StartNew();
            var stormTime = TimeSpan.Zero;
            using (var cadence = new PeriodicTimer(ChangeEvery))
            {
                for (var n = 1; n <= StormDuration / ChangeEvery; n++)
                {
                    await cadence.WaitForNextTickAsync();
                    var change = Rotation[(n - 1) % Rotation.Length];
                    var name = change.ToString().ToLowerInvariant() + "-" + n.ToString(CultureInfo.InvariantCulture);
                    switch (change)
                    {
                        case Change.Join:
                            var joining = Member(name);
                            await joining.StartAsync();
                            joinedHere.Enqueue(joining);
                            break;
                        case Change.JoinProcess:
                            var process = MemberProcess.Start(name, cluster.BootstrapServers, group, topic, strategy, key => ledger.Record(ReliabilityKit.Seq(key)));
                            processes.Add(process);
                            joinedProcesses.Enqueue(process);
                            break;
                        case Change.LeaveWithStop:
                            var stopping = joinedHere.Dequeue();
                            name = stopping.Name;
                            pending.Add(Task.Run(() => LeaveAsync(stopping, stopFirst: true)));
                            break;
                        case Change.LeaveWithDispose:
                            var disposing = joinedHere.Dequeue();
                            name = disposing.Name;
                            pending.Add(Task.Run(() => LeaveAsync(disposing, stopFirst: false)));
                            break;
                        case Change.Crash:
                            var crashing = joinedProcesses.Dequeue();
                            name = crashing.Name;
                            pending.Add(Task.Run(async () =>
                            {
                                await Wait.UntilAsync(() => crashing.Handled >= WorkBeforeCrash, CrashWaitsForWork);
                                crashedWork.Enqueue(crashing.Handled);
                                await crashing.KillAsync();
                            }));
                            break;
                    }

                    counts.AddOrUpdate(change, 1, static (_, c) => c + 1);
                    stormTime = storm.Elapsed;
                    changes.Add($"{stormTime.TotalSeconds:F0} s {change} {name}");
                }
            }

            // The storm is over: members still in it leave (in this process) or crash (member processes).
            while (joinedHere.TryDequeue(out var last))
            {
                pending.Add(Task.Run(() => LeaveAsync(last, stopFirst: true)));
            }

            var crashedAtEnd = 0;
            while (joinedProcesses.TryDequeue(out var last))
            {
                crashedAtEnd++;
                pending.Add(last.KillAsync());
            }

            await Task.WhenAll(pending);
            var produced = await stream.StopAsync();
            await Wait.ForAsync(() => ledger.Missing(produced).Count == 0, SettleTimeout, $"every one of {produced} messages handled (missing {ledger.Missing(produced).Count})");
            var (committed, ends) = await ReliabilityKit.WaitForCommittedAtEndAsync(cluster, group, topic, Partitions, SettleTimeout);
            await a.StopAsync();
            await b.StopAsync();
            await sampler.StopAsync();
            var final = KafkaProbe.Committed(cluster.BootstrapServers, group, topic, Partitions);
            var lost = ledger.Missing(produced).Count;
            var commitFailures = members.Sum(m => m.CommitFailures);
            var joins = counts.GetValueOrDefault(Change.Join) + counts.GetValueOrDefault(Change.JoinProcess);

            TestContext.Out.WriteLine($"{strategy} changes: {string.Join("; ", changes)}");
            TestContext.Out.WriteLine(
                $"{strategy}: {stormTime.TotalSeconds:F0} s of storm, {changes.Count} changes ({string.Join(", ", counts.OrderBy(c => c.Key).Select(c => $"{c.Value} {c.Key}"))}); " +
                $"in this process {logs.Count(2002)} revokes, {logs.Count(2003)} losses, {commitFailures} refused commits; crashed members had handled {string.Join(", ", crashedWork)} (+{crashedAtEnd} crashed at the end); " +
                $"produced {produced}, handler calls {ledger.Calls}, re-deliveries {ledger.Duplicates} ({100.0 * ledger.Duplicates / produced:F1} %); " +
                $"graceful leaves took {(leaveTimes.IsEmpty ? 0 : leaveTimes.Min().TotalSeconds):F1}-{(leaveTimes.IsEmpty ? 0 : leaveTimes.Max().TotalSeconds):F1} s; " +
                $"committed-offset samples {sampler.Samples}; final committed {ConsumerTestKit.Format(final)}; " +
                $"warnings and errors logged by event id: {string.Join(", ", logs.Lines.Where(l => l.Level >= Microsoft.Extensions.Logging.LogLevel.Warning).GroupBy(l => l.EventId.Id).OrderBy(g => g.Key).Select(g => $"{g.Key} x{g.Count()}"))}");
            ReliabilityKit.Row(
                $"rebalance storm {stormTime.TotalSeconds:F0} s, {strategy}: {joins} joins, {counts.GetValueOrDefault(Change.LeaveWithStop) + counts.GetValueOrDefault(Change.LeaveWithDispose)} graceful leaves, {crashedWork.Count + crashedAtEnd} crashes",
                produced, ledger.Distinct, ledger.Duplicates, 0, lost, clock.Elapsed);
            Assert.Multiple(() =>
            {
                Assert.That(sampler.Decreases, Is.Empty, "a committed offset moved backwards");
                Assert.That(lost, Is.Zero, "every message handled at least once");
                Assert.That(committed, Is.EqualTo(ends), "committed offsets reach the end offsets once the group settles");
                Assert.That(final, Is.EqualTo(ends), "and stay there after the last members stopped");
                Assert.That(members.Select(m => m.Fault), Is.All.Null, "no member faulted");
                Assert.That(members.Select(m => m.State), Is.All.EqualTo(KafkaConsumerState.Stopped));
                Assert.That(processes.SelectMany(p => p.Faults), Is.Empty, "no member process faulted");
                Assert.That(logs.Count(2006) + logs.Count(2013) + logs.Count(2018), Is.Zero, "no fatal error, callback failure or stop on error");
                Assert.That(logs.Count(2004) + logs.Count(2023) + logs.Count(2063), Is.EqualTo(commitFailures), "every refused commit is logged (2004; 2023 for a retried final commit; 2063 for the final commit of revoked partitions) and counted");
                Assert.That(crashedWork, Is.All.GreaterThan(0), "every crashed member had handled messages");
                Assert.That(crashedWork, Has.Count.GreaterThanOrEqualTo(2));
                Assert.That(changes, Has.Count.EqualTo((int)(StormDuration / ChangeEvery)));
                Assert.That(leaveTimes, Is.All.LessThan(stopBound), "every graceful leave within StopAsync's bound (ShutdownTimeout + CloseTimeout + 5 s)");
                Assert.That(sampler.Samples, Is.GreaterThanOrEqualTo((int)StormDuration.TotalSeconds / 2), "committed offsets were sampled throughout");
            });
        }
        finally
        {
            foreach (var process in processes)
            {
                await process.DisposeAsync();
                if (process.ErrorOutput.Length > 0)
                {
                    TestContext.Out.WriteLine($"{process.Name} error output: {process.ErrorOutput}");
                }
            }

            foreach (var member in members)
            {
                await member.DisposeAsync();
            }
        }
    }
}
