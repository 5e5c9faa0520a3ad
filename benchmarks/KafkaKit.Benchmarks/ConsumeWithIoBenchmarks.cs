using BenchmarkDotNet.Attributes;
using Confluent.Kafka;

namespace KafkaKit.Benchmarks;

/// <summary>
/// Consume + handle from 12 partitions with a handler that awaits 1 ms of simulated I/O (<c>Task.Delay(1)</c>):
/// KafkaKit's engine (partitions handled concurrently, in order within each) against a raw single-threaded
/// <c>Consume</c> loop that awaits the same delay per message and stores its offset. Each invocation measures the time
/// for a joined, idle consumer to handle <see cref="Messages"/> messages (50 per partition) that reach the cluster when
/// it starts; see <see cref="ConsumeFixture"/>.
/// </summary>
/// <remarks>
/// <c>Task.Delay(1)</c> lasts the timer's resolution at least: about 1.1 ms on an idle Linux machine, several ms on a
/// loaded one. Both sides await the same call, so the ratio holds; the absolute times follow the machine.
/// </remarks>
[MemoryDiagnoser]
public class ConsumeWithIoBenchmarks
{
    /// <summary>Messages per invocation.</summary>
    public const int Messages = 600;

    private const int Partitions = 12;

    private readonly CancellationTokenSource _running = new();
    private ConsumeFixture? _fixture;

    /// <summary>Starts the cluster and the raw consumer (joined, warmed up).</summary>
    [GlobalSetup(Target = nameof(ConfluentLoopWithIo))]
    public void SetupConfluent()
    {
        _fixture = new ConsumeFixture("bench-consume-io", Partitions, Messages);
        _fixture.StartRaw();
    }

    /// <summary>Starts the cluster and the KafkaKit consumer (joined, warmed up).</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(KafkaKitConsumerWithIo))]
    public Task SetupKafkaKitAsync()
    {
        _fixture = new ConsumeFixture("bench-consume-io", Partitions, Messages);
        return _fixture.StartKafkaKitAsync(HandleAsync);
    }

    /// <summary>Queues the invocation's messages in the holding feeder.</summary>
    [IterationSetup]
    public void Prepare() => _fixture!.Prepare();

    /// <summary>Raw Confluent.Kafka: release the batch; one loop: <c>Consume</c>, await 1 ms, <c>StoreOffset</c>, until it is read.</summary>
    /// <returns>The number of messages handled.</returns>
    [Benchmark(Baseline = true, OperationsPerInvoke = Messages)]
    public async Task<int> ConfluentLoopWithIo()
    {
        _fixture!.Release();
        var consumer = _fixture.Raw!;
        var deadline = DateTime.UtcNow + BenchmarkEnvironment.InvocationTimeout;
        var handled = 0;
        while (handled < Messages)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(100));
            if (result is null)
            {
                ConsumeFixture.ThrowIfLate(deadline, handled, Messages);
                continue;
            }

            // The same simulated I/O as KafkaKit's handler, with a cancellable token as KafkaKit passes one.
            await Task.Delay(1, _running.Token).ConfigureAwait(false);
            consumer.StoreOffset(result);
            handled++;
        }

        return handled;
    }

    /// <summary>KafkaKit: release the batch and wait until the handlers have seen all of it.</summary>
    /// <returns>A task that completes when the last message was handled.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public Task KafkaKitConsumerWithIo() => _fixture!.RunKafkaKitAsync();

    /// <summary>Stops the consumers and the cluster.</summary>
    /// <returns>A task that completes when released.</returns>
    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        if (_fixture is not null)
        {
            await _fixture.DisposeAsync().ConfigureAwait(false);
        }

        _running.Dispose();
    }

    /// <summary>The handler: await 1 ms of simulated I/O, then count.</summary>
    private async ValueTask HandleAsync(ConsumeResult<Ignore, byte[]> result, CancellationToken cancellationToken)
    {
        await Task.Delay(1, cancellationToken).ConfigureAwait(false);
        _fixture!.Count();
    }
}
