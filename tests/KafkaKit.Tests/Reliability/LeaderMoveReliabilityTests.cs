using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using KafkaKit.Consuming;
using KafkaKit.Producing;
using KafkaKit.Testing;
using KafkaKit.Tests.Consuming;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Reliability;

/// <summary>Partition leaders move between brokers mid-stream, and an old leader goes down, while a KafkaKit producer and consumer group run.</summary>
[TestFixture]
[Category(ReliabilityKit.Category)]
[Parallelizable(ParallelScope.Self)] // fixtures overlap (most of their time is spent waiting on the cluster); tests within one run in sequence
public sealed class LeaderMoveReliabilityTests
{
    private const string Topic = "moves";
    private const string Group = "moves-group";
    private const int Partitions = 6;
    private const int Brokers = 3;
    private const int Keys = 24;

    /// <summary>The group's coordinator: a broker that stays up (the coordinator outage is a scenario of its own).</summary>
    private const int Coordinator = 3;

    /// <summary>The broker that loses its leaderships and then goes down.</summary>
    private const int OldLeader = 1;

    /// <summary>How long the old leader stays down.</summary>
    private static readonly TimeSpan Outage = TimeSpan.FromSeconds(3);

    /// <summary>How many messages must be delivered and handled after each move before the next one.</summary>
    private const int ProgressPerPhase = 1_200;

    private static readonly TimeSpan PhaseTimeout = TimeSpan.FromSeconds(40);

    /// <summary>
    /// The producer's linger.ms: the embedded cluster answers a Fetch with at most one record batch per partition, so
    /// with 50-100 ms round trips a partition is read at about 10 batches a second; batches of 200 ms keep every
    /// partition's consumer ahead of its producer (with linger.ms=5 a partition of one key fell behind for good).
    /// </summary>
    private const string ProducerLingerMs = "200";

    /// <summary>
    /// Brokers answer after 50, 75 and 100 ms, so produce and fetch requests are in flight when a leader moves. Phases:
    /// every leader moves to the next broker, twice; then the partitions led by broker 1 move away and broker 1 goes down
    /// for 3 s at once (clients still holding the old metadata send to it); then leaders move back onto broker 1. Each
    /// phase waits until the stream has been delivered and handled well past its start.
    /// </summary>
    [Test]
    [CancelAfter(150_000)]
    public async Task ProduceAndConsume_LeadersMovedRepeatedlyAndOldLeaderDown_AllDeliveredNoneLostInKeyOrder()
    {
        var clock = Stopwatch.StartNew();
        await using var cluster = EmbeddedKafkaCluster.Start(brokers: Brokers);
        cluster.CreateTopic(Topic, Partitions, replicationFactor: Brokers);
        cluster.SetGroupCoordinator(Group, Coordinator);
        var leaders = new int[Partitions];
        void Move(int partition, int broker)
        {
            cluster.SetPartitionLeader(Topic, partition, broker);
            leaders[partition] = broker;
        }

        for (var p = 0; p < Partitions; p++)
        {
            Move(p, (p % Brokers) + 1);
        }

        for (var broker = 1; broker <= Brokers; broker++)
        {
            cluster.SetBrokerRoundTripTime(broker, TimeSpan.FromMilliseconds(25 + (25 * broker)));
        }

        // Two consumer members; per key, the order in which values were handled.
        var ledger = new Ledger();
        var byKey = Enumerable.Range(0, Keys).Select(_ => new ConcurrentQueue<long>()).ToArray();
        var logs = new CapturingLoggerFactory();
        var members = new List<KafkaConsumer<string, string>>();
        foreach (var name in new[] { "moves-a", "moves-b" })
        {
            var options = ReliabilityKit.ConsumerOptions(cluster, Group, Topic);
            options.Config["fetch.wait.max.ms"] = "100";
            members.Add(new KafkaConsumerBuilder<string, string>(name, options)
                .SetLoggerFactory(logs)
                .SetHandler((r, _) =>
                {
                    var seq = ReliabilityKit.Seq(r.Message.Value);
                    byKey[KeyOf(r.Message.Key)].Enqueue(seq);
                    ledger.Record(seq);
                    return ValueTask.CompletedTask;
                })
                .Build());
        }

        var producerOptions = new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers };
        producerOptions.Config["linger.ms"] = ProducerLingerMs;
        producerOptions.Config["reconnect.backoff.max.ms"] = "1000";
        var producerLogs = new CapturingLoggerFactory();
        await using var producer = new KafkaProducerBuilder<string, string>("moves-producer", producerOptions).SetLoggerFactory(producerLogs).Build();
        try
        {
            foreach (var member in members)
            {
                await member.StartAsync();
            }

            await Wait.ForAsync(() => members.All(m => m.Assignment.Count > 0), PhaseTimeout, "both members own partitions");
            await using var stream = new EnqueueStream(producer, Topic, key: n => "key-" + (n % Keys).ToString(CultureInfo.InvariantCulture), messagesPerTick: 12);
            var outcomes = stream.Outcomes;
            var phases = new List<string>();
            async Task ProgressAsync(string phase)
            {
                var started = Stopwatch.StartNew();
                var mark = stream.Sent + ProgressPerPhase;
                await Wait.ForAsync(() => outcomes.Delivered >= mark && ledger.Missing(mark).Count == 0, PhaseTimeout, $"{phase}: messages through {mark} delivered and handled ({outcomes}; handled {ledger.Distinct})");
                phases.Add($"{phase} {started.Elapsed.TotalSeconds:F1} s");
            }

            await ProgressAsync("steady");
            for (var round = 1; round <= 2; round++)
            {
                for (var p = 0; p < Partitions; p++)
                {
                    Move(p, (leaders[p] % Brokers) + 1);
                }

                await ProgressAsync($"move {round}");
            }

            // Move broker 1's partitions away and take it down at once: clients learn of the move only from the
            // NOT_LEADER answers and refused connections of the broker that just lost it.
            for (var p = 0; p < Partitions; p++)
            {
                if (leaders[p] == OldLeader)
                {
                    Move(p, p % 2 == 0 ? 2 : 3);
                }
            }

            cluster.SetBrokerDown(OldLeader);
            var down = Stopwatch.StartNew();
            var sentAtDown = stream.Sent;
            await ProgressAsync("moved away, old leader down");
            await Wait.ForAsync(() => down.Elapsed >= Outage, Outage + TimeSpan.FromSeconds(5), "the outage lasts its time");
            cluster.SetBrokerUp(OldLeader);
            var sentDuringOutage = stream.Sent - sentAtDown;

            // Back onto the broker that was down.
            for (var p = 0; p < Partitions; p += 2)
            {
                Move(p, OldLeader);
            }

            await ProgressAsync("moved back");
            var produced = await stream.StopAsync();
            var undelivered = await producer.FlushAsync();
            await Wait.ForAsync(() => ledger.Missing(produced).Count == 0, PhaseTimeout, $"every one of {produced} messages handled");
            var (committed, ends) = await ReliabilityKit.WaitForCommittedAtEndAsync(cluster, Group, Topic, Partitions, PhaseTimeout);
            var lost = ledger.Missing(produced).Count;
            var written = ends.Values.Sum();

            // Per key: the first occurrences in handling order are the key's values in increasing order, without a gap.
            var outOfOrder = new List<string>();
            for (var k = 0; k < Keys; k++)
            {
                var seen = new HashSet<long>();
                var firsts = byKey[k].Where(seen.Add).ToList();
                var expected = Enumerable.Range(0, (int)produced).Select(n => (long)n).Where(n => n % Keys == k).ToList();
                if (!firsts.SequenceEqual(expected))
                {
                    outOfOrder.Add($"key-{k}: {firsts.Count} distinct of {expected.Count}, first difference at {firsts.Zip(expected).TakeWhile(x => x.First == x.Second).Count()}");
                }
            }

            var states = members.Select(m => m.State).ToList();
            TestContext.Out.WriteLine(
                $"phases: {string.Join("; ", phases)}; {sentDuringOutage} sent while broker {OldLeader} was down; final leaders {string.Join(",", leaders)}; " +
                $"producer: {outcomes}, {written} records written for {produced} messages, {producerLogs.Count(1004)} client errors logged; " +
                $"consumers: {ledger.Calls} handler calls, {ledger.Duplicates} beyond the first, {logs.Count(2003)} losses, {logs.Count(2002)} revokes, {members.Sum(m => m.CommitFailures)} commit failures");
            ReliabilityKit.Row("partition leaders moved 4 times mid-stream, old leader down 3 s, RTT 50-100 ms", produced, ledger.Distinct, ledger.Duplicates, 0, lost, clock.Elapsed);
            Assert.Multiple(() =>
            {
                Assert.That(outcomes.Failed, Is.Zero, outcomes.ToString());
                Assert.That(outcomes.Delivered, Is.EqualTo(produced), "produced = delivered");
                Assert.That(undelivered, Is.Zero);
                Assert.That(written, Is.GreaterThanOrEqualTo(produced), "at least one record per message (a retried batch may be written twice on the embedded cluster)");
                Assert.That(lost, Is.Zero, "no message lost");
                Assert.That(outOfOrder, Is.Empty, "per key, first occurrences in increasing order without a gap");
                Assert.That(committed, Is.EqualTo(ends), "committed offsets reach the end offsets");
                Assert.That(states, Is.All.EqualTo(KafkaConsumerState.Running));
                Assert.That(members.Select(m => m.Fault), Is.All.Null);
                Assert.That(producer.FatalError, Is.Null);
                Assert.That(logs.Count(2006) + logs.Count(2013) + logs.Count(2018) + producerLogs.Count(1003), Is.Zero, "no fatal error, callback failure or stop on error");
            });
        }
        finally
        {
            foreach (var member in members)
            {
                await member.DisposeAsync();
            }
        }
    }

    private static int KeyOf(string key) => int.Parse(key.AsSpan("key-".Length), CultureInfo.InvariantCulture);
}
