using System.Diagnostics;
using System.Reflection;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Consuming;

/// <summary>The dead-letter producer connects like its consumer, logs through ILogger and keeps the stop bound.</summary>
[TestFixture]
[Parallelizable(ParallelScope.Self)] // fixtures overlap (most of their time is spent waiting on the cluster); tests within one run in sequence
public sealed class DeadLetterPublisherTests
{
    private const string Secret = "Dlt-S3cret-Pa55";

    [Test]
    [CancelAfter(10_000)]
    public void Build_ConsumerWithSecurityAndConnectionSettings_DeadLetterProducerInheritsThemButNoConsumerOnlyOnes()
    {
        // Arrange: security settings shared, connection settings and consumer-only settings on the consumer itself
        var shared = new KafkaKitOptions { BootstrapServers = "127.0.0.1:9" };
        shared.Client["security.protocol"] = "SASL_SSL";
        shared.Client["sasl.mechanisms"] = "SCRAM-SHA-512";
        shared.Client["sasl.username"] = "svc";
        shared.Client["sasl.password"] = Secret;
        shared.Client["ssl.endpoint.identification.algorithm"] = "none";
        shared.Client["client.rack"] = "rack-1";
        var options = new KafkaConsumerOptions { GroupId = "billing", Topics = { "orders" }, OnError = ConsumerErrorAction.DeadLetter };
        options.Config["client.id"] = "billing-svc";
        options.Config["socket.keepalive.enable"] = "true";
        options.Config["socket.timeout.ms"] = "12345";
        options.Config["session.timeout.ms"] = "6000";
        options.Config["fetch.min.bytes"] = "1000";
        options.Config["isolation.level"] = "read_uncommitted";
        options.Config["statistics.interval.ms"] = "1000";
        options.Config["dotnet.consumer.consume.result.fields"] = "all";

        // Act
        var consumer = new KafkaConsumerBuilder<string, string>("billing", options).SetShared(shared).SetHandler((_, _) => default).Build();
        var config = consumer.DeadLetters!.Config;

        // Assert
        Assert.Multiple(() =>
        {
            Assert.That(config["bootstrap.servers"], Is.EqualTo("127.0.0.1:9"));
            Assert.That(config["security.protocol"], Is.EqualTo("SASL_SSL"));
            Assert.That(config["sasl.mechanisms"], Is.EqualTo("SCRAM-SHA-512"));
            Assert.That(config["sasl.username"], Is.EqualTo("svc"));
            Assert.That(config["sasl.password"], Is.EqualTo(Secret));
            Assert.That(config["ssl.endpoint.identification.algorithm"], Is.EqualTo("none"));
            Assert.That(config["client.rack"], Is.EqualTo("rack-1"));
            Assert.That(config["socket.keepalive.enable"], Is.EqualTo("true"));
            Assert.That(config["socket.timeout.ms"], Is.EqualTo("12345"));
            Assert.That(config["client.id"], Is.EqualTo("billing-svc-dlt"), "the consumer's client.id with a suffix");
            Assert.That(config["enable.idempotence"], Is.EqualTo("true"));
            Assert.That(config["acks"], Is.EqualTo("all"));
            Assert.That(config.Keys, Has.None.AnyOf(
                "group.id", "session.timeout.ms", "fetch.min.bytes", "isolation.level", "enable.auto.commit", "enable.auto.offset.store",
                "auto.offset.reset", "partition.assignment.strategy", "auto.commit.interval.ms", "statistics.interval.ms",
                "dotnet.consumer.consume.result.fields"));
        });
    }

    [Test]
    public void NotInherited_CoversEveryConsumerOnlyPropertyOfConfluentKafka()
    {
        // Arrange: Confluent.Kafka generates ConsumerConfig's own properties from librdkafka's consumer-only (scope C) ones
        var keys = new List<string>();
        foreach (var property in typeof(ConsumerConfig).GetProperties(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly).Where(p => p.CanWrite))
        {
            var config = new ConsumerConfig();
            var type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            object value = type == typeof(string) ? "x" : type == typeof(bool) ? true : type == typeof(int) ? 1 : Enum.GetValues(type).GetValue(0)!;
            property.SetValue(config, value);
            keys.AddRange(config.Select(p => p.Key));
        }

        // Act
        var missing = keys.Where(k => !k.StartsWith("dotnet.", StringComparison.Ordinal) && !DeadLetterPublisher.NotInherited.Contains(k)).ToList();

        // Assert
        Assert.That(keys, Has.Count.GreaterThan(20), "ConsumerConfig's own properties were found");
        Assert.That(missing, Is.Empty, "consumer-only properties a dead-letter producer would inherit");
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Stop_DeadLetterLeaderDown_FlushStaysInsideStopBoundAndProducerLogsReachILogger()
    {
        // Arrange: the source topic and the group on broker 1, the dead-letter topic led by broker 2, which is down
        await using var cluster = EmbeddedKafkaCluster.Start(brokers: 2);
        cluster.CreateTopic("dls", partitions: 1);
        cluster.CreateTopic("dls.DLT", partitions: 1);
        cluster.SetPartitionLeader("dls", 0, 1);
        cluster.SetPartitionLeader("dls.DLT", 0, 2);
        cluster.SetGroupCoordinator("dls-group", 1);
        KafkaProbe.Produce(cluster.BootstrapServers, "dls", [new Message<string, string> { Key = "k", Value = "poison" }]);
        cluster.SetBrokerDown(2);
        var logs = new CapturingLoggerFactory();
        var options = ConsumerTestKit.Options(cluster, "dls-group", "dls");
        options.OnError = ConsumerErrorAction.DeadLetter;
        options.Retry.MaxRetryAttempts = 0;
        options.ShutdownTimeout = TimeSpan.FromSeconds(1);
        options.CloseTimeout = TimeSpan.FromSeconds(2);
        options.Config["client.id"] = "dls-svc";
        options.Config["debug"] = "conf"; // librdkafka logs each client's configuration when it is created
        options.Config["sasl.username"] = "svc";
        options.Config["sasl.password"] = Secret;
        var consumer = new KafkaConsumerBuilder<string, string>("dls", options)
            .SetLoggerFactory(logs)
            .SetHandler((_, _) => throw new InvalidOperationException("poison"))
            .Build();
        await consumer.StartAsync();
        await Wait.ForAsync(() => logs.Count(2060) == 1, TimeSpan.FromSeconds(20), "the dead-letter producer is created for the poison message");
        await Wait.ForAsync(() => DeadLetterLines(logs).Any(l => l.Message.Contains("sasl.username", StringComparison.Ordinal)), TimeSpan.FromSeconds(10), "the dead-letter producer's librdkafka log lines reach ILogger");

        // Act
        var bound = options.ShutdownTimeout + options.CloseTimeout + TimeSpan.FromSeconds(5);
        var clock = Stopwatch.StartNew();
        await consumer.StopAsync();
        var stopTook = clock.Elapsed;
        var stateAtReturn = consumer.State;
        TestContext.Out.WriteLine($"StopAsync took {stopTook.TotalSeconds:F2} s (bound {bound.TotalSeconds:F0} s)");
        await consumer.DisposeAsync();

        // Assert
        var all = logs.Lines.ToList();
        Assert.Multiple(() =>
        {
            Assert.That(stopTook, Is.LessThan(bound), "StopAsync returns within ShutdownTimeout + CloseTimeout + 5 s");
            Assert.That(stateAtReturn, Is.EqualTo(KafkaConsumerState.Stopped), "the stop finished, it was not abandoned at the bound");
            Assert.That(all.Count(l => l.EventId.Id == 2014), Is.Zero, "no 'did not finish stopping' line");
            Assert.That(all.Count(l => l.EventId.Id == 2062), Is.EqualTo(1), "the undelivered dead letter is reported purged");
            Assert.That(DeadLetterLines(logs).Select(l => l.Message), Has.Some.Contains("dls-svc-dlt#producer"), "the dead-letter producer's client.id is the consumer's + '-dlt'");
            Assert.That(all.Where(l => l.Message.Contains(Secret, StringComparison.Ordinal) || (l.Exception?.ToString().Contains(Secret, StringComparison.Ordinal) ?? false)).Select(l => l.Message), Is.Empty, "secrets never logged");
            Assert.That(KafkaProbe.Committed(cluster.BootstrapServers, "dls-group", "dls", 1)[0], Is.LessThan(1), "the poison message's offset is not committed");
        });
    }

    private static IEnumerable<CapturingLoggerFactory.LogLine> DeadLetterLines(CapturingLoggerFactory logs) =>
        logs.Lines.Where(l => l.EventId.Id == 900 && l.Message.Contains("-dlt#producer", StringComparison.Ordinal));
}
