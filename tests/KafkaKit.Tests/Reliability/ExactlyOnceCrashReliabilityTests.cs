using System.Diagnostics;
using System.Globalization;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Consuming.Transactions;
using KafkaKit.Tests.Support;
using static KafkaKit.Tests.Consuming.Transactions.ExactlyOnceKit;

namespace KafkaKit.Tests.Reliability;

/// <summary>
/// The exactly-once consumer's crash for real: the member processing the input runs in a process of its own
/// (<see cref="MemberProcess.StartTransactional"/>) and is killed while its open transaction holds output; a replacement
/// in the same group finishes the input.
/// </summary>
/// <remarks>
/// What is counted (the exactly-once matrix's columns, docs/reliability.md): the output topic is read from the beginning
/// to its end and each input number's results are counted among the committed transactions' outputs (<c>output</c>,
/// <c>duplicates</c> = results beyond the first, <c>lost</c> = inputs without a result) and among all outputs
/// (<c>all outputs</c>: what a read_uncommitted reader sees, the killed transaction's records included). A transaction is
/// committed when its member reported <c>CommitTransaction</c> succeeded: the killed process over its standard output,
/// the replacement through its callback. The embedded cluster's read_committed Fetch filters nothing (see
/// <see cref="HandlerCalls"/>), so this ledger stands in for it; on a broker the read_committed
/// reader alone gives the committed view.
/// </remarks>
[TestFixture]
[Category(ReliabilityKit.Category)]
[Parallelizable(ParallelScope.All)] // both cases at once, alongside other fixtures: each mostly waits on its own cluster
public sealed class ExactlyOnceCrashReliabilityTests
{
    private const int Partitions = 3;
    private const int Inputs = 2000;

    /// <summary>The killed member's handler call that hangs after producing: after a few committed transactions of at most 100 records.</summary>
    private const int HangAfter = 300;

    private const int Aborted = 2302;

    /// <summary>
    /// The replacement's first committed transaction comes within the killed member's session timeout (6 s: the
    /// group waits that long before it evicts the killed member and completes the rebalance) plus the embedded
    /// cluster's rebalance (session timeout - 1 s) and 10 s of slack for a loaded machine.
    /// </summary>
    private static readonly TimeSpan RecoveryBound = TimeSpan.FromSeconds(6 + 5 + 10);

    /// <summary>
    /// The member process hangs after producing into its open transaction and is killed there
    /// (<c>Process.Kill(entireProcessTree: true)</c>); the replacement restarts with the same transactional.id (the
    /// stable id per instance that delivery-semantics.md recommends: on a broker its InitTransactions aborts the killed
    /// instance's transaction at once) or with a new one (on a broker, the killed transaction holds back read_committed
    /// readers of its output partitions until transaction.timeout.ms).
    /// </summary>
    [TestCase(true, TestName = "Crash_MemberProcessKilledMidTransaction_ReplacementWithSameTransactionalIdOutputExactlyOnce")]
    [TestCase(false, TestName = "Crash_MemberProcessKilledMidTransaction_ReplacementWithNewTransactionalIdOutputExactlyOnce")]
    [CancelAfter(150_000)]
    public async Task Crash_MemberProcessKilledMidTransaction(bool sameTransactionalId)
    {
        const string group = "eos-kill";
        var clock = Stopwatch.StartNew();
        await using var cluster = EmbeddedKafkaCluster.Start();
        CreateTopics(cluster, Partitions);
        ProduceInputs(cluster, Inputs);
        var logs = new CapturingLoggerFactory();
        var calls = new HandlerCalls();
        Stopwatch? sinceKill = null;
        var firstCommitAfterKill = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
        calls.OnCommitted = (_, _) =>
        {
            if (Volatile.Read(ref sinceKill) is { } since)
            {
                firstCommitAfterKill.TrySetResult(since.Elapsed);
            }
        };

        // A: the member process, killed with output in its open transaction.
        await using var killed = MemberProcess.StartTransactional("m", cluster.BootstrapServers, group, Prefix, HangAfter, calls.Committed);
        int committedByKilled = 0, openBeforeKill = 0, killedTransactions;
        string hungOn;
        try
        {
            hungOn = await killed.Hung.WaitAsync(TimeSpan.FromSeconds(60));

            // The hung handler call holds the open transaction: nothing commits from here to the kill.
            await Wait.ForAsync(
                () =>
                {
                    committedByKilled = ReadOutput(cluster.BootstrapServers, Partitions, calls).Counts.Values.Sum();
                    openBeforeKill = ReadOutput(cluster.BootstrapServers, Partitions, null).Counts.Values.Sum() - committedByKilled;
                    return openBeforeKill > 0;
                },
                TimeSpan.FromSeconds(30),
                "the open transaction's output is in the output topic");
            killedTransactions = calls.Transactions;
        }
        catch (Exception)
        {
            TestContext.Out.WriteLine($"member process error output: {killed.ErrorOutput}");
            throw;
        }
        finally
        {
            await killed.KillAsync();
            Volatile.Write(ref sinceKill, Stopwatch.StartNew());
            Assert.That(killed.HasExited, Is.True, "the member process is gone");
        }

        // B: the replacement, in this process.
        var options = Options(cluster, group, sameTransactionalId ? Prefix : Prefix + "-replacement");
        await using var replacement = Member("m", options, logs, calls);
        await replacement.StartAsync();
        await Wait.ForAsync(() => replacement.Assignment.Count == Partitions, TimeSpan.FromSeconds(60), "the replacement owns every partition");
        var assignedAfter = sinceKill!.Elapsed;
        await Wait.ForAsync(() => calls.Total > 0, TimeSpan.FromSeconds(60), "the replacement handles");
        var handlingAfter = sinceKill.Elapsed;
        var recovery = await firstCommitAfterKill.Task.WaitAsync(TimeSpan.FromSeconds(60));
        await WaitAllOutputAsync(cluster, Inputs, calls, TimeSpan.FromSeconds(60), logs);
        var allOutputAfter = sinceKill.Elapsed;
        await replacement.StopAsync();

        var committed = Count(cluster, Inputs, calls);
        var all = Count(cluster, Inputs, null);
        var openOutputs = all.Outputs - committed.Outputs;
        var notes = string.Create(
            CultureInfo.InvariantCulture,
            $"member process killed in handler call {HangAfter} ({hungOn}) after {killedTransactions} commits ({committedByKilled} outputs), its open transaction holding {openOutputs} outputs ({openBeforeKill} in the log before the kill); " +
            $"replacement ({(sameTransactionalId ? "same" : "new")} transactional.id) assigned {assignedAfter.TotalSeconds:F1} s after the kill, first handler call {handlingAfter.TotalSeconds:F1} s, first commit {recovery.TotalSeconds:F1} s ({calls.StartLookups.TotalSeconds:F1} s of it in the assigned callback's read of the output, the stand-in for the committed offsets), " +
            $"every input's result committed {allOutputAfter.TotalSeconds:F1} s; replacement handler calls {calls.Total}, aborts {logs.Count(Aborted)}; {clock.Elapsed.TotalSeconds:F1} s in all");
        Row($"member process killed mid-transaction, replaced ({(sameTransactionalId ? "same" : "new")} transactional.id)", committed, all, notes);
        committed.AssertExactlyOnce();
        Assert.Multiple(() =>
        {
            Assert.That(killedTransactions, Is.GreaterThan(0), "the killed member had committed transactions");
            Assert.That(killed.Faults, Is.Empty, "the killed member had not faulted before the kill");
            Assert.That(openBeforeKill, Is.GreaterThan(0), "the killed member's open transaction held output in the log");
            Assert.That(openOutputs, Is.GreaterThanOrEqualTo(openBeforeKill), "the killed transaction's outputs stay in the log and are never counted as committed");
            Assert.That(
                calls.Total,
                logs.Count(Aborted) == 0 ? Is.EqualTo(Inputs - committedByKilled) : (NUnit.Framework.Constraints.IResolveConstraint)Is.GreaterThan(Inputs - committedByKilled),
                "the replacement handled what the killed member had not committed, from the killed member's last commit on (more only after an abort of its own)");
            Assert.That(recovery, Is.LessThan(RecoveryBound), "the replacement's first commit after the kill");
            Assert.That(replacement.State, Is.EqualTo(KafkaConsumerState.Stopped), () => $"fault: {replacement.Fault}");
        });
    }
}
