using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace KafkaKit.Tests.Consuming;

/// <summary>OnError = RetryTopics: non-blocking retries through retry topics, then the dead-letter topic.</summary>
[TestFixture]
[Parallelizable(ParallelScope.Self)]
public sealed class RetryTopicsTests
{
    /// <summary>One handler call: the topic it was read from, the retry attempt its headers name, when.</summary>
    private sealed record Call(string Topic, int Attempt, string Value, TimeSpan At);

    [Test]
    [CancelAfter(60_000)]
    public async Task RetryTopics_RecordFailsTwiceThenSucceeds_HandledThreeTimesWhileItsPartitionKeepsFlowing()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        CreateTopics(cluster, "rt", tiers: 2);
        KafkaProbe.Produce(cluster.BootstrapServers, "rt", [new Message<string, string> { Key = "k", Value = "poison" }, .. ConsumerTestKit.Messages("m", 5)]);
        var delay = TimeSpan.FromMilliseconds(800);
        var options = Options(cluster, "rt", delay, delay);
        var clock = Stopwatch.StartNew();
        var calls = new ConcurrentQueue<Call>();
        var poisonFailures = 0;
        await using var consumer = new KafkaConsumerBuilder<string, string>("rt", options)
            .SetHandler((r, _) =>
            {
                calls.Enqueue(new Call(r.Topic, RetryTopicHeaders.AttemptOf(r.Message.Headers), r.Message.Value, clock.Elapsed));
                return r.Message.Value == "poison" && Interlocked.Increment(ref poisonFailures) <= 2
                    ? throw new InvalidOperationException("not yet")
                    : ValueTask.CompletedTask;
            })
            .Build();

        await consumer.StartAsync();
        await Wait.ForAsync(() => calls.Count(c => c.Value == "poison") == 3, TimeSpan.FromSeconds(30), () => $"poison handled 3 times; calls: {Describe(calls)}");
        await ConsumerTestKit.WaitForCommittedAsync(cluster, "rt-group", "rt", 1, c => c[0] == 6, TimeSpan.FromSeconds(10), "source committed past everything");
        await ConsumerTestKit.WaitForCommittedAsync(cluster, "rt-group", "rt.retry.1", 1, c => c[0] == 1, TimeSpan.FromSeconds(10), "retry.1 committed");
        await ConsumerTestKit.WaitForCommittedAsync(cluster, "rt-group", "rt.retry.2", 1, c => c[0] == 1, TimeSpan.FromSeconds(10), "retry.2 committed");

        var poison = calls.Where(c => c.Value == "poison").ToList();
        var lastOther = calls.Where(c => c.Value != "poison").Max(c => c.At);
        Assert.Multiple(() =>
        {
            Assert.That(poison.Select(c => (c.Topic, c.Attempt)), Is.EqualTo(new[] { ("rt", 0), ("rt.retry.1", 1), ("rt.retry.2", 2) }), Describe(calls));
            Assert.That(calls.Where(c => c.Value != "poison").Select(c => c.Value), Is.EqualTo(new[] { "m0", "m1", "m2", "m3", "m4" }), "each later record once");
            Assert.That(lastOther, Is.LessThan(poison[1].At), "the source partition went on before the retry was due");
            Assert.That(poison[1].At - poison[0].At, Is.GreaterThanOrEqualTo(delay - TimeSpan.FromMilliseconds(50)), "held until due (tier 1)");
            Assert.That(poison[2].At - poison[1].At, Is.GreaterThanOrEqualTo(delay - TimeSpan.FromMilliseconds(50)), "held until due (tier 2)");
            Assert.That(KafkaProbe.EndOffsets(cluster.BootstrapServers, "rt.DLT", 1)[0], Is.Zero, "nothing dead-lettered");
            Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Running));
        });
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task RetryTopics_RecordAlwaysFails_DeadLetteredAfterLastDelayWithOriginAndRetryHeaders()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        CreateTopics(cluster, "rd", tiers: 2);
        var headers = new Headers { { "trace", Encoding.UTF8.GetBytes("t-1") } };
        KafkaProbe.Produce(cluster.BootstrapServers, "rd", [
            new Message<string, string> { Key = "k", Value = "m0" },
            new Message<string, string> { Key = "k-bad", Value = "poison", Headers = headers },
            new Message<string, string> { Key = "k", Value = "m2" },
        ]);
        var source = KafkaProbe.ReadAll(cluster.BootstrapServers, "rd", 1, expected: 3, TimeSpan.FromSeconds(10))[1];
        var longMessage = new string('x', 5000);
        var calls = new ConcurrentQueue<Call>();
        var clock = Stopwatch.StartNew();
        await using var consumer = new KafkaConsumerBuilder<string, string>("rd", Options(cluster, "rd", TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(400)))
            .SetHandler((r, _) =>
            {
                calls.Enqueue(new Call(r.Topic, RetryTopicHeaders.AttemptOf(r.Message.Headers), r.Message.Value, clock.Elapsed));
                return r.Message.Value == "poison" ? throw new TimeoutException(longMessage) : ValueTask.CompletedTask;
            })
            .Build();

        var startedMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await consumer.StartAsync();
        var dead = KafkaProbe.ReadAll(cluster.BootstrapServers, "rd.DLT", 1, expected: 1, TimeSpan.FromSeconds(30));
        var retried = KafkaProbe.ReadAll(cluster.BootstrapServers, "rd.retry.1", 1, expected: 1, TimeSpan.FromSeconds(10));
        await ConsumerTestKit.WaitForCommittedAsync(cluster, "rd-group", "rd.retry.2", 1, c => c[0] == 1, TimeSpan.FromSeconds(10), "the last tier committed after dead-lettering");

        Assert.That(dead, Has.Count.EqualTo(1), $"one dead letter in rd.DLT; calls: {Describe(calls)}");
        Assert.That(retried, Has.Count.EqualTo(1));
        string DeadHeader(string key) => Encoding.UTF8.GetString(dead[0].Message.Headers.GetLastBytes(key));
        string RetryHeader(string key) => Encoding.UTF8.GetString(retried[0].Message.Headers.GetLastBytes(key));
        Assert.Multiple(() =>
        {
            Assert.That(calls.Where(c => c.Value == "poison").Select(c => c.Topic), Is.EqualTo(new[] { "rd", "rd.retry.1", "rd.retry.2" }), "handled on each tier once, then the DLT");
            Assert.That(retried[0].Message.Key, Is.EqualTo(Encoding.UTF8.GetBytes("k-bad")));
            Assert.That(retried[0].Message.Value, Is.EqualTo(Encoding.UTF8.GetBytes("poison")));
            Assert.That(RetryHeader("trace"), Is.EqualTo("t-1"), "original headers kept");
            Assert.That(RetryHeader(RetryTopicHeaders.Attempt), Is.EqualTo("1"));
            Assert.That(RetryHeader(RetryTopicHeaders.OriginalTopic), Is.EqualTo("rd"));
            Assert.That(RetryHeader(RetryTopicHeaders.OriginalPartition), Is.EqualTo("0"));
            Assert.That(RetryHeader(RetryTopicHeaders.OriginalOffset), Is.EqualTo("1"));
            Assert.That(RetryHeader(RetryTopicHeaders.OriginalTimestamp), Is.EqualTo(source.Message.Timestamp.UnixTimestampMs.ToString(CultureInfo.InvariantCulture)));
            Assert.That(RetryHeader(RetryTopicHeaders.ExceptionType), Is.EqualTo(typeof(TimeoutException).FullName));
            Assert.That(RetryHeader(RetryTopicHeaders.ExceptionMessage), Is.EqualTo(longMessage[..RetryTopicHeaders.MaxExceptionMessageLength]), "bounded");
            Assert.That(long.Parse(RetryHeader(RetryTopicHeaders.Due), CultureInfo.InvariantCulture), Is.GreaterThanOrEqualTo(startedMs + 200), "due = failure time + tier 1 delay");
            Assert.That(dead[0].Message.Value, Is.EqualTo(Encoding.UTF8.GetBytes("poison")));
            Assert.That(DeadHeader("trace"), Is.EqualTo("t-1"));
            Assert.That(DeadHeader(DeadLetterPublisher.OriginalTopicHeader), Is.EqualTo("rd"), "the source topic, not the last retry topic");
            Assert.That(DeadHeader(DeadLetterPublisher.OriginalPartitionHeader), Is.EqualTo("0"));
            Assert.That(DeadHeader(DeadLetterPublisher.OriginalOffsetHeader), Is.EqualTo("1"));
            Assert.That(DeadHeader(DeadLetterPublisher.ExceptionTypeHeader), Is.EqualTo(typeof(TimeoutException).FullName));
            Assert.That(DeadHeader(RetryTopicHeaders.Attempt), Is.EqualTo("2"), "the last tier's retry headers travel along");
            Assert.That(KafkaProbe.EndOffsets(cluster.BootstrapServers, "rd.retry.2", 1)[0], Is.EqualTo(1), "never back to a lower tier or the source");
            Assert.That(KafkaProbe.EndOffsets(cluster.BootstrapServers, "rd", 1)[0], Is.EqualTo(3));
        });
    }

    /// <summary>
    /// The retry record is written and acknowledged, then the consumer goes away without committing (every OffsetCommit
    /// is refused): the next member of the group receives the record from its source again. Nothing is lost; it is
    /// handled twice (source and retry copy), at-least-once.
    /// </summary>
    [Test]
    [CancelAfter(90_000)]
    public async Task RetryTopics_GoneAfterRetryWriteBeforeCommit_RecordRedeliveredFromSource()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        CreateTopics(cluster, "rc", tiers: 1);
        KafkaProbe.Produce(cluster.BootstrapServers, "rc", [new Message<string, string> { Key = "k", Value = "poison" }]);
        var options = Options(cluster, "rc", TimeSpan.FromMinutes(1));
        options.CommitInterval = TimeSpan.FromHours(1);
        options.ShutdownTimeout = TimeSpan.FromSeconds(2);
        cluster.PushRequestErrors(ApiKey.OffsetCommit, [.. Enumerable.Repeat(ErrorCode.OffsetMetadataTooLarge, 50)]);
        var first = new KafkaConsumerBuilder<string, string>("rc-a", options)
            .SetHandler((_, _) => throw new InvalidOperationException("fails in the first member"))
            .Build();
        await first.StartAsync();
        var retried = KafkaProbe.ReadAll(cluster.BootstrapServers, "rc.retry.1", 1, expected: 1, TimeSpan.FromSeconds(20));
        Assert.That(retried, Has.Count.EqualTo(1), "the retry record was written");
        await first.DisposeAsync();
        var afterCrash = KafkaProbe.Committed(cluster.BootstrapServers, "rc-group", "rc", 1)[0];
        cluster.ClearRequestErrors(ApiKey.OffsetCommit);

        var handled = new ConcurrentQueue<(string Topic, string Value)>();
        await using var second = new KafkaConsumerBuilder<string, string>("rc-b", options)
            .SetHandler((r, _) =>
            {
                handled.Enqueue((r.Topic, r.Message.Value));
                return ValueTask.CompletedTask;
            })
            .Build();
        await second.StartAsync();
        await Wait.ForAsync(() => handled.Any(h => h == ("rc", "poison")), TimeSpan.FromSeconds(30), "the record is delivered again from its source");

        Assert.Multiple(() =>
        {
            Assert.That(afterCrash, Is.LessThan(1), "the source offset was not committed");
            Assert.That(handled.First(), Is.EqualTo(("rc", "poison")));
        });
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task RetryTopics_RetryWriteFails_ConsumerStopsAndSourceOffsetNotCommitted()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        CreateTopics(cluster, "rf", tiers: 1);
        KafkaProbe.Produce(cluster.BootstrapServers, "rf", [.. ConsumerTestKit.Messages("m", 1), new Message<string, string> { Key = "k", Value = "poison" }, .. ConsumerTestKit.Messages("m", 1, start: 2)]);
        var options = Options(cluster, "rf", TimeSpan.FromSeconds(1));
        var handled = new ConcurrentQueue<string>();
        await using var consumer = new KafkaConsumerBuilder<string, string>("rf", options)
            .SetHandler((r, _) =>
            {
                handled.Enqueue(r.Message.Value);
                if (r.Message.Value == "poison")
                {
                    cluster.PushRequestErrors(ApiKey.Produce, [.. Enumerable.Repeat(ErrorCode.TopicAuthorizationFailed, 20)]);
                    throw new InvalidOperationException("fails");
                }

                return ValueTask.CompletedTask;
            })
            .Build();

        await consumer.StartAsync();
        await Wait.ForAsync(() => consumer.State == KafkaConsumerState.Faulted, TimeSpan.FromSeconds(30), () => $"faulted; state {consumer.State}, handled {string.Join(",", handled)}");
        cluster.ClearRequestErrors(ApiKey.Produce);

        Assert.Multiple(() =>
        {
            Assert.That(consumer.Fault!.Message, Does.Contain("rf [[0]] @1").And.Contain("rf.retry.1").And.Contain("not committed"));
            Assert.That(KafkaProbe.Committed(cluster.BootstrapServers, "rf-group", "rf", 1)[0], Is.EqualTo(1), "committed up to the failed record, not past it (m2 may have been handled while the write was in flight)");
            Assert.That(KafkaProbe.EndOffsets(cluster.BootstrapServers, "rf.retry.1", 1)[0], Is.Zero);
        });
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task RetryTopics_RetryTopicMissing_FaultsAtStartNamingItAndHowToCreateIt()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("rm", partitions: 1);
        cluster.CreateTopic("rm.retry.1", partitions: 1);
        cluster.CreateTopic("rm.DLT", partitions: 1);
        await using var consumer = new KafkaConsumerBuilder<string, string>("rm", Options(cluster, "rm", TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2)))
            .SetHandler((_, _) => ValueTask.CompletedTask)
            .Build();

        await consumer.StartAsync();
        await Wait.ForAsync(() => consumer.State == KafkaConsumerState.Faulted, TimeSpan.FromSeconds(20), () => $"faulted; state {consumer.State}");

        Assert.That(consumer.Fault!.Message, Does.Contain("'rm.retry.2'").And.Contain("kafka-topics.sh").And.Not.Contain("'rm.retry.1'"));
    }

    [Test]
    public void Build_BadRetryTopicOptions_EveryProblemListed()
    {
        var options = ConsumerTestKit.Options(ConsumerTestKit.Unreachable, "g", "orders", "^pat.*");
        options.OnError = ConsumerErrorAction.RetryTopics;
        options.RetryTopics.Delays.Add(TimeSpan.FromSeconds(10));
        options.RetryTopics.Delays.Add(TimeSpan.FromSeconds(1));
        options.RetryTopics.Delays.Add(TimeSpan.Zero);

        var error = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("v", options).SetHandler((_, _) => default).Build());

        Assert.That(error!.Failures, Has.Some.Contain("RetryTopics.Delays[1] (00:00:01) is shorter than RetryTopics.Delays[0]")
            .And.Some.Contain("RetryTopics.Delays[2] is 00:00:00")
            .And.Some.Contain("'^pat.*' is a pattern"));
    }

    [TestCase(0, "{topic}.retry.{n}", "1 to 20 delays")]
    [TestCase(21, "{topic}.retry.{n}", "1 to 20 delays")]
    [TestCase(1, "{topic}-retry", "must contain {topic} and {n}")]
    [TestCase(1, "{topic}/retry/{n}", "not a valid topic name")]
    public void Build_RetryTopicsBadCountOrTemplate_Refused(int delays, string template, string expected)
    {
        var options = ConsumerTestKit.Options(ConsumerTestKit.Unreachable, "g", "orders");
        options.OnError = ConsumerErrorAction.RetryTopics;
        options.RetryTopics.NameTemplate = template;
        for (var i = 0; i < delays; i++)
        {
            options.RetryTopics.Delays.Add(TimeSpan.FromSeconds(1));
        }

        var error = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("v", options).SetHandler((_, _) => default).Build());

        Assert.That(error!.Failures, Has.Some.Contain(expected));
    }

    [Test]
    public void Build_RetryTopicSubscribedOrDelaysWithoutRetryTopics_Refused()
    {
        var subscribed = ConsumerTestKit.Options(ConsumerTestKit.Unreachable, "g", "orders", "orders.retry.1");
        subscribed.OnError = ConsumerErrorAction.RetryTopics;
        subscribed.RetryTopics.Delays.Add(TimeSpan.FromSeconds(1));
        var unused = ConsumerTestKit.Options(ConsumerTestKit.Unreachable, "g", "orders");
        unused.OnError = ConsumerErrorAction.DeadLetter;
        unused.RetryTopics.Delays.Add(TimeSpan.FromSeconds(1));

        var loop = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("v", subscribed).SetHandler((_, _) => default).Build());
        var ignored = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("v", unused).SetHandler((_, _) => default).Build());

        Assert.Multiple(() =>
        {
            Assert.That(loop!.Failures, Has.Some.Contain("'orders.retry.1' is a retry or dead-letter topic"));
            Assert.That(ignored!.Failures, Has.Some.Contain("RetryTopics.Delays is set but OnError is DeadLetter"));
        });
    }

    [Test]
    public void Bind_RetryTopicsFromConfiguration_DelaysAndTemplateRead()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["OnError"] = "RetryTopics",
            ["RetryTopics:Delays:0"] = "00:00:01",
            ["RetryTopics:Delays:1"] = "00:00:10",
            ["RetryTopics:NameTemplate"] = "{topic}-retry-{n}",
        }).Build();
        var options = new KafkaConsumerOptions();

        configuration.Bind(options);

        Assert.Multiple(() =>
        {
            Assert.That(options.OnError, Is.EqualTo(ConsumerErrorAction.RetryTopics));
            Assert.That(options.RetryTopics.Delays, Is.EqualTo(new[] { TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(10) }));
            Assert.That(options.RetryTopics.TopicFor("orders", 2), Is.EqualTo("orders-retry-2"));
        });
    }

    private static void CreateTopics(EmbeddedKafkaCluster cluster, string topic, int tiers)
    {
        cluster.CreateTopic(topic, partitions: 1);
        for (var tier = 1; tier <= tiers; tier++)
        {
            cluster.CreateTopic($"{topic}.retry.{tier}", partitions: 1);
        }

        cluster.CreateTopic(topic + ".DLT", partitions: 1);
    }

    private static KafkaConsumerOptions Options(EmbeddedKafkaCluster cluster, string topic, params TimeSpan[] delays)
    {
        var options = ConsumerTestKit.Options(cluster, topic + "-group", topic);
        options.OnError = ConsumerErrorAction.RetryTopics;
        options.Retry.MaxRetryAttempts = 0;
        options.CommitInterval = TimeSpan.FromMilliseconds(200);
        foreach (var delay in delays)
        {
            options.RetryTopics.Delays.Add(delay);
        }

        return options;
    }

    private static string Describe(IEnumerable<Call> calls) =>
        string.Join("; ", calls.Select(c => $"{c.At.TotalMilliseconds:F0} ms {c.Topic} #{c.Attempt} {c.Value}"));
}
