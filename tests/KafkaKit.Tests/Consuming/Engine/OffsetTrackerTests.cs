using Confluent.Kafka;
using KafkaKit.Consuming;

namespace KafkaKit.Tests.Consuming.Engine;

public sealed class OffsetTrackerTests
{
    private static readonly TopicPartition Partition = new("orders", 3);

    [TestCase(false)]
    [TestCase(true)] // the lock-free tracker of Partition mode: the same offsets for completions in dispatch order
    public void Committable_NothingFinished_IsUnset(bool inOrder)
    {
        var tracker = new OffsetTracker(Partition, inOrder);
        tracker.Track(0);

        Assert.That(tracker.Committable, Is.EqualTo(Offset.Unset.Value));
        Assert.That(tracker.TakeStore(out _), Is.False);
    }

    [TestCase(false)]
    [TestCase(true)] // a batch consumer's tracker: a batch is a run of the oldest pending messages
    public void CompleteRange_BatchThenPartOfTheNext_CommittableAfterTheLastOfTheRange(bool inOrder)
    {
        var tracker = new OffsetTracker(Partition, inOrder);
        var results = new[] { 10L, 11, 12, 13, 14 }.Select(o => new ConsumeResult<byte[]?, byte[]?> { TopicPartitionOffset = new TopicPartitionOffset(Partition, o) }).ToList();
        foreach (var result in results)
        {
            tracker.Track(result.Offset.Value);
        }

        tracker.CompleteRange(results, 0, 3);
        Assert.That(tracker.Committable, Is.EqualTo(13));
        Assert.That(tracker.Pending, Is.EqualTo(2));
        tracker.CompleteRange(results, 3, 5);
        Assert.That(tracker.Committable, Is.EqualTo(15));
        Assert.That(tracker.Pending, Is.Zero);
    }

    [TestCase(false)]
    [TestCase(true)] // the lock-free tracker of Partition mode: the same offsets for completions in dispatch order
    public void Complete_InOrder_CommittableIsLastPlusOne(bool inOrder)
    {
        var tracker = new OffsetTracker(Partition, inOrder);
        foreach (var offset in new long[] { 5, 6, 7 })
        {
            tracker.Track(offset);
        }

        tracker.Complete(5);
        Assert.That(tracker.Committable, Is.EqualTo(6));
        tracker.Complete(6);
        tracker.Complete(7);

        Assert.That(tracker.Committable, Is.EqualTo(8));
        Assert.That(tracker.Pending, Is.Zero);
    }

    [Test]
    public void Complete_OutOfOrder_CommittableStopsBeforeFirstUnfinished()
    {
        var tracker = new OffsetTracker(Partition);
        foreach (var offset in new long[] { 0, 1, 2, 3 })
        {
            tracker.Track(offset);
        }

        tracker.Complete(2);
        tracker.Complete(3);
        Assert.That(tracker.Committable, Is.EqualTo(Offset.Unset.Value), "0 and 1 are unfinished");

        tracker.Complete(0);
        Assert.That(tracker.Committable, Is.EqualTo(1), "1 is unfinished");

        tracker.Complete(1);
        Assert.That(tracker.Committable, Is.EqualTo(4));
    }

    [Test]
    public void Complete_OffsetsWithGaps_FollowsDispatchOrder()
    {
        // Compacted topics and transaction markers leave gaps: contiguity is about the messages tracked, not offset + 1.
        var tracker = new OffsetTracker(Partition);
        foreach (var offset in new long[] { 10, 12, 15 })
        {
            tracker.Track(offset);
        }

        tracker.Complete(12);
        tracker.Complete(10);
        Assert.That(tracker.Committable, Is.EqualTo(13));

        tracker.Complete(15);
        Assert.That(tracker.Committable, Is.EqualTo(16));
    }

    [Test]
    public void Complete_UntrackedOrAlreadyFinishedOffset_ReturnsFalseAndChangesNothing()
    {
        var tracker = new OffsetTracker(Partition);
        tracker.Track(1);
        tracker.Track(2);

        Assert.That(tracker.Complete(7), Is.False);
        Assert.That(tracker.Complete(2), Is.True);
        Assert.That(tracker.Complete(2), Is.False);
        Assert.That(tracker.Committable, Is.EqualTo(Offset.Unset.Value));
    }

    [TestCase(false)]
    [TestCase(true)] // the lock-free tracker of Partition mode: the same offsets for completions in dispatch order
    public void Track_PositionMovedBack_CommittableDoesNotMoveBackwards(bool inOrder)
    {
        var tracker = new OffsetTracker(Partition, inOrder);
        tracker.Track(20);
        tracker.Track(21);
        tracker.Complete(20);
        tracker.Complete(21);

        tracker.Track(5); // librdkafka reset the fetch position below what was handled
        tracker.Track(6);
        tracker.Complete(5);
        Assert.That(tracker.Committable, Is.EqualTo(22));

        for (var offset = 6L; offset <= 30; offset++)
        {
            if (offset > 6)
            {
                tracker.Track(offset);
            }

            tracker.Complete(offset);
            Assert.That(tracker.Committable, Is.EqualTo(Math.Max(22, offset + 1)));
        }
    }

    [TestCase(false)]
    [TestCase(true)] // the lock-free tracker of Partition mode: the same offsets for completions in dispatch order
    public void TakeStore_StoredOrReleased_NothingToStore(bool inOrder)
    {
        var tracker = new OffsetTracker(Partition, inOrder);
        tracker.Track(0);
        tracker.Track(1);
        tracker.Complete(0);

        Assert.That(tracker.TakeStore(out var first), Is.True);
        Assert.That(first, Is.EqualTo(1));
        tracker.MarkStored(first);
        Assert.That(tracker.TakeStore(out _), Is.False, "nothing new since the store");

        tracker.MarkStored(0);
        Assert.That(tracker.Stored, Is.EqualTo(1), "the stored offset never moves backwards");

        tracker.Complete(1);
        tracker.Release();
        Assert.That(tracker.TakeStore(out _), Is.False, "a partition no longer owned stores nothing");
    }

    [Test]
    public void Complete_AnyOrder_CommittableNeverPassesUnfinishedNeverMovesBackAndEndsAtLastPlusOne()
    {
        var random = new Random(20261207);
        for (var iteration = 0; iteration < 2_000; iteration++)
        {
            var count = random.Next(1, 120);
            var offsets = new long[count];
            var next = (long)random.Next(0, 1_000);
            for (var i = 0; i < count; i++)
            {
                offsets[i] = next;
                next += random.Next(0, 4) == 0 ? random.Next(2, 10) : 1; // gaps, as compaction leaves them
            }

            var tracker = new OffsetTracker(Partition);
            foreach (var offset in offsets)
            {
                tracker.Track(offset);
            }

            var order = offsets.ToArray();
            random.Shuffle(order);
            var finished = new HashSet<long>();
            var previous = tracker.Committable;
            foreach (var offset in order)
            {
                Assert.That(tracker.Complete(offset), Is.True);
                finished.Add(offset);
                var committable = tracker.Committable;
                var firstUnfinished = offsets.FirstOrDefault(o => !finished.Contains(o), -1);
                var expected = firstUnfinished == offsets[0] ? Offset.Unset.Value
                    : firstUnfinished < 0 ? offsets[^1] + 1
                    : offsets[Array.IndexOf(offsets, firstUnfinished) - 1] + 1;

                Assert.That(committable, Is.GreaterThanOrEqualTo(previous), $"iteration {iteration}: moved backwards");
                if (firstUnfinished >= 0)
                {
                    Assert.That(committable, Is.LessThanOrEqualTo(firstUnfinished), $"iteration {iteration}: passed unfinished offset {firstUnfinished}");
                }

                Assert.That(committable, Is.EqualTo(expected), $"iteration {iteration}: not the highest contiguous finished offset + 1");
                previous = committable;
            }

            Assert.That(tracker.Committable, Is.EqualTo(offsets[^1] + 1), $"iteration {iteration}");
            Assert.That(tracker.Pending, Is.Zero);
        }
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Complete_FromManyThreads_ReaderSeesMonotonicValuesEndingAtLastPlusOne()
    {
        var random = new Random(7);
        for (var iteration = 0; iteration < 20; iteration++)
        {
            var offsets = Enumerable.Range(0, 5_000).Select(i => (long)i).ToArray();
            var tracker = new OffsetTracker(Partition);
            foreach (var offset in offsets)
            {
                tracker.Track(offset);
            }

            random.Shuffle(offsets);
            var backwards = 0;
            using var done = new CancellationTokenSource();
            var reader = Task.Run(() =>
            {
                var last = tracker.Committable;
                while (!done.IsCancellationRequested)
                {
                    var now = tracker.Committable;
                    if (now < last)
                    {
                        backwards++;
                    }

                    last = now;
                }
            });

            await Parallel.ForEachAsync(offsets.Chunk(250), (chunk, _) =>
            {
                foreach (var offset in chunk)
                {
                    tracker.Complete(offset);
                }

                return ValueTask.CompletedTask;
            });
            await done.CancelAsync();
            await reader;

            Assert.That(backwards, Is.Zero);
            Assert.That(tracker.Committable, Is.EqualTo(5_000));
        }
    }
}
