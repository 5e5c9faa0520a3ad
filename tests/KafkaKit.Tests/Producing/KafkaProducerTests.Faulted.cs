using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;
using static KafkaKit.Tests.Producing.ProducerTestKit;

namespace KafkaKit.Tests.Producing;

/// <summary>A faulted producer sends nothing more: every message it still holds gets its outcome at once.</summary>
public sealed partial class KafkaProducerTests
{
    [Test]
    [CancelAfter(60_000)]
    public async Task EnqueueAsync_FatalErrorThenRequestsInFlightLoseTheirConnection_EveryMessageFailsPromptlyNotAfterMessageTimeout(CancellationToken cancellationToken)
    {
        // Arrange: answers take 3 s, so the requests are in flight when the fatal error is raised (librdkafka's debug
        // log tells when it sent them); then the broker goes down, failing those requests. librdkafka queues their
        // messages again for a retry that a faulted producer never sends: without KafkaKit's purge they would wait out
        // message.timeout.ms (120 s).
        const int Messages = 50;
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("fatal-in-flight", partitions: 1);
        var outcomes = new Outcomes();
        var logs = new CapturingLoggerFactory();
        var options = Options(cluster.BootstrapServers, ("message.timeout.ms", "120000"), ("debug", "msg,protocol"));
        options.FlushTimeoutOnDispose = TimeSpan.FromSeconds(1);
        await using var producer = Build<Null, string>(options, logs);
        await producer.ProduceAsync(topic, new Message<Null, string> { Value = "warm-up" }, cancellationToken);
        cluster.SetBrokerRoundTripTime(1, TimeSpan.FromSeconds(3));
        for (var i = 0; i < Messages; i++)
        {
            await producer.EnqueueAsync(topic, new Message<Null, string> { Value = $"m{i}" }, outcomes.Record, cancellationToken);
        }

        await Wait.ForAsync(() => ProduceRequestsSent(logs) is { Messages: >= Messages + 1 } sent && sent.Transmitted == sent.Built, TimeSpan.FromSeconds(10), () => $"{ProduceRequestsSent(logs)}", cancellationToken);
        Assert.That(outcomes.Total, Is.Zero, "no answer yet: the requests are in flight");

        // Act
        Assert.That(FatalErrorHook.Raise(producer, ErrorCode.OutOfOrderSequenceNumber, "injected by the test"), Is.EqualTo(ErrorCode.NoError));
        cluster.SetBrokerDown(1);
        var clock = Stopwatch.StartNew();
        await Wait.ForAsync(() => outcomes.Total >= Messages, TimeSpan.FromSeconds(20), () => $"{outcomes}; librdkafka still holds {producer.Inner.Flush(TimeSpan.Zero)}", cancellationToken);
        var allAfter = clock.Elapsed;
        await TestContext.Out.WriteLineAsync($"all {Messages} outcomes {allAfter.TotalMilliseconds:F0} ms after the connection was lost: {outcomes}");

        // Assert: one outcome each, failed, within seconds; nothing left in librdkafka.
        Assert.That(producer.FatalError?.Code, Is.EqualTo(ErrorCode.OutOfOrderSequenceNumber));
        Assert.That(outcomes.Total, Is.EqualTo(Messages), outcomes.ToString());
        Assert.That(outcomes.Failed, Is.EqualTo(Messages), "a faulted producer delivers nothing more");
        Assert.That(allAfter, Is.LessThan(TimeSpan.FromSeconds(5)), "at once, not after message.timeout.ms");
        Assert.That(producer.QueuedMessages, Is.Zero);
        Assert.That(producer.Inner.Flush(TimeSpan.Zero), Is.Zero, "nothing left in librdkafka's queues");
    }

    /// <summary>
    /// Reads librdkafka's debug log (contexts <c>msg</c> and <c>protocol</c>): how many produce requests it built, how many
    /// messages they hold, and how many requests went out on the socket.
    /// </summary>
    private static (int Built, int Messages, int Transmitted) ProduceRequestsSent(CapturingLoggerFactory logs)
    {
        var lines = logs.Lines.Select(l => l.Message).ToList();
        var sets = lines.Select(l => System.Text.RegularExpressions.Regex.Match(l, @"Produce MessageSet with (\d+) message")).Where(m => m.Success).ToList();
        return (sets.Count, sets.Sum(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)), lines.Count(l => l.Contains("Sent ProduceRequest", StringComparison.Ordinal)));
    }
}
