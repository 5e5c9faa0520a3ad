using System.Collections.Concurrent;
using System.Text;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Consuming.Engine;

/// <summary>The worker's Key and Unordered dispatch without a broker: lanes, their bound, buffering and offsets.</summary>
[CancelAfter(30_000)]
public sealed class PartitionWorkerOrderingTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);
    private static readonly TopicPartition P0 = new("orders", 0);

    [Test]
    public async Task KeyMode_KeyHeld_LaterMessagesOfThatKeyStayBufferedOtherKeysRunAndCommittableStopsBeforeHeld()
    {
        await using var worker = new Harness(ConsumerOrdering.Key, maxInFlight: 4);
        worker.Write(0, "B");
        worker.Write(1, "A");
        worker.Write(2, "A");
        worker.Write(3, "A");
        worker.Write(4, "B");
        await worker.StartedAsync(0, 1);
        worker.Finish(0);
        await worker.StartedAsync(4);

        Assert.Multiple(() =>
        {
            Assert.That(worker.Started, Is.EquivalentTo(new long[] { 0, 1, 4 }), "A's later messages wait behind offset 1");
            Assert.That(worker.Worker.Buffered, Is.EqualTo(2), "messages waiting in a key's lane count as buffered (the pausing bounds them)");
        });

        worker.Finish(4);
        worker.Write(5, "B");
        await worker.StartedAsync(5); // B's lane took offset 5: offset 4 was completed before
        Assert.That(worker.Worker.Offsets.Committable, Is.EqualTo(1), "not past the running offset 1");
        worker.Finish(5);

        worker.Finish(1);
        await worker.StartedAsync(2);
        worker.Finish(2);
        await worker.StartedAsync(3);
        worker.Finish(3);
        await Wait.ForAsync(() => worker.Worker.Offsets.Committable == 6, Patience, "everything committable");
        Assert.That(worker.Started.Where(o => o is 1 or 2 or 3), Is.EqualTo(new long[] { 1, 2, 3 }), "key A in offset order");
    }

    [Test]
    public async Task KeyMode_MaxInFlightLanesBusy_NextKeyWaitsForALane()
    {
        await using var worker = new Harness(ConsumerOrdering.Key, maxInFlight: 2);
        worker.Write(0, "A");
        worker.Write(1, "B");
        worker.Write(2, "C");
        await worker.StartedAsync(0, 1);
        Assert.That(worker.Started, Has.No.Member(2L), "two lanes run: C waits");

        worker.Finish(1);
        await worker.StartedAsync(2);
        worker.Finish(0);
        worker.Finish(2);
        await Wait.ForAsync(() => worker.Worker.Offsets.Committable == 3, Patience, "everything committable");
    }

    [Test]
    public async Task KeyMode_NullKeys_OneLaneApartFromTheEmptyKey()
    {
        await using var worker = new Harness(ConsumerOrdering.Key, maxInFlight: 4);
        worker.Write(0, null);
        worker.Write(1, null);
        worker.Write(2, string.Empty);
        await worker.StartedAsync(0, 2);
        Assert.That(worker.Started, Has.No.Member(1L), "the second null key waits behind the first");

        worker.Finish(0);
        await worker.StartedAsync(1);
        worker.Finish(1);
        worker.Finish(2);
        await Wait.ForAsync(() => worker.Worker.Offsets.Committable == 3, Patience, "everything committable");
    }

    [Test]
    public async Task UnorderedMode_SameKey_RunConcurrentlyAndCancelLeavesThemUnfinished()
    {
        await using var worker = new Harness(ConsumerOrdering.Unordered, maxInFlight: 3);
        for (var offset = 0; offset < 4; offset++)
        {
            worker.Write(offset, "A");
        }

        await worker.StartedAsync(0, 1, 2);
        Assert.That(worker.Started, Has.No.Member(3L), "at most three in flight");
        worker.Finish(1);
        await worker.StartedAsync(3);
        worker.Finish(3);

        worker.Worker.Cancel();
        await worker.Worker.Run.WaitAsync(Patience);

        Assert.Multiple(() =>
        {
            Assert.That(worker.Worker.Offsets.Committable, Is.EqualTo(Offset.Unset.Value), "offset 0 never finished");
            Assert.That(worker.Worker.Offsets.Pending, Is.EqualTo(4), "1 and 3 finished but wait behind 0 and 2");
        });
    }

    /// <summary>A worker whose handler blocks each message until the test finishes it.</summary>
    private sealed class Harness : IAsyncDisposable
    {
        private readonly ConcurrentDictionary<long, TaskCompletionSource> _finish = new();
        private readonly ConcurrentQueue<long> _started = new();

        public Harness(ConsumerOrdering ordering, int maxInFlight)
        {
            Worker = new PartitionWorker(P0, CancellationToken.None, ordering, maxInFlight);
            Worker.Start(ProcessAsync);
        }

        public PartitionWorker Worker { get; }

        public long[] Started => [.. _started];

        public void Write(long offset, string? key) => Worker.Write(new ConsumeResult<byte[]?, byte[]?>
        {
            TopicPartitionOffset = new TopicPartitionOffset(P0, offset),
            Message = new Message<byte[]?, byte[]?> { Key = key is null ? null : Encoding.UTF8.GetBytes(key), Value = new byte[10] },
        });

        public Task StartedAsync(params long[] offsets) =>
            Wait.ForAsync(() => offsets.All(_started.Contains), Patience, () => $"offsets {string.Join(",", offsets)} started (so far {string.Join(",", _started)})");

        public void Finish(long offset) => Gate(offset).TrySetResult();

        public async ValueTask DisposeAsync()
        {
            Worker.Cancel();
            await Worker.Run.WaitAsync(Patience);
            Worker.Dispose();
        }

        private TaskCompletionSource Gate(long offset) =>
            _finish.GetOrAdd(offset, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

        private async ValueTask<bool> ProcessAsync(ConsumeResult<byte[]?, byte[]?> result, CancellationToken cancellationToken)
        {
            _started.Enqueue(result.Offset.Value);
            await Gate(result.Offset.Value).Task.WaitAsync(cancellationToken);
            return true;
        }
    }
}
