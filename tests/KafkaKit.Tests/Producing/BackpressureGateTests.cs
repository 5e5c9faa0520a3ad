using KafkaKit.Producing;
using Microsoft.Extensions.Time.Testing;

namespace KafkaKit.Tests.Producing;

/// <summary>Unit tests of the producer's in-flight accounting (no cluster; time from a fake clock).</summary>
public sealed class BackpressureGateTests
{
    private static readonly TimeSpan LongWait = TimeSpan.FromMinutes(1);

    [Test]
    public void TryAcquire_UpToMessageLimit_SucceedsThenRefuses()
    {
        // Arrange
        var gate = new BackpressureGate(maxMessages: 10, maxBytes: 1_000_000);

        // Act
        var taken = Enumerable.Range(0, 10).Count(_ => gate.TryAcquire(10));
        var refused = gate.TryAcquire(10);

        // Assert
        Assert.That(taken, Is.EqualTo(10));
        Assert.That(refused, Is.False);
        Assert.That(gate.Messages, Is.EqualTo(10), "a refused acquire leaves no trace");
        Assert.That(gate.Bytes, Is.EqualTo(100));
    }

    [Test]
    public void TryAcquire_BeyondByteLimit_Refuses()
    {
        // Arrange
        var gate = new BackpressureGate(maxMessages: 100, maxBytes: 1_000);
        Assert.That(gate.TryAcquire(600), Is.True);

        // Act
        var refused = gate.TryAcquire(500);
        var fits = gate.TryAcquire(400);

        // Assert
        Assert.That(refused, Is.False);
        Assert.That(fits, Is.True);
        Assert.That(gate.Bytes, Is.EqualTo(1_000));
        Assert.That(gate.Messages, Is.EqualTo(2));
    }

    [Test]
    public void TryAcquire_MessageLargerThanByteLimitIntoEmptyQueue_IsAdmittedSoLibrdkafkaReportsIt()
    {
        // Arrange
        var gate = new BackpressureGate(maxMessages: 100, maxBytes: 1_000);

        // Act / Assert
        Assert.That(gate.TryAcquire(5_000), Is.True);
        Assert.That(gate.TryAcquire(1), Is.False);
    }

    [Test]
    public void Release_AfterRefusal_MakesRoomAgain()
    {
        // Arrange
        var gate = new BackpressureGate(maxMessages: 2, maxBytes: 1_000);
        gate.TryAcquire(1);
        gate.TryAcquire(1);
        Assert.That(gate.TryAcquire(1), Is.False);

        // Act
        gate.Release(1);

        // Assert
        Assert.That(gate.TryAcquire(1), Is.True);
        Assert.That(gate.Messages, Is.EqualTo(2));
    }

    [Test]
    [CancelAfter(10_000)]
    public async Task WaitForRoomAsync_ReleasesDownToLowWaterMark_WakesWaiterOnlyAtTheMark(CancellationToken cancellationToken)
    {
        // Arrange: limit 100, low-water mark 90.
        var gate = new BackpressureGate(maxMessages: 100, maxBytes: long.MaxValue);
        for (var i = 0; i < 100; i++)
        {
            gate.TryAcquire(1);
        }

        var time = new FakeTimeProvider();
        var wait = gate.WaitForRoomAsync(wakeOnNextRelease: false, LongWait, time, cancellationToken);

        // Act / Assert: 9 releases (91 left) do not wake it; the 10th (90 left) does.
        for (var i = 0; i < 9; i++)
        {
            gate.Release(1);
        }

        Assert.That(wait.IsCompleted, Is.False, "still above the low-water mark");
        Assert.That(gate.Waiters, Is.EqualTo(1));
        gate.Release(1);
        await wait.WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);
        Assert.That(wait.IsCompletedSuccessfully, Is.True);
        Assert.That(gate.Waiters, Is.Zero);
        Assert.That(gate.TryAcquire(1), Is.True);
    }

    [Test]
    [CancelAfter(10_000)]
    public async Task WaitForRoomAsync_WakeOnNextRelease_WakesAtTheFirstRelease(CancellationToken cancellationToken)
    {
        // Arrange: librdkafka said full although the gate had room; the next delivery report must wake the waiter.
        var gate = new BackpressureGate(maxMessages: 100, maxBytes: long.MaxValue);
        for (var i = 0; i < 50; i++)
        {
            gate.TryAcquire(1);
        }

        var wait = gate.WaitForRoomAsync(wakeOnNextRelease: true, LongWait, new FakeTimeProvider(), cancellationToken);
        Assert.That(wait.IsCompleted, Is.False);

        // Act
        gate.Release(1);

        // Assert
        await wait.WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);
        Assert.That(wait.IsCompletedSuccessfully, Is.True);
    }

    [Test]
    public void WaitForRoomAsync_RoomFreedBeforeTheWaitRegistered_ReturnsAtOnce()
    {
        // Arrange: a release that happened between the caller's failed TryAcquire and its wait raised no signal.
        var gate = new BackpressureGate(maxMessages: 10, maxBytes: long.MaxValue);
        for (var i = 0; i < 10; i++)
        {
            gate.TryAcquire(1);
        }

        Assert.That(gate.TryAcquire(1), Is.False);
        gate.Release(1); // 9 left: at the low-water mark, with nobody waiting yet

        // Act
        var wait = gate.WaitForRoomAsync(wakeOnNextRelease: false, LongWait, new FakeTimeProvider(), CancellationToken.None);

        // Assert
        Assert.That(wait.IsCompletedSuccessfully, Is.True);
    }

    [Test]
    [CancelAfter(10_000)]
    public async Task WaitForRoomAsync_TimeoutPasses_ThrowsTimeoutException(CancellationToken cancellationToken)
    {
        // Arrange
        var gate = new BackpressureGate(maxMessages: 1, maxBytes: long.MaxValue);
        gate.TryAcquire(1);
        var time = new FakeTimeProvider();
        var wait = gate.WaitForRoomAsync(wakeOnNextRelease: false, TimeSpan.FromSeconds(2), time, cancellationToken);

        // Act
        time.Advance(TimeSpan.FromMilliseconds(1_999));
        var beforeTimeout = wait.IsCompleted;
        time.Advance(TimeSpan.FromMilliseconds(1));

        // Assert
        Assert.That(beforeTimeout, Is.False);
        Assert.ThrowsAsync<TimeoutException>(async () => await wait.WaitAsync(TimeSpan.FromSeconds(5), cancellationToken));
        Assert.That(gate.Waiters, Is.Zero);
    }

    [Test]
    [CancelAfter(10_000)]
    public async Task WaitForRoomAsync_Cancelled_ThrowsOperationCanceledException(CancellationToken cancellationToken)
    {
        // Arrange
        var gate = new BackpressureGate(maxMessages: 1, maxBytes: long.MaxValue);
        gate.TryAcquire(1);
        using var cancel = new CancellationTokenSource();
        var wait = gate.WaitForRoomAsync(wakeOnNextRelease: false, LongWait, new FakeTimeProvider(), cancel.Token);

        // Act
        await cancel.CancelAsync();

        // Assert
        var e = Assert.CatchAsync<OperationCanceledException>(async () => await wait.WaitAsync(TimeSpan.FromSeconds(5), cancellationToken));
        Assert.That(e!.CancellationToken, Is.EqualTo(cancel.Token));
        Assert.That(gate.Waiters, Is.Zero);
    }

    [Test]
    [CancelAfter(10_000)]
    public async Task Close_WakesWaitersAndAWaitRegisteredAfterItReturnsAtOnce(CancellationToken cancellationToken)
    {
        // Arrange: a full queue; one enqueue already waits, another checked the producer's state just before the fault
        // and registers its wait only after it.
        var gate = new BackpressureGate(maxMessages: 1, maxBytes: long.MaxValue);
        gate.TryAcquire(1);
        var time = new FakeTimeProvider();
        var early = gate.WaitForRoomAsync(false, LongWait, time, cancellationToken);

        // Act
        gate.Close();
        var late = gate.WaitForRoomAsync(false, LongWait, time, cancellationToken);

        // Assert
        Assert.That(late.IsCompletedSuccessfully, Is.True, "a wait registered after Close does not wait for a release that may never come");
        await early.WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);
        Assert.That(gate.Messages, Is.EqualTo(1), "closing frees no room");
    }

    [Test]
    [CancelAfter(10_000)]
    public async Task WakeAll_WakesEveryWaiter(CancellationToken cancellationToken)
    {
        // Arrange
        var gate = new BackpressureGate(maxMessages: 1, maxBytes: long.MaxValue);
        gate.TryAcquire(1);
        var time = new FakeTimeProvider();
        var waits = Enumerable.Range(0, 3).Select(_ => gate.WaitForRoomAsync(false, LongWait, time, cancellationToken)).ToArray();

        // Act
        gate.WakeAll();

        // Assert
        await Task.WhenAll(waits).WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);
        Assert.That(waits, Has.All.Matches<Task>(t => t.IsCompletedSuccessfully));
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task TryAcquireAndRelease_ManyThreadsRacing_NeverExceedLimitAndEndEmpty(CancellationToken cancellationToken)
    {
        // Arrange
        const int limit = 64;
        var gate = new BackpressureGate(limit, maxBytes: long.MaxValue);
        var overLimit = 0;

        // Act: 4 threads take and return room as fast as they can.
        await Parallel.ForAsync(0, 4, cancellationToken, (_, _) =>
        {
            for (var i = 0; i < 200_000; i++)
            {
                if (gate.TryAcquire(3))
                {
                    if (gate.Messages > limit)
                    {
                        Interlocked.Increment(ref overLimit);
                    }

                    gate.Release(3);
                }
            }

            return ValueTask.CompletedTask;
        });

        // Assert
        Assert.That(overLimit, Is.Zero);
        Assert.That(gate.Messages, Is.Zero);
        Assert.That(gate.Bytes, Is.Zero);
    }

    [Test]
    public void Constructor_UnlimitedMessages_NeverRefusesOnCount()
    {
        // Arrange: librdkafka's queue.buffering.max.messages=0 means no limit.
        var gate = new BackpressureGate(BackpressureGate.Unlimited, maxBytes: long.MaxValue);

        // Act
        var taken = Enumerable.Range(0, 200_000).Count(_ => gate.TryAcquire(1));

        // Assert
        Assert.That(taken, Is.EqualTo(200_000));
    }
}
