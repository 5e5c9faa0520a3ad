using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace KafkaKit.Tests.Consuming.Engine;

[CancelAfter(30_000)]
public sealed class PartitionSetTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);
    private static readonly TopicPartition P0 = new("orders", 0);
    private static readonly TopicPartition P1 = new("orders", 1);

    [Test]
    public async Task Dispatch_BufferReachesPartitionBufferSize_PausesOnlyThatPartition()
    {
        await using var engine = new Engine(partitionBufferSize: 4);
        engine.Set.Add([P0, P1]);

        await engine.FillAsync(P0, count: 3);
        Assert.That(engine.Fake.CallsOf("Pause"), Is.Empty, "3 of 4 buffered");

        engine.Set.Dispatch(engine.Client, Message(P0, 4));
        engine.Set.Dispatch(engine.Client, Message(P1, 0));

        Assert.That(engine.Fake.CallsOf("Pause"), Is.EqualTo(new[] { "Pause orders [[0]]" }));
        Assert.That(engine.Set.PausedCount, Is.EqualTo(1));
    }

    [Test]
    public async Task Dispatch_AllBuffersReachMaxBufferedBytes_PausesThePartitionThatCrossedIt()
    {
        await using var engine = new Engine(partitionBufferSize: 1_000, maxBufferedBytes: 3_000);
        engine.Set.Add([P0, P1]);
        await engine.FillAsync(P0, count: 1, valueBytes: 900); // ~1 KB waiting behind the running message
        engine.Set.Maintain(engine.Client); // recounts what waits in the buffers
        Assert.That(engine.Set.BufferedBytes, Is.EqualTo(128 + 900));
        Assert.That(engine.Fake.CallsOf("Pause"), Is.Empty);

        await engine.FillAsync(P1, count: 1, valueBytes: 900);

        Assert.That(engine.Set.BufferedBytes, Is.GreaterThanOrEqualTo(3_000));
        Assert.That(engine.Fake.CallsOf("Pause"), Is.EqualTo(new[] { "Pause orders [[1]]" }));
    }

    [Test]
    public async Task Maintain_BufferAboveHalf_StaysPaused()
    {
        await using var engine = new Engine(partitionBufferSize: 4);
        engine.Set.Add([P0]);
        await engine.FillAsync(P0, count: 4);

        engine.Set.Maintain(engine.Client);

        Assert.That(engine.Fake.CallsOf("Resume"), Is.Empty);
        Assert.That(engine.Set.PausedCount, Is.EqualTo(1));
    }

    [Test]
    public async Task Maintain_BufferDrainedToHalf_ResumesAndStoresTheCompletedOffset()
    {
        await using var engine = new Engine(partitionBufferSize: 4);
        engine.Set.Add([P0]);
        await engine.FillAsync(P0, count: 4); // offsets 0 (running) and 1-4 (buffered): paused

        var worker = engine.Set.Workers.Single();
        engine.Release(1); // 0 completes; 1 runs, 2-4 wait: above half
        await Wait.ForAsync(() => worker.Buffered == 3 && worker.Offsets.Committable == 1, Patience, "one message handled");
        engine.Set.Maintain(engine.Client);
        Assert.That(engine.Fake.CallsOf("Resume"), Is.Empty, "3 of 4 buffered");

        engine.Release(1); // 1 completes; 2 runs, 3 and 4 wait: half
        await Wait.ForAsync(() => worker.Buffered == 2 && worker.Offsets.Committable == 2, Patience, "two messages handled");
        engine.Set.Maintain(engine.Client);

        Assert.That(engine.Fake.CallsOf("Resume"), Is.EqualTo(new[] { "Resume orders [[0]]" }));
        Assert.That(engine.Set.PausedCount, Is.Zero);
        Assert.That(engine.Fake.Stored, Is.EqualTo(new[] { new TopicPartitionOffset(P0, 1), new TopicPartitionOffset(P0, 2) }));
    }

    [Test]
    public async Task Retire_PausedPartition_ResumesItAndStoresNothingMore()
    {
        await using var engine = new Engine(partitionBufferSize: 2);
        engine.Set.Add([P0]);
        await engine.FillAsync(P0, count: 2);

        var workers = engine.Set.Take([new TopicPartitionOffset(P0, Offset.Unset)]);
        engine.Release(1);
        await Wait.ForAsync(() => workers[0].Offsets.Committable == 1, Patience, "the running message completed");
        engine.Set.Retire(engine.Client, workers[0]);
        engine.Committer.Store(engine.Client, workers[0].Offsets);

        Assert.That(engine.Fake.CallsOf("Resume"), Is.EqualTo(new[] { "Resume orders [[0]]" }), "librdkafka keeps a pause across unassign and assign");
        Assert.That(engine.Set.PausedCount, Is.Zero);
        Assert.That(engine.Set.Assignment, Is.Empty);
        Assert.That(engine.Fake.Stored, Is.Empty, "a retired partition's offsets are not stored");
    }

    [Test]
    public async Task Drain_HandlerOutlivesTimeoutOnTheTimeProvider_IsCancelled()
    {
        var time = new FakeTimeProvider();
        await using var engine = new Engine(partitionBufferSize: 10, time: time);
        engine.Set.Add([P0]);
        await engine.FillAsync(P0, count: 0);
        var workers = engine.Set.Take([new TopicPartitionOffset(P0, Offset.Unset)]);

        var drain = Task.Factory.StartNew(() => engine.Set.Drain(workers, TimeSpan.FromSeconds(30)), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Assert.That(await Wait.UntilAsync(() => drain.IsCompleted, TimeSpan.FromMilliseconds(300)), Is.False, "the drain waits for the running handler");
        Assert.That(engine.Cancelled, Is.Zero);

        await Wait.ForAsync(() => { time.Advance(TimeSpan.FromSeconds(31)); return drain.IsCompleted; }, Patience, "the drain ended after the timeout");

        Assert.That(engine.Cancelled, Is.EqualTo(1), "the running handler's token was cancelled");
        Assert.That(workers[0].Offsets.Committable, Is.EqualTo(Offset.Unset.Value), "the cancelled message is not completed");
    }

    private static ConsumeResult<byte[]?, byte[]?> Message(TopicPartition partition, long offset, int valueBytes = 10) => new()
    {
        TopicPartitionOffset = new TopicPartitionOffset(partition, offset),
        Message = new Message<byte[]?, byte[]?> { Value = new byte[valueBytes] },
    };

    /// <summary>A partition set whose handler blocks until the test releases it, one message per release.</summary>
    private sealed class Engine : IAsyncDisposable
    {
        private readonly SemaphoreSlim _gate = new(0);
        private readonly CancellationTokenSource _stopHard = new();
        private readonly Dictionary<TopicPartition, long> _next = [];
        private int _running;
        private int _cancelled;

        public Engine(int partitionBufferSize, long maxBufferedBytes = 64L << 20, TimeProvider? time = null)
        {
            (Client, Fake) = FakeConsumerClient.Create();
            var options = new KafkaConsumerOptions { PartitionBufferSize = partitionBufferSize, MaxBufferedBytes = maxBufferedBytes };
            Committer = new OffsetCommitter("test", "group", NullLogger.Instance);
            Set = new PartitionSet("test", options, Committer, NullLogger.Instance, time ?? TimeProvider.System, ProcessAsync, _stopHard.Token);
        }

        public IConsumer<byte[]?, byte[]?> Client { get; }

        public FakeConsumerClient Fake { get; }

        public PartitionSet Set { get; }

        public OffsetCommitter Committer { get; }

        public int Cancelled => Volatile.Read(ref _cancelled);

        /// <summary>Dispatches one message that starts running (and blocks), then <paramref name="count"/> that wait in the buffer.</summary>
        public async Task FillAsync(TopicPartition partition, int count, int valueBytes = 10)
        {
            var before = Volatile.Read(ref _running);
            Set.Dispatch(Client, Message(partition, Next(partition), valueBytes));
            await Wait.ForAsync(() => Volatile.Read(ref _running) > before, Patience, "the first message runs");
            for (var i = 0; i < count; i++)
            {
                Set.Dispatch(Client, Message(partition, Next(partition), valueBytes));
            }
        }

        public void Release(int messages) => _gate.Release(messages);

        public async ValueTask DisposeAsync()
        {
            await _stopHard.CancelAsync();
            _gate.Release(1_000); // workers released from the set no longer see the hard stop
            Set.Clear();
            _stopHard.Dispose();
        }

        private long Next(TopicPartition partition)
        {
            var offset = _next.GetValueOrDefault(partition);
            _next[partition] = offset + 1;
            return offset;
        }

        private async ValueTask<bool> ProcessAsync(ConsumeResult<byte[]?, byte[]?> result, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _running);
            try
            {
                await _gate.WaitAsync(cancellationToken);
                return true;
            }
            catch (OperationCanceledException)
            {
                Interlocked.Increment(ref _cancelled);
                throw;
            }
        }
    }
}
