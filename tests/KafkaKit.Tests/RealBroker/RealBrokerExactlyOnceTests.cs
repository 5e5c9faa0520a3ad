using System.Globalization;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Tests.Consuming.Transactions;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.RealBroker;

/// <summary>
/// Exactly-once consume-transform-produce on a real broker (see <see cref="RealBrokerCluster"/>), which the embedded
/// cluster cannot stand in for: a plain Confluent.Kafka consumer with isolation.level=read_committed alone filters open
/// and aborted transactions (no ledger of committed transactions), TxnOffsetCommit offsets are stored with the
/// commit, and a second InitProducerId with the same transactional.id fences the first producer. Without a broker
/// every test is reported skipped with the reason.
/// </summary>
[TestFixture]
[Category("RealBroker")]
[Parallelizable(ParallelScope.Self)]
public sealed class RealBrokerExactlyOnceTests
{
    private const int Partitions = 3;

    [Test]
    [CancelAfter(120_000)]
    public async Task Baseline_InputsCopied_ReadCommittedOutputExactlyOnceAndOffsetsAtEnd()
    {
        const int inputs = 1000;
        var run = await StartRunAsync(inputs);

        await using (var member = Member("a", run, hold: null))
        {
            await member.StartAsync();
            await WaitAllOutputAsync(run, inputs);
            await member.StopAsync();
            Assert.That(member.State, Is.EqualTo(KafkaConsumerState.Stopped), () => $"fault: {member.Fault}");
        }

        AssertExactlyOnce(run, inputs);
    }

    /// <summary>
    /// A second instance with the same transactional.id starts while the first holds an open transaction with output in
    /// it: its InitProducerId fences the first (which stops at its next transaction call) and aborts that transaction, so
    /// the read_committed output still holds every input once.
    /// </summary>
    [Test]
    [CancelAfter(180_000)]
    public async Task Zombie_SameTransactionalIdStarted_FirstFencedAndOutputExactlyOnce()
    {
        const int inputs = 600;
        var run = await StartRunAsync(inputs);
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        await using var old = Member("m", run, (hold.Task, held));
        await old.StartAsync();
        await held.Task.WaitAsync(TimeSpan.FromSeconds(60)); // the old instance's open transaction holds output now

        await using var fresh = Member("m", run, hold: null); // same name and prefix: the same transactional.id
        await fresh.StartAsync();
        await Wait.ForAsync(() => old.State == KafkaConsumerState.Faulted, TimeSpan.FromSeconds(60), () => $"the old instance is fenced (state {old.State})");
        hold.TrySetResult();
        await WaitAllOutputAsync(run, inputs);
        await fresh.StopAsync();

        Assert.That(fresh.State, Is.EqualTo(KafkaConsumerState.Stopped), () => $"fault: {fresh.Fault}");
        AssertExactlyOnce(run, inputs);
    }

    private static async Task<Run> StartRunAsync(int inputs)
    {
        var cluster = RealBrokerCluster.Require();
        var id = Guid.NewGuid().ToString("N")[..8];
        var run = new Run(cluster.BootstrapServers, "eos-in-" + id, "eos-out-" + id, "eos-group-" + id, "eos-" + id);
        await cluster.CreateTopicAsync(run.Input, Partitions);
        await cluster.CreateTopicAsync(run.Output, Partitions);
        KafkaProbe.Produce(run.BootstrapServers, run.Input, Enumerable.Range(0, inputs).Select(i =>
        {
            var n = i.ToString(CultureInfo.InvariantCulture);
            return new Message<string, string> { Key = "k" + n, Value = n };
        }));
        return run;
    }

    /// <summary>
    /// A transactional member copying each input to the output (its source partition and offset in headers). With
    /// <paramref name="hold"/>, the 150th call waits after producing until the task completes (or the call is cancelled).
    /// </summary>
    private static KafkaConsumer<string, string> Member(string name, Run run, (Task Release, TaskCompletionSource Held)? hold)
    {
        var options = ExactlyOnceKit.Options(run.BootstrapServers, run.Group, run.Prefix, run.Input);
        options.Transactions.OperationTimeout = TimeSpan.FromSeconds(10);
        var calls = 0;
        return new KafkaConsumerBuilder<string, string>(name, options)
            .SetTransactionalHandler(async (result, transaction, ct) =>
            {
                var headers = new Headers
                {
                    { "src-partition", BitConverter.GetBytes(result.Partition.Value) },
                    { "src-offset", BitConverter.GetBytes(result.Offset.Value) },
                };
                await transaction.ProduceAsync(run.Output, new Message<string, string> { Key = result.Message.Key, Value = result.Message.Value, Headers = headers }, ct);
                if (hold is { } h && Interlocked.Increment(ref calls) == 150)
                {
                    h.Held.TrySetResult();
                    await h.Release.WaitAsync(ct);
                }
            })
            .Build();
    }

    private static Task WaitAllOutputAsync(Run run, int inputs) =>
        Wait.ForAsync(
            () => ExactlyOnceKit.ReadOutput(run.BootstrapServers, Partitions, committedOnly: null, run.Output).Counts.Keys.Count(n => n < inputs) >= inputs,
            TimeSpan.FromSeconds(90),
            "the read_committed output holds every input's result");

    /// <summary>The read_committed output holds each input once; the group's committed offsets are the input's end offsets.</summary>
    private static void AssertExactlyOnce(Run run, int inputs)
    {
        var tally = ExactlyOnceKit.Count(ExactlyOnceKit.ReadOutput(run.BootstrapServers, Partitions, committedOnly: null, run.Output), inputs);
        tally.AssertExactlyOnce();
        Assert.That(
            Format(KafkaProbe.Committed(run.BootstrapServers, run.Group, run.Input, Partitions)),
            Is.EqualTo(Format(KafkaProbe.EndOffsets(run.BootstrapServers, run.Input, Partitions))),
            "committed group offsets (from the transactions) = the input's end offsets");
    }

    private static string Format(Dictionary<int, long> offsets) => string.Join(", ", offsets.OrderBy(o => o.Key).Select(o => $"[{o.Key}]@{o.Value}"));

    private sealed record Run(string BootstrapServers, string Input, string Output, string Group, string Prefix);
}
