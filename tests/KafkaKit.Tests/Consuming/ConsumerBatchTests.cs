using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;
using Microsoft.Extensions.Options;
using static KafkaKit.Tests.Consuming.ConsumerTestKit;

namespace KafkaKit.Tests.Consuming;

/// <summary>Batch handlers on the embedded cluster: batch bounds, partial and whole-batch failures, stop and revoke mid-batch, validation.</summary>
[TestFixture]
[Parallelizable(ParallelScope.Self)] // fixtures overlap (most of their time is spent waiting on the cluster); tests within one run in sequence
public sealed class ConsumerBatchTests
{
    [Test]
    [CancelAfter(60_000)]
    public async Task BatchHandler_MessagesWaiting_BatchesBoundedByMaxBatchSizeInOffsetOrderWithoutWaiting()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("bsize", partitions: 1);
        KafkaProbe.Produce(cluster.BootstrapServers, "bsize", Messages("m", 25));
        var options = Options(cluster, "bsize-group", "bsize");
        options.Batch.MaxBatchSize = 10;
        options.Batch.MaxBatchWait = TimeSpan.FromSeconds(20); // longer than the test may take: only the size can end the first batch
        var batches = new Batches();
        await using var consumer = new KafkaConsumerBuilder<string, string>("bsize", options).SetBatchHandler(batches.Record).Build();

        await consumer.StartAsync();
        await Wait.ForAsync(() => batches.Values.Count == 25, TimeSpan.FromSeconds(15), () => $"25 handled ({batches})");

        Assert.Multiple(() =>
        {
            Assert.That(batches.Sizes, Has.All.InRange(1, 10), "no batch above MaxBatchSize");
            Assert.That(batches.Sizes[0], Is.EqualTo(10), "the first batch waited for 10, not for MaxBatchWait");
            Assert.That(batches.Values, Is.EqualTo(Enumerable.Range(0, 25).Select(i => $"m{i}")), "offset order, each once");
            Assert.That(batches.Offsets.SelectMany(o => o), Is.Ordered);
        });
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task BatchHandler_FewMessages_HandedOverOnceMaxBatchWaitPassed()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("bwait", partitions: 1);
        var options = Options(cluster, "bwait-group", "bwait");
        options.Batch.MaxBatchSize = 100;
        options.Batch.MaxBatchWait = TimeSpan.FromSeconds(2);
        var batches = new Batches();
        await using var consumer = new KafkaConsumerBuilder<string, string>("bwait", options).SetBatchHandler(batches.Record).Build();
        await consumer.StartAsync();
        await Wait.ForAsync(() => consumer.Assignment.Count == 1, TimeSpan.FromSeconds(20), "assigned");

        var clock = Stopwatch.StartNew();
        KafkaProbe.Produce(cluster.BootstrapServers, "bwait", Messages("m", 3));
        await Wait.ForAsync(() => batches.Values.Count == 3, TimeSpan.FromSeconds(15), () => $"3 handled ({batches})");
        var took = clock.Elapsed;

        Assert.Multiple(() =>
        {
            Assert.That(batches.Sizes, Is.EqualTo(new[] { 3 }), "one batch of the 3, under MaxBatchSize");
            Assert.That(took, Is.GreaterThanOrEqualTo(TimeSpan.FromSeconds(1.9)), "handed over by MaxBatchWait after the first message, not before");
            Assert.That(took, Is.LessThan(TimeSpan.FromSeconds(8)), "not held beyond MaxBatchWait");
        });
    }

    [Test]
    [CancelAfter(90_000)]
    public async Task BatchHandler_KafkaBatchExceptionWithDeadLetter_BeforeCommittedExactlyFailedDeadLetteredAfterRetriesRestHandledAgain()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("bpart", partitions: 1);
        cluster.CreateTopic("bpart.DLT", partitions: 1);
        KafkaProbe.Produce(cluster.BootstrapServers, "bpart", Messages("m", 10));
        var options = Options(cluster, "bpart-group", "bpart");
        options.Batch.MaxBatchSize = 10;
        options.Batch.MaxBatchWait = TimeSpan.FromSeconds(20);
        options.OnError = ConsumerErrorAction.DeadLetter;
        options.Retry.MaxRetryAttempts = 2;
        options.Retry.BaseDelay = TimeSpan.FromMilliseconds(20);
        options.CommitInterval = TimeSpan.FromMilliseconds(100);
        var retried = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var batches = new Batches();
        await using var consumer = new KafkaConsumerBuilder<string, string>("bpart", options)
            .SetBatchHandler(async (batch, ct) =>
            {
                await batches.Record(batch, ct);
                var index = batch.Select(r => r.Message.Value).ToList().IndexOf("m4");
                if (index < 0)
                {
                    return;
                }

                if (batch.Count == 1)
                {
                    await retried.Task.WaitAsync(ct); // the first retry of m4 waits until the test read the committed offset
                }

                throw new KafkaBatchException(index, new TimeoutException("m4 failed"));
            })
            .Build();

        await consumer.StartAsync();
        var during = await WaitForCommittedAsync(cluster, "bpart-group", "bpart", 1, c => c[0] >= 4, TimeSpan.FromSeconds(20), "the messages before m4");
        retried.SetResult();
        var after = await WaitForCommittedAsync(cluster, "bpart-group", "bpart", 1, c => c[0] == 10, TimeSpan.FromSeconds(20), "everything");
        var dead = KafkaProbe.ReadAll(cluster.BootstrapServers, "bpart.DLT", 1, expected: 1, TimeSpan.FromSeconds(10));

        var handled = batches.Values.GroupBy(v => v).ToDictionary(g => g.Key, g => g.Count());
        Assert.Multiple(() =>
        {
            Assert.That(during[0], Is.EqualTo(4), "while m4 is retried exactly m0..m3 are committed");
            Assert.That(after[0], Is.EqualTo(10));
            Assert.That(batches.Offsets[0], Is.EqualTo(Enumerable.Range(0, 10)), "the first batch holds all 10");
            Assert.That(batches.Offsets.Skip(1).Take(2), Is.EqualTo(new[] { new long[] { 4 }, [4] }), "m4 retried alone, twice");
            Assert.That(batches.Offsets.Skip(3).SelectMany(o => o), Is.EqualTo(new long[] { 5, 6, 7, 8, 9 }), "the rest delivered again, once");
            Assert.That(Enumerable.Range(0, 4).Select(i => handled[$"m{i}"]), Has.All.EqualTo(1), "the messages before m4 handled once");
            Assert.That(dead, Has.Count.EqualTo(1));
            Assert.That(Encoding.UTF8.GetString(dead[0].Message.Value!), Is.EqualTo("m4"));
            Assert.That(Encoding.UTF8.GetString(dead[0].Message.Headers.GetLastBytes(DeadLetterPublisher.OriginalOffsetHeader)), Is.EqualTo("4"));
            Assert.That(Encoding.UTF8.GetString(dead[0].Message.Headers.GetLastBytes(DeadLetterPublisher.ExceptionMessageHeader)), Is.EqualTo("m4 failed"));
            Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Running));
        });
    }

    [Test]
    [CancelAfter(90_000)]
    public async Task BatchHandler_UnhandledFailureWithStop_WholeBatchRetriedAndNothingOfItCommitted()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("bstop", partitions: 1);
        KafkaProbe.Produce(cluster.BootstrapServers, "bstop", Messages("a", 3));
        var options = Options(cluster, "bstop-group", "bstop");
        options.Retry.MaxRetryAttempts = 1;
        options.Retry.BaseDelay = TimeSpan.FromMilliseconds(20);
        options.CommitInterval = TimeSpan.FromMilliseconds(100);
        options.OnFault = ConsumerFaultBehavior.KeepHostRunning;
        var batches = new Batches();
        await using var consumer = new KafkaConsumerBuilder<string, string>("bstop", options)
            .SetBatchHandler(async (batch, ct) =>
            {
                await batches.Record(batch, ct);
                if (batch[0].Message.Value.StartsWith('b'))
                {
                    throw new InvalidOperationException("the database refused the batch");
                }
            })
            .Build();

        await consumer.StartAsync();
        await WaitForCommittedAsync(cluster, "bstop-group", "bstop", 1, c => c[0] == 3, TimeSpan.FromSeconds(20), "the a batch");
        KafkaProbe.Produce(cluster.BootstrapServers, "bstop", Messages("b", 3));
        await Wait.ForAsync(() => consumer.State == KafkaConsumerState.Faulted, TimeSpan.FromSeconds(20), "the consumer stops on the b batch");
        var committed = KafkaProbe.Committed(cluster.BootstrapServers, "bstop-group", "bstop", 1);

        Assert.Multiple(() =>
        {
            Assert.That(committed[0], Is.EqualTo(3), "nothing of the failed batch committed");
            Assert.That(batches.Offsets.Skip(1), Is.EqualTo(new[] { new long[] { 3, 4, 5 }, [3, 4, 5] }), "the whole batch retried once");
            Assert.That(consumer.Fault!.Message, Does.Contain("bstop [0] @3 failed (batch handler); OnError is Stop"));
        });
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task BatchHandler_StopMidBatch_CancelledAfterShutdownTimeoutAndOnlyFinishedBatchesCommitted()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("bmid", partitions: 1);
        KafkaProbe.Produce(cluster.BootstrapServers, "bmid", Messages("a", 3));
        var options = Options(cluster, "bmid-group", "bmid");
        options.CommitInterval = TimeSpan.FromMinutes(1); // only the stop's commit counts
        options.ShutdownTimeout = TimeSpan.FromSeconds(1);
        var cancelled = 0;
        var batches = new Batches();
        var consumer = new KafkaConsumerBuilder<string, string>("bmid", options)
            .SetBatchHandler(async (batch, ct) =>
            {
                await batches.Record(batch, ct);
                if (batch[0].Message.Value.StartsWith('b'))
                {
                    try
                    {
                        await Task.Delay(Timeout.Infinite, ct); // a batch that outlives the stop's bound
                    }
                    catch (OperationCanceledException)
                    {
                        Interlocked.Increment(ref cancelled);
                        throw;
                    }
                }
            })
            .Build();

        await consumer.StartAsync();
        await Wait.ForAsync(() => batches.Values.Count == 3, TimeSpan.FromSeconds(20), "the a batch handled");
        KafkaProbe.Produce(cluster.BootstrapServers, "bmid", Messages("b", 3));
        await Wait.ForAsync(() => batches.Values.Count == 6, TimeSpan.FromSeconds(20), "the b batch started");
        await consumer.DisposeAsync();
        var committed = KafkaProbe.Committed(cluster.BootstrapServers, "bmid-group", "bmid", 1);

        Assert.Multiple(() =>
        {
            Assert.That(cancelled, Is.EqualTo(1), "the running batch was cancelled");
            Assert.That(committed[0], Is.EqualTo(3), "the finished batch committed, nothing of the cancelled one");
            Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Stopped));
        });
    }

    [Test]
    [CancelAfter(90_000)]
    public async Task BatchHandler_RevokeMidBatch_CancelledAfterRevokeTimeoutAndNextOwnerStartsAtTheUnfinishedBatch(
        [Values(KafkaKit.Consuming.PartitionAssignmentStrategy.CooperativeSticky, KafkaKit.Consuming.PartitionAssignmentStrategy.Range)] KafkaKit.Consuming.PartitionAssignmentStrategy strategy)
    {
        // Eager (Range): the first member revokes both partitions, cancels both unfinished batches and gets one partition
        // back (its batch there comes again and waits again); cooperative: it revokes only the partition that moves.
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("brev", partitions: 2);
        for (var p = 0; p < 2; p++)
        {
            KafkaProbe.Produce(cluster.BootstrapServers, "brev", Messages("a", 3), p);
        }

        var options = Options(cluster, "brev-group", "brev");
        options.AssignmentStrategy = strategy;
        options.RevokeTimeout = TimeSpan.FromSeconds(1);
        options.ShutdownTimeout = TimeSpan.FromSeconds(1);
        var a = new Batches();
        var logs = new CapturingLoggerFactory();
        await using var first = new KafkaConsumerBuilder<string, string>("brev-a", options)
            .SetLoggerFactory(logs)
            .SetBatchHandler(async (batch, ct) =>
            {
                await a.Record(batch, ct);
                if (batch[0].Message.Value.StartsWith('b'))
                {
                    await Task.Delay(Timeout.Infinite, ct); // never finishes: only the revoke's cancel ends it
                }
            })
            .Build();
        await first.StartAsync();
        await Wait.ForAsync(() => a.Values.Count == 6, TimeSpan.FromSeconds(20), "the a batches of both partitions handled");
        for (var p = 0; p < 2; p++)
        {
            KafkaProbe.Produce(cluster.BootstrapServers, "brev", Messages("b", 3), p);
        }

        await Wait.ForAsync(() => a.Values.Count == 12, TimeSpan.FromSeconds(20), "the b batches of both partitions started");
        var b = new Batches();
        var secondOptions = Options(cluster, "brev-group", "brev");
        secondOptions.AssignmentStrategy = strategy;
        await using var second = new KafkaConsumerBuilder<string, string>("brev-b", secondOptions).SetBatchHandler(b.Record).Build();
        await second.StartAsync();
        await Wait.ForAsync(() => b.Values.Contains("b2"), TimeSpan.FromSeconds(40), "the second member handles the moved partition's b batch");
        var moved = second.Assignment.Single().Partition.Value;
        var committed = KafkaProbe.Committed(cluster.BootstrapServers, "brev-group", "brev", 2);
        var refused = logs.Lines.Where(l => l.EventId.Id is 2004 or 2063).Select(l => $"{l.EventId.Id} {l.Message}").ToList();
        TestContext.Out.WriteLine($"{strategy}: committed {string.Join(", ", committed)}; second member's batches {b}; commit failures: {string.Join(" | ", refused)}");

        // An eager revoke's commit reaches the embedded cluster while its group is rebalancing, and it answers
        // RebalanceInProgress (a broker accepts a commit of the current generation until the rebalance completes): then
        // the finished batch is not committed and comes again (at least once); never is anything after it committed.
        var commitRefused = strategy == KafkaKit.Consuming.PartitionAssignmentStrategy.Range && refused.Any(m => m.StartsWith("2063 ", StringComparison.Ordinal) && m.Contains("RebalanceInProgress", StringComparison.Ordinal) && m.Contains($"brev [{moved}] @3", StringComparison.Ordinal));
        var start = commitRefused ? Math.Max(0, committed[moved]) : 3;
        Assert.Multiple(() =>
        {
            Assert.That(committed[moved], commitRefused ? Is.LessThanOrEqualTo(3) : Is.EqualTo(3), "the revoke committed the finished batch only");
            Assert.That(b.Offsets[0][0], Is.EqualTo(start), "the next owner starts at the committed offset");
            Assert.That(b.Values.Skip(3 - (int)start).Take(3), Is.EqualTo(new[] { "b0", "b1", "b2" }), "then the cancelled batch, in order");
            Assert.That(refused.Count == 0 || commitRefused, Is.True, "no commit failure other than the embedded cluster's refusal during an eager rebalance");
        });
    }

    [Test]
    public void BatchBuild_BadBatchOptionsAndKeyOrdering_ThrowsOptionsValidationListingEveryProblem()
    {
        var options = new KafkaConsumerOptions { BootstrapServers = Unreachable, GroupId = "g", Topics = { "t" }, Ordering = ConsumerOrdering.Key };
        options.Batch.MaxBatchSize = 0;
        options.Batch.MaxBatchWait = TimeSpan.FromSeconds(-1);

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("c", options).SetBatchHandler((_, _) => default).Build());

        Assert.That(e!.Failures, Is.EquivalentTo(new[]
        {
            "Consumer 'c': Batch.MaxBatchSize is 0; it must be between 1 and 100000 messages.",
            "Consumer 'c': Batch.MaxBatchWait is -00:00:01; it must be between 0 and 5 minutes.",
            "Consumer 'c': Ordering is Key, but a batch handler needs Ordering = Partition (a batch holds messages of one partition in offset order); remove Ordering or use a message handler.",
        }));
    }

    [Test]
    public void BatchBuild_RetryTopics_ThrowsOptionsValidationNamingTheAllowedActions()
    {
        var options = new KafkaConsumerOptions { BootstrapServers = Unreachable, GroupId = "g", Topics = { "t" }, OnError = ConsumerErrorAction.RetryTopics };
        options.RetryTopics.Delays.Add(TimeSpan.FromSeconds(1));

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("c", options).SetBatchHandler((_, _) => default).Build());

        Assert.That(e!.Failures, Is.EqualTo(new[]
        {
            "Consumer 'c': OnError is RetryTopics, which a batch handler does not support (a retry record's offset completes on the broker's acknowledgement, one message at a time); use DeadLetter, Skip or Stop, or a message handler.",
        }));
    }

    [Test]
    public void BatchBuild_BothHandlersAndBatchAboveBuffer_ThrowsOptionsValidationNamingBoth()
    {
        var options = new KafkaConsumerOptions { BootstrapServers = Unreachable, GroupId = "g", Topics = { "t" }, PartitionBufferSize = 100 };

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("c", options)
            .SetHandler((_, _) => default)
            .SetBatchHandler((_, _) => default)
            .Build());

        Assert.That(e!.Failures, Is.EquivalentTo(new[]
        {
            "Consumer 'c' has both a message handler and a batch handler: set one (SetHandler or SetBatchHandler).",
            "Consumer 'c': Batch.MaxBatchSize (500) is more than PartitionBufferSize (100); a batch is formed in the partition's buffer, so it must be at most PartitionBufferSize messages.",
        }));
    }

    [Test]
    public void MessageBuild_BatchOptionsOutOfRange_RefusedThoughIgnored()
    {
        var options = new KafkaConsumerOptions { BootstrapServers = Unreachable, GroupId = "g", Topics = { "t" }, PartitionBufferSize = 100 };
        options.Batch.MaxBatchWait = TimeSpan.FromMinutes(6);

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("c", options).SetHandler((_, _) => default).Build());

        Assert.That(e!.Failures, Is.EqualTo(new[] { "Consumer 'c': Batch.MaxBatchWait is 00:06:00; it must be between 0 and 5 minutes." }),
            "out-of-range values are refused in every mode; MaxBatchSize above PartitionBufferSize only matters to a batch handler");
    }

    /// <summary>Records the batches a handler received.</summary>
    private sealed class Batches
    {
        private readonly ConcurrentQueue<ConsumeResult<string, string>[]> _batches = new();

        public List<int> Sizes => [.. _batches.Select(b => b.Length)];

        public List<long[]> Offsets => [.. _batches.Select(b => b.Select(r => r.Offset.Value).ToArray())];

        public List<string> Values => [.. _batches.SelectMany(b => b.Select(r => r.Message.Value))];

        public ValueTask Record(IReadOnlyList<ConsumeResult<string, string>> batch, CancellationToken cancellationToken)
        {
            _batches.Enqueue([.. batch]);
            return ValueTask.CompletedTask;
        }

        public override string ToString() => string.Join(" ", _batches.Select(b => $"[{string.Join(",", b.Select(r => $"p{r.Partition.Value}@{r.Offset.Value}"))}]"));
    }
}
