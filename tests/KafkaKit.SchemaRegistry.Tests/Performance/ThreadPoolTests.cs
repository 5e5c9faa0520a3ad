using System.Diagnostics;
using Confluent.Kafka;
using Confluent.Kafka.SyncOverAsync;
using Confluent.SchemaRegistry;
using Confluent.SchemaRegistry.Serdes;
using KafkaKit.Producing;
using KafkaKit.SchemaRegistry.Avro;
using KafkaKit.SchemaRegistry.Tests.Support;
using KafkaKit.Testing;

namespace KafkaKit.SchemaRegistry.Tests.Performance;

/// <summary>
/// A slow registry with the thread pool at 2 minimum threads: KafkaKit awaits the registry (no pool thread waits), so
/// 200 concurrent first produces finish in about the registry's latency per subject; Confluent's serializer wrapped
/// with AsSyncOverAsync blocks a pool thread per call, and the registry's responses queue behind the blocked calls.
/// </summary>
[TestFixture]
[NonParallelizable]
[CancelAfter(180_000)]
public sealed class ThreadPoolTests
{
    private const int Produces = 200;
    private const int Subjects = 4;
    private static readonly TimeSpan Latency = TimeSpan.FromMilliseconds(300);

    [Test]
    public async Task SlowRegistry_PoolAtTwoThreads_KafkaKitProgresses_WhereSyncOverAsyncStalls()
    {
        ThreadPool.GetMinThreads(out var workers, out var io);
        ThreadPool.SetMinThreads(2, 2);
        try
        {
            await using var cluster = EmbeddedKafkaCluster.Start();
            await using var registry = EmbeddedSchemaRegistry.Start();
            for (var t = 0; t < Subjects; t++)
            {
                cluster.CreateTopic($"kk-{t}");
                cluster.CreateTopic($"raw-{t}");
            }

            registry.SetLatency(Latency);

            // KafkaKit: cold cache, 200 produces started from pool threads at once.
            using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
            await using var producer = new KafkaProducerBuilder<string, Order>("kk", new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers })
                .UseAvro(client, new SchemaRegistryOptions { Url = registry.Url })
                .Build();
            var threadsBefore = ThreadPool.ThreadCount;
            var kafkaKit = await RunAsync(i => Task.Run(async () => await producer.EnqueueAsync($"kk-{i % Subjects}", Message(i))));

            // Raw Confluent.Kafka with the same serializer made synchronous by AsSyncOverAsync (Confluent's documented
            // way to use it with Produce), the same 200 produces.
            using var rawClient = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
            using var raw = new ProducerBuilder<string, Order>(new ProducerConfig { BootstrapServers = cluster.BootstrapServers })
                .SetValueSerializer(new AvroSerializer<Order>(rawClient).AsSyncOverAsync())
                .Build();
            var budget = TimeSpan.FromTicks(Math.Max(kafkaKit.Elapsed.Ticks * 3, TimeSpan.FromSeconds(5).Ticks));
            var syncOverAsync = await RunAsync(i => Task.Run(() => raw.Produce($"raw-{i % Subjects}", Message(i))), budget);

            TestContext.Out.WriteLine($"KafkaKit: {Produces} first produces over {Subjects} subjects in {kafkaKit.Elapsed.TotalSeconds:F2} s, pool threads {threadsBefore} -> max {kafkaKit.MaxThreads}.");
            TestContext.Out.WriteLine($"AsSyncOverAsync: {syncOverAsync.DoneAtBudget} of {Produces} done after {budget.TotalSeconds:F1} s, all in {syncOverAsync.Elapsed.TotalSeconds:F2} s, pool threads max {syncOverAsync.MaxThreads}.");
            Assert.Multiple(() =>
            {
                Assert.That(kafkaKit.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)), "KafkaKit: about one registry round trip per subject");
                Assert.That(kafkaKit.MaxThreads, Is.LessThanOrEqualTo(threadsBefore + 4), "KafkaKit blocks no pool thread, so the pool does not grow");
                Assert.That(syncOverAsync.DoneAtBudget, Is.LessThan(Produces), "sync-over-async stalls: registry responses wait behind blocked pool threads");
                Assert.That(syncOverAsync.MaxThreads, Is.GreaterThan(kafkaKit.MaxThreads), "sync-over-async makes the pool inject threads");
            });
        }
        finally
        {
            ThreadPool.SetMinThreads(workers, io);
        }
    }

    private static Message<string, Order> Message(int i) => new() { Key = $"k{i}", Value = new Order { Id = $"o-{i}", Amount = i } };

    private static async Task<Run> RunAsync(Func<int, Task> produce, TimeSpan? budget = null)
    {
        var watch = Stopwatch.StartNew();
        var tasks = Enumerable.Range(0, Produces).Select(produce).ToList();
        var maxThreads = ThreadPool.ThreadCount;
        var all = Task.WhenAll(tasks);
        var doneAtBudget = -1;
        while (!all.IsCompleted && watch.Elapsed < TimeSpan.FromSeconds(150))
        {
            maxThreads = Math.Max(maxThreads, ThreadPool.ThreadCount);
            if (budget is { } b && doneAtBudget < 0 && watch.Elapsed >= b)
            {
                doneAtBudget = tasks.Count(t => t.IsCompleted);
            }

            // A dedicated thread samples: this test's own waits must not need the pool it measures.
            await Task.Factory.StartNew(() => Thread.Sleep(20), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        await all;
        return new Run(watch.Elapsed, Math.Max(maxThreads, ThreadPool.ThreadCount), doneAtBudget < 0 ? Produces : doneAtBudget);
    }

    private sealed record Run(TimeSpan Elapsed, int MaxThreads, int DoneAtBudget);
}
