using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Diagnostics;
using KafkaKit.Tests.Support;
using Microsoft.Extensions.Time.Testing;
using Polly;
using Polly.Retry;

namespace KafkaKit.Tests.Consuming.Engine;

/// <summary>Batch forming (PartitionWorker.Batch) and batch processing (MessageProcessor.Batch) without a broker.</summary>
[CancelAfter(30_000)]
public sealed class BatchDispatchTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);
    private static readonly TopicPartition P0 = new("orders", 0);

    [Test]
    public async Task Worker_MessagesWaiting_BatchesOfMaxBatchSizeHandedOverAtOnceInOffsetOrder()
    {
        var time = new FakeTimeProvider(); // never advanced: no batch may wait for MaxBatchWait
        var batches = new ConcurrentQueue<long[]>();
        var worker = new PartitionWorker(P0, CancellationToken.None);
        for (var offset = 0; offset < 25; offset++)
        {
            worker.Write(Raw(offset));
        }

        worker.Start(NotUsed, new BatchDispatch(10, TimeSpan.FromHours(1), time, (raw, offsets, _) => Record(batches, raw, offsets)));
        await Wait.ForAsync(() => worker.Offsets.Committable == 25, Patience, () => $"all 25 committable (batches: {Describe(batches)})");
        worker.BeginStop();
        await worker.Run.WaitAsync(Patience);

        Assert.Multiple(() =>
        {
            Assert.That(batches.Select(b => b.Length), Is.EqualTo(new[] { 10, 10, 5 }), "what is waiting goes at once, up to MaxBatchSize");
            Assert.That(batches.SelectMany(b => b), Is.EqualTo(Enumerable.Range(0, 25).Select(i => (long)i)), "offset order, each once");
            Assert.That(worker.Buffered, Is.Zero);
        });
    }

    [Test]
    public async Task Worker_EmptyBufferThenMessages_BatchWaitsMaxBatchWaitAfterItsFirstMessage()
    {
        var time = new TimerCountingTime();
        var batches = new ConcurrentQueue<long[]>();
        var worker = new PartitionWorker(P0, CancellationToken.None);
        worker.Start(NotUsed, new BatchDispatch(100, TimeSpan.FromSeconds(1), time, (raw, offsets, _) => Record(batches, raw, offsets)));

        // A message written before the worker's task reached its wait is "waiting" and goes at once: write one at a
        // time until a batch waits for more (it creates a timer on the time source).
        var offset = 0L;
        worker.Write(Raw(offset));
        await Wait.ForAsync(
            () =>
            {
                if (time.Timers == 0 && worker.Offsets.Committable == offset + 1)
                {
                    worker.Write(Raw(++offset));
                }

                return time.Timers > 0;
            },
            Patience,
            "a batch started from an empty buffer waits for more");
        worker.Write(Raw(offset + 1));
        await Wait.ForAsync(() => worker.Buffered == 2, Patience, "both buffered");
        var before = batches.Count;
        time.Advance(TimeSpan.FromSeconds(1));
        await Wait.ForAsync(() => batches.Count == before + 1, Patience, "the batch is handed over once MaxBatchWait passed");
        worker.BeginStop();
        await worker.Run.WaitAsync(Patience);

        Assert.Multiple(() =>
        {
            Assert.That(before, Is.EqualTo(offset), "the waiting batch was not handed over before MaxBatchWait (the time source had not moved)");
            Assert.That(batches.Last(), Is.EqualTo(new long[] { offset, offset + 1 }));
            Assert.That(worker.Offsets.Committable, Is.EqualTo(offset + 2));
        });
    }

    [Test]
    public async Task Process_KafkaBatchExceptionAtIndex2WithSkip_TwoCommittedAtOnceFailedRetriedAloneThenSkippedRestLeft()
    {
        var calls = new List<long[]>();
        long committableDuringRetry = -2;
        BatchProcessorTest? test = null;
        test = new BatchProcessorTest(ConsumerErrorAction.Skip, batch =>
        {
            calls.Add([.. batch.Select(r => r.Offset.Value)]);
            if (calls.Count > 1)
            {
                committableDuringRetry = test!.Offsets.Committable;
            }

            var index = batch.ToList().FindIndex(r => r.Offset.Value == 2);
            return index < 0 ? ValueTask.CompletedTask : throw new KafkaBatchException(index, new TimeoutException("offset 2 failed"));
        });

        var outcome = await test.ProcessAsync(5);

        Assert.Multiple(() =>
        {
            Assert.That(outcome, Is.EqualTo(new BatchOutcome(3, true)), "0 and 1 handled, 2 skipped; 3 and 4 come again");
            Assert.That(calls, Is.EqualTo(new[] { new long[] { 0, 1, 2, 3, 4 }, [2] }), "the batch call is the failed message's first attempt; its 1 retry is alone");
            Assert.That(committableDuringRetry, Is.EqualTo(2), "the messages before the failed one are committable before its retries");
            Assert.That(test.Offsets.Committable, Is.EqualTo(3));
            Assert.That(test.Logs.Lines.Count(l => l.EventId.Id == 2100), Is.EqualTo(1));
            Assert.That(test.Logs.Lines.Single(l => l.EventId.Id == 2008).Message, Does.Contain("orders [0] @2 failed (batch handler); action Skip"));
            Assert.That(test.Faults, Is.Empty);
        });
    }

    [Test]
    public async Task Process_OtherExceptionWithStop_WholeBatchRetriedThenNothingDoneAndFaulted()
    {
        var calls = 0;
        var test = new BatchProcessorTest(ConsumerErrorAction.Stop, _ =>
        {
            calls++;
            throw new InvalidOperationException("boom");
        });

        var outcome = await test.ProcessAsync(3);

        Assert.Multiple(() =>
        {
            Assert.That(outcome, Is.EqualTo(new BatchOutcome(0, false)));
            Assert.That(calls, Is.EqualTo(2), "one call and one retry of the whole batch");
            Assert.That(test.Offsets.Committable, Is.EqualTo(Offset.Unset.Value), "nothing of the batch committable");
            Assert.That(test.Faults.Single().Message, Does.Contain("orders [0] @0 failed (batch handler); OnError is Stop"));
        });
    }

    [Test]
    public async Task Process_OtherExceptionWithSkip_EveryMessageSkippedAndDone()
    {
        var test = new BatchProcessorTest(ConsumerErrorAction.Skip, _ => throw new InvalidOperationException("boom"));

        var outcome = await test.ProcessAsync(3);

        Assert.Multiple(() =>
        {
            Assert.That(outcome, Is.EqualTo(new BatchOutcome(3, true)));
            Assert.That(test.Logs.Lines.Count(l => l.EventId.Id == 2008), Is.EqualTo(3), "the policy applies to every message of the batch");
            Assert.That(test.Logs.Lines.Where(l => l.EventId.Id == 2008).Select(l => l.Exception?.Message), Is.EqualTo(new[] { "boom", null, null }),
                "the exception (with its stack) is logged once, with the first message");
            Assert.That(test.Logs.Lines.Where(l => l.EventId.Id == 2008).Last().Message, Does.Contain("@2 failed (batch handler, the error logged with @0); action Skip"));
            Assert.That(test.Offsets.Committable, Is.EqualTo(3));
        });
    }

    [Test]
    public async Task Process_IndexOutsideBatch_LoggedAndCountedAsWholeBatchFailure()
    {
        var test = new BatchProcessorTest(ConsumerErrorAction.Skip, _ => throw new KafkaBatchException(7, new TimeoutException("x")));

        var outcome = await test.ProcessAsync(3);

        Assert.Multiple(() =>
        {
            Assert.That(outcome, Is.EqualTo(new BatchOutcome(3, true)));
            Assert.That(test.Logs.Lines.Count(l => l.EventId.Id == 2101), Is.EqualTo(2), "once per call (the call and its retry)");
            Assert.That(test.Logs.Lines.Count(l => l.EventId.Id == 2008), Is.EqualTo(3));
        });
    }

    [Test]
    public void StartProcessBatch_MessagesWithAndWithoutSendContext_OneSpanLinkedToEachPropagatedContext()
    {
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == KafkaKitTracing.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(listener);
        var senders = new[] { ActivityTraceId.CreateRandom(), ActivityTraceId.CreateRandom() };
        var raw = new List<ConsumeResult<byte[]?, byte[]?>> { Raw(0), Raw(1), Raw(2) };
        raw[0].Message.Headers = [new Header("traceparent", Encoding.UTF8.GetBytes($"00-{senders[0]}-{ActivitySpanId.CreateRandom()}-01"))];
        raw[2].Message.Headers = [new Header("traceparent", Encoding.UTF8.GetBytes($"00-{senders[1]}-{ActivitySpanId.CreateRandom()}-01"))];

        using var activity = KafkaKitTracing.StartProcessBatch("c", "g", raw);

        Assert.That(activity, Is.Not.Null);
        Assert.Multiple(() =>
        {
            Assert.That(activity!.DisplayName, Is.EqualTo("process orders"));
            Assert.That(activity.Links.Select(l => l.Context.TraceId), Is.EqualTo(senders), "one link per message that carried a send context");
            Assert.That(activity.TraceId, Is.Not.AnyOf(senders), "not a child of any one sender");
            Assert.That(activity.GetTagItem("messaging.batch.message_count"), Is.EqualTo(3));
            Assert.That(activity.GetTagItem("messaging.destination.partition.id"), Is.EqualTo("0"));
        });
    }

    [Test]
    public void KafkaBatchException_NegativeIndexOrNullInner_Refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new KafkaBatchException(-1, new TimeoutException()));
        Assert.Throws<ArgumentNullException>(() => _ = new KafkaBatchException(0, null!));
    }

    private static ValueTask<bool> NotUsed(ConsumeResult<byte[]?, byte[]?> result, CancellationToken cancellationToken) =>
        throw new InvalidOperationException("a batch worker hands messages to its batch step");

    private static ConsumeResult<byte[]?, byte[]?> Raw(long offset) => new()
    {
        TopicPartitionOffset = new TopicPartitionOffset(P0, offset),
        Message = new Message<byte[]?, byte[]?> { Key = Encoding.UTF8.GetBytes("k"), Value = Encoding.UTF8.GetBytes("v" + offset) },
    };

    private static ValueTask<BatchOutcome> Record(ConcurrentQueue<long[]> batches, List<ConsumeResult<byte[]?, byte[]?>> raw, OffsetTracker offsets)
    {
        batches.Enqueue([.. raw.Select(r => r.Offset.Value)]);
        foreach (var result in raw)
        {
            offsets.Complete(result.Offset.Value);
        }

        return ValueTask.FromResult(new BatchOutcome(raw.Count, true));
    }

    private static string Describe(ConcurrentQueue<long[]> batches) => string.Join(" ", batches.Select(b => $"[{string.Join(",", b)}]"));

    /// <summary>A fake time source that counts the timers created on it (a batch's wait creates one).</summary>
    private sealed class TimerCountingTime : FakeTimeProvider
    {
        private int _timers;

        public int Timers => Volatile.Read(ref _timers);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            Interlocked.Increment(ref _timers);
            return base.CreateTimer(callback, state, dueTime, period);
        }
    }

    /// <summary>A batch processor with one retry, over messages 0..n-1 of orders [0].</summary>
    private sealed class BatchProcessorTest
    {
        public BatchProcessorTest(ConsumerErrorAction onError, Func<IReadOnlyList<ConsumeResult<string, string>>, ValueTask> handler)
        {
            var retry = new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions { MaxRetryAttempts = 1, Delay = TimeSpan.Zero }).Build();
            Processor = new MessageProcessor<string, string>(
                "test", "group", new KafkaConsumerOptions { OnError = onError }, Deserializers.Utf8, Deserializers.Utf8,
                (_, _) => throw new InvalidOperationException("not a message consumer"), retry, firstAttemptOutsidePipeline: true, null, Faults.Add,
                Logs.CreateLogger("KafkaKit.Consumer"), TimeProvider.System)
            {
                BatchHandler = (batch, _) => handler(batch),
            };
        }

        public MessageProcessor<string, string> Processor { get; }

        public OffsetTracker Offsets { get; } = new(P0);

        public List<Exception> Faults { get; } = [];

        public CapturingLoggerFactory Logs { get; } = new();

        public ValueTask<BatchOutcome> ProcessAsync(int count)
        {
            var raw = Enumerable.Range(0, count).Select(i => Raw(i)).ToList();
            raw.ForEach(r => Offsets.Track(r.Offset.Value));
            return Processor.ProcessBatchAsync(raw, Offsets, CancellationToken.None);
        }
    }
}
