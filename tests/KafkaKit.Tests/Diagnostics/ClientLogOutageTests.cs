using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;
using Microsoft.Extensions.Logging;
using static KafkaKit.Tests.Producing.ProducerTestKit;

namespace KafkaKit.Tests.Diagnostics;

/// <summary>What a client logs while every broker is down: a bounded number of readable lines.</summary>
[TestFixture]
public sealed class ClientLogOutageTests
{
    /// <summary>
    /// A producer with a stream of messages loses all three brokers for 10 s. Each distinct failure is logged once
    /// (the error callback's line, not also librdkafka's log line of the same failure), and repeats within the 30 s
    /// window are counted into one summary line.
    /// </summary>
    [Test]
    [CancelAfter(90_000)]
    public async Task Producer_AllBrokersDown10s_LogsBoundedLinesAndSummarisesRepeats(CancellationToken cancellationToken)
    {
        // Arrange
        var outage = TimeSpan.FromSeconds(double.TryParse(Environment.GetEnvironmentVariable("KAFKAKIT_OUTAGE_SECONDS"), out var s) ? s : 10);
        const int brokers = 3;
        await using var cluster = EmbeddedKafkaCluster.Start(brokers);
        var topic = cluster.NewTopic("outage-logs", partitions: 3);
        var logs = new CapturingLoggerFactory();
        var outcomes = new Outcomes();
        await using var producer = Build<string, string>(Options(cluster.BootstrapServers), logs);
        using var stopStream = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var stream = Task.Run(
            async () =>
            {
                using var pace = new PeriodicTimer(TimeSpan.FromMilliseconds(10));
                try
                {
                    while (await pace.WaitForNextTickAsync(stopStream.Token))
                    {
                        await producer.EnqueueAsync(topic, new Message<string, string> { Key = "k", Value = "v" }, outcomes.Record, stopStream.Token);
                    }
                }
                catch (OperationCanceledException) when (stopStream.IsCancellationRequested)
                {
                }
            },
            cancellationToken);
        await Wait.ForAsync(() => outcomes.Delivered >= 50, TimeSpan.FromSeconds(20), outcomes.ToString, cancellationToken);

        // Act: every broker down for the outage, then up; wait for the stream to flow again.
        var before = logs.Lines.Count;
        for (var b = 1; b <= brokers; b++)
        {
            cluster.SetBrokerDown(b);
        }

        var down = Stopwatch.StartNew();
        await Wait.ForAsync(() => down.Elapsed >= outage, outage + TimeSpan.FromSeconds(5), "down.Elapsed >= outage", cancellationToken);
        // What a person reads: Information and above (librdkafka's Debug lines are off by default).
        var during = logs.Lines.Skip(before).Where(l => l.Level >= LogLevel.Information).ToList();
        for (var b = 1; b <= brokers; b++)
        {
            cluster.SetBrokerUp(b);
        }

        var deliveredAtUp = outcomes.Delivered;
        await Wait.ForAsync(() => outcomes.Delivered >= deliveredAtUp + 50, TimeSpan.FromSeconds(30), outcomes.ToString, cancellationToken);
        await stopStream.CancelAsync();
        await stream;
        await producer.DisposeAsync();

        // Assert
        var perMinute = during.Count * 60 / outage.TotalSeconds;
        var byEvent = string.Join(", ", during.GroupBy(l => $"{l.EventId.Id}/{l.Level}").OrderBy(g => g.Key).Select(g => $"{g.Key}: {g.Count()}"));
        TestContext.Out.WriteLine($"{during.Count} lines in a {outage.TotalSeconds:F0} s outage ({perMinute:F0} per minute): {byEvent}");
        foreach (var line in during.Take(40))
        {
            TestContext.Out.WriteLine($"  {line.EventId.Id} {line.Level}: {line.Message}");
        }

        var all = logs.Lines.ToList();
        foreach (var line in all.Where(l => l.EventId.Id == 901))
        {
            TestContext.Out.WriteLine($"  {line.EventId.Id} {line.Level}: {line.Message}");
        }

        Assert.Multiple(() =>
        {
            // Per broker: its disconnect, its refused connection and its bootstrap entry's refused connection; plus the
            // all-brokers-down line. Each of them once, however often librdkafka retries.
            Assert.That(during, Has.Count.LessThanOrEqualTo(3 * brokers + 2), "a bounded number of lines per broker during the outage");
            Assert.That(
                during.Where(l => l.EventId.Id == 900 && l.Level >= LogLevel.Warning).Select(l => l.Message),
                Is.Empty,
                "librdkafka's log line of a broker failure is not logged beside the error callback's line of the same failure");
            Assert.That(
                during.GroupBy(l => KafkaKit.Diagnostics.ClientLogSummariser.KeyOf(l.Message)).Where(g => g.Count() > 1).Select(g => $"{g.Count()} x {g.Key}"),
                Is.Empty,
                "each failure is written once within the 30 s window");
            Assert.That(all.Where(l => l.EventId.Id == 901).Select(l => l.Message), Has.Some.Match("repeats in the last [0-9]+ s: [0-9]+, of: "), "the repeats are summarised with their count");
        });
    }
}
