using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Producing;
using KafkaKit.Testing;
using KafkaKit.Tests.Consuming;
using KafkaKit.Tests.Producing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Reliability;

/// <summary>Round-trip times above the clients' request timeouts for a few seconds, while a KafkaKit producer and consumer run.</summary>
[TestFixture]
[Category(ReliabilityKit.Category)]
[Parallelizable(ParallelScope.Self)] // fixtures overlap (most of their time is spent waiting on the cluster); tests within one run in sequence
public sealed class RoundTripSpikeReliabilityTests
{
    private const string Topic = "rtt";
    private const string Group = "rtt-group";
    private const int Partitions = 3;

    /// <summary>Every response of the broker is delayed this long during the spike: twice the clients' request timeouts.</summary>
    private static readonly TimeSpan Spike = TimeSpan.FromSeconds(3);

    /// <summary>How long the spike lasts: below session.timeout.ms (6 s), so the group keeps its member.</summary>
    private static readonly TimeSpan SpikeDuration = TimeSpan.FromSeconds(4);

    [Test]
    [CancelAfter(150_000)]
    public async Task ProduceAndConsume_RoundTripSpikeAboveRequestTimeouts_AllDeliveredNoneLostConsumerRecovers()
    {
        var clock = Stopwatch.StartNew();
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic(Topic, Partitions);

        // Request timeouts of 1.5 s: every request sent during the spike times out on the client.
        var producerOptions = new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers };
        producerOptions.Config["request.timeout.ms"] = "1500";
        producerOptions.Config["socket.timeout.ms"] = "1500";
        producerOptions.Config["linger.ms"] = "5";
        var producerLogs = new CapturingLoggerFactory();
        await using var producer = new KafkaProducerBuilder<string, string>("rtt-producer", producerOptions).SetLoggerFactory(producerLogs).Build();

        var consumerOptions = ReliabilityKit.ConsumerOptions(cluster, Group, Topic);
        consumerOptions.Config["socket.timeout.ms"] = "1500";
        consumerOptions.Config["fetch.wait.max.ms"] = "100";
        var ledger = new Ledger();
        var logs = new CapturingLoggerFactory();
        await using var consumer = new KafkaConsumerBuilder<string, string>("rtt-consumer", consumerOptions)
            .SetLoggerFactory(logs)
            .SetHandler((r, _) =>
            {
                ledger.Record(ReliabilityKit.Seq(r.Message.Key));
                return ValueTask.CompletedTask;
            })
            .Build();
        await consumer.StartAsync();

        await using var stream = new EnqueueStream(producer, Topic, key: n => n.ToString(CultureInfo.InvariantCulture));
        var outcomes = stream.Outcomes;
        await Wait.ForAsync(() => outcomes.Delivered >= 500 && ledger.Distinct >= 500, TimeSpan.FromSeconds(40), "producing and consuming");
        cluster.SetBrokerRoundTripTime(1, Spike);
        var spike = Stopwatch.StartNew();
        var deliveredAtSpike = outcomes.Delivered;
        var handledAtSpike = ledger.Distinct;
        await Wait.ForAsync(() => spike.Elapsed >= SpikeDuration, SpikeDuration + TimeSpan.FromSeconds(5), "the spike lasts its time");
        var deliveredDuringSpike = outcomes.Delivered - deliveredAtSpike;
        var handledDuringSpike = ledger.Distinct - handledAtSpike;
        cluster.SetBrokerRoundTripTime(1, TimeSpan.Zero);
        var sentAtEnd = stream.Sent;
        await Wait.ForAsync(() => outcomes.Total >= sentAtEnd, TimeSpan.FromSeconds(60), $"every message sent until the spike ended has its outcome ({outcomes})");
        var producerRecovered = spike.Elapsed - SpikeDuration;
        await Wait.ForAsync(() => ledger.Distinct >= sentAtEnd, TimeSpan.FromSeconds(60), "the consumer caught up");
        var consumerRecovered = spike.Elapsed - SpikeDuration;

        var produced = await stream.StopAsync();
        var undelivered = await producer.FlushAsync();
        await Wait.ForAsync(() => ledger.Missing(produced).Count == 0, TimeSpan.FromSeconds(60), $"every one of {produced} messages handled");
        var (committed, ends) = await ReliabilityKit.WaitForCommittedAtEndAsync(cluster, Group, Topic, Partitions, TimeSpan.FromSeconds(30));
        var lost = ledger.Missing(produced).Count;
        var written = ends.Values.Sum();
        var state = consumer.State;
        await consumer.StopAsync();

        static string TimedOut(CapturingLoggerFactory l) => string.Join(" | ", l.Lines.Where(x => x.EventId.Id == 900 && x.Message.Contains("Timed out", StringComparison.OrdinalIgnoreCase)).Select(x => x.Message).Take(3));
        TestContext.Out.WriteLine($"producer timeouts: {TimedOut(producerLogs)}");
        TestContext.Out.WriteLine($"consumer timeouts: {TimedOut(logs)}");
        TestContext.Out.WriteLine(
            $"during the {SpikeDuration.TotalSeconds:F0} s spike (RTT {Spike.TotalSeconds:F0} s): {deliveredDuringSpike} delivered, {handledDuringSpike} handled; " +
            $"producer: {outcomes}, all outcomes {producerRecovered.TotalSeconds:F2} s after the spike, {written} records written for {produced} messages, " +
            $"{producerLogs.Count(1004)} client errors logged; consumer caught up {consumerRecovered.TotalSeconds:F2} s after the spike, {logs.Count(2003)} losses, {logs.Count(2002)} revokes, {consumer.CommitFailures} commit failures");
        ReliabilityKit.Row("RTT 3 s > request timeouts 1.5 s for 4 s, produce + consume", produced, ledger.Distinct, ledger.Duplicates, 0, lost, clock.Elapsed);
        Assert.Multiple(() =>
        {
            Assert.That(TimedOut(producerLogs), Is.Not.Empty, "produce requests timed out during the spike (librdkafka REQTMOUT)");
            Assert.That(TimedOut(logs), Is.Not.Empty, "consumer requests timed out during the spike (librdkafka REQTMOUT)");
            Assert.That(outcomes.Failed, Is.Zero, outcomes.ToString());
            Assert.That(outcomes.Delivered, Is.EqualTo(produced), "every message delivered (librdkafka retried what timed out)");
            Assert.That(undelivered, Is.Zero);
            Assert.That(written, Is.GreaterThanOrEqualTo(produced), "at least one record per message (a timed-out batch may be written twice on the embedded cluster)");
            Assert.That(lost, Is.Zero, "no message lost");
            Assert.That(committed, Is.EqualTo(ends), "committed offsets reach the end offsets");
            Assert.That(state, Is.EqualTo(KafkaConsumerState.Running), "the consumer recovered by itself");
            Assert.That(consumer.Fault, Is.Null);
            Assert.That(producer.FatalError, Is.Null);
            Assert.That(logs.Count(2006) + logs.Count(2013) + logs.Count(2018) + producerLogs.Count(1003), Is.Zero, "no fatal error, callback failure or stop on error");
        });
    }
}
