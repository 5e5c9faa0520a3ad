using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using KafkaKit.Hosting;
using KafkaKit.Producing;
using KafkaKit.Testing;
using KafkaKit.Tests.Producing;
using KafkaKit.Tests.Support;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Tests.Reliability;

/// <summary>
/// A fatal producer error (an idempotent producer fenced or out of sequence) while the producer is saturated: messages in
/// flight, a full queue, enqueues waiting for room. The producer must turn Faulted, not hang.
/// </summary>
[TestFixture]
[Category(ReliabilityKit.Category)]
[Parallelizable(ParallelScope.Self)] // fixtures overlap (most of their time is spent waiting on the cluster); tests within one run in sequence
public sealed class ProducerFatalErrorReliabilityTests
{
    private const int Partitions = 6;
    private const int Keys = 24;

    /// <summary>Concurrent enqueue loops: more than the queue can take at once, so most of them wait for room.</summary>
    private const int Writers = 8;

    /// <summary>The queue limit (queue.buffering.max.messages): small, so it is full while requests are in flight.</summary>
    private const int QueueLimit = 2_000;

    /// <summary>
    /// How long an enqueue may wait for room: far longer than the test's bounds, so an enqueue that is not woken by the
    /// fault shows up as a timeout of this test instead of passing as a queue-full refusal.
    /// </summary>
    private static readonly TimeSpan MaxBlock = TimeSpan.FromSeconds(120);

    /// <summary>How soon after the fatal error every waiting enqueue must have failed.</summary>
    private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(2);

    private static readonly TimeSpan FlushTimeoutOnDispose = TimeSpan.FromSeconds(5);

    /// <summary>How many messages are delivered before the fault.</summary>
    private const int DeliveredBeforeFault = 2 * QueueLimit;

    /// <summary>The pace of each writer when the queue is not to be full: <see cref="BurstPerTick"/> messages per tick.</summary>
    private static readonly TimeSpan WriterPace = TimeSpan.FromMilliseconds(5);

    private const int BurstPerTick = 5;

    /// <summary>The longest the delivery-report thread is held after raising the error inside a callback.</summary>
    private static readonly TimeSpan HoldLimit = TimeSpan.FromSeconds(5);

    /// <summary>When the fatal error comes.</summary>
    public enum FaultTiming
    {
        /// <summary>The queue is full and enqueues wait for room; raised from the test's thread.</summary>
        QueueFull,

        /// <summary>
        /// The queue has room and writers keep enqueueing; raised while the delivery-report thread is busy (inside a
        /// delivery callback), which it then holds until every writer has ended: librdkafka refuses messages from the
        /// moment of the fault, while its error event waits behind the delivery reports queued before it (as when a
        /// broker thread raises the error during a burst of acknowledgements).
        /// </summary>
        DeliveryThreadBusy,
    }

    [TestCase(FaultTiming.QueueFull, ErrorCode.InvalidProducerEpoch)]
    [TestCase(FaultTiming.DeliveryThreadBusy, ErrorCode.OutOfOrderSequenceNumber)]
    [CancelAfter(120_000)]
    public async Task EnqueueAsync_FatalErrorUnderLoad_FaultedEveryWriterFailsPromptlyOneOutcomePerMessage(FaultTiming timing, ErrorCode fatalCode, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        await using var cluster = EmbeddedKafkaCluster.Start(brokers: 3);
        var topic = "fatal-" + timing;
        cluster.CreateTopic(topic, Partitions, replicationFactor: 3);
        for (var broker = 1; broker <= 3; broker++)
        {
            cluster.SetBrokerRoundTripTime(broker, TimeSpan.FromMilliseconds(25 + (25 * broker))); // 50-100 ms: requests in flight at the fault
        }

        for (var p = 0; p < Partitions; p++)
        {
            cluster.SetPartitionLeader(topic, p, (p % 3) + 1);
        }

        var options = ProducerTestKit.Options(cluster.BootstrapServers, ("queue.buffering.max.messages", QueueLimit.ToString(CultureInfo.InvariantCulture)), ("linger.ms", "5"));
        options.Backpressure = ProducerBackpressure.Wait;
        options.MaxBlock = MaxBlock;
        options.FlushTimeoutOnDispose = FlushTimeoutOnDispose;
        var logs = new CapturingLoggerFactory();
        var producer = ProducerTestKit.Build<string, string>(options, logs, "fatal-producer");
        var kafkaProducer = (KafkaProducer<string, string>)producer;
        var outcomes = new ProducerTestKit.Outcomes();
        var outcomesBySeq = new ConcurrentDictionary<long, int>();
        var deliveredSeqs = new ConcurrentDictionary<long, bool>();
        var accepted = new ConcurrentDictionary<long, bool>();
        var fault = new Stopwatch();
        var ends = new ConcurrentQueue<(Exception Error, TimeSpan AfterFault)>();
        var raiseInCallback = 0;
        var raised = -1;
        (long Delivered, long Queued, int Waiting) atFault = default;
        bool? faultedWhileBusy = null;
        void Raise()
        {
            atFault = (outcomes.Delivered, producer.QueuedMessages, kafkaProducer.WaitingForRoom);
            fault.Start();
            Volatile.Write(ref raised, (int)FatalErrorHook.Raise(producer, fatalCode, "injected under load"));
        }

        void Record(DeliveryReport<string, string> report)
        {
            outcomes.Record(report);
            var seq = ReliabilityKit.Seq(report.Message.Value);
            outcomesBySeq.AddOrUpdate(seq, 1, static (_, n) => n + 1);
            if (!report.Error.IsError)
            {
                deliveredSeqs[seq] = true;
            }

            if (Interlocked.Exchange(ref raiseInCallback, 0) == 1)
            {
                Raise();
                SpinWait.SpinUntil(() => ends.Count == Writers, HoldLimit); // holds the delivery-report thread
                faultedWhileBusy = producer.FatalError is not null;
            }
        }

        // The load: numbered messages from every writer until an enqueue throws; at full speed when the queue is to be
        // full, else 5 messages per writer every 5 ms (~8,000 msg/s, below what 50-100 ms round trips carry).
        var next = -1L;
        var writers = Enumerable.Range(0, Writers).Select(_ => Task.Run(async () =>
        {
            using var pace = new PeriodicTimer(WriterPace);
            for (var i = 1L; ; i++)
            {
                if (timing == FaultTiming.DeliveryThreadBusy && i % BurstPerTick == 0)
                {
                    await pace.WaitForNextTickAsync(cancellationToken);
                }

                var seq = Interlocked.Increment(ref next);
                var text = seq.ToString(CultureInfo.InvariantCulture);
                try
                {
                    await producer.EnqueueAsync(topic, new Message<string, string> { Key = "key-" + (seq % Keys).ToString(CultureInfo.InvariantCulture), Value = text }, Record, cancellationToken);
                    accepted[seq] = true;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    ends.Enqueue((e, fault.Elapsed));
                    return;
                }
            }
        })).ToArray();

        await Wait.ForAsync(() => outcomes.Delivered >= DeliveredBeforeFault, TimeSpan.FromSeconds(30), $"the producer delivers under load ({outcomes})");
        if (timing == FaultTiming.QueueFull)
        {
            // Both at once: a round trip's answer can empty the queue before the woken writers refill it.
            await Wait.ForAsync(
                () => kafkaProducer.WaitingForRoom >= Writers / 2 && producer.QueuedMessages >= QueueLimit / 2,
                TimeSpan.FromSeconds(10),
                "enqueues wait for room in the full queue");
            Raise();
        }
        else
        {
            Volatile.Write(ref raiseInCallback, 1);
        }

        await Wait.ForAsync(() => Volatile.Read(ref raised) != -1, TimeSpan.FromSeconds(10), "the fatal error is raised");
        Assert.That((ErrorCode)raised, Is.EqualTo(ErrorCode.NoError));
        await Wait.ForAsync(() => producer.FatalError is not null, TimeSpan.FromSeconds(10), "the producer is faulted");
        var faultedAfter = fault.Elapsed;
        var allEnded = await Wait.UntilAsync(() => writers.All(w => w.IsCompleted), MaxBlock / 2);
        Assert.That(allEnded, Is.True, $"every writer ends after the fatal error ({writers.Count(w => !w.IsCompleted)} of {Writers} still waiting)");
        await Task.WhenAll(writers);
        var writersEndedAfter = ends.Max(e => e.AfterFault);

        // Further calls fail fast.
        var afterwards = Stopwatch.StartNew();
        var laterEnqueue = Assert.ThrowsAsync<ProducerFaultedException>(async () => await producer.EnqueueAsync(topic, new Message<string, string> { Key = "k", Value = "-1" }, Record, cancellationToken));
        var laterTry = Assert.Throws<ProducerFaultedException>(() => producer.TryEnqueue(topic, new Message<string, string> { Key = "k", Value = "-1" }, Record));
        var laterProduce = Assert.ThrowsAsync<ProducerFaultedException>(async () => await producer.ProduceAsync(topic, new Message<string, string> { Key = "k", Value = "-1" }, cancellationToken));
        var laterCallsTook = afterwards.Elapsed;
        var (health, healthText) = KafkaClientHealth.For(producer).Evaluate();

        // Every accepted message gets its outcome without a flush or dispose (in flight: the broker's answer; queued:
        // purged by librdkafka at the fault).
        var outcomesWait = Stopwatch.StartNew();
        await Wait.ForAsync(() => outcomes.Total >= accepted.Count, TimeSpan.FromSeconds(30), $"every accepted message has its outcome ({outcomes}; accepted {accepted.Count})");
        var outcomesAfter = outcomesWait.Elapsed;
        var disposal = Stopwatch.StartNew();
        await producer.DisposeAsync();
        var disposedIn = disposal.Elapsed;

        // What reached the log: every delivered message (a failed one may be there too: sent before the fault).
        await using var reader = new TopicReader<string, string>(cluster.BootstrapServers, topic, Partitions, keepRecords: true);
        await reader.ReadAsync(outcomes.Delivered, TimeSpan.FromSeconds(30), cancellationToken);
        var written = reader.Records.Select(r => ReliabilityKit.Seq(r.Message.Value)).ToList();
        var writtenSet = written.ToHashSet();
        var deliveredButNotWritten = deliveredSeqs.Keys.Where(s => !writtenSet.Contains(s)).Order().ToList();
        var withoutOutcome = accepted.Keys.Where(s => !outcomesBySeq.ContainsKey(s)).Order().ToList();
        var twice = outcomesBySeq.Where(p => p.Value > 1).Select(p => p.Key).Order().ToList();
        var unasked = outcomesBySeq.Keys.Where(s => !accepted.ContainsKey(s)).Order().ToList();
        var faultedLines = logs.WithEventId(1003).ToList();
        var errors = ends.Select(e => e.Error).ToList();
        foreach (var e in errors.Where(e => e is not ProducerFaultedException).Take(1))
        {
            TestContext.Out.WriteLine($"a writer ended with an undocumented exception: {e}");
        }

        var duplicates = written.Count - writtenSet.Count;
        var lost = withoutOutcome.Count + deliveredButNotWritten.Count;
        TestContext.Out.WriteLine(
            $"{timing}, {fatalCode}: at the fault {atFault.Delivered} delivered, {atFault.Queued} queued, {atFault.Waiting} enqueues waiting for room; " +
            $"faulted after {faultedAfter.TotalMilliseconds:F0} ms{(faultedWhileBusy is { } busy ? $" (faulted while the delivery thread was held: {busy})" : string.Empty)}; every writer ended {writersEndedAfter.TotalMilliseconds:F0} ms after the fault " +
            $"({string.Join(", ", errors.GroupBy(e => e.GetType().Name + (e is KafkaException k ? "/" + k.Error.Code : string.Empty)).Select(g => $"{g.Count()} {g.Key}"))}); " +
            $"later calls threw in {laterCallsTook.TotalMilliseconds:F0} ms; health {health} ({healthText}); " +
            $"accepted {accepted.Count}: {outcomes}, all outcomes {outcomesAfter.TotalMilliseconds:F0} ms later without a flush; " +
            $"disposed in {disposedIn.TotalMilliseconds:F0} ms; {written.Count} records written ({duplicates} twice)");
        ReliabilityKit.Row($"fatal producer error ({fatalCode}), {timing}", accepted.Count, outcomes.Delivered, duplicates, 0, lost, clock.Elapsed);
        Assert.Multiple(() =>
        {
            if (timing == FaultTiming.QueueFull)
            {
                Assert.That(atFault.Waiting, Is.GreaterThan(0), "enqueues were waiting for room at the fault");
            }
            else
            {
                Assert.That(faultedWhileBusy, Is.True, "faulted as soon as librdkafka refused a message, before its error event was served");
            }

            Assert.That(producer.FatalError!.Code, Is.EqualTo(fatalCode));
            Assert.That(producer.FatalError.IsFatal, Is.True);
            Assert.That(errors, Has.Count.EqualTo(Writers));
            Assert.That(errors, Is.All.TypeOf<ProducerFaultedException>(), "every writer, waiting or enqueueing, ends with the documented exception");
            Assert.That(errors.OfType<ProducerFaultedException>().Select(e => e.Error.Code), Is.All.EqualTo(fatalCode));
            Assert.That(writersEndedAfter, Is.LessThan(Prompt), "waiting enqueues fail promptly, not after MaxBlock");
            Assert.That(new Exception?[] { laterEnqueue, laterTry, laterProduce }.Select(e => ((ProducerFaultedException?)e)?.Error.Code), Is.All.EqualTo(fatalCode));
            Assert.That(laterCallsTook, Is.LessThan(TimeSpan.FromSeconds(1)), "later calls fail fast");
            Assert.That(health, Is.EqualTo(HealthStatus.Unhealthy), healthText);
            Assert.That(withoutOutcome, Is.Empty, "every accepted message has an outcome");
            Assert.That(twice, Is.Empty, "no message has two outcomes");
            Assert.That(unasked, Is.Empty, "no outcome for a message that was not accepted");
            Assert.That(outcomes.Total, Is.EqualTo(accepted.Count), "delivered + failed = accepted");
            Assert.That(atFault.Queued, Is.GreaterThan(0), "messages were awaiting delivery reports at the fault");
            Assert.That(deliveredButNotWritten, Is.Empty, "every delivered message is in the log");
            Assert.That(disposedIn, Is.LessThan(FlushTimeoutOnDispose + TimeSpan.FromSeconds(5)), "dispose is bounded");
            Assert.That(faultedLines, Has.Count.EqualTo(1), "one critical log line");
            Assert.That(faultedLines.Select(l => l.Level), Is.All.EqualTo(LogLevel.Critical));
        });
    }
}
