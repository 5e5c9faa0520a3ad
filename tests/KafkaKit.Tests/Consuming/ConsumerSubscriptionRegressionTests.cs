using System.Collections.Concurrent;
using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Producing;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Consuming;

/// <summary>Field case C21: a pattern subscription and topics created while the consumer runs.</summary>
[TestFixture]
[Parallelizable(ParallelScope.Self)] // fixtures overlap (most of their time is spent waiting on the cluster); tests within one run in sequence
public sealed class ConsumerSubscriptionRegressionTests
{
    /// <summary>
    /// <c>^proj-.*</c> with KafkaKit's defaults (the group settings are the embedded cluster's fast ones, whose rebalance
    /// otherwise takes session.timeout.ms): a topic created after the consumer runs is consumed within 30 s, not at
    /// librdkafka's 300 s metadata refresh, and the log names the topic the pattern started matching.
    /// </summary>
    [Test]
    [CancelAfter(90_000)]
    public async Task Regression_C21_PatternSubscriptionTopicCreatedWhileRunning_HandledWithin30sAndLogged()
    {
        // Arrange: the consumer runs and owns proj-a.
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("proj-a");
        var logs = new CapturingLoggerFactory();
        var handled = new ConcurrentQueue<(string Topic, string Value, TimeSpan At)>();
        var clock = new Stopwatch();
        await using var consumer = new KafkaConsumerBuilder<string, string>("c21", ConsumerTestKit.Options(cluster, "c21-group", "^proj-.*"))
            .SetLoggerFactory(logs)
            .SetHandler((r, _) =>
            {
                handled.Enqueue((r.Topic, r.Message.Value, clock.Elapsed));
                return default;
            })
            .Build();
        await consumer.StartAsync();
        await Wait.ForAsync(() => consumer.Assignment.Any(p => p.Topic == "proj-a"), TimeSpan.FromSeconds(30), "the consumer owns proj-a");
        await Wait.ForAsync(() => Lines(logs, 2041).Any(m => m.Contains("proj-a", StringComparison.Ordinal)), TimeSpan.FromSeconds(10), "the log names proj-a as matched");

        // Act: create proj-b and produce one message to it.
        cluster.CreateTopic("proj-b");
        await using (var producer = new KafkaProducerBuilder<string, string>("c21-producer", new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers }).Build())
        {
            await producer.ProduceAsync("proj-b", new Message<string, string> { Key = "k", Value = "created later" });
        }

        clock.Start();
        await Wait.ForAsync(() => handled.Any(h => h.Topic == "proj-b"), TimeSpan.FromSeconds(60), "the message of proj-b is handled");
        var at = handled.First(h => h.Topic == "proj-b").At;
        await Wait.ForAsync(() => Lines(logs, 2041).Any(m => m.Contains("proj-b", StringComparison.Ordinal)), TimeSpan.FromSeconds(10), "the log names proj-b as matched");

        // Assert
        TestContext.Out.WriteLine($"proj-b handled {at.TotalSeconds:F1} s after its message was produced");
        foreach (var line in logs.Lines.Where(l => l.EventId.Id is 2000 or 2040 or 2041 or 2042 or 2043))
        {
            TestContext.Out.WriteLine($"  {line.EventId.Id} {line.Level}: {line.Message}");
        }

        Assert.Multiple(() =>
        {
            Assert.That(at, Is.LessThan(TimeSpan.FromSeconds(30)), "a topic created later is consumed within 30 s");
            Assert.That(handled.Single(h => h.Topic == "proj-b").Value, Is.EqualTo("created later"));
            Assert.That(Lines(logs, 2041).Single(m => m.Contains("proj-b", StringComparison.Ordinal)), Is.EqualTo("Consumer c21: subscription pattern ^proj-.* started matching 1 topics: proj-b"));
            Assert.That(Lines(logs, 2040).Single(), Does.Contain("topic.metadata.refresh.interval.ms=10000"), "KafkaKit's default for a pattern");
        });
    }

    /// <summary>KafkaKit's <c>topic.metadata.refresh.interval.ms</c> applies to pattern subscriptions, unless the user set one.</summary>
    [Test]
    public void Build_PatternSubscription_ShortMetadataRefreshUnlessSet()
    {
        static KafkaConsumer<string, string> Build(string topic, string? interval = null, string? sharedInterval = null)
        {
            var options = new KafkaConsumerOptions { BootstrapServers = "127.0.0.1:9", GroupId = "g", Topics = { topic } };
            if (interval is not null)
            {
                options.Config["topic.metadata.refresh.interval.ms"] = interval;
            }

            var builder = new KafkaConsumerBuilder<string, string>("c", options).SetHandler((_, _) => default);
            if (sharedInterval is not null)
            {
                var shared = new KafkaKitOptions();
                shared.Client["topic.metadata.refresh.interval.ms"] = sharedInterval;
                builder.SetShared(shared);
            }

            return builder.Build();
        }

        Assert.Multiple(() =>
        {
            Assert.That(Build("^orders-.*").Config.TopicMetadataRefreshIntervalMs, Is.EqualTo(10_000), "a pattern gets KafkaKit's 10 s");
            Assert.That(Build("orders").Config.TopicMetadataRefreshIntervalMs, Is.Null, "plain names keep librdkafka's default");
            Assert.That(Build("^orders-.*", interval: "60000").Config.TopicMetadataRefreshIntervalMs, Is.EqualTo(60_000), "the consumer's own value wins");
            Assert.That(Build("^orders-.*", sharedInterval: "30000").Config.TopicMetadataRefreshIntervalMs, Is.EqualTo(30_000), "the shared value wins");
        });
    }

    /// <summary>Each change of the topics a pattern matches gives one line per pattern and direction, naming the topics.</summary>
    [Test]
    public void PatternWatch_TopicsAppearAndDisappear_OneLinePerChangeNamingPatternAndTopics()
    {
        var logs = new CapturingLoggerFactory();
        var watch = PatternSubscriptionWatch.For("c", ["^proj-.*", "plain", "^other-.*"], new ConsumerConfig { TopicMetadataRefreshIntervalMs = 10_000 }, logs.CreateLogger("KafkaKit.Consumer"), () => null)!;

        watch.Update(["plain", "proj-a"]);
        watch.Update(["plain", "proj-a", "proj-b", "proj-c", "__consumer_offsets"]);
        watch.Update(["plain", "proj-a", "proj-b", "proj-c"]);
        watch.Update(["plain", "proj-c", "other-1"]);

        Assert.That(logs.Lines.Where(l => l.EventId.Id is >= 2041 and <= 2043).Select(l => $"{l.EventId.Id} {l.Message}"), Is.EqualTo(new[]
        {
            "2041 Consumer c: subscription pattern ^proj-.* started matching 1 topics: proj-a",
            "2043 Consumer c: subscription pattern ^other-.* matches no topic yet; a matching topic created later is found at a metadata refresh (every 10000 ms, topic.metadata.refresh.interval.ms).",
            "2041 Consumer c: subscription pattern ^proj-.* started matching 2 topics: proj-b, proj-c",
            "2042 Consumer c: subscription pattern ^proj-.* stopped matching 2 topics: proj-a, proj-b",
            "2041 Consumer c: subscription pattern ^other-.* started matching 1 topics: other-1",
        }));
    }

    /// <summary>
    /// A pattern that matches no topic yet is expected, not a failure: librdkafka reports it as an error at every
    /// metadata refresh, which is logged at Debug (2045) beside the Information line that explains it (2043), not as a
    /// poll-failed warning (2015).
    /// </summary>
    [Test]
    [CancelAfter(60_000)]
    public async Task PatternMatchingNoTopicYet_LoggedAsExpectedNotAsPollFailure()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        var logs = new CapturingLoggerFactory();
        await using var consumer = new KafkaConsumerBuilder<string, string>("c21-none", ConsumerTestKit.Options(cluster, "c21-none-group", "^nothing-yet-.*"))
            .SetLoggerFactory(logs)
            .SetHandler((_, _) => default)
            .Build();

        await consumer.StartAsync();
        await Wait.ForAsync(() => Lines(logs, 2045).Any() && Lines(logs, 2043).Any(), TimeSpan.FromSeconds(30), "librdkafka's report and the explanation");
        await consumer.StopAsync();

        Assert.Multiple(() =>
        {
            Assert.That(Lines(logs, 2045).First(), Does.Contain("^nothing-yet-.*"));
            Assert.That(Lines(logs, 2015), Is.Empty, "no poll-failed warning for an expected state");
        });
    }

    private static IEnumerable<string> Lines(CapturingLoggerFactory logs, int eventId) => logs.Lines.Where(l => l.EventId.Id == eventId).Select(l => l.Message);
}
