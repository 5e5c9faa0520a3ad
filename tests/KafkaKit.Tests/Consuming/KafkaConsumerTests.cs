using System.Collections.Concurrent;
using System.Globalization;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Producing;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Consuming;

[TestFixture]
[Parallelizable(ParallelScope.Self)] // fixtures overlap (most of their time is spent waiting on the cluster); tests within one run in sequence
public sealed partial class KafkaConsumerTests
{
    [Test]
    [CancelAfter(90_000)]
    public async Task EndToEnd_TwoMembersTenThousandKeyedMessages_AllHandledInOrderAndCommittedAtEnd([Values] GroupProtocol protocol)
    {
        await using var cluster = EmbeddedKafkaCluster.Start(brokers: 3);
        cluster.CreateTopic("e2e", partitions: 6, replicationFactor: 3);
        const int count = 10_000;

        var producerOptions = new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers };
        await using (var producer = new KafkaProducerBuilder<string, string>("e2e-producer", producerOptions).Build())
        {
            for (var i = 0; i < count; i++)
            {
                await producer.EnqueueAsync("e2e", new Message<string, string> { Key = $"key-{i % 100}", Value = i.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            }

            Assert.That(await producer.FlushAsync(), Is.Zero);
        }

        var handled = new ConcurrentDictionary<long, int>();
        var lastOffset = new ConcurrentDictionary<int, long>();
        var orderViolations = 0;
        var handledCount = 0;
        ValueTask Handle(ConsumeResult<string, string> result, CancellationToken ct)
        {
            var previous = lastOffset.GetValueOrDefault(result.Partition.Value, -1);
            if (result.Offset.Value <= previous)
            {
                Interlocked.Increment(ref orderViolations);
            }

            lastOffset[result.Partition.Value] = result.Offset.Value;
            handled.AddOrUpdate(long.Parse(result.Message.Value, System.Globalization.CultureInfo.InvariantCulture), 1, (_, n) => n + 1);
            Interlocked.Increment(ref handledCount);
            return ValueTask.CompletedTask;
        }

        var a = new KafkaConsumerBuilder<string, string>("e2e-a", ConsumerTestKit.Options(cluster, "e2e-group", protocol, "e2e")).SetHandler(Handle).Build();
        var b = new KafkaConsumerBuilder<string, string>("e2e-b", ConsumerTestKit.Options(cluster, "e2e-group", protocol, "e2e")).SetHandler(Handle).Build();
        await a.StartAsync();
        await b.StartAsync();

        await Wait.ForAsync(() => handled.Count == count, TimeSpan.FromSeconds(60), $"{count} distinct messages handled (have {handled.Count})");
        await a.StopAsync();
        await b.StopAsync();

        Assert.Multiple(() =>
        {
            Assert.That(handled, Has.Count.EqualTo(count));
            Assert.That(orderViolations, Is.Zero, "per-partition offsets must be handled in increasing order");
            Assert.That(a.State, Is.EqualTo(KafkaConsumerState.Stopped));
            Assert.That(b.State, Is.EqualTo(KafkaConsumerState.Stopped));
        });
        var committed = KafkaProbe.Committed(cluster.BootstrapServers, "e2e-group", "e2e", 6);
        var ends = KafkaProbe.EndOffsets(cluster.BootstrapServers, "e2e", 6);
        Assert.That(committed, Is.EqualTo(ends), $"after stop the committed offsets equal the end offsets: committed {string.Join(",", committed)} ends {string.Join(",", ends)}; commit failures a={a.CommitFailures} b={b.CommitFailures}");
        TestContext.Out.WriteLine($"handled {handledCount} calls for {count} messages (re-deliveries {handledCount - count})");
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task StopAsync_DuringSteadyConsumption_CommitsLastHandledPlusOneAndNextMemberStartsThere([Values] GroupProtocol protocol)
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("steady", partitions: 3);
        var recorder = new ConsumerRecorder();
        KafkaConsumer<string, string> Build(string name)
        {
            var options = ConsumerTestKit.Options(cluster, "steady-group", protocol, "steady");
            options.CommitInterval = TimeSpan.FromSeconds(1);
            return new KafkaConsumerBuilder<string, string>(name, options)
                .SetHandler(async (r, ct) =>
                {
                    await Task.Delay(1, ct);
                    recorder.Record(name, r);
                })
                .Build();
        }

        await using var producer = new SteadyProducer(cluster, "steady");
        var a = Build("a");
        await a.StartAsync();
        await Wait.ForAsync(() => recorder.Handled.Count >= 300, TimeSpan.FromSeconds(20), "a handled 300 messages");
        await a.StopAsync();
        var produced = await producer.StopAsync();

        var byA = recorder.HandledBy("a").GroupBy(h => h.Partition).ToDictionary(g => g.Key, g => g.Select(h => h.Offset).ToList());
        var committed = KafkaProbe.Committed(cluster.BootstrapServers, "steady-group", "steady", 3);
        var ends = KafkaProbe.EndOffsets(cluster.BootstrapServers, "steady", 3);
        Assert.Multiple(() =>
        {
            Assert.That(a.State, Is.EqualTo(KafkaConsumerState.Stopped));
            foreach (var (partition, offsets) in byA)
            {
                Assert.That(offsets, Is.EqualTo(Enumerable.Range(0, offsets.Count).Select(o => (long)o)), $"p{partition}: a handled a contiguous prefix, in order");
                Assert.That(committed[partition], Is.EqualTo(offsets[^1] + 1), $"p{partition}: committed = last handled + 1");
            }

            Assert.That(ends.Values.Sum(), Is.EqualTo(produced));
            Assert.That(ends.Keys.Where(p => !byA.ContainsKey(p)).Select(p => committed[p]), Is.All.EqualTo(Offset.Unset.Value), "nothing committed where nothing was handled");
        });

        await using var b = Build("b");
        await b.StartAsync();
        await Wait.ForAsync(() => recorder.Handled.Count == produced, TimeSpan.FromSeconds(30), $"every message handled once by a or b ({produced})");

        var byB = recorder.HandledBy("b").GroupBy(h => h.Partition).ToDictionary(g => g.Key, g => g.Select(h => h.Offset).ToList());
        TestContext.Out.WriteLine($"a handled {ConsumerTestKit.Format(byA.ToDictionary(p => p.Key, p => p.Value.Count))}; committed at stop {ConsumerTestKit.Format(committed)}; b handled {ConsumerTestKit.Format(byB.ToDictionary(p => p.Key, p => p.Value.Count))}; ends {ConsumerTestKit.Format(ends)}");
        Assert.Multiple(() =>
        {
            foreach (var (partition, offsets) in byB)
            {
                var start = committed[partition] < 0 ? 0 : committed[partition];
                Assert.That(offsets, Is.EqualTo(Enumerable.Range((int)start, (int)(ends[partition] - start)).Select(o => (long)o)), $"p{partition}: b starts exactly at the committed offset and handles the rest in order");
            }

            Assert.That(recorder.Handled.Select(h => (h.Partition, h.Offset)).Distinct().Count(), Is.EqualTo(produced), "no message handled twice, none missed");
        });
        await a.DisposeAsync();
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task SlowPartition_HandlerBlocked_OtherPartitionFlowsAndBlockedOnePausesThenResumesInOrder()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("slowp", partitions: 2);
        const int perPartition = 60;
        var options = ConsumerTestKit.Options(cluster, "slowp-group", "slowp");
        options.PartitionBufferSize = 8;
        options.CommitInterval = TimeSpan.FromMilliseconds(500);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var recorder = new ConsumerRecorder();
        var logs = new CapturingLoggerFactory();
        await using var consumer = new KafkaConsumerBuilder<string, string>("slowp", options)
            .SetLoggerFactory(logs)
            .SetHandler(async (r, ct) =>
            {
                if (r.Partition.Value == 0)
                {
                    await gate.Task.WaitAsync(ct);
                }

                recorder.Record("slowp", r);
            })
            .Build();

        KafkaProbe.Produce(cluster.BootstrapServers, "slowp", ConsumerTestKit.Messages("a", perPartition), partition: 0);
        KafkaProbe.Produce(cluster.BootstrapServers, "slowp", ConsumerTestKit.Messages("b", perPartition), partition: 1);
        await consumer.StartAsync();
        await Wait.ForAsync(() => recorder.Handled.Count(h => h.Partition == 1) == perPartition, TimeSpan.FromSeconds(15), "p1 fully handled while p0 is blocked");
        await Wait.ForAsync(() => PausedCount(logs, 0) >= 1, TimeSpan.FromSeconds(5), "p0 paused (buffer full)");
        var p0BeforeGate = recorder.Handled.Count(h => h.Partition == 0);

        gate.SetResult();
        await Wait.ForAsync(() => recorder.Handled.Count(h => h.Partition == 0) == perPartition, TimeSpan.FromSeconds(15), "p0 fully handled after the gate opened");
        var committed = await ConsumerTestKit.WaitForCommittedAsync(cluster, "slowp-group", "slowp", 2, c => c[0] == perPartition && c[1] == perPartition, TimeSpan.FromSeconds(10), "both partitions committed to the end");

        var p0 = recorder.Handled.Where(h => h.Partition == 0).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(p0BeforeGate, Is.Zero, "nothing of p0 was handled while its handler was blocked");
            Assert.That(p0.Select(h => h.Offset), Is.EqualTo(Enumerable.Range(0, perPartition).Select(o => (long)o)), "p0: nothing lost, duplicated or reordered across pause/resume");
            Assert.That(p0.Select(h => h.Value), Is.EqualTo(ConsumerTestKit.Messages("a", perPartition).Select(m => m.Value)));
            Assert.That(logs.Lines.Count(l => l.EventId.Id == 2020 && l.Message.Contains(" [0]:", StringComparison.Ordinal)), Is.GreaterThanOrEqualTo(1), "p0 resumed");
            Assert.That(committed[0], Is.EqualTo(perPartition));
            Assert.That(consumer.SinceLastPoll, Is.LessThan(TimeSpan.FromSeconds(2)), "the poll loop kept polling");
        });
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task StartAsync_RegexSubscription_ConsumesEveryMatchingTopicOnly()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("orders-eu", partitions: 1);
        cluster.CreateTopic("orders-us", partitions: 2);
        cluster.CreateTopic("payments", partitions: 1);
        foreach (var topic in new[] { "orders-eu", "orders-us", "payments" })
        {
            KafkaProbe.Produce(cluster.BootstrapServers, topic, ConsumerTestKit.Messages(topic + "-", 3));
        }

        var recorder = new ConsumerRecorder();
        await using var consumer = new KafkaConsumerBuilder<string, string>("regex", ConsumerTestKit.Options(cluster, "regex-group", "^orders-.*"))
            .SetHandler((r, _) =>
            {
                recorder.Record("regex", r);
                return ValueTask.CompletedTask;
            })
            .Build();

        await consumer.StartAsync();
        await Wait.ForAsync(() => recorder.Handled.Count == 6, TimeSpan.FromSeconds(15), "the 6 messages of the two orders topics");
        await consumer.StopAsync();

        Assert.Multiple(() =>
        {
            Assert.That(recorder.Handled.Select(h => h.Topic).Distinct().Order(), Is.EqualTo(new[] { "orders-eu", "orders-us" }));
            Assert.That(consumer.Assignment, Is.Empty, "released at stop");
            Assert.That(KafkaProbe.Committed(cluster.BootstrapServers, "regex-group", "orders-eu", 1)[0], Is.EqualTo(3));
            Assert.That(KafkaProbe.Committed(cluster.BootstrapServers, "regex-group", "orders-us", 2).Values.Where(o => o >= 0).Sum(), Is.EqualTo(3));
            Assert.That(KafkaProbe.Committed(cluster.BootstrapServers, "regex-group", "payments", 1)[0], Is.EqualTo(Offset.Unset.Value), "the non-matching topic is not consumed");
        });
    }

    private static int PausedCount(CapturingLoggerFactory logs, int partition) =>
        logs.Lines.Count(l => l.EventId.Id == 2019 && l.Message.Contains($" [{partition.ToString(CultureInfo.InvariantCulture)}]:", StringComparison.Ordinal));
}
