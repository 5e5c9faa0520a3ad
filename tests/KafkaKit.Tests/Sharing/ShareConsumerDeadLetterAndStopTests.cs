using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Hosting;
using KafkaKit.Sharing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Sharing;

[TestFixture]
[Parallelizable(ParallelScope.Self)]
public sealed class ShareConsumerDeadLetterAndStopTests
{
    /// <summary>
    /// Three records whose handler always fails, MaxDeliveryAttempts 2 under the cluster's limit of 3: each is released
    /// once, dead-lettered once on its second delivery and accepted. The dead-letter producer is created when the share
    /// consumer starts: created at the first dead letter, its connections ended the embedded cluster's share sessions, the
    /// acceptances were refused and the records came a third time and were dead-lettered again (six dead letters).
    /// </summary>
    [Test]
    [CancelAfter(120_000)]
    public async Task AlwaysFailingRecords_BelowTheClusterLimit_EachDeadLetteredOnceAfterTwoAttempts()
    {
        await using var cluster = ShareTestKit.Cluster(maxDeliveryAttempts: 3);
        cluster.CreateTopic("jobs");
        cluster.CreateTopic("jobs.DLT");
        using var producer = ShareTestKit.Producer(cluster);
        ShareTestKit.Produce(producer, "jobs", 3);
        var options = ShareTestKit.Options(cluster, "dlt-once", "jobs");
        options.MaxDeliveryAttempts = 2;
        options.DeadLetterTopic = "jobs.DLT";
        var logs = new CapturingLoggerFactory();
        var calls = new ConcurrentDictionary<string, int>();
        var consumer = new KafkaShareConsumerBuilder<string, string>("dlt-once", options)
            .SetHandler((r, _) =>
            {
                calls.AddOrUpdate(r.Message.Value, 1, (_, n) => n + 1);
                throw new InvalidOperationException("always fails");
            })
            .SetLoggerFactory(logs)
            .Build();
        string health;
        await using (consumer)
        {
            await consumer.StartAsync();
            await Wait.ForAsync(() => consumer.DeadLettered >= 3, TimeSpan.FromSeconds(60), () => $"3 records dead-lettered; {consumer.DeadLettered} so far, calls {string.Join(", ", calls)}");
            health = KafkaClientHealth.For(consumer).Evaluate().Item2;
            await consumer.StopAsync(); // the final commit waits for the broker's answer to every acknowledgement
        }

        var dead = KafkaProbe.ReadAll(cluster.BootstrapServers, "jobs.DLT", 1, 3, TimeSpan.FromSeconds(15));
        var written = ShareTestKit.EndOffset(cluster, "jobs.DLT");

        var refused = logs.Lines.Where(l => l.EventId.Id is 6008 or 6009 or 6013).Select(l => l.Message).ToList();
        TestContext.Out.WriteLine($"dead letters written {written}; calls {string.Join(", ", calls.OrderBy(c => c.Key))}; health '{health}'; refused acknowledgements: {string.Join(" | ", refused)}");
        Assert.Multiple(() =>
        {
            Assert.That(written, Is.EqualTo(3), "each record dead-lettered exactly once (the dead-letter topic's end offset)");
            Assert.That(dead.Select(d => Encoding.UTF8.GetString(d.Message.Value!)).Order(), Is.EqualTo(new[] { "v0", "v1", "v2" }));
            Assert.That(dead.Select(d => Encoding.UTF8.GetString(d.Message.Headers.GetLastBytes(DeadLetterPublisher.DeliveryCountHeader))), Is.All.EqualTo("2"), "the dead letter carries the delivery count");
            Assert.That(calls, Is.EquivalentTo(new Dictionary<string, int> { ["v0"] = 2, ["v1"] = 2, ["v2"] = 2 }), "each record handled on two deliveries only");
            Assert.That((consumer.Released, consumer.DeadLettered, consumer.Accepted, consumer.Rejected), Is.EqualTo((3L, 3L, 3L, 0L)));
            Assert.That(refused, Is.Empty, "no acknowledgement refused");
            Assert.That(logs.Count(2060), Is.EqualTo(1), "one dead-letter producer");
            Assert.That(logs.Lines.Single(l => l.EventId.Id == 2060).Message, Does.StartWith("Share consumer dlt-once: dead-letter producer created ("));
            Assert.That(health, Does.Contain("3 dead-lettered"), "the health entry counts dead letters");
        });
    }

    /// <summary>
    /// A stop request makes the state Stopping at once (it stays so while a handler finishes), then Stopped; the stop
    /// log line (6015) gives the stop's duration, not the consumer's lifetime.
    /// </summary>
    [Test]
    [CancelAfter(60_000)]
    public async Task StopRequested_StateIsStoppingUntilTheEnd_StopLineGivesTheStopDuration()
    {
        await using var cluster = ShareTestKit.Cluster();
        cluster.CreateTopic("jobs");
        using var producer = ShareTestKit.Producer(cluster);
        ShareTestKit.Produce(producer, "jobs", 1);
        var logs = new CapturingLoggerFactory();
        var inHandler = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var lifetime = Stopwatch.StartNew();
        await using var consumer = new KafkaShareConsumerBuilder<string, string>("stopper", ShareTestKit.Options(cluster, "stop-group", "jobs"))
            .SetHandler(async (_, ct) =>
            {
                inHandler.TrySetResult();
                await release.Task.WaitAsync(ct);
            })
            .SetLoggerFactory(logs)
            .Build();
        await consumer.StartAsync();
        await inHandler.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var running = consumer.State;

        var stopClock = Stopwatch.StartNew();
        var stop = consumer.StopAsync();
        var requested = consumer.State;
        var healthWhileStopping = KafkaClientHealth.For(consumer).Judge(null);
        release.SetResult();
        await stop;
        stopClock.Stop();
        lifetime.Stop();

        var line = logs.Lines.Single(l => l.EventId.Id == 6015).Message;
        TestContext.Out.WriteLine($"{line} (stop measured {stopClock.Elapsed}, lifetime {lifetime.Elapsed})");
        var logged = TimeSpan.Parse(line.Split(' ')[4], CultureInfo.InvariantCulture);
        Assert.Multiple(() =>
        {
            Assert.That((running, requested, consumer.State), Is.EqualTo((KafkaConsumerState.Running, KafkaConsumerState.Stopping, KafkaConsumerState.Stopped)));
            Assert.That(healthWhileStopping.Description, Is.EqualTo("stopping"));
            Assert.That(line, Does.StartWith("Share consumer stopper stopped ").And.Contain(" after the stop began: 1 accepted"));
            Assert.That(logged, Is.LessThanOrEqualTo(stopClock.Elapsed), "the stop's duration (the lifetime was longer: the start and the first delivery came before)");
        });
    }

    /// <summary>
    /// MaxDeliveryAttempts (default 5) above the cluster's limit of 3: the record is released on deliveries 1 to 3 and
    /// the broker archives it by itself; it is neither rejected nor dead-lettered, and the release lines ("delivery 3 of
    /// 5") are the only trace (documented: KafkaKit cannot read the broker's limit).
    /// </summary>
    [Test]
    [CancelAfter(60_000)]
    public async Task MaxDeliveryAttemptsAboveTheClusterLimit_BrokerArchivesTheRecord_OnlyTheReleaseLinesTell()
    {
        await using var cluster = ShareTestKit.Cluster(maxDeliveryAttempts: 3);
        cluster.CreateTopic("jobs");
        cluster.CreateTopic("jobs.DLT");
        using var producer = ShareTestKit.Producer(cluster);
        ShareTestKit.Produce(producer, "jobs", 1);
        var options = ShareTestKit.Options(cluster, "above-limit", "jobs");
        options.DeadLetterTopic = "jobs.DLT";
        var logs = new CapturingLoggerFactory();
        var calls = 0;
        var later = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var consumer = new KafkaShareConsumerBuilder<string, string>("above-limit", options)
            .SetHandler((r, _) =>
            {
                if (r.Message.Value != "v0")
                {
                    later.TrySetResult();
                    return ValueTask.CompletedTask;
                }

                Interlocked.Increment(ref calls);
                throw new InvalidOperationException("always fails");
            })
            .SetLoggerFactory(logs)
            .Build();
        await consumer.StartAsync();
        await Wait.ForAsync(() => consumer.Released >= 3, TimeSpan.FromSeconds(30), () => $"three releases; {consumer.Released} so far");

        // A record produced after the third release is fetched after it: had the broker kept v0, v0 would come first.
        ShareTestKit.Produce(producer, "jobs", 1, from: 1);
        await later.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await consumer.StopAsync();

        var releases = logs.Lines.Where(l => l.EventId.Id == 6004).Select(l => l.Message).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(Volatile.Read(ref calls), Is.EqualTo(3), "delivered up to the cluster's limit only");
            Assert.That((consumer.Released, consumer.Rejected, consumer.DeadLettered), Is.EqualTo((3L, 0L, 0L)), "released three times; neither rejected nor dead-lettered");
            Assert.That(ShareTestKit.EndOffset(cluster, "jobs.DLT"), Is.Zero, "no dead letter");
            Assert.That(releases.Select(m => m[(m.IndexOf(" on delivery ", StringComparison.Ordinal) + 1)..m.IndexOf(", released", StringComparison.Ordinal)]), Is.EqualTo(new[] { "on delivery 1 of 5", "on delivery 2 of 5", "on delivery 3 of 5" }));
        });
    }

    /// <summary>
    /// The broker ends the share session while a record is handled (on the embedded cluster: another client's connection
    /// closes): the acceptance is refused (6009, whose text says the records come back at once in that case) and the
    /// record comes back at once, long before its lock (30 s) would expire.
    /// </summary>
    [Test]
    [CancelAfter(60_000)]
    public async Task ShareSessionEndedWhileHandling_AcceptanceRefused_RecordRedeliveredAtOnce()
    {
        await using var cluster = ShareTestKit.Cluster(lockDuration: TimeSpan.FromSeconds(30));
        cluster.CreateTopic("jobs");
        cluster.CreateTopic("other");
        using var producer = ShareTestKit.Producer(cluster);
        ShareTestKit.Produce(producer, "jobs", 1);
        var logs = new CapturingLoggerFactory();
        var deliveries = new ConcurrentQueue<int>();
        var inHandler = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var consumer = new KafkaShareConsumerBuilder<string, string>("refused", ShareTestKit.Options(cluster, "refused-group", "jobs"))
            .SetHandler(async (r, ct) =>
            {
                deliveries.Enqueue(ShareHeaders.DeliveryCountOf(r.Message.Headers));
                if (inHandler.TrySetResult())
                {
                    await release.Task.WaitAsync(ct);
                }
            })
            .SetLoggerFactory(logs)
            .Build();
        await consumer.StartAsync();
        await inHandler.Task.WaitAsync(TimeSpan.FromSeconds(30));

        using (var other = ShareTestKit.Producer(cluster))
        {
            ShareTestKit.Produce(other, "other", 1); // connected; disposing it closes its connection
        }

        var clock = Stopwatch.StartNew();
        release.SetResult();
        await Wait.ForAsync(() => deliveries.Count >= 2 && logs.Count(6009) >= 1, TimeSpan.FromSeconds(20), () => $"redelivered and refusal logged; deliveries {string.Join(", ", deliveries)}, 6009 lines {logs.Count(6009)}");
        clock.Stop();

        Assert.Multiple(() =>
        {
            Assert.That(deliveries.Take(2), Is.EqualTo(new[] { 1, 2 }));
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)), "back before the lock would have expired");
            Assert.That(logs.Lines.First(l => l.EventId.Id == 6009).Message, Does.EndWith("they are redelivered: at once when the broker ended the share session, otherwise when their locks expire."));
        });
    }

    /// <summary>
    /// A handler that ignores its token outlives ShutdownTimeout and DisposeAsync: its record is released at stop and
    /// handled by another member while the handler still runs; when it finally fails on its last attempt the dead-letter
    /// producer is gone, which is logged (6041), not treated as a fault.
    /// </summary>
    [Test]
    [CancelAfter(60_000)]
    public async Task HandlerIgnoringItsToken_StillRunsAfterDisposeAsync_RecordHandledElsewhereAndNoFault()
    {
        await using var cluster = ShareTestKit.Cluster();
        cluster.CreateTopic("jobs");
        cluster.CreateTopic("jobs.DLT");
        using var producer = ShareTestKit.Producer(cluster);
        ShareTestKit.Produce(producer, "jobs", 1);
        var options = ShareTestKit.Options(cluster, "late-group", "jobs");
        options.ShutdownTimeout = TimeSpan.FromMilliseconds(200);
        options.MaxDeliveryAttempts = 1;
        options.DeadLetterTopic = "jobs.DLT";
        var logs = new CapturingLoggerFactory();
        var inHandler = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var ended = 0;
        var first = new KafkaShareConsumerBuilder<string, string>("late", options)
            .SetHandler(async (_, _) =>
            {
                inHandler.TrySetResult();
                try
                {
                    await release.Task; // ignores its token
                    throw new InvalidOperationException("late failure");
                }
                finally
                {
                    Volatile.Write(ref ended, 1);
                }
            })
            .SetLoggerFactory(logs)
            .Build();
        await first.StartAsync();
        await inHandler.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await first.DisposeAsync();
        var runningAfterDispose = Volatile.Read(ref ended) == 0;

        var elsewhere = new ConcurrentQueue<(string Value, int Count)>();
        await using var next = new KafkaShareConsumerBuilder<string, string>("next", ShareTestKit.Options(cluster, "late-group", "jobs"))
            .SetHandler((r, _) =>
            {
                elsewhere.Enqueue((r.Message.Value, ShareHeaders.DeliveryCountOf(r.Message.Headers)));
                return ValueTask.CompletedTask;
            })
            .Build();
        await next.StartAsync();
        await Wait.ForAsync(() => !elsewhere.IsEmpty, TimeSpan.FromSeconds(30), "the released record is handled by another member");
        var stillRunning = Volatile.Read(ref ended) == 0;
        release.SetResult();
        await Wait.ForAsync(() => logs.Count(6041) == 1, TimeSpan.FromSeconds(10), "the late failure is logged");

        Assert.Multiple(() =>
        {
            Assert.That((runningAfterDispose, stillRunning), Is.EqualTo((true, true)), "the handler ran on after DisposeAsync returned, while another member handled its record");
            Assert.That(elsewhere, Is.EqualTo(new[] { ("v0", 2) }));
            Assert.That((first.State, first.Fault), Is.EqualTo((KafkaConsumerState.Stopped, (Exception?)null)), "not a fault");
            Assert.That(logs.Count(6016), Is.Zero, "no fault logged");
            Assert.That(ShareTestKit.EndOffset(cluster, "jobs.DLT"), Is.Zero, "not dead-lettered by the stopped member");
        });
    }

    /// <summary>With a dead-letter topic and no reachable cluster, the start waits for the dead-letter producer's metadata at most 10 s, logs 6040 and goes on.</summary>
    [Test]
    [CancelAfter(60_000)]
    public async Task DeadLetterTopicAndClusterUnreachable_StartLogsAndGoesOn()
    {
        var options = new KafkaShareConsumerOptions { BootstrapServers = "127.0.0.1:1", GroupId = "g", DeadLetterTopic = "jobs.DLT" };
        options.Topics.Add("jobs");
        var logs = new CapturingLoggerFactory();
        await using var consumer = new KafkaShareConsumerBuilder<string, string>("unreachable", options)
            .SetHandler((_, _) => ValueTask.CompletedTask)
            .SetLoggerFactory(logs)
            .Build();
        var clock = Stopwatch.StartNew();
        await consumer.StartAsync().WaitAsync(TimeSpan.FromSeconds(30));
        clock.Stop();

        Assert.Multiple(() =>
        {
            Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Running));
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(20)), "bounded by the 10 s metadata wait");
            Assert.That(logs.Lines.Where(l => l.EventId.Id == 6040).Select(l => l.Message), Has.One.StartWith("Share consumer unreachable: the dead-letter producer got no metadata within 00:00:10 at start"));
        });
    }
}
