using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.DependencyInjection;
using KafkaKit.Hosting;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KafkaKit.Tests.Hosting;

/// <summary>AddKafkaKitProbes: the registrations, the lag and group state read from statistics, and the lag threshold on a cluster.</summary>
[TestFixture]
[Parallelizable(ParallelScope.Self)]
public sealed class KafkaKitProbesTests
{
    [Test]
    public void AddKafkaKitProbes_Registers_LiveAndReadyChecksWithTheirTags()
    {
        var services = new ServiceCollection();
        services.AddHealthChecks().AddKafkaKitProbes();

        var registrations = services.BuildServiceProvider().GetRequiredService<IOptions<HealthCheckServiceOptions>>().Value.Registrations;

        Assert.That(
            registrations.Select(r => $"{r.Name}:{string.Join(",", r.Tags)}"),
            Is.EquivalentTo(new[] { "kafkakit-live:live", "kafkakit-ready:ready" }));
    }

    [TestCase(0L)]
    [TestCase(-5L)]
    public void AddKafkaKitProbes_NonPositiveMaxConsumerLag_ThrowsNamingTheValue(long maxLag)
    {
        var services = new ServiceCollection();

        var e = Assert.Throws<ArgumentOutOfRangeException>(() => services.AddHealthChecks().AddKafkaKitProbes(o => o.MaxConsumerLag = maxLag));

        Assert.That(e!.Message, Does.Contain($"MaxConsumerLag is {maxLag}").And.Contain("a positive number of messages"));
    }

    [Test]
    public void Statistics_Document_GivesTotalLagOfOwnedPartitionsAndJoinState()
    {
        var statistics = new ConsumerStatistics("c", "g", () => [new("orders", 0), new("orders", 1)], NullLogger.Instance);
        Assert.That((statistics.TotalLag, statistics.JoinState), Is.EqualTo(((long?)null, (string?)null)), "nothing known before statistics");

        statistics.OnStatistics("""
            {
              "topics": { "orders": { "partitions": {
                "0": { "consumer_lag": 7 }, "1": { "consumer_lag": 5 }, "2": { "consumer_lag": 100 }, "-1": { "consumer_lag": 9 } } } },
              "cgrp": { "state": "up", "join_state": "wait-sync" }
            }
            """);

        Assert.That((statistics.TotalLag, statistics.JoinState), Is.EqualTo(((long?)12, "wait-sync")), "partition 2 is not owned, -1 is not a partition");
    }

    /// <summary>
    /// A consumer whose handler is held while 20 messages arrive: with statistics on and MaxConsumerLag 5, readiness
    /// turns Degraded naming the lag while liveness stays Healthy; once the handler is released and offsets are
    /// committed, readiness is Healthy again with lag 0 in the data.
    /// </summary>
    [Test]
    [CancelAfter(90_000)]
    public async Task Probes_LagAboveMaxConsumerLag_ReadyDegradedLiveHealthyThenReadyAgain()
    {
        var topic = "probed-" + Guid.NewGuid().ToString("N")[..6];
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic(topic);
        var handled = 0;
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var options = new KafkaConsumerOptions { BootstrapServers = cluster.BootstrapServers, GroupId = topic, Topics = { topic }, CommitInterval = TimeSpan.FromMilliseconds(100) };
        KafkaProbe.FastGroup(options.Config);
        options.Config["statistics.interval.ms"] = "100";
        await using var consumer = new KafkaConsumerBuilder<string, string>("probed", options)
            .SetHandler(async (_, ct) =>
            {
                if (Interlocked.Increment(ref handled) > 1)
                {
                    await hold.Task.WaitAsync(ct);
                }
            })
            .Build();
        var clients = new KafkaKitClients();
        clients.Add(KafkaClientHealth.For(consumer));
        var live = new KafkaKitProbeHealthCheck(clients, readiness: false, maxConsumerLag: 5);
        var ready = new KafkaKitProbeHealthCheck(clients, readiness: true, maxConsumerLag: 5);
        var notStarted = await ready.CheckHealthAsync(new HealthCheckContext());
        await consumer.StartAsync();

        KafkaProbe.Produce(cluster.BootstrapServers, topic, [new Message<string, string> { Key = "k", Value = "first" }]);
        HealthCheckResult readyResult = default;
        await Wait.ForAsync(
            async () => (readyResult = await ready.CheckHealthAsync(new HealthCheckContext())).Status == HealthStatus.Healthy && consumer.Statistics.TotalLag == 0,
            TimeSpan.FromSeconds(30),
            "ready with lag 0 after the first message");
        KafkaProbe.Produce(cluster.BootstrapServers, topic, Enumerable.Range(0, 20).Select(i => new Message<string, string> { Key = "k", Value = $"v{i}" }));
        await Wait.ForAsync(
            async () => (readyResult = await ready.CheckHealthAsync(new HealthCheckContext())).Status == HealthStatus.Degraded,
            TimeSpan.FromSeconds(30),
            "ready Degraded while the handler is held");
        var catchingUp = readyResult;
        var liveWhileCatchingUp = await live.CheckHealthAsync(new HealthCheckContext());
        hold.SetResult();
        await Wait.ForAsync(
            async () => (readyResult = await ready.CheckHealthAsync(new HealthCheckContext())).Status == HealthStatus.Healthy && consumer.Statistics.TotalLag == 0,
            TimeSpan.FromSeconds(30),
            "ready again once caught up");
        var joinState = consumer.Statistics.JoinState;
        await consumer.StopAsync();
        var liveStopped = await live.CheckHealthAsync(new HealthCheckContext());

        TestContext.Out.WriteLine($"catching up: {Describe(catchingUp)}; caught up: {Describe(readyResult)}");
        Assert.Multiple(() =>
        {
            Assert.That(notStarted.Status, Is.EqualTo(HealthStatus.Unhealthy), "not started is not ready");
            Assert.That(Describe(catchingUp), Does.Contain("catching up: lag").And.Contain("above MaxConsumerLag 5"));
            Assert.That(catchingUp.Data["consumer 'probed' (group '" + topic + "') lag"], Is.GreaterThan(5L));
            Assert.That(liveWhileCatchingUp.Status, Is.EqualTo(HealthStatus.Healthy), "catching up is live");
            Assert.That(readyResult.Data["consumer 'probed' (group '" + topic + "') lag"], Is.EqualTo(0L));
            Assert.That(joinState, Is.EqualTo("steady"), "librdkafka's cgrp.join_state between rebalances");
            Assert.That(Volatile.Read(ref handled), Is.EqualTo(21));
            Assert.That(liveStopped.Status, Is.EqualTo(HealthStatus.Unhealthy), "a stopped consumer is not live");
        });
    }

    /// <summary>With the only broker down, each client's metadata probe waits its whole bound: they run at the same time, so the check takes one bound, not one per client.</summary>
    [Test]
    [CancelAfter(60_000)]
    public async Task Probes_BrokerDown_EveryClientNotReadyWithinOneProbeBound()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        var clients = new KafkaKitClients();
        var producers = new List<KafkaKit.Producing.IKafkaProducer<string, string>>();
        for (var i = 0; i < 3; i++)
        {
            var producer = new KafkaKit.Producing.KafkaProducerBuilder<string, string>($"p{i}", new KafkaKit.Producing.KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers }).Build();
            producers.Add(producer);
            clients.Add(KafkaClientHealth.For(producer));
        }

        try
        {
            cluster.SetBrokerDown(1);
            var ready = new KafkaKitProbeHealthCheck(clients, readiness: true, maxConsumerLag: null);
            var started = System.Diagnostics.Stopwatch.StartNew();
            var result = await ready.CheckHealthAsync(new HealthCheckContext());
            var elapsed = started.Elapsed;
            TestContext.Out.WriteLine($"{elapsed.TotalMilliseconds:F0} ms: {Describe(result)}");

            Assert.Multiple(() =>
            {
                Assert.That(result.Status, Is.EqualTo(HealthStatus.Unhealthy));
                Assert.That(result.Data.Values.Select(v => v.ToString()), Has.Exactly(3).Contain("no broker reachable"));
                Assert.That(elapsed, Is.LessThan((3 * KafkaKitHealthCheck.ProbeTimeout) - TimeSpan.FromSeconds(1)), "the three probes (2 s each when no broker answers) ran at the same time");
            });
        }
        finally
        {
            foreach (var producer in producers)
            {
                await producer.DisposeAsync();
            }
        }
    }

    private static string Describe(HealthCheckResult result) =>
        $"{result.Status} {result.Description} [{string.Join("; ", (result.Data ?? new Dictionary<string, object>()).Select(kv => $"{kv.Key} = {kv.Value}"))}]";
}
