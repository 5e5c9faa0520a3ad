using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Producing;
using KafkaKit.Tests.Producing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Scenarios;

/// <summary>The producer scenarios: saturation with backpressure, a fatal error, the brokers going down mid-stream.</summary>
public abstract partial class ClusterScenarios
{
    /// <summary>
    /// 100,000 messages through a local queue of 1,000 with <see cref="ProducerBackpressure.Wait"/>: the producer is far
    /// faster than the cluster and is throttled by backpressure alone. No exception, the queue limit holds, every message
    /// is delivered and read back.
    /// </summary>
    [Test]
    [CancelAfter(180_000)]
    public async Task EnqueueAsync_100000MessagesThroughQueueOf1000WithWait_NoExceptionAllDeliveredAndReadBack()
    {
        const int count = 100_000;
        const int queueLimit = 1_000;
        await using var run = await StartAsync("saturation", partitions: 6);
        await using var reader = new TopicReader<Ignore, long>(run.Servers, run.Topic, run.Partitions, keepRecords: true);
        var outcomes = new ProducerTestKit.Outcomes();
        var options = ProducerTestKit.Options(run.Servers, ("queue.buffering.max.messages", "1000"));
        options.Backpressure = ProducerBackpressure.Wait;
        var exceptions = 0;
        var maxQueued = 0L;
        int undelivered;
        await using (var producer = ProducerTestKit.Build<Null, long>(options, name: "saturation-producer"))
        {
            for (var i = 0; i < count; i++)
            {
                try
                {
                    await producer.EnqueueAsync(run.Topic, new Message<Null, long> { Value = i }, outcomes.Record);
                }
                catch (KafkaException)
                {
                    exceptions++;
                }

                if ((i & 0xFF) == 0)
                {
                    maxQueued = Math.Max(maxQueued, producer.QueuedMessages);
                }
            }

            undelivered = await producer.FlushAsync();
        }

        var readBack = await reader.ReadAsync(count, TimeSpan.FromSeconds(60), TestContext.CurrentContext.CancellationToken);
        var values = reader.Records.Select(r => r.Message.Value).ToHashSet();
        var lost = Enumerable.Range(0, count).Count(i => !values.Contains(i));

        run.Row("producer saturation, queue of 1,000, Wait", count, values.Count, readBack - values.Count, 0, lost);
        Assert.Multiple(() =>
        {
            Assert.That(exceptions, Is.Zero, "backpressure waits instead of throwing");
            Assert.That(maxQueued, Is.LessThanOrEqualTo(queueLimit), "the queue limit holds");
            Assert.That(undelivered, Is.Zero);
            Assert.That(outcomes.Delivered, Is.EqualTo(count), outcomes.ToString());
            Assert.That(lost, Is.Zero, "every message read back");
            Assert.That(readBack - values.Count, run.AllowedDuplicates(), "records written twice");
        });
    }

    /// <summary>
    /// A fatal error raised inside the producer's librdkafka client (<c>rd_kafka_test_fatal_error</c>, so no broker-side
    /// fault is needed) while one message lingers in the queue and a second enqueue waits for room: the producer is
    /// faulted, the waiter and every later call fail fast with <see cref="ProducerFaultedException"/>, the accepted
    /// message gets its one outcome, and dispose returns within its flush bound.
    /// </summary>
    [Test]
    [CancelAfter(60_000)]
    public async Task EnqueueAsync_FatalErrorInTheClient_FaultedCallsFailFastAndDisposeDoesNotHang()
    {
        await using var run = await StartAsync("fatal", partitions: 1);
        var topic = run.Topic;
        await using var reader = new TopicReader<Ignore, string>(run.Servers, topic, 1, keepRecords: true);
        var outcomes = new ProducerTestKit.Outcomes();
        var options = ProducerTestKit.Options(run.Servers, ("queue.buffering.max.messages", "1"), ("linger.ms", "10000"));
        options.FlushTimeoutOnDispose = TimeSpan.FromSeconds(2);
        await using var producer = ProducerTestKit.Build<Null, string>(options, run.Logs, "fatal-producer"); // disposing twice is a no-op
        Message<Null, string> Message(string value) => new() { Value = value };

        // One message delivered (a flush sends at once, whatever linger.ms says), one lingering, one waiting for room.
        await producer.EnqueueAsync(topic, Message("before"), outcomes.Record);
        var undeliveredBefore = await producer.FlushAsync();
        await producer.EnqueueAsync(topic, Message("queued"), outcomes.Record);
        var waiting = producer.EnqueueAsync(topic, Message("waiting"), outcomes.Record).AsTask();
        await Wait.ForAsync(() => ((KafkaProducer<Null, string>)producer).WaitingForRoom > 0, TimeSpan.FromSeconds(10), "the third enqueue waits for room");

        var raised = FatalErrorHook.Raise(producer, ErrorCode.OutOfOrderSequenceNumber, "raised by the scenario");
        await Wait.ForAsync(() => producer.FatalError is not null && waiting.IsCompleted, TimeSpan.FromSeconds(10), "the producer is faulted and the waiting enqueue ends");
        var failures = new List<ProducerFaultedException?>
        {
            Assert.ThrowsAsync<ProducerFaultedException>(async () => await waiting),
            Assert.ThrowsAsync<ProducerFaultedException>(async () => await producer.EnqueueAsync(topic, Message("after"))),
            Assert.Throws<ProducerFaultedException>(() => producer.TryEnqueue(topic, Message("after"))),
            Assert.ThrowsAsync<ProducerFaultedException>(async () => await producer.ProduceAsync(topic, Message("after"))),
        };
        var disposeClock = Stopwatch.StartNew();
        var disposing = producer.DisposeAsync().AsTask();
        await Wait.ForAsync(() => disposing.IsCompleted, options.FlushTimeoutOnDispose + TimeSpan.FromSeconds(10), "dispose returns");
        await disposing;
        var disposeTook = disposeClock.Elapsed;
        await reader.ReadAsync(outcomes.Delivered, TimeSpan.FromSeconds(30), TestContext.CurrentContext.CancellationToken);
        var written = reader.Records.Select(r => r.Message.Value).ToList();

        run.Row("fatal producer error", 2, outcomes.Delivered, written.Count - written.Distinct(StringComparer.Ordinal).Count(), 0, 0);
        TestContext.Out.WriteLine($"outcomes: {outcomes}; dispose took {disposeTook.TotalSeconds:F1} s; written: {string.Join(", ", written)}");
        Assert.Multiple(() =>
        {
            Assert.That(undeliveredBefore, Is.Zero, "the first message was delivered before the fault");
            Assert.That(raised, Is.EqualTo(ErrorCode.NoError), "librdkafka raised the fatal error");
            Assert.That(producer.FatalError, Is.Not.Null.And.Property(nameof(Error.IsFatal)).True);
            Assert.That(failures.Select(f => f?.Error.Code), Is.All.EqualTo(ErrorCode.OutOfOrderSequenceNumber), "the waiter and every later call fail with the fatal error");
            Assert.That(run.Logs.Count(1003), Is.EqualTo(1), "one critical log line");
            Assert.That(outcomes.Total, Is.EqualTo(2), $"one outcome for each accepted message, none for the refused ones ({outcomes})");
            Assert.That(written, Does.Contain("before"), "the message delivered before the fault is in the topic");
            Assert.That(written, Has.No.Member("waiting").And.No.Member("after"), "nothing refused was written");
            Assert.That(written, Has.Count.EqualTo(outcomes.Delivered), "the topic holds exactly the delivered messages");
        });
    }

    /// <summary>
    /// Twelve keys each carry their own sequence numbers at ~2,400 msg/s through a KafkaKit producer; after 1,000 are
    /// delivered every broker goes down for 3 s (the embedded cluster's brokers are set down; the Testcontainers broker is
    /// paused) and comes back. Every message is delivered, none fails, nothing is lost and per key the first occurrences
    /// are in order; duplicates are zero on a broker and counted on the embedded cluster.
    /// </summary>
    [Test]
    [CancelAfter(180_000)]
    public async Task EnqueueAsync_BrokersDownThenUpMidStream_AllDeliveredNoneLostKeyOrderKept()
    {
        const int keys = 12;
        var outage = TimeSpan.FromSeconds(3);
        await using var run = await StartAsync("outage", partitions: 3, brokersGoDown: true);
        var topic = run.Topic;
        await using var reader = new TopicReader<string, long>(run.Servers, topic, run.Partitions, keepRecords: true);
        var outcomes = new ProducerTestKit.Outcomes();
        var next = new long[keys];
        var sent = 0L;
        await using var producer = ProducerTestKit.Build<string, long>(
            ProducerTestKit.Options(run.Servers, ("reconnect.backoff.max.ms", "1000")), name: "outage-producer");
        using var stop = new CancellationTokenSource();
        var stream = Task.Run(async () =>
        {
            using var pace = new PeriodicTimer(TimeSpan.FromMilliseconds(5));
            try
            {
                while (await pace.WaitForNextTickAsync(stop.Token))
                {
                    for (var k = 0; k < keys; k++)
                    {
                        await producer.EnqueueAsync(topic, new Message<string, long> { Key = $"key-{k}", Value = next[k]++ }, outcomes.Record);
                        Interlocked.Increment(ref sent);
                    }
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                // stopped
            }
        });

        await Wait.ForAsync(() => outcomes.Delivered >= 1_000, TimeSpan.FromSeconds(30), "the stream flows");
        await run.Cluster.SetBrokersDownAsync();
        var down = Stopwatch.StartNew();
        var sentAtDown = Interlocked.Read(ref sent);
        try
        {
            await ScenarioRun.LastsAsync(down, outage, "the outage lasts its time");
        }
        finally
        {
            await run.Cluster.SetBrokersUpAsync(); // also when the test fails: a real broker is shared by the tier
        }

        var sentAtUp = Interlocked.Read(ref sent);
        await Wait.ForAsync(() => outcomes.Delivered >= sentAtUp, TimeSpan.FromSeconds(60), $"everything sent until the brokers came back is delivered ({outcomes})");
        var recovered = down.Elapsed - outage;
        await stop.CancelAsync();
        await stream;
        var undelivered = await producer.FlushAsync();
        var produced = Interlocked.Read(ref sent);
        var readBack = await reader.ReadAsync(produced, TimeSpan.FromSeconds(60), TestContext.CurrentContext.CancellationToken);
        var (duplicates, broken) = ProducerTestKit.CheckKeyedSequences(reader.Records, next);
        var distinct = readBack - duplicates;

        run.Row("brokers down 3 s during produce", produced, distinct, duplicates, 0, produced - distinct);
        TestContext.Out.WriteLine($"sent {sentAtUp - sentAtDown} during the outage; all delivered {recovered.TotalSeconds:F1} s after it; read back {readBack}");
        Assert.Multiple(() =>
        {
            Assert.That(sentAtUp - sentAtDown, Is.GreaterThan(1_000), "the stream went on during the outage");
            Assert.That(undelivered, Is.Zero);
            Assert.That(outcomes.Failed, Is.Zero, outcomes.ToString());
            Assert.That(outcomes.Delivered, Is.EqualTo(produced), "one delivered outcome per message");
            Assert.That(broken, Is.Empty, "no loss, and per key the first occurrences in order");
            Assert.That(duplicates, run.AllowedDuplicates(), "records written twice");
            Assert.That(readBack, Is.EqualTo(produced + duplicates));
            Assert.That(producer.FatalError, Is.Null);
        });
    }
}
