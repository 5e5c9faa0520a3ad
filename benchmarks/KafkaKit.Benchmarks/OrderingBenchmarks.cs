using System.Diagnostics;
using System.Globalization;
using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using KafkaKit.Consuming;

namespace KafkaKit.Benchmarks;

/// <summary>
/// The ordering modes on Confluent Parallel Consumer's scenario: 10,000 records of one partition, a handler that awaits
/// a random 0-5 ms (seeded: record i awaits the same time in every case). <see cref="ConsumerOrdering.Partition"/> (the
/// baseline, one record at a time) against <see cref="ConsumerOrdering.Key"/> with 20 keys (at most 20 in flight) and
/// <see cref="ConsumerOrdering.Key"/> and <see cref="ConsumerOrdering.Unordered"/> with 1,000 keys
/// (<see cref="KafkaConsumerOptions.MaxConcurrency"/> <see cref="WideConcurrency"/>). Each invocation measures the time
/// for a joined, idle consumer to handle the records; see <see cref="ConsumeFixture"/>.
/// </summary>
/// <remarks>
/// The ideal time of a case is N x mean delay / min(keys, MaxConcurrency). <c>Task.Delay(n)</c> lasts at least the
/// timer's resolution (about 1.1 ms for n = 1 on an idle Linux machine; 0 completes at once), so the handler measures
/// the delays it actually awaited and the global cleanup prints their mean and the ideal time per record it implies.
/// </remarks>
[MemoryDiagnoser]
[BenchmarkCategory(BenchmarkConfig.Long)]
public class OrderingBenchmarks
{
    /// <summary>Records per invocation.</summary>
    public const int Messages = 10_000;

    /// <summary>The MaxConcurrency of the 1,000-key cases: at most this many records in flight.</summary>
    public const int WideConcurrency = 200;

    private const int FewKeys = 20;
    private const int ManyKeys = 1_000;

    /// <summary>The delay of record i (by offset modulo <see cref="Messages"/>), ms: 0-5, seeded.</summary>
    private static readonly int[] Delays = NewDelays();

    private ConsumeFixture? _fixture;
    private int _inFlightBound;
    private long _delayTicks;
    private long _delayCalls;

    /// <summary>Partition mode: one record at a time.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(PartitionOrder))]
    public Task SetupPartitionAsync() => SetupAsync("bench-order-partition", keys: 0, ConsumerOrdering.Partition, maxConcurrency: 1);

    /// <summary>Key mode, 20 keys, MaxConcurrency 20.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(KeyOrder20Keys))]
    public Task SetupKey20Async() => SetupAsync("bench-order-key20", FewKeys, ConsumerOrdering.Key, FewKeys);

    /// <summary>Key mode, 1,000 keys, MaxConcurrency <see cref="WideConcurrency"/>.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(KeyOrder1000Keys))]
    public Task SetupKey1000Async() => SetupAsync("bench-order-key1000", ManyKeys, ConsumerOrdering.Key, WideConcurrency);

    /// <summary>Unordered, 1,000 keys, MaxConcurrency <see cref="WideConcurrency"/>.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(Unordered1000Keys))]
    public Task SetupUnorderedAsync() => SetupAsync("bench-order-unordered", ManyKeys, ConsumerOrdering.Unordered, WideConcurrency);

    /// <summary>Queues the invocation's records in the holding feeder.</summary>
    [IterationSetup]
    public void Prepare() => _fixture!.Prepare();

    /// <summary>Partition mode: the records one at a time in offset order.</summary>
    /// <returns>A task that completes when the last record was handled.</returns>
    [Benchmark(Baseline = true, OperationsPerInvoke = Messages)]
    public Task PartitionOrder() => _fixture!.RunKafkaKitAsync();

    /// <summary>Key mode, 20 keys: one record per key at a time.</summary>
    /// <returns>A task that completes when the last record was handled.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public Task KeyOrder20Keys() => _fixture!.RunKafkaKitAsync();

    /// <summary>Key mode, 1,000 keys.</summary>
    /// <returns>A task that completes when the last record was handled.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public Task KeyOrder1000Keys() => _fixture!.RunKafkaKitAsync();

    /// <summary>Unordered, 1,000 keys.</summary>
    /// <returns>A task that completes when the last record was handled.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public Task Unordered1000Keys() => _fixture!.RunKafkaKitAsync();

    /// <summary>Prints the handler's measured mean delay and the ideal time per record, then stops the consumer and the cluster.</summary>
    /// <returns>A task that completes when released.</returns>
    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        var calls = Interlocked.Read(ref _delayCalls);
        if (calls > 0)
        {
            var mean = TimeSpan.FromTicks(Interlocked.Read(ref _delayTicks) / calls);
            Console.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"// OrderingBenchmarks: {calls} handler calls awaited {mean.TotalMilliseconds:F3} ms on average (requested mean {Delays.Average():F3} ms); at most {_inFlightBound} in flight: ideal {mean.TotalMicroseconds / _inFlightBound:F1} us per record"));
        }

        if (_fixture is not null)
        {
            await _fixture.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static int[] NewDelays()
    {
        var random = new Random(42);
        return [.. Enumerable.Range(0, Messages).Select(_ => random.Next(0, 6))];
    }

    private Task SetupAsync(string topic, int keys, ConsumerOrdering ordering, int maxConcurrency)
    {
        _inFlightBound = keys == 0 ? 1 : Math.Min(keys, maxConcurrency);
        _fixture = new ConsumeFixture(topic, partitions: 1, Messages, keys: keys);
        return _fixture.StartKafkaKitAsync(HandleAsync, options =>
        {
            options.Ordering = ordering;
            options.MaxConcurrency = maxConcurrency;
        });
    }

    /// <summary>The handler: await record i's delay (measured), then count.</summary>
    private async ValueTask HandleAsync(ConsumeResult<Ignore, byte[]> result, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        await Task.Delay(Delays[result.Offset.Value % Messages], cancellationToken).ConfigureAwait(false);
        Interlocked.Add(ref _delayTicks, Stopwatch.GetElapsedTime(started).Ticks);
        Interlocked.Increment(ref _delayCalls);
        _fixture!.Count();
    }
}
