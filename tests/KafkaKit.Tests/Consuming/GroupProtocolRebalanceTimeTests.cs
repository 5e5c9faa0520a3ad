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
        Assert.Multiple(() =>
        {
            // The embedded cluster's classic rebalance of a non-empty group takes session.timeout.ms - 1 s (5 s).
            Assert.That(joins, Has.All.LessThan(TimeSpan.FromSeconds(15)), "a join completes within a few rebalance rounds");
            Assert.That(leaves, Has.All.LessThan(TimeSpan.FromSeconds(15)), "a graceful leave hands everything over within a few rounds");
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

    private static string Format(List<TimeSpan> times) =>
        $"{string.Join(", ", times.Select(t => $"{t.TotalSeconds:F2}"))} s (median {times.Order().ElementAt(times.Count / 2).TotalSeconds:F2} s)";
}
