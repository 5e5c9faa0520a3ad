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
}
