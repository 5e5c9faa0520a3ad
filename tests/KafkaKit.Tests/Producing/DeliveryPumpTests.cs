using KafkaKit.Tests.Support;
using KafkaKit.Producing;

namespace KafkaKit.Tests.Producing;

/// <summary>The producer's delivery thread: polls while idle, flushes while someone waits for room or a flush.</summary>
public sealed class DeliveryPumpTests
{
    [Test]
    [CancelAfter(10_000)]
    public async Task EnterWait_WhileSomeoneWaits_PulsesShortFlushesBetweenPollsUntilTheLastWaiterExits(CancellationToken cancellationToken)
    {
        // Arrange: fake poll and flush calls that block for their slice (as librdkafka's do) and count.
        var fake = new FakeClient(outstanding: 5, cancellationToken, drains: false);
        var pump = fake.StartPump();

        try
        {
            // Act / Assert: idle, it only polls.
            await Wait.ForAsync(() => fake.Polls >= 2, TimeSpan.FromSeconds(5), "fake.Polls >= 2", cancellationToken);
            Assert.That(fake.Flushes, Is.Zero, "nothing is flushed while nobody waits");

            // A wait starts: one short flush at once; while the wait goes on, the pulse repeats between polls.
            pump.EnterWait();
            pump.EnterWait();
            await Wait.ForAsync(() => fake.Flushes >= 3, TimeSpan.FromSeconds(5), "fake.Flushes >= 3", cancellationToken);
            pump.ExitWait();
            var afterOneExit = fake.Flushes;
            await Wait.ForAsync(() => fake.Flushes > afterOneExit, TimeSpan.FromSeconds(5), "fake.Flushes > afterOneExit", cancellationToken);
            pump.ExitWait();

            // Back to polling only once nobody waits.
            var polls = fake.Polls;
            await Wait.ForAsync(() => fake.Polls > polls + 2, TimeSpan.FromSeconds(5), "fake.Polls > polls + 2", cancellationToken);
            var flushes = fake.Flushes;
            await Wait.ForAsync(() => fake.Polls > polls + 5, TimeSpan.FromSeconds(5), "fake.Polls > polls + 5", cancellationToken);
            Assert.That(fake.Flushes, Is.EqualTo(flushes), "flushing stopped");
            Assert.That(fake.FlushSlices, Is.All.EqualTo(DeliveryPump.PulseSlice), "every flush for waiters is a short pulse, never a long flush (it would send new messages in batches of one)");
            Assert.That(fake.PollsBetweenFlushes, Is.All.GreaterThan(0), "the pump polls between pulses instead of flushing continuously");
            Assert.That(fake.Threads, Is.EqualTo(1), "one thread did all the work");
        }
        finally
        {
            pump.Stop();
        }
    }

    [Test]
    [CancelAfter(10_000)]
    public async Task EnterWait_NewWaitStarts_PulsesAtOnceWithoutWaitingForTheStallSlice(CancellationToken cancellationToken)
    {
        // Arrange: a waiter that stays, so the pump's stall pulses run every StallSlice.
        var fake = new FakeClient(outstanding: 5, cancellationToken, drains: false);
        var pump = fake.StartPump();
        try
        {
            pump.EnterWait();
            await Wait.ForAsync(() => fake.Flushes >= 1, TimeSpan.FromSeconds(5), "fake.Flushes >= 1", cancellationToken);
            var before = fake.Flushes;
            var clock = System.Diagnostics.Stopwatch.StartNew();

            // Act: another enqueue starts waiting (the queue filled again).
            pump.EnterWait();
            await Wait.ForAsync(() => fake.Flushes > before, TimeSpan.FromSeconds(5), "fake.Flushes > before", cancellationToken);

            // Assert: pulsed within about one idle poll, not one stall slice later.
            Assert.That(clock.Elapsed, Is.LessThan(DeliveryPump.StallSlice + DeliveryPump.IdleSlice));
        }
        finally
        {
            pump.ExitWait();
            pump.ExitWait();
            pump.Stop();
        }
    }

    [Test]
    [CancelAfter(10_000)]
    public async Task FlushAsync_OutstandingDrainsToZero_CompletesWithZero(CancellationToken cancellationToken)
    {
        // Arrange
        var fake = new FakeClient(outstanding: 3, cancellationToken);
        var pump = fake.StartPump();

        try
        {
            // Act: each fake flush slice delivers one message.
            var undelivered = await pump.FlushAsync(Timeout.InfiniteTimeSpan, cancellationToken).WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);

            // Assert
            Assert.That(undelivered, Is.Zero);
            Assert.That(fake.Flushes, Is.EqualTo(3));
        }
        finally
        {
            pump.Stop();
        }
    }

    [Test]
    [CancelAfter(10_000)]
    public async Task FlushAsync_TimeoutPasses_CompletesWithWhatIsOutstanding(CancellationToken cancellationToken)
    {
        // Arrange: nothing ever drains.
        var fake = new FakeClient(outstanding: 7, cancellationToken, drains: false);
        var pump = fake.StartPump();

        try
        {
            // Act
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var undelivered = await pump.FlushAsync(TimeSpan.FromMilliseconds(300), cancellationToken).WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);

            // Assert
            Assert.That(undelivered, Is.EqualTo(7));
            Assert.That(clock.Elapsed, Is.InRange(TimeSpan.FromMilliseconds(280), TimeSpan.FromMilliseconds(300) + DeliveryPump.FlushSlice + TimeSpan.FromMilliseconds(100)));
        }
        finally
        {
            pump.Stop();
        }
    }

    [Test]
    [CancelAfter(10_000)]
    public async Task FlushAsync_Cancelled_ThrowsOperationCanceledWithTheCallersToken(CancellationToken cancellationToken)
    {
        // Arrange
        var fake = new FakeClient(outstanding: 7, cancellationToken, drains: false);
        var pump = fake.StartPump();
        using var cancel = new CancellationTokenSource();

        try
        {
            var flush = pump.FlushAsync(Timeout.InfiniteTimeSpan, cancel.Token);

            // Act
            await cancel.CancelAsync();

            // Assert
            var e = Assert.CatchAsync<OperationCanceledException>(async () => await flush.WaitAsync(TimeSpan.FromSeconds(5), cancellationToken));
            Assert.That(e!.CancellationToken, Is.EqualTo(cancel.Token));
        }
        finally
        {
            pump.Stop();
        }
    }

    [Test]
    [CancelAfter(10_000)]
    public async Task Stop_WithPendingFlush_FailsItWithObjectDisposedAndRefusesNewOnes(CancellationToken cancellationToken)
    {
        // Arrange
        var fake = new FakeClient(outstanding: 7, cancellationToken, drains: false);
        var pump = fake.StartPump();
        var pending = pump.FlushAsync(Timeout.InfiniteTimeSpan, cancellationToken);

        // Act
        pump.Stop();
        pump.Stop(); // idempotent

        // Assert
        Assert.ThrowsAsync<ObjectDisposedException>(async () => await pending.WaitAsync(TimeSpan.FromSeconds(5), cancellationToken));
        Assert.ThrowsAsync<ObjectDisposedException>(async () => await pump.FlushAsync(TimeSpan.FromSeconds(1), cancellationToken));
        var calls = fake.Polls + fake.Flushes;
        await Task.Yield();
        Assert.That(fake.Polls + fake.Flushes, Is.EqualTo(calls), "the thread has ended");
    }

    [Test]
    [CancelAfter(10_000)]
    public async Task Run_PollThrows_ReportsAndGoesOn(CancellationToken cancellationToken)
    {
        // Arrange: the first poll throws.
        var errors = new List<Exception>();
        var polls = 0;
        var pump = new DeliveryPump(
            slice =>
            {
                if (Interlocked.Increment(ref polls) == 1)
                {
                    throw new InvalidOperationException("poll failed");
                }

                cancellationToken.WaitHandle.WaitOne(slice);
                return 0;
            },
            _ => 0,
            e =>
            {
                lock (errors)
                {
                    errors.Add(e);
                }
            },
            "throwing");

        try
        {
            // Act / Assert
            await Wait.ForAsync(() => Volatile.Read(ref polls) >= 3, TimeSpan.FromSeconds(5), "Volatile.Read(ref polls) >= 3", cancellationToken);
            lock (errors)
            {
                Assert.That(errors.Single().Message, Is.EqualTo("poll failed"));
            }
        }
        finally
        {
            pump.Stop();
        }
    }

    /// <summary>Stands in for librdkafka: poll and flush block for their slice; each flush slice may deliver one message.</summary>
    private sealed class FakeClient(int outstanding, CancellationToken cancellationToken, bool drains = true)
    {
        private readonly HashSet<int> _threads = [];
        private int _outstanding = outstanding;
        private readonly List<TimeSpan> _flushSlices = [];
        private readonly List<int> _pollsBetweenFlushes = [];
        private int _polls;
        private int _flushes;
        private int _pollsSinceFlush;

        public int Polls => Volatile.Read(ref _polls);

        public int Flushes => Volatile.Read(ref _flushes);

        public IReadOnlyList<TimeSpan> FlushSlices
        {
            get
            {
                lock (_threads)
                {
                    return [.. _flushSlices];
                }
            }
        }

        /// <summary>Gets, for every flush after the first, how many polls ran since the previous flush.</summary>
        public IReadOnlyList<int> PollsBetweenFlushes
        {
            get
            {
                lock (_threads)
                {
                    return [.. _pollsBetweenFlushes.Skip(1)];
                }
            }
        }

        public int Threads
        {
            get
            {
                lock (_threads)
                {
                    return _threads.Count;
                }
            }
        }

        public DeliveryPump StartPump() => new(Poll, Flush, e => Assert.Fail(e.ToString()), "fake");

        private int Poll(TimeSpan slice)
        {
            Track();
            Interlocked.Increment(ref _pollsSinceFlush);
            Interlocked.Increment(ref _polls);
            cancellationToken.WaitHandle.WaitOne(slice);
            return 0;
        }

        private int Flush(TimeSpan slice)
        {
            Track();
            lock (_threads)
            {
                _flushSlices.Add(slice);
                _pollsBetweenFlushes.Add(Interlocked.Exchange(ref _pollsSinceFlush, 0));
            }

            Interlocked.Increment(ref _flushes);
            if (drains && Volatile.Read(ref _outstanding) > 0)
            {
                return Interlocked.Decrement(ref _outstanding);
            }

            cancellationToken.WaitHandle.WaitOne(slice);
            return Volatile.Read(ref _outstanding);
        }

        private void Track()
        {
            lock (_threads)
            {
                _threads.Add(Environment.CurrentManagedThreadId);
            }
        }
    }
}
