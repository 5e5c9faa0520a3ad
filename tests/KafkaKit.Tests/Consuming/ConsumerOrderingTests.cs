using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Consuming;

/// <summary>Ordering modes: Key and Unordered dispatch inside one partition, and the committed offset behind unfinished messages.</summary>
[TestFixture]
[Parallelizable(ParallelScope.Self)] // fixtures overlap (most of their time is spent waiting on the cluster); tests within one run in sequence
public sealed class ConsumerOrderingTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Test]
    [CancelAfter(60_000)]
    public async Task KeyMode_OnePartitionTwentyKeysRandomDelays_EachOnceInKeyOrderCommittedAtEndAndKeysConcurrent()
    {
        const int count = 2_000;
        const int keys = 20;
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("ord-key", partitions: 1);
        var random = new Random(42);
        var delays = Enumerable.Range(0, count).Select(_ => random.Next(0, 6)).ToArray(); // 0-5 ms, mean 2.5 ms
        KafkaProbe.Produce(cluster.BootstrapServers, "ord-key", Numbered(count, keys), partition: 0);

        var byKey = new ConcurrentDictionary<string, List<long>>();
        var inFlightPerKey = new ConcurrentDictionary<string, int>();
        var handled = new ConcurrentDictionary<long, int>();
        var overlapsOfOneKey = 0;
        var inFlight = 0;
        var maxInFlight = 0;
        long busyTicks = 0; // the handlers' own time, summed (Stopwatch ticks)
        long first = 0, last = 0; // Stopwatch timestamps of the first call's start and the latest call's end
        var options = ConsumerTestKit.Options(cluster, "ord-key-group", "ord-key");
        options.Ordering = ConsumerOrdering.Key;
        options.MaxConcurrency = keys;
        options.CommitInterval = TimeSpan.FromMilliseconds(200);
        await using var consumer = new KafkaConsumerBuilder<string, string>("ord-key", options)
            .SetHandler(async (r, ct) =>
            {
                var start = Stopwatch.GetTimestamp();
                Interlocked.CompareExchange(ref first, start, 0);
                ConsumerTestKit.InterlockedMax(ref maxInFlight, Interlocked.Increment(ref inFlight));
                if (inFlightPerKey.AddOrUpdate(r.Message.Key, 1, (_, n) => n + 1) > 1)
                {
                    Interlocked.Increment(ref overlapsOfOneKey);
                }

                var list = byKey.GetOrAdd(r.Message.Key, _ => []);
                lock (list)
                {
                    list.Add(r.Offset.Value);
                }

                await Task.Delay(delays[int.Parse(r.Message.Value, CultureInfo.InvariantCulture)], ct);
                inFlightPerKey.AddOrUpdate(r.Message.Key, 0, (_, n) => n - 1);
                Interlocked.Decrement(ref inFlight);
                handled.AddOrUpdate(r.Offset.Value, 1, (_, n) => n + 1);
                var end = Stopwatch.GetTimestamp();
                Interlocked.Add(ref busyTicks, end - start);
                Interlocked.Exchange(ref last, end);
            })
            .Build();

        await consumer.StartAsync();
        await Wait.ForAsync(() => handled.Count == count, Patience, () => $"{count} handled (so far {handled.Count})");
        var elapsed = Stopwatch.GetElapsedTime(Interlocked.Read(ref first), Interlocked.Read(ref last));
        await ConsumerTestKit.WaitForCommittedAsync(cluster, "ord-key-group", "ord-key", 1, c => c[0] == count, Patience, $"committed {count}");

        var busy = Stopwatch.GetElapsedTime(0, Interlocked.Read(ref busyTicks));
        TestContext.Out.WriteLine($"Key mode: {count} messages, {keys} keys, 0-5 ms handler: {elapsed.TotalMilliseconds:F0} ms from the first call's start to the last call's end; the handlers' own time summed {busy.TotalMilliseconds:F0} ms (mean concurrency {busy / elapsed:F1}); at most {maxInFlight} in flight");
        Assert.Multiple(() =>
        {
            Assert.That(handled.Values, Has.All.EqualTo(1), "every message handled once");
            Assert.That(overlapsOfOneKey, Is.Zero, "one key is never handled twice at the same time");
            foreach (var (key, offsets) in byKey)
            {
                Assert.That(offsets, Is.Ordered, $"key {key} handled in offset order");
            }

            Assert.That(maxInFlight, Is.InRange(2, keys), "messages of different keys in flight together, at most MaxConcurrency");

            // Not a speed target (OrderingBenchmarks measures that): the handlers' own time summed over the run's wall time
            // is the mean number of calls in flight. Both grow alike when the machine is loaded (a Task.Delay(2) that
            // resumes late counts late in both), so the ratio stays near the keys' concurrency (17 measured with 20 keys,
            // with and without load); one key at a time gives at most 1.
            Assert.That(elapsed, Is.LessThan(busy / 2), "on average more than two calls in flight");
        });
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task UnorderedMode_OnePartition_AllHandledOnceConcurrentlyAndCommittedAtEnd()
    {
        const int count = 500;
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("ord-any", partitions: 1);
        KafkaProbe.Produce(cluster.BootstrapServers, "ord-any", Numbered(count, keys: 1), partition: 0); // one key: Key mode would be sequential

        var handled = new ConcurrentDictionary<long, int>();
        var inFlight = 0;
        var maxInFlight = 0;
        var options = ConsumerTestKit.Options(cluster, "ord-any-group", "ord-any");
        options.Ordering = ConsumerOrdering.Unordered;
        options.MaxConcurrency = 8;
        options.CommitInterval = TimeSpan.FromMilliseconds(200);
        await using var consumer = new KafkaConsumerBuilder<string, string>("ord-any", options)
            .SetHandler(async (r, ct) =>
            {
                var now = Interlocked.Increment(ref inFlight);
                ConsumerTestKit.InterlockedMax(ref maxInFlight, now);
                await Task.Delay(1 + (int)(r.Offset.Value % 4), ct);
                Interlocked.Decrement(ref inFlight);
                handled.AddOrUpdate(r.Offset.Value, 1, (_, n) => n + 1);
            })
            .Build();

        await consumer.StartAsync();
        await Wait.ForAsync(() => handled.Count == count, Patience, () => $"{count} handled (so far {handled.Count})");
        await ConsumerTestKit.WaitForCommittedAsync(cluster, "ord-any-group", "ord-any", 1, c => c[0] == count, Patience, $"committed {count}");

        Assert.Multiple(() =>
        {
            Assert.That(handled.Values, Has.All.EqualTo(1), "every message handled once");
            Assert.That(maxInFlight, Is.InRange(2, 8), "messages of one partition in flight together, at most MaxConcurrency");
        });
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task KeyMode_SlowMessageOfKeyA_KeyBGoesOnAndCommittedOffsetStaysBeforeA()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("ord-slow", partitions: 1);
        // offsets: 0 = B, 1 = A (held), 2..11 = B, 12 = A
        KafkaProbe.Produce(
            cluster.BootstrapServers,
            "ord-slow",
            [Keyed("B", "b0"), Keyed("A", "a0"), .. Enumerable.Range(1, 10).Select(i => Keyed("B", $"b{i}")), Keyed("A", "a1")],
            partition: 0);

        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var aStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handled = new ConcurrentQueue<string>();
        var options = ConsumerTestKit.Options(cluster, "ord-slow-group", "ord-slow");
        options.Ordering = ConsumerOrdering.Key;
        options.CommitInterval = TimeSpan.FromMilliseconds(100);
        await using var consumer = new KafkaConsumerBuilder<string, string>("ord-slow", options)
            .SetHandler(async (r, ct) =>
            {
                if (r.Message.Value == "a0")
                {
                    aStarted.TrySetResult();
                    await release.Task.WaitAsync(ct);
                }

                handled.Enqueue(r.Message.Value);
            })
            .Build();

        await consumer.StartAsync();
        await aStarted.Task.WaitAsync(Patience);
        await Wait.ForAsync(() => handled.Count(v => v.StartsWith('b')) == 11, Patience, "all B handled while a0 is held");
        await ConsumerTestKit.WaitForCommittedAsync(cluster, "ord-slow-group", "ord-slow", 1, c => c[0] >= 1, Patience, "b0 committed");

        // Several commit intervals after every B finished: the committed offset must still stop at a0 (offset 1).
        var samples = new List<long>();
        await Wait.ForAsync(
            async () =>
            {
                samples.Add(KafkaProbe.Committed(cluster.BootstrapServers, "ord-slow-group", "ord-slow", 1)[0]);
                await Task.Delay(100, TestContext.CurrentContext.CancellationToken); // a sampling interval, not a sleep
                return samples.Count >= 8;
            },
            Patience,
            "8 samples of the committed offset");
        var handledWhileHeld = handled.ToArray();

        release.SetResult();
        await Wait.ForAsync(() => handled.Count == 13, Patience, "a0 and a1 handled after the release");
        await ConsumerTestKit.WaitForCommittedAsync(cluster, "ord-slow-group", "ord-slow", 1, c => c[0] == 13, Patience, "committed 13 after the release");

        Assert.Multiple(() =>
        {
            Assert.That(handledWhileHeld, Does.Not.Contain("a0").And.Not.Contain("a1"), "a1 waits behind a0");
            Assert.That(samples, Has.All.EqualTo(1), "the committed offset does not pass the unfinished a0");
            Assert.That(handled.Where(v => v.StartsWith('a')), Is.EqualTo(new[] { "a0", "a1" }), "key A in offset order");
        });
    }

    [Test]
    [CancelAfter(90_000)]
    public async Task UnorderedMode_RevokeAndStopWithUnfinishedMessageInTheMiddle_CommittedOffsetStopsBeforeIt()
    {
        const int perPartition = 10;
        const long held = 5;
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("ord-rev", partitions: 2);
        var recorder = new ConsumerRecorder();
        KafkaConsumer<string, string> Build(string name)
        {
            var options = ConsumerTestKit.Options(cluster, "ord-rev-group", "ord-rev");
            options.Ordering = ConsumerOrdering.Unordered;
            options.CommitInterval = TimeSpan.FromMilliseconds(200);
            options.RevokeTimeout = TimeSpan.FromSeconds(1);
            options.ShutdownTimeout = TimeSpan.FromSeconds(1);
            return recorder.Attach(new KafkaConsumerBuilder<string, string>(name, options), name)
                .SetHandler(async (r, ct) =>
                {
                    recorder.Record(name, r);
                    if (r.Offset.Value == held)
                    {
                        await Task.Delay(Timeout.Infinite, ct); // unfinished until cancelled
                    }
                })
                .Build();
        }

        for (var p = 0; p < 2; p++)
        {
            KafkaProbe.Produce(cluster.BootstrapServers, "ord-rev", Numbered(perPartition, keys: perPartition), partition: p);
        }

        var a = Build("a");
        await a.StartAsync();
        await Wait.ForAsync(() => recorder.HandledBy("a").Count == 2 * perPartition, Patience, "a started every message of both partitions");

        await using var b = Build("b");
        await b.StartAsync();
        await Wait.ForAsync(() => b.Assignment.Count == 1, Patience, "b owns one partition");
        var moved = b.Assignment[0].Partition.Value;
        await Wait.ForAsync(() => recorder.HandledBy("b").Count(h => h.Partition == moved) == perPartition - held, Patience, "b handles the moved partition from the unfinished message on");
        var firstOfB = recorder.HandledBy("b").Where(h => h.Partition == moved).Min(h => h.Offset); // Unordered: 5 and 6 start together
        var afterRevoke = KafkaProbe.Committed(cluster.BootstrapServers, "ord-rev-group", "ord-rev", 2);

        var kept = 1 - moved;
        await a.StopAsync();
        await Wait.ForAsync(() => recorder.HandledBy("b").Any(h => h.Partition == kept), Patience, "b receives a's other partition");
        var firstOfBOnKept = recorder.HandledBy("b").Where(h => h.Partition == kept).Min(h => h.Offset);
        var afterStop = KafkaProbe.Committed(cluster.BootstrapServers, "ord-rev-group", "ord-rev", 2);
        await a.DisposeAsync();

        Assert.Multiple(() =>
        {
            Assert.That(afterRevoke[moved], Is.EqualTo(held), "the revoke commits up to the unfinished message, not past it");
            Assert.That(firstOfB, Is.EqualTo(held), "the next owner starts at the unfinished message");
            Assert.That(afterStop[kept], Is.EqualTo(held), "the stop commits up to the unfinished message, not past it");
            Assert.That(firstOfBOnKept, Is.EqualTo(held), "after the stop the next owner starts at the unfinished message");
            Assert.That(a.Fault, Is.Null);
        });
    }

    private static IEnumerable<Message<string, string>> Numbered(int count, int keys) =>
        Enumerable.Range(0, count).Select(i => Keyed("k" + (i % keys).ToString(CultureInfo.InvariantCulture), i.ToString(CultureInfo.InvariantCulture)));

    private static Message<string, string> Keyed(string key, string value) => new() { Key = key, Value = value };
}
