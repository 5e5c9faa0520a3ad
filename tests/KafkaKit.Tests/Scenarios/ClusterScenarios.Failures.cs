using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Tests.Consuming;
using KafkaKit.Tests.Reliability;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Scenarios;

/// <summary>The consumer failure scenarios: members crashing, poison messages, a handler that hangs.</summary>
public abstract partial class ClusterScenarios
{
    /// <summary>
    /// A group of a KafkaKit member and a plain Confluent.Kafka member (which stores each offset after handling and lets
    /// librdkafka commit the stored offsets every 5 s, its default) consumes a steady stream. Then the process dies: the plain member
    /// is disposed without <c>Close()</c> (no final commit and no LeaveGroup, so the group evicts it only after
    /// <c>session.timeout.ms</c>) and the KafkaKit member is disposed without <c>StopAsync</c>. A new KafkaKit member
    /// takes over from the committed offsets: nothing is lost, and what is handled again is bounded by what had been
    /// handled but not committed at the crash. <c>session.timeout.ms</c> is 6000 (a broker's minimum) for every member
    /// on every cluster, so the eviction takes seconds, not librdkafka's default 45 s.
    /// </summary>
    [Test]
    [CancelAfter(180_000)]
    public async Task Restart_MembersCrashMidStream_NewMemberHandlesEverythingAndRedeliversOnlyUncommittedWork()
    {
        await using var run = await StartAsync("crash", partitions: 4);
        var byCrashed = new ConcurrentDictionary<long, (int Partition, long Offset)>();
        static void Evictable(KafkaConsumerOptions o)
        {
            o.Config["session.timeout.ms"] = "6000";
            o.Config.TryAdd("heartbeat.interval.ms", "2000");
        }

        void Handled(long seq, int partition, long offset, bool crashes)
        {
            run.Ledger.Record(seq);
            if (crashes)
            {
                byCrashed[seq] = (partition, offset);
            }
        }

        KafkaConsumer<string, string> Member(string name, bool crashes) => run.Member<string>(name, (r, _) =>
        {
            Handled(ReliabilityKit.Seq(r.Message.Key), r.Partition.Value, r.Offset.Value, crashes);
            return ValueTask.CompletedTask;
        }, Evictable);

        var plainOptions = run.Cluster.ConsumerOptions(run.Group, run.Topic);
        Evictable(plainOptions);
        var plain = new ConsumerBuilder<string, string>(new ConsumerConfig(new Dictionary<string, string>(plainOptions.Config))
        {
            BootstrapServers = run.Servers,
            GroupId = run.Group,
            PartitionAssignmentStrategy = Confluent.Kafka.PartitionAssignmentStrategy.CooperativeSticky, // KafkaKit's default: one protocol for the group
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = true, // every auto.commit.interval.ms (librdkafka's default: 5 s)
            EnableAutoOffsetStore = false,
        }).SetLogHandler(static (_, _) => { }).Build();
        plain.Subscribe(run.Topic);
        var plainAlive = true;
        var plainThread = new Thread(() =>
        {
            while (Volatile.Read(ref plainAlive))
            {
                try
                {
                    if (plain.Consume(50) is { IsPartitionEOF: false } r)
                    {
                        Handled(ReliabilityKit.Seq(r.Message.Key), r.Partition.Value, r.Offset.Value, crashes: true);
                        plain.StoreOffset(r);
                    }
                }
                catch (KafkaException)
                {
                    // a consume error or a store for a partition just revoked: polling goes on
                }
            }
        }) { IsBackground = true, Name = "crashing-member" };
        void CrashPlainMember()
        {
            if (Volatile.Read(ref plainAlive))
            {
                Volatile.Write(ref plainAlive, false);
                plainThread.Join();
                plain.Dispose(); // without Close(): no final commit, no LeaveGroup
            }
        }

        plainThread.Start();
        try
        {
            await using var a = Member("a", crashes: true);
            await a.StartAsync();
            await run.WaitForSettledAsync(() => a.Assignment.Count, () => plain.Assignment.Count);
            await using var stream = run.Stream();
            await ConsumerTestKit.WaitForCommittedAsync(
                run.Servers, run.Group, run.Topic, run.Partitions, c => c.Values.All(o => o >= 100), TimeSpan.FromSeconds(30), "both members handle and commit");
            var atCommit = byCrashed.Count;
            await Wait.ForAsync(() => byCrashed.Count >= atCommit + 200, TimeSpan.FromSeconds(30), "the members handle 200 more messages");

            // The crash.
            CrashPlainMember();
            await a.DisposeAsync(); // without StopAsync
            var committedAtCrash = run.Committed();
            var uncommitted = byCrashed.Values.Count(w => w.Offset >= committedAtCrash[w.Partition]);

            // The restart.
            var restarted = Stopwatch.StartNew();
            await using var c = Member("c", crashes: false);
            await c.StartAsync();
            await Wait.ForAsync(() => c.Assignment.Count == run.Partitions, run.Cluster.GroupChangeTimeout, "c owns every partition once the dead member is evicted");
            var takeover = restarted.Elapsed;
            var end = await run.DrainAsync(stream);
            await c.StopAsync();

            run.Row("members crash (disposed without Close / without StopAsync), new member", end);
            TestContext.Out.WriteLine(
                $"the crashed members handled {byCrashed.Count}, {uncommitted} of them beyond the committed offsets {ConsumerTestKit.Format(committedAtCrash)}; " +
                $"c owned every partition {takeover.TotalSeconds:F1} s after its start; handled again {run.Ledger.Duplicates}");
            Assert.Multiple(() =>
            {
                Assert.That(uncommitted, Is.Positive, "the crash left handled work uncommitted (the plain member commits every 5 s)");
                Assert.That(end.Lost, Is.Zero, "no message lost");
                Assert.That(run.Ledger.Duplicates, Is.LessThanOrEqualTo(uncommitted), "only what was handled but not committed at the crash is handled again");
                Assert.That(end.Committed, Is.EqualTo(end.Ends), "committed offsets reach the end offsets");
                Assert.That(a.State, Is.EqualTo(KafkaConsumerState.Stopped), "disposing without StopAsync stops the member");
                Assert.That(new[] { a.Fault, c.Fault }, Is.All.Null);
                Assert.That(run.Failures(), Is.Zero, "no fatal error, callback failure or stop on error");
            });
        }
        finally
        {
            CrashPlainMember(); // when the scenario failed before its crash
        }
    }

    /// <summary>
    /// Every tenth message of a stream is not valid JSON for the handler's type; <c>OnError = DeadLetter</c>. Every poison
    /// message, and only those, lands in <c>&lt;topic&gt;.DLT</c> with its raw bytes and the headers naming its origin and
    /// the failure; every other message is handled; nothing is lost; the committed offsets reach the end.
    /// </summary>
    [Test]
    [CancelAfter(120_000)]
    public async Task Consume_EveryTenthMessageUndeserializableWithDeadLetter_AllPoisonDeadLetteredWithHeadersNothingLost()
    {
        const int messages = 1_000;
        await using var run = await StartAsync("poison", partitions: 3);
        var deadLetterTopic = run.Topic + ".DLT";
        await run.Cluster.CreateTopicAsync(deadLetterTopic, 1);
        var ledger = run.Ledger;
        await using var consumer = run.Member<Payload>("poison", (r, _) =>
        {
            ledger.Record(r.Message.Value.Seq);
            return ValueTask.CompletedTask;
        }, o => o.OnError = ConsumerErrorAction.DeadLetter);
        await consumer.StartAsync();
        await Wait.ForAsync(() => consumer.Assignment.Count == run.Partitions, run.Cluster.GroupChangeTimeout, "the consumer is assigned");

        await using var stream = run.Stream(PayloadText);
        await Wait.ForAsync(() => stream.Produced >= messages, TimeSpan.FromSeconds(60), $"{messages} messages produced");
        var produced = await stream.StopAsync();
        var poison = Enumerable.Range(0, (int)produced).Select(n => (long)n).Where(IsPoison).ToHashSet();
        await Wait.ForAsync(
            () => ledger.Distinct == produced - poison.Count && run.Logs.Count(2009) >= poison.Count,
            TimeSpan.FromSeconds(60),
            $"{produced - poison.Count} good messages handled and {poison.Count} dead-lettered");
        var (committed, ends) = await ReliabilityKit.WaitForCommittedAtEndAsync(run.Servers, run.Group, run.Topic, run.Partitions, TimeSpan.FromSeconds(30));
        var letters = KafkaProbe.ReadAll(run.Servers, deadLetterTopic, 1, poison.Count, TimeSpan.FromSeconds(30));
        var deadLettered = letters.Select(l => ReliabilityKit.Seq(Encoding.UTF8.GetString(l.Message.Key!))).ToList();
        var wrong = letters.Select(l => DeadLetterMismatch(l, run)).OfType<string>().ToList();
        var lost = ledger.Missing(produced, deadLettered.ToHashSet()).Count;
        var state = consumer.State;
        await consumer.StopAsync();

        run.Row("every 10th message poison, OnError=DeadLetter", produced, ledger.Distinct, ledger.Duplicates, deadLettered.Count, lost);
        Assert.Multiple(() =>
        {
            Assert.That(deadLettered, Is.EquivalentTo(poison), "every poison message once, and only those, in the dead-letter topic");
            Assert.That(wrong, Is.Empty, "each dead letter keeps the raw bytes and names its origin and failure");
            Assert.That(ledger.Missing(produced, poison), Is.Empty, "every good message handled");
            Assert.That(lost, Is.Zero, "no message lost");
            Assert.That(committed, Is.EqualTo(ends), "committed offsets reach the end offsets");
            Assert.That(state, Is.EqualTo(KafkaConsumerState.Running), "the consumer keeps running");
            Assert.That(consumer.Fault, Is.Null);
        });
    }

    /// <summary>
    /// Handlers are slow now and then (every 50th call takes 100 ms) and the call for message 300 hangs forever,
    /// ignoring its token. The other partitions keep flowing and committing while the hanging partition stays committed
    /// at the hanging offset; <c>StopAsync</c> returns within its documented bound (<c>ShutdownTimeout</c> +
    /// <c>CloseTimeout</c> + 5 s) without committing that offset, and a new member handles everything from there.
    /// </summary>
    [Test]
    [CancelAfter(120_000)]
    public async Task StopAsync_HandlerHangsIgnoringItsToken_ReturnsWithinItsBoundAndNextMemberHandlesEverything()
    {
        const long hanging = 300; // partition 0, offset 100
        var shutdownTimeout = TimeSpan.FromSeconds(2);
        var closeTimeout = TimeSpan.FromSeconds(3);
        await using var run = await StartAsync("hang", partitions: 3);
        var hang = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var hangingCalls = 0;
        KafkaConsumer<string, string> Member(string name, bool hangs) => run.Member<string>(name, async (r, ct) =>
        {
            var seq = ReliabilityKit.Seq(r.Message.Key);
            if (hangs && seq == hanging)
            {
                Interlocked.Increment(ref hangingCalls);
                await hang.Task; // ignores its token
            }

            await Task.Delay(seq % 50 == 49 ? 100 : 0, ct);
            run.Ledger.Record(seq);
        }, o =>
        {
            o.ShutdownTimeout = shutdownTimeout;
            o.CloseTimeout = closeTimeout;
        });

        var a = Member("a", hangs: true);
        try
        {
            await a.StartAsync();
            await using var stream = run.Stream();
            await Wait.ForAsync(() => Volatile.Read(ref hangingCalls) == 1, TimeSpan.FromSeconds(60), $"the call for message {hanging} hangs");
            var endsAtHang = KafkaProbe.EndOffsets(run.Servers, run.Topic, run.Partitions);
            await ConsumerTestKit.WaitForCommittedAsync(
                run.Servers, run.Group, run.Topic, run.Partitions, c => c[0] == hanging / run.Partitions && c[1] > endsAtHang[1] && c[2] > endsAtHang[2], TimeSpan.FromSeconds(30),
                "p1 and p2 commit past their end offsets at the hang; p0 stays at the hanging offset");

            var stopClock = Stopwatch.StartNew();
            await a.StopAsync();
            var stopTook = stopClock.Elapsed;
            var afterStop = run.Committed();

            await using var b = Member("b", hangs: false);
            await b.StartAsync();
            var end = await run.DrainAsync(stream);
            await b.StopAsync();

            var bound = shutdownTimeout + closeTimeout + TimeSpan.FromSeconds(5);
            run.Row("slow handlers and one hanging forever, stop, new member", end);
            TestContext.Out.WriteLine($"StopAsync took {stopTook.TotalSeconds:F1} s (bound {bound.TotalSeconds:F0} s); committed after the stop {ConsumerTestKit.Format(afterStop)}");
            Assert.Multiple(() =>
            {
                Assert.That(stopTook, Is.LessThan(bound), "StopAsync returns within ShutdownTimeout + CloseTimeout + 5 s");
                Assert.That(stopTook, Is.GreaterThanOrEqualTo(shutdownTimeout - TimeSpan.FromMilliseconds(100)), "running handlers were given ShutdownTimeout first");
                Assert.That(a.State, Is.EqualTo(KafkaConsumerState.Stopped));
                Assert.That(afterStop[0], Is.EqualTo(hanging / run.Partitions), "the hanging message's offset is not committed");
                Assert.That(run.Logs.Count(2011), Is.GreaterThanOrEqualTo(1), "the outliving handler was cancelled and logged");
                Assert.That(end.Lost, Is.Zero, "no message lost");
                Assert.That(end.Committed, Is.EqualTo(end.Ends), "committed offsets reach the end offsets");
                Assert.That(new[] { a.Fault, b.Fault }, Is.All.Null);
            });
        }
        finally
        {
            hang.TrySetResult(); // let the abandoned call end with the test
            await a.DisposeAsync();
        }
    }

    /// <summary>The scenario's JSON value <c>{"seq":n}</c>; every tenth (n % 10 == 9) is cut short and cannot be read.</summary>
    private static string PayloadText(long n) => IsPoison(n)
        ? string.Create(CultureInfo.InvariantCulture, $"{{\"seq\":{n},")
        : string.Create(CultureInfo.InvariantCulture, $"{{\"seq\":{n}}}");

    private static bool IsPoison(long n) => n % 10 == 9;

    /// <summary>Returns what is wrong with a dead letter (raw value, origin and failure headers), or null when it is right.</summary>
    private static string? DeadLetterMismatch(ConsumeResult<byte[]?, byte[]?> letter, ScenarioRun run)
    {
        var seq = ReliabilityKit.Seq(Encoding.UTF8.GetString(letter.Message.Key!));
        string Header(string key) => letter.Message.Headers.TryGetLastBytes(key, out var bytes) ? Encoding.UTF8.GetString(bytes) : "(none)";
        var expected = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [DeadLetterPublisher.OriginalTopicHeader] = run.Topic,
            [DeadLetterPublisher.OriginalPartitionHeader] = (seq % run.Partitions).ToString(CultureInfo.InvariantCulture),
            [DeadLetterPublisher.OriginalOffsetHeader] = (seq / run.Partitions).ToString(CultureInfo.InvariantCulture),
            [DeadLetterPublisher.ConsumerGroupHeader] = run.Group,
        };
        var wrong = expected.Where(e => Header(e.Key) != e.Value).Select(e => $"{e.Key}={Header(e.Key)} (expected {e.Value})").ToList();
        if (!Header(DeadLetterPublisher.ExceptionTypeHeader).Contains("JsonException", StringComparison.Ordinal))
        {
            wrong.Add($"{DeadLetterPublisher.ExceptionTypeHeader}={Header(DeadLetterPublisher.ExceptionTypeHeader)}");
        }

        if (Encoding.UTF8.GetString(letter.Message.Value ?? []) != PayloadText(seq))
        {
            wrong.Add("the value is not the original bytes");
        }

        return wrong.Count == 0 ? null : $"dead letter of message {seq}: {string.Join(", ", wrong)}";
    }

    /// <summary>The JSON message value of the poison scenario.</summary>
    public sealed record Payload(long Seq);
}
