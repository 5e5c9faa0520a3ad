using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Consuming;

/// <summary>
/// Rebalance times of both group protocols on the embedded cluster, with the tests' fast group timings (6 s session,
/// 500 ms heartbeat: client settings for the classic protocol, the cluster's under KIP-848): join (a second member
/// starts until both own partitions) and leave (a member stops until the other owns all). Printed for docs/operations.md.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.Self)]
public sealed class GroupProtocolRebalanceTimeTests
{
    private const int Repetitions = 3;
    private const int Partitions = 6;

    [Test]
    [CancelAfter(180_000)]
    public async Task Rebalance_SecondMemberJoinsThenLeaves_BothMembersOwnPartitionsAndTheRemainingOneTakesAll([Values] GroupProtocol protocol)
    {
        var joins = new List<TimeSpan>();
        var leaves = new List<TimeSpan>();
        for (var run = 1; run <= Repetitions; run++)
        {
            var (join, leave) = await MeasureAsync(protocol, run);
            joins.Add(join);
            leaves.Add(leave);
        }

        TestContext.Out.WriteLine($"{protocol}: join {Format(joins)}; leave {Format(leaves)}");

        // Each run is bounded by its waits (30 s). The medians are asserted, not every run: a classic rebalance on the
        // embedded cluster lasts whole rounds of session.timeout.ms - 1 s (5 s), and on a loaded machine a member's
        // JoinGroup now and then reaches the cluster after a round closed, which adds one round (15.1 s once in a run
        // with both cores busy). The median still tells the protocols apart: two rounds against well under one.
        var (roundsToJoin, roundsToLeave) = protocol == GroupProtocol.Classic ? (TimeSpan.FromSeconds(12.5), TimeSpan.FromSeconds(7.5)) : (TimeSpan.FromSeconds(2.5), TimeSpan.FromSeconds(2.5));
        Assert.Multiple(() =>
        {
            Assert.That(Median(joins), Is.LessThan(roundsToJoin), "a join completes in two rounds (classic cooperative: revoke, then assign) or, under KIP-848, at the next heartbeats");
            Assert.That(Median(leaves), Is.LessThan(roundsToLeave), "a graceful leave hands everything over in one round or at the next heartbeats");
        });
    }

    private static async Task<(TimeSpan Join, TimeSpan Leave)> MeasureAsync(GroupProtocol protocol, int run)
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = $"rebalance-{run}";
        cluster.CreateTopic(topic, Partitions);
        KafkaConsumer<string, string> Member(string name) =>
            new KafkaConsumerBuilder<string, string>(name, ConsumerTestKit.Options(cluster, $"rebalance-group-{run}", protocol, topic))
                .SetHandler((_, _) => default)
                .Build();

        await using var a = Member("a");
        await using var b = Member("b");
        await a.StartAsync();
        await Wait.ForAsync(() => a.Assignment.Count == Partitions, TimeSpan.FromSeconds(30), "a owns every partition");

        var clock = Stopwatch.StartNew();
        await b.StartAsync();
        await Wait.ForAsync(
            () => a.Assignment.Count > 0 && b.Assignment.Count > 0 && a.Assignment.Count + b.Assignment.Count == Partitions,
            TimeSpan.FromSeconds(30),
            "a and b share the partitions");
        var join = clock.Elapsed;

        clock.Restart();
        await b.StopAsync();
        await Wait.ForAsync(() => a.Assignment.Count == Partitions, TimeSpan.FromSeconds(30), "a owns every partition again");
        return (join, clock.Elapsed);
    }

    private static TimeSpan Median(List<TimeSpan> times) => times.Order().ElementAt(times.Count / 2);

    private static string Format(List<TimeSpan> times) =>
        $"{string.Join(", ", times.Select(t => $"{t.TotalSeconds:F2}"))} s (median {Median(times).TotalSeconds:F2} s)";
}
