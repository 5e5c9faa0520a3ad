using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;
using static KafkaKit.Tests.Consuming.Transactions.ExactlyOnceKit;

namespace KafkaKit.Tests.Consuming.Transactions;

/// <summary>
/// Exactly-once consume-transform-produce on the embedded cluster: every scenario ends with the output read with
/// read_committed holding each input's result exactly once.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.Self)]
public sealed class ExactlyOnceTests
{
    private const int Partitions = 3;
    private const int Committed = 2301;
    private const int Aborted = 2302;
    private const int Unusable = 2304;
    private const int FinishedAtStop = 2306;

    [Test]
    [CancelAfter(90_000)]
    public async Task Baseline_InputsCopied_OutputHoldsEachInputOnce()
    {
        const int inputs = 3000;
        await using var cluster = EmbeddedKafkaCluster.Start();
        CreateTopics(cluster, Partitions);
        ProduceInputs(cluster, inputs);
        var logs = new CapturingLoggerFactory();
        var calls = new HandlerCalls();

        await using (var member = Member("a", Options(cluster, "eos-baseline"), logs, calls))
        {
            await member.StartAsync();
            await WaitAllOutputAsync(cluster, inputs, calls, TimeSpan.FromSeconds(60), logs);
            await member.StopAsync();
            Assert.That(member.State, Is.EqualTo(KafkaConsumerState.Stopped));
        }

        var committed = Count(cluster, inputs, calls);
        Row("baseline", committed, Count(cluster, inputs, null), $"{logs.Count(Committed)} transactions");
        committed.AssertExactlyOnce();
        Assert.That(calls.Total, Is.EqualTo(inputs), "each input handled once (no abort)");
        Assert.That(logs.Count(Committed), Is.GreaterThanOrEqualTo(inputs / 100), "transactions of at most MaxRecords (100) records");
    }

    /// <summary>
    /// A second instance with the same transactional.id joins while the first is mid-transaction. A real broker fences
    /// the first (PRODUCER_FENCED at its next transaction call: it stops, see the pushed-error tests for that path); the
    /// embedded cluster gives the second instance a new producer id instead, so both keep running and split the
    /// partitions. Either way the output holds every input once.
    /// </summary>
    [Test]
    [CancelAfter(120_000)]
    public async Task Zombie_SameTransactionalIdStarted_OutputExactlyOnce()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        CreateTopics(cluster, Partitions);
        var logs = new CapturingLoggerFactory();
        var calls = new HandlerCalls();
        await using var input = new SteadyProducer(cluster, Input, messagesPerTick: 3);

        // The consumer group protocol (KIP-848): the cluster hands the new instance its partitions on heartbeats. With
        // the classic protocol the embedded cluster refuses a follower's SyncGroup served after the leader's
        // (INVALID_REQUEST, one more 5 s rebalance each time), and serves requests waiting together in connection order,
        // the old instance (the leader) first: on a loaded machine the new instance was refused round after round and
        // got no partition within 60 s.
        await using var old = await StartHandlingAsync("m", ZombieOptions(cluster), logs, calls);
        var handledByOld = calls.Of("m");

        // Same name and prefix: the same transactional.id.
        var newLogs = new CapturingLoggerFactory();
        await using var fresh = Member("m", ZombieOptions(cluster), newLogs, calls);
        var freshStarted = System.Diagnostics.Stopwatch.StartNew();
        await fresh.StartAsync();
        try
        {
            await Wait.ForAsync(
                () => newLogs.Count(Committed) >= 3,
                TimeSpan.FromSeconds(60),
                () => $"the new instance commits transactions ({newLogs.Count(Committed)} so far, state {fresh.State}, fault: {fresh.Fault?.Message ?? "none"})");
        }
        catch (Exception)
        {
            DumpTimed(("old", logs), ("new", newLogs)); // both instances' lines, librdkafka's group and transaction lines among them
            throw;
        }

        var freshCommitting = freshStarted.Elapsed;

        var inputs = (int)await input.StopAsync();
        await WaitAllOutputAsync(cluster, inputs, calls, TimeSpan.FromSeconds(60), logs);
        await fresh.StopAsync();
        await old.StopAsync();

        var committed = Count(cluster, inputs, calls);
        Row("second instance, same transactional.id", committed, Count(cluster, inputs, null), $"old instance {old.State} after {handledByOld}+ calls, aborts {logs.Count(Aborted)}/{newLogs.Count(Aborted)}, new instance's third commit {freshCommitting.TotalSeconds:F1} s after its start, {calls.StartLookups.TotalSeconds:F1} s in assigned callbacks");
        committed.AssertExactlyOnce();
        Assert.That(fresh.State, Is.EqualTo(KafkaConsumerState.Stopped), () => $"fault: {fresh.Fault}");
    }

    [TestCase(ApiKey.AddPartitionsToTxn, ErrorCode.TopicAuthorizationFailed, TestName = "PushedError_AddPartitionsToTxnAbortable_AbortedRehandledOutputExactlyOnce")]
    [TestCase(ApiKey.TxnOffsetCommit, ErrorCode.UnknownMemberId, TestName = "PushedError_TxnOffsetCommitAbortable_AbortedRehandledOutputExactlyOnce")]
    [TestCase(ApiKey.EndTxn, ErrorCode.NotCoordinatorForGroup, TestName = "PushedError_EndTxnRetriable_CommittedOutputExactlyOnce")]
    [CancelAfter(90_000)]
    public async Task PushedError_Abortable(ApiKey api, ErrorCode error)
    {
        const int inputs = 2000;
        await using var cluster = EmbeddedKafkaCluster.Start();
        CreateTopics(cluster, Partitions);
        ProduceInputs(cluster, inputs);
        var logs = new CapturingLoggerFactory();
        var calls = new HandlerCalls();
        cluster.PushRequestErrors(api, error, error);

        await using (var member = Member("a", Options(cluster, "eos-pushed"), logs, calls))
        {
            await member.StartAsync();
            await WaitAllOutputAsync(cluster, inputs, calls, TimeSpan.FromSeconds(60), logs);
            await member.StopAsync();
            Assert.That(member.State, Is.EqualTo(KafkaConsumerState.Stopped), () => $"fault: {member.Fault}");
        }

        var committed = Count(cluster, inputs, calls);
        Row($"{api} -> {error}", committed, Count(cluster, inputs, null), $"aborts {logs.Count(Aborted)}, handler calls {calls.Total}");
        committed.AssertExactlyOnce();
        if (api != ApiKey.EndTxn)
        {
            Assert.That(logs.Count(Aborted), Is.GreaterThanOrEqualTo(1), "the transaction was aborted");
            Assert.That(calls.Total, Is.GreaterThan(inputs), "the aborted transaction's records were handled again");
        }
    }

    [TestCase(ApiKey.EndTxn, ErrorCode.ProducerFenced, TestName = "PushedError_EndTxnFenced_ConsumerFaultsAndRestartOutputExactlyOnce")]
    [TestCase(ApiKey.EndTxn, ErrorCode.InvalidProducerEpoch, TestName = "PushedError_EndTxnInvalidEpoch_ConsumerFaultsAndRestartOutputExactlyOnce")]
    [CancelAfter(120_000)]
    public async Task PushedError_Fatal(ApiKey api, ErrorCode error)
    {
        const int inputs = 2000;
        await using var cluster = EmbeddedKafkaCluster.Start();
        CreateTopics(cluster, Partitions);
        ProduceInputs(cluster, inputs);
        var logs = new CapturingLoggerFactory();
        var calls = new HandlerCalls();
        cluster.PushRequestErrors(api, error);

        await using (var first = Member("a", Options(cluster, "eos-fatal"), logs, calls))
        {
            await first.StartAsync();
            await first.WhenStoppedAsync().WaitAsync(TimeSpan.FromSeconds(60));
            Assert.That(first.State, Is.EqualTo(KafkaConsumerState.Faulted), "a fatal transaction error stops the consumer");
        }

        // The restarted instance (same transactional.id) handles everything the first one did not commit.
        await using (var second = Member("a", Options(cluster, "eos-fatal"), logs, calls))
        {
            await second.StartAsync();
            await WaitAllOutputAsync(cluster, inputs, calls, TimeSpan.FromSeconds(60), logs);
            await second.StopAsync();
        }

        var committed = Count(cluster, inputs, calls);
        Row($"{api} -> {error} (fatal)", committed, Count(cluster, inputs, null), $"faulted then restarted, handler calls {calls.Total}");
        committed.AssertExactlyOnce();
        Assert.That(logs.Count(Unusable), Is.GreaterThanOrEqualTo(1), "the producer was reported unusable");
    }

    [Test]
    [CancelAfter(150_000)]
    public async Task Rebalance_SecondMemberJoinsMidTransaction_OutputExactlyOnce()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        CreateTopics(cluster, Partitions);
        var logs = new CapturingLoggerFactory();
        var calls = new HandlerCalls();
        await using var input = new SteadyProducer(cluster, Input, messagesPerTick: 3);

        await using var a = await StartHandlingAsync("a", Options(cluster, "eos-rebalance"), logs, calls);
        await using var b = await StartHandlingAsync("b", Options(cluster, "eos-rebalance"), logs, calls);
        var inputs = (int)await input.StopAsync();
        await WaitAllOutputAsync(cluster, inputs, calls, TimeSpan.FromSeconds(60), logs);
        await b.StopAsync();
        await a.StopAsync();

        var committed = Count(cluster, inputs, calls);
        Row("rebalance (second member joins)", committed, Count(cluster, inputs, null), $"aborts {logs.Count(Aborted)}, handler calls {calls.Total}");
        committed.AssertExactlyOnce();
        Assert.That((a.State, b.State), Is.EqualTo((KafkaConsumerState.Stopped, KafkaConsumerState.Stopped)));
    }

    [Test]
    [CancelAfter(150_000)]
    public async Task CoordinatorDown_MidTransaction_OutputExactlyOnce()
    {
        const string group = "eos-coordinator";
        await using var cluster = EmbeddedKafkaCluster.Start(brokers: 3);
        CreateTopics(cluster, Partitions, replicationFactor: 3);
        for (var p = 0; p < Partitions; p++)
        {
            cluster.SetPartitionLeader(Input, p, 1 + (p % 2));
            cluster.SetPartitionLeader(Output, p, 1 + (p % 2));
        }

        cluster.SetGroupCoordinator(group, 3);
        cluster.SetTransactionCoordinator(Prefix + "-a", 3);
        cluster.SetBrokerRoundTripTime(3, TimeSpan.FromMilliseconds(50));
        var logs = new CapturingLoggerFactory();
        var calls = new HandlerCalls();
        await using var input = new SteadyProducer(cluster, Input, messagesPerTick: 3);

        await using var a = await StartHandlingAsync("a", Options(cluster, group), logs, calls);
        cluster.SetBrokerDown(3);
        var down = System.Diagnostics.Stopwatch.StartNew();
        await Wait.ForAsync(() => down.Elapsed >= TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(10), "the coordinators stay down 3 s");
        cluster.SetBrokerUp(3);
        var inputs = (int)await input.StopAsync();

        // A transaction call that does not return within OperationTimeout + 5 s leaves the outcome unknown: the consumer
        // stops (fault) and is replaced, as a host would restart it.
        await Wait.ForAsync(() => a.State == KafkaConsumerState.Faulted || ReadOutput(cluster.BootstrapServers, Partitions, calls).Counts.Count >= inputs, TimeSpan.FromSeconds(60), "a finishes or stops");
        var faulted = a.State == KafkaConsumerState.Faulted;
        await using var replacement = Member("a", Options(cluster, group), logs, calls);
        if (faulted)
        {
            await replacement.StartAsync();
        }

        await WaitAllOutputAsync(cluster, inputs, calls, TimeSpan.FromSeconds(60), logs);
        await replacement.StopAsync();
        await a.StopAsync();

        var committed = Count(cluster, inputs, calls);
        Row("group + transaction coordinator down 3 s", committed, Count(cluster, inputs, null), $"aborts {logs.Count(Aborted)}, handler calls {calls.Total}, first member {(faulted ? "faulted, replaced" : "kept running")}");
        committed.AssertExactlyOnce();
        Assert.That(faulted ? a.Fault!.Message : "", faulted ? Does.Contain("can no longer be used") : Is.Empty, "a stop, if any, is the transactional producer's fault");
    }

    /// <summary>
    /// A member is stopped (its stop token cancelled) while a handler call hangs after producing, ignoring its token: the
    /// stop aborts the open transaction (no transaction follows it, and librdkafka refuses a produce outside one), so
    /// read_committed readers are not held back until transaction.timeout.ms, and stops without a fault. The kill of a
    /// member process mid-transaction, where nothing of the stop runs, is <c>Reliability/ExactlyOnceCrashReliabilityTests</c>.
    /// </summary>
    [Test]
    [CancelAfter(150_000)]
    public async Task Stop_HandlerHungAfterProducing_OpenTransactionAbortedAndOutputExactlyOnce()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        CreateTopics(cluster, Partitions);
        var logs = new CapturingLoggerFactory();
        var calls = new HandlerCalls();
        await using var input = new SteadyProducer(cluster, Input, messagesPerTick: 3);
        var hang = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            // The handler hangs after producing its 300th output, ignoring its token: the open transaction cannot commit.
            var stopping = Member("m", Options(cluster, "eos-crash"), logs, calls, (_, _) => calls.Of("m") == 300 ? hang.Task : Task.CompletedTask);
            await stopping.StartAsync();
            await Wait.ForAsync(() => calls.Of("m") >= 300, TimeSpan.FromSeconds(30), "the member handles until it hangs");
            await stopping.StopAsync(new CancellationToken(canceled: true));
            await stopping.WhenStoppedAsync().WaitAsync(TimeSpan.FromSeconds(30));

            var stopLines = logs.Lines.Where(l => l.EventId.Id == FinishedAtStop).Select(l => l.Message).ToList();
            var (stoppedState, aborts) = (stopping.State, stopping.Transactions!.Aborts);

            // Its replacement (same transactional.id) starts from the last commit.
            await using var replacement = Member("m", Options(cluster, "eos-crash"), logs, calls);
            await replacement.StartAsync();
            var inputs = (int)await input.StopAsync();
            await WaitAllOutputAsync(cluster, inputs, calls, TimeSpan.FromSeconds(90), logs);
            await replacement.StopAsync();

            var committed = Count(cluster, inputs, calls);
            Row("member stopped with a handler hung after producing, replaced", committed, Count(cluster, inputs, null), $"stopped member state {stoppedState}, aborts {aborts}");
            committed.AssertExactlyOnce();
            Assert.Multiple(() =>
            {
                Assert.That(aborts, Is.EqualTo(1), "the stop aborted the open transaction");
                Assert.That(stopLines, Has.Count.EqualTo(1).And.All.Contain("final transaction aborted at stop"), "event 2306");
                Assert.That(stoppedState, Is.EqualTo(KafkaConsumerState.Stopped), () => $"stopped without a fault ({stopping.Fault?.Message})");
            });
        }
        finally
        {
            hang.TrySetResult();
        }
    }

    /// <summary>
    /// A zombie-scenario member's options: the consumer group protocol, and librdkafka's group and transaction debug lines
    /// (its consumer's and its transactional producer's) in the member's log, for <see cref="DumpTimed"/>.
    /// </summary>
    private static KafkaConsumerOptions ZombieOptions(EmbeddedKafkaCluster cluster)
    {
        var options = Options(cluster, "eos-zombie");
        ConsumerTestKit.UseProtocol(cluster, options, GroupProtocol.Consumer);
        options.Config["debug"] = "cgrp,eos";
        return options;
    }

    /// <summary>Writes the lines of several members' logs to the test output, merged in time order and named by member.</summary>
    private static void DumpTimed(params (string Name, CapturingLoggerFactory Logs)[] sources)
    {
        foreach (var (at, name, line) in sources.SelectMany(s => s.Logs.Lines.Select(l => (l.At, s.Name, l))).OrderBy(l => l.At))
        {
            TestContext.Out.WriteLine($"{at:HH:mm:ss.fff} {name} {line.Level} {line.EventId.Id} {line.Message} {line.Exception?.GetType().Name} {line.Exception?.Message}");
        }
    }
}
