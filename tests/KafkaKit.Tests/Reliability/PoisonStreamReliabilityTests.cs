using System.Diagnostics;
using System.Globalization;
using System.Text;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Reliability;

/// <summary>Undeserializable messages at a steady rate with <see cref="ConsumerErrorAction.DeadLetter"/>.</summary>
[TestFixture]
[Category(ReliabilityKit.Category)]
[Parallelizable(ParallelScope.Self)] // fixtures overlap (most of their time is spent waiting on the cluster); tests within one run in sequence
public sealed class PoisonStreamReliabilityTests
{
    private const string Topic = "poison";
    private const string DeadLetterTopic = Topic + ".DLT";
    private const string Group = "poison-group";
    private const int Partitions = 3;
    private const int Messages = 2_000;

    /// <summary>How soon after the stream ends the consumer must have handled or dead-lettered everything.</summary>
    private static readonly TimeSpan CatchUpBound = TimeSpan.FromSeconds(15);

    [Test]
    [CancelAfter(120_000)]
    public async Task Consume_EveryTenthMessageUndeserializable_AllPoisonDeadLetteredAllGoodHandledAndConsumerKeepsPace()
    {
        var clock = Stopwatch.StartNew();
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic(Topic, Partitions);
        cluster.CreateTopic(DeadLetterTopic, 1);
        var ledger = new Ledger();
        var logs = new CapturingLoggerFactory();
        var options = ReliabilityKit.ConsumerOptions(cluster, Group, Topic);
        options.OnError = ConsumerErrorAction.DeadLetter;
        await using var consumer = new KafkaConsumerBuilder<string, Payload>("poison", options)
            .SetLoggerFactory(logs)
            .SetHandler((r, _) =>
            {
                ledger.Record(r.Message.Value.Seq);
                return ValueTask.CompletedTask;
            })
            .Build();
        await consumer.StartAsync();

        // Message n is {"seq":n}; every tenth (n % 10 == 9) is cut short: KafkaKit's JSON deserializer fails on it.
        await using var stream = new NumberedStream(cluster, Topic, Partitions, n => IsPoison(n)
            ? string.Create(CultureInfo.InvariantCulture, $"{{\"seq\":{n},")
            : string.Create(CultureInfo.InvariantCulture, $"{{\"seq\":{n}}}"));
        await Wait.ForAsync(() => stream.Produced >= Messages, TimeSpan.FromSeconds(60), $"{Messages} messages produced");
        var produced = await stream.StopAsync();
        var streamEnded = Stopwatch.StartNew();
        var poison = Enumerable.Range(0, (int)produced).Where(n => IsPoison(n)).Select(n => (long)n).ToHashSet();
        await Wait.ForAsync(
            () => ledger.Distinct == produced - poison.Count && logs.Count(2009) >= poison.Count,
            TimeSpan.FromSeconds(60),
            $"{produced - poison.Count} good messages handled and {poison.Count} dead-lettered");
        var caughtUpAfter = streamEnded.Elapsed;
        var (committed, ends) = await ReliabilityKit.WaitForCommittedAtEndAsync(cluster, Group, Topic, Partitions, TimeSpan.FromSeconds(30));

        var letters = KafkaProbe.ReadAll(cluster.BootstrapServers, DeadLetterTopic, 1, poison.Count, TimeSpan.FromSeconds(30));
        string Header(Confluent.Kafka.ConsumeResult<byte[]?, byte[]?> letter, string key) => Encoding.UTF8.GetString(letter.Message.Headers.GetLastBytes(key));
        var deadSeqs = letters.Select(l => ReliabilityKit.Seq(Encoding.UTF8.GetString(l.Message.Key!))).ToList();
        var badHeaders = letters.Where(l =>
            Header(l, DeadLetterPublisher.OriginalTopicHeader) != Topic
            || Header(l, DeadLetterPublisher.ConsumerGroupHeader) != Group
            || !Header(l, DeadLetterPublisher.ExceptionTypeHeader).Contains("JsonException", StringComparison.Ordinal)
            || long.Parse(Header(l, DeadLetterPublisher.OriginalOffsetHeader), CultureInfo.InvariantCulture) != ReliabilityKit.Seq(Encoding.UTF8.GetString(l.Message.Key!)) / Partitions
            || Encoding.UTF8.GetString(l.Message.Value!) != string.Create(CultureInfo.InvariantCulture, $"{{\"seq\":{ReliabilityKit.Seq(Encoding.UTF8.GetString(l.Message.Key!))},"))
            .Select(l => l.Offset.Value).ToList();
        var lost = ledger.Missing(produced, deadSeqs.ToHashSet()).Count;
        var state = consumer.State;
        await consumer.StopAsync();

        TestContext.Out.WriteLine($"caught up {caughtUpAfter.TotalSeconds:F1} s after the stream ended; {letters.Count} dead letters read back ({deadSeqs.Distinct().Count()} distinct)");
        ReliabilityKit.Row("poison every 10th message, OnError=DeadLetter", produced, ledger.Distinct, ledger.Duplicates + (deadSeqs.Count - deadSeqs.Distinct().Count()), deadSeqs.Distinct().Count(), lost, clock.Elapsed);
        Assert.Multiple(() =>
        {
            Assert.That(deadSeqs.ToHashSet(), Is.EquivalentTo(poison), "every poison message, and only those, is in the dead-letter topic");
            Assert.That(badHeaders, Is.Empty, "each dead letter keeps the raw bytes and says where it came from and why (offsets of bad letters)");
            Assert.That(lost, Is.Zero, "no message lost");
            Assert.That(ledger.Missing(produced, poison), Is.Empty, "every good message handled");
            Assert.That(state, Is.EqualTo(KafkaConsumerState.Running), "the consumer keeps running");
            Assert.That(caughtUpAfter, Is.LessThan(CatchUpBound), "the consumer keeps pace with the stream");
            Assert.That(committed, Is.EqualTo(ends), "committed offsets reach the end offsets");
            Assert.That(logs.Count(2008), Is.EqualTo(poison.Count), "one failure log line per poison message");
            Assert.That(consumer.Fault, Is.Null);
        });
    }

    private static bool IsPoison(long n) => n % 10 == 9;

    /// <summary>The JSON message value.</summary>
    public sealed record Payload(long Seq);
}
