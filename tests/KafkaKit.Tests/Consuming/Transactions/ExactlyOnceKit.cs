using System.Collections.Concurrent;
using System.Globalization;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Consuming.Transactions;

/// <summary>
/// The exactly-once scenarios' parts: an input topic of numbered records, transactional members that copy each input
/// to the output topic, and a read_committed reader that counts each input's results.
/// </summary>
internal static class ExactlyOnceKit
{
    public const string Input = "eos-in";
    public const string Output = "eos-out";
    public const string Prefix = "eos";

    /// <summary>Creates both topics.</summary>
    public static void CreateTopics(EmbeddedKafkaCluster cluster, int partitions, int replicationFactor = 1)
    {
        cluster.CreateTopic(Input, partitions, replicationFactor);
        cluster.CreateTopic(Output, partitions, replicationFactor);
    }

    /// <summary>Produces inputs <paramref name="start"/>..<paramref name="start"/>+<paramref name="count"/>-1 (value = key suffix = number).</summary>
    public static void ProduceInputs(EmbeddedKafkaCluster cluster, int count, int start = 0) =>
        KafkaProbe.Produce(cluster.BootstrapServers, Input, Enumerable.Range(start, count).Select(i =>
        {
            var n = i.ToString(CultureInfo.InvariantCulture);
            return new Message<string, string> { Key = "k" + n, Value = n };
        }));

    /// <summary>Options of a transactional member of <paramref name="group"/> (fast group settings, short bounds).</summary>
    public static KafkaConsumerOptions Options(EmbeddedKafkaCluster cluster, string group, string prefix = Prefix) =>
        Options(cluster.BootstrapServers, group, prefix, Input);

    /// <summary>Options of a transactional member of <paramref name="group"/> reading <paramref name="input"/> (fast group settings, short bounds).</summary>
    public static KafkaConsumerOptions Options(string bootstrapServers, string group, string prefix, string input)
    {
        var options = ConsumerTestKit.Options(bootstrapServers, group, input);
        options.Transactions.TransactionalIdPrefix = prefix;
        options.Transactions.MaxRecords = 100;
        options.Transactions.MaxInterval = TimeSpan.FromMilliseconds(50);
        options.Transactions.OperationTimeout = TimeSpan.FromSeconds(5);
        options.RevokeTimeout = TimeSpan.FromSeconds(5);
        options.ShutdownTimeout = TimeSpan.FromSeconds(10);
        options.CloseTimeout = TimeSpan.FromSeconds(5);
        return options;
    }

    /// <summary>
    /// A transactional member that produces one output per input (same key and value, the source partition and offset
    /// in headers) and counts its handler calls.
    /// </summary>
    /// <remarks>
    /// The embedded cluster acknowledges TxnOffsetCommit without storing the offsets (a real broker stores them when the
    /// transaction commits), so a new owner of a partition would start from auto.offset.reset. The assigned callback
    /// stands in for the broker: it starts each partition after the last source offset found in the committed output,
    /// which is what the transactionally committed offset would be (output and offsets commit atomically).
    /// </remarks>
    public static KafkaConsumer<string, string> Member(
        string name, KafkaConsumerOptions options, CapturingLoggerFactory logs, HandlerCalls calls, Func<ConsumeResult<string, string>, CancellationToken, Task>? afterProduce = null)
    {
        var bootstrap = options.BootstrapServers!;
        var instance = calls.NewInstance(name);
        var consumer = new KafkaConsumerBuilder<string, string>(name, options)
            .SetLoggerFactory(logs)
            .SetPartitionsAssignedHandler(partitions =>
            {
                if (partitions.Count == 0)
                {
                    // A cooperative rebalance step that adds nothing (the revoking member after its revoke, the others
                    // in the round before partitions move): nothing to look up, and the member's next rebalance step
                    // waits for this callback.
                    return [];
                }

                var started = System.Diagnostics.Stopwatch.GetTimestamp();
                var next = ReadOutput(bootstrap, Partitions(bootstrap), calls).NextSourceOffsets;
                var took = System.Diagnostics.Stopwatch.GetElapsedTime(started);
                calls.LookedUpStart(took);
                logs.Note($"{instance} assigned {string.Join(", ", partitions.Select(p => p.Partition.Value))}; reading the output for their start offsets took {took.TotalMilliseconds:F0} ms");
                return partitions.Select(p => new TopicPartitionOffset(p, next.TryGetValue(p.Partition.Value, out var offset) ? offset : Offset.Beginning)).ToList();
            })
            .SetTransactionalHandler(async (result, transaction, ct) =>
            {
                var headers = new Headers
                {
                    { "src-partition", BitConverter.GetBytes(result.Partition.Value) },
                    { "src-offset", BitConverter.GetBytes(result.Offset.Value) },
                    { "txn-instance", System.Text.Encoding.UTF8.GetBytes(instance) },
                    { "txn-number", BitConverter.GetBytes(transaction.Transaction) },
                };
                await transaction.ProduceAsync(Output, new Message<string, string> { Key = result.Message.Key, Value = result.Message.Value, Headers = headers }, ct);
                calls.Record(name);
                if (afterProduce is not null)
                {
                    await afterProduce(result, ct);
                }
            })
            .Build();
        consumer.Transactions!.TransactionCommitted = n => calls.Committed(instance, n);
        return consumer;
    }

    /// <summary>Builds and starts a <see cref="Member"/>, and waits until it handled <paramref name="atLeast"/> records.</summary>
    public static async Task<KafkaConsumer<string, string>> StartHandlingAsync(string name, KafkaConsumerOptions options, CapturingLoggerFactory logs, HandlerCalls calls, int atLeast = 200)
    {
        var before = calls.Of(name);
        var member = Member(name, options, logs, calls);
        await member.StartAsync();
        await Wait.ForAsync(() => calls.Of(name) >= before + atLeast, TimeSpan.FromSeconds(60), () => $"{name} handles {atLeast} records (state {member.State})");
        return member;
    }

    /// <summary>Waits until the committed output (read_committed) holds a result of every input 0..<paramref name="inputs"/>-1.</summary>
    public static async Task WaitAllOutputAsync(EmbeddedKafkaCluster cluster, int inputs, HandlerCalls calls, TimeSpan timeout, CapturingLoggerFactory logs)
    {
        var partitions = Partitions(cluster.BootstrapServers);
        var last = 0;
        try
        {
            await Wait.ForAsync(
                () =>
                {
                    last = ReadOutput(cluster.BootstrapServers, partitions, calls).Counts.Keys.Count(n => n < inputs);
                    return last >= inputs;
                },
                timeout,
                () => $"the committed output holds every input's result ({last} of {inputs})");
        }
        catch (Exception)
        {
            Dump(logs);
            throw;
        }
    }

    /// <summary>Writes the captured log lines to the test output (for failure diagnosis).</summary>
    public static void Dump(CapturingLoggerFactory logs)
    {
        foreach (var line in logs.Lines)
        {
            TestContext.Out.WriteLine($"log {line.Level} {line.EventId.Id} {line.Message} {line.Exception?.GetType().Name} {line.Exception?.Message}");
        }
    }

    /// <summary>Reads the whole output to its end and counts each input number's results: committed ones only (see <see cref="HandlerCalls"/>), or all with <paramref name="calls"/> null.</summary>
    public static Tally Count(EmbeddedKafkaCluster cluster, int inputs, HandlerCalls? calls) =>
        Count(ReadOutput(cluster.BootstrapServers, Partitions(cluster.BootstrapServers), calls), inputs);

    /// <summary>Counts each input number's results in one read of the output.</summary>
    public static Tally Count(OutputRead read, int inputs)
    {
        Assert.That(read.AtEnd, Is.True, "the output was read to its end");
        var counts = read.Counts;
        var distinct = counts.Keys.Count(n => n < inputs);
        return new Tally(inputs, counts.Values.Sum(), counts.Values.Sum(c => c - 1), inputs - distinct, counts.Keys.Count(n => n >= inputs || n < 0));
    }

    /// <summary>Reads the output topic (<paramref name="output"/>) from the beginning to its end with read_committed, keeping the committed transactions' messages when <paramref name="committedOnly"/> is given.</summary>
    public static OutputRead ReadOutput(string bootstrapServers, int partitions, HandlerCalls? committedOnly, string output = Output)
    {
        using var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = "eos-reader",
            EnableAutoCommit = false,
            EnablePartitionEof = true,
            IsolationLevel = IsolationLevel.ReadCommitted,
        }).SetLogHandler(static (_, _) => { }).Build();
        consumer.Assign(Enumerable.Range(0, partitions).Select(p => new TopicPartitionOffset(output, p, Offset.Beginning)));
        var counts = new Dictionary<long, int>();
        var next = new Dictionary<int, long>();
        var atEnd = new HashSet<int>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (atEnd.Count < partitions && DateTime.UtcNow < deadline)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is null)
            {
                continue;
            }

            if (result.IsPartitionEOF)
            {
                atEnd.Add(result.Partition.Value);
                continue;
            }

            atEnd.Remove(result.Partition.Value);
            var headers = result.Message.Headers;
            if (committedOnly is not null && !committedOnly.IsCommitted(
                System.Text.Encoding.UTF8.GetString(headers.GetLastBytes("txn-instance")), BitConverter.ToInt64(headers.GetLastBytes("txn-number"))))
            {
                continue;
            }

            var n = long.Parse(result.Message.Value, CultureInfo.InvariantCulture);
            counts[n] = counts.GetValueOrDefault(n) + 1;
            var sourcePartition = BitConverter.ToInt32(result.Message.Headers.GetLastBytes("src-partition"));
            var sourceOffset = BitConverter.ToInt64(result.Message.Headers.GetLastBytes("src-offset"));
            next[sourcePartition] = Math.Max(next.GetValueOrDefault(sourcePartition), sourceOffset + 1);
        }

        return new OutputRead(counts, next, atEnd.Count == partitions);
    }

    private static int Partitions(string bootstrapServers)
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrapServers }).Build();
        return admin.GetMetadata(Output, TimeSpan.FromSeconds(10)).Topics[0].Partitions.Count;
    }

    /// <summary>Writes one matrix row to the test output.</summary>
    public static void Row(string scenario, Tally committed, Tally uncommitted, string notes) =>
        TestContext.Out.WriteLine($"| {scenario} | {committed.Inputs} | {committed.Outputs} | {committed.Duplicates} | {committed.Lost} | {uncommitted.Outputs} | {notes} |");
}

/// <summary>One read of the output: results per input number, the next source offset per input partition, whether every partition was read to its end.</summary>
internal sealed record OutputRead(Dictionary<long, int> Counts, Dictionary<int, long> NextSourceOffsets, bool AtEnd);

/// <summary>Counts of one output read: inputs, outputs read, extra copies, inputs without output, outputs of unknown inputs.</summary>
internal sealed record Tally(int Inputs, int Outputs, int Duplicates, int Lost, int Unknown)
{
    public void AssertExactlyOnce()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Lost, Is.Zero, "inputs without output");
            Assert.That(Duplicates, Is.Zero, "duplicate outputs");
            Assert.That(Unknown, Is.Zero, "outputs of unknown inputs");
            Assert.That(Outputs, Is.EqualTo(Inputs), "outputs");
        });
    }
}

/// <summary>
/// Handler calls per member, and the transactions each member instance committed. The embedded cluster's Fetch
/// reports the last stable offset as the high watermark and lists no aborted transactions, so a read_committed reader
/// sees open and aborted transactions' messages too: the tests stand in for that filter with this ledger (each output
/// carries its instance and transaction number; it counts as committed once that transaction's CommitTransaction
/// succeeded). On a real broker the read_committed reader alone gives the same view.
/// </summary>
/// <param name="instanceMarker">Put in the instance names this ledger gives out (<c>{member}#{marker}{n}</c>), so the instances of a member process and of the test process differ.</param>
internal sealed class HandlerCalls(string instanceMarker = "")
{
    private readonly ConcurrentDictionary<string, int> _calls = new();
    private readonly ConcurrentDictionary<(string Instance, long Transaction), bool> _committed = new();
    private int _instances;
    private long _startLookupTicks;

    /// <summary>Gets or sets a callback told every committed transaction (instance, number), on the committing thread.</summary>
    public Action<string, long>? OnCommitted { get; set; }

    public string NewInstance(string member) => $"{member}#{instanceMarker}{Interlocked.Increment(ref _instances)}";

    public void Committed(string instance, long transaction)
    {
        _committed[(instance, transaction)] = true;
        OnCommitted?.Invoke(instance, transaction);
    }

    /// <summary>Gets the time the members' assigned callbacks spent reading the output for their start offsets (the stand-in for the committed offsets).</summary>
    public TimeSpan StartLookups => TimeSpan.FromTicks(Interlocked.Read(ref _startLookupTicks));

    public void LookedUpStart(TimeSpan took) => Interlocked.Add(ref _startLookupTicks, took.Ticks);

    /// <summary>Gets how many transactions were committed.</summary>
    public int Transactions => _committed.Count;

    public bool IsCommitted(string instance, long transaction) => _committed.ContainsKey((instance, transaction));

    public int Total => _calls.Values.Sum();

    public int Of(string member) => _calls.GetValueOrDefault(member);

    public void Record(string member) => _calls.AddOrUpdate(member, 1, (_, c) => c + 1);
}
