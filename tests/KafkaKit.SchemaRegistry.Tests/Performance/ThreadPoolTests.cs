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
/// The baseline is watched for a fixed window only; then the pool's minimum is raised so its blocked calls drain at
/// once (left blocked, they would hold ~200 pool threads for most of a minute, slowing the fixtures that run after).
/// </summary>
[TestFixture]
[NonParallelizable]
[CancelAfter(20_000)]
public sealed class ThreadPoolTests
{
    private const int Produces = 200;
    private const int Subjects = 4;
    private static readonly TimeSpan Latency = TimeSpan.FromMilliseconds(300);
    private static readonly TimeSpan BaselineWindow = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(8);

    [Test]
    public async Task SlowRegistry_PoolAtTwoThreads_KafkaKitProgresses_WhereSyncOverAsyncStalls()
    {
        var test = Stopwatch.StartNew();
        ThreadPool.GetMinThreads(out var workers, out var io);
        ThreadPool.SetMinThreads(2, 2);
        Task? blocked = null;
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
            var kafkaKitTasks = Start(i => Task.Run(async () => await producer.EnqueueAsync($"kk-{i % Subjects}", Message(i))));
            var kafkaKit = await WatchAsync(kafkaKitTasks, TimeSpan.FromSeconds(10));

            // Raw Confluent.Kafka with the same serializer made synchronous by AsSyncOverAsync (Confluent's documented
            // way to use it with Produce), the same 200 produces, watched for the window.
            using var rawClient = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
            using var raw = new ProducerBuilder<string, Order>(new ProducerConfig { BootstrapServers = cluster.BootstrapServers })
                .SetValueSerializer(new AvroSerializer<Order>(rawClient).AsSyncOverAsync())
                .Build();
            var rawTasks = Start(i => Task.Run(() => raw.Produce($"raw-{i % Subjects}", Message(i))));
            blocked = Task.WhenAll(rawTasks);
            var syncOverAsync = await WatchAsync(rawTasks, BaselineWindow);
            var drained = await DrainAsync(blocked, workers, io);

            TestContext.Out.WriteLine($"KafkaKit: {kafkaKit.Done} of {Produces} first produces over {Subjects} subjects in {kafkaKit.Elapsed.TotalSeconds:F2} s, pool threads {threadsBefore} -> max {kafkaKit.MaxThreads}.");
            TestContext.Out.WriteLine($"AsSyncOverAsync: {syncOverAsync.Done} of {Produces} done after {syncOverAsync.Elapsed.TotalSeconds:F1} s, pool threads max {syncOverAsync.MaxThreads}; drained in {drained.TotalSeconds:F2} s once the pool minimum was raised; test {test.Elapsed.TotalSeconds:F1} s.");
            Assert.Multiple(() =>
            {
                Assert.That(kafkaKit.Done, Is.EqualTo(Produces), "KafkaKit: every produce done");
                Assert.That(kafkaKit.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)), "KafkaKit: about one registry round trip per subject");
                Assert.That(kafkaKit.MaxThreads, Is.LessThanOrEqualTo(threadsBefore + 4), "KafkaKit blocks no pool thread, so the pool does not grow");
                Assert.That(syncOverAsync.Done, Is.Zero, $"sync-over-async makes no progress in {BaselineWindow.TotalSeconds:F0} s: registry responses wait behind blocked pool threads");
                Assert.That(syncOverAsync.MaxThreads, Is.GreaterThan(kafkaKit.MaxThreads), "sync-over-async makes the pool inject threads");
                Assert.That(blocked.IsCompletedSuccessfully, Is.True, "the blocked baseline drained once the pool minimum was raised");
            });
        }
        finally
        {
            if (blocked is { IsCompleted: false })
            {
                await DrainAsync(blocked, workers, io);
            }

            ThreadPool.SetMinThreads(workers, io);
        }
    }

    private static Message<string, Order> Message(int i) => new() { Key = $"k{i}", Value = new Order { Id = $"o-{i}", Amount = i } };

    private static List<Task> Start(Func<int, Task> produce) => Enumerable.Range(0, Produces).Select(produce).ToList();

    /// <summary>Samples the pool until every task is done or <paramref name="window"/> passes.</summary>
    private static async Task<Run> WatchAsync(List<Task> tasks, TimeSpan window)
    {
        var watch = Stopwatch.StartNew();
        var maxThreads = ThreadPool.ThreadCount;
        while (!tasks.TrueForAll(t => t.IsCompleted) && watch.Elapsed < window)
        {
            maxThreads = Math.Max(maxThreads, ThreadPool.ThreadCount);

            // A dedicated thread samples: this test's own waits must not need the pool it measures.
            await Task.Factory.StartNew(() => Thread.Sleep(20), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        return new Run(watch.Elapsed, Math.Max(maxThreads, ThreadPool.ThreadCount), tasks.Count(t => t.IsCompletedSuccessfully));
    }

    /// <summary>
    /// Raises the pool minimum above the number of blocked calls (never below the process's own minimum) so the pool
    /// starts the threads the registry responses need at once, and waits for the blocked calls at most <see cref="DrainTimeout"/>.
    /// </summary>
    private static async Task<TimeSpan> DrainAsync(Task blocked, int workers, int io)
    {
        var watch = Stopwatch.StartNew();
        ThreadPool.SetMinThreads(Math.Max(workers, Produces + 32), Math.Max(io, 2));
        // A timeout or a failed produce is reported by the caller's assertion on the blocked task.
        await blocked.WaitAsync(DrainTimeout).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        return watch.Elapsed;
    }

    private sealed record Run(TimeSpan Elapsed, int MaxThreads, int Done);
}
