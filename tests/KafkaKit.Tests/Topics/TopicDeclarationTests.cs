using System.Text;
using Confluent.Kafka;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;
using KafkaKit.Topics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KafkaKit.Tests.Topics;

/// <summary>KafkaKit:Topics: created at start when missing, existing ones checked and never altered, problems logged, reported by health, and fatal when required.</summary>
[TestFixture]
[Parallelizable(ParallelScope.Self)]
public sealed class TopicDeclarationTests
{
    [Test]
    [CancelAfter(30_000)]
    public async Task HostStart_MissingTopic_CreatedWithDeclaredPartitionsAndConfigBeforeHealthIsAsked()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        var admin = new EmbeddedTopicAdmin(cluster);
        using var host = Host(cluster, admin, out var logs, o =>
        {
            o.Topics["orders"] = new TopicDeclaration { Partitions = 3, ReplicationFactor = 1, Config = { ["cleanup.policy"] = "compact" } };
            o.Topics["orders.DLT"] = new TopicDeclaration { Partitions = 1 };
        });

        await host.StartAsync();

        var partitions = PartitionCounts(cluster);
        var health = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.Multiple(() =>
        {
            Assert.That(partitions.GetValueOrDefault("orders"), Is.EqualTo(3), "created with the declared partitions (read from the cluster's metadata)");
            Assert.That(partitions.GetValueOrDefault("orders.DLT"), Is.EqualTo(1), "a dead-letter topic is declared like any other");
            Assert.That(admin.Created.Single(t => t.Name == "orders").Configs, Is.EquivalentTo(new Dictionary<string, string> { ["cleanup.policy"] = "compact" }));
            Assert.That(logs.Lines.Where(l => l.EventId.Id == 1100).Select(l => l.Message), Has.Some.Contains("Topic orders created: 3 partitions, replication factor 1, config cleanup.policy=compact"));
            Assert.That(health.Status, Is.EqualTo(HealthStatus.Healthy), string.Join("; ", health.Entries.Select(e => e.Value.Description)));
        });
        await host.StopAsync();
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task HostStart_RequiredTopicWithFewerPartitions_StartFailsNamingCountsAndTopicIsNotAltered()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("orders", partitions: 2);
        var admin = new EmbeddedTopicAdmin(cluster);
        using var host = Host(cluster, admin, out var logs, o => o.Topics["orders"] = new TopicDeclaration { Partitions = 6 });

        var e = Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync());

        Assert.Multiple(() =>
        {
            Assert.That(e!.Message, Does.Contain("Topic 'orders' has 2 partition(s), fewer than the 6 declared; KafkaKit never adds partitions"));
            Assert.That(PartitionCounts(cluster)["orders"], Is.EqualTo(2), "never altered");
            Assert.That(admin.Created, Is.Empty);
            Assert.That(logs.Count(1102), Is.EqualTo(1));
            Assert.That(logs.Count(1106), Is.EqualTo(1), "the refused start is logged");
        });
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task HostStart_OptionalTopicWithFewerPartitions_StartsAndHealthIsDegradedNamingTheTopic()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("audit", partitions: 1);
        using var host = Host(cluster, new EmbeddedTopicAdmin(cluster), out var logs, o => o.Topics["audit"] = new TopicDeclaration { Partitions = 4, Required = false });

        await host.StartAsync();

        var health = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        var ready = health.Entries["kafkakit-ready"];
        Assert.Multiple(() =>
        {
            Assert.That(health.Entries["kafkakit"].Status, Is.EqualTo(HealthStatus.Degraded));
            Assert.That(health.Entries["kafkakit"].Data["topics"], Does.Contain("Topic 'audit' has 1 partition(s), fewer than the 4 declared"));
            Assert.That(ready.Status, Is.EqualTo(HealthStatus.Degraded));
            Assert.That(health.Entries["kafkakit-live"].Status, Is.EqualTo(HealthStatus.Healthy), "a topic problem never restarts the process");
            Assert.That(logs.Count(1102), Is.EqualTo(1));
            Assert.That(logs.Count(1107), Is.EqualTo(1));
        });
        await host.StopAsync();
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task HostStart_ReplicationFactorAboveBrokerCount_RefusedWithoutCreating()
    {
        await using var cluster = EmbeddedKafkaCluster.Start(brokers: 2);
        var admin = new EmbeddedTopicAdmin(cluster);
        using var host = Host(cluster, admin, out var logs, o => o.Topics["payments"] = new TopicDeclaration { Partitions = 3, ReplicationFactor = 3 });

        var e = Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync());

        Assert.Multiple(() =>
        {
            Assert.That(e!.Message, Does.Contain("Topic 'payments' is not created: its ReplicationFactor 3 is above the 2 broker(s) of the cluster; declare at most 2."));
            Assert.That(admin.Created, Is.Empty);
            Assert.That(PartitionCounts(cluster).ContainsKey("payments"), Is.False);
            Assert.That(logs.Count(1103), Is.EqualTo(1));
        });
    }

    /// <summary>The real Admin API path: the embedded cluster has no CreateTopics, so the Kafka error must reach the log and the start failure.</summary>
    [Test]
    [CancelAfter(60_000)]
    public async Task HostStart_ClusterRefusesCreateTopics_KafkaErrorLoggedAndStartFails()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        using var host = Host(cluster, admin: null, out var logs, o => o.Topics["orders"] = new TopicDeclaration { Partitions = 3 });

        var e = Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync());

        var failed = logs.Lines.Where(l => l.EventId.Id == 1104).ToList();
        TestContext.Out.WriteLine(e!.Message);
        Assert.Multiple(() =>
        {
            Assert.That(e.Message, Does.Contain("Topic 'orders' could not be created: ").And.Contain("(Kafka error "));
            Assert.That(failed, Has.Count.EqualTo(1));
            Assert.That(failed[0].Message, Does.Contain("Topic orders could not be created: ").And.Contain("Kafka error"));
        });
    }

    [Test]
    public void HostStart_BadDeclarationsInConfiguration_EveryProblemNamedWithWhatIsAllowed()
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes("""
            {
              "KafkaKit": {
                "Topics": {
                  "orders": { "Partitions": "six" },
                  "bad name!": { "Partitions": 0 },
                  "payments": { "ReplicationFactor": 0, "Required": "maybe" }
                }
              }
            }
            """)));
        builder.Services.AddLogging();
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit"));
        using var host = builder.Build();

        var e = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Multiple(() =>
        {
            Assert.That(e!.Message, Does.Contain("'KafkaKit:Topics:orders:Partitions=six' is not a valid Int32"));
            Assert.That(e.Message, Does.Contain("'KafkaKit:Topics:payments:Required=maybe' is not a valid bool: use true or false"));
            Assert.That(e.Message, Does.Contain("Topic name 'bad name!' is not valid: use 1 to 249 characters of a-z, A-Z, 0-9, '.', '_' and '-'"));
            Assert.That(e.Message, Does.Contain("KafkaKit:Topics:bad name!: Partitions is 0; it must be 1 or more"));
            Assert.That(e.Message, Does.Contain("no shared bootstrap servers to create them with: set KafkaKit:BootstrapServers or KafkaKit:Client:bootstrap.servers"));
        });
    }

    private static IHost Host(EmbeddedKafkaCluster cluster, EmbeddedTopicAdmin? admin, out CapturingLoggerFactory logs, Action<KafkaKitOptions> configure)
    {
        var captured = new CapturingLoggerFactory();
        logs = captured;
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddSingleton<ILoggerFactory>(captured);
        builder.Services.AddKafkaKit(o =>
        {
            o.BootstrapServers = cluster.BootstrapServers;
            configure(o);
        });
        if (admin is not null)
        {
            builder.Services.AddSingleton<TopicAdminFactory>((_, _) => admin);
        }

        builder.Services.AddHealthChecks().AddKafkaKit().AddKafkaKitProbes();
        return builder.Build();
    }

    private static Dictionary<string, int> PartitionCounts(EmbeddedKafkaCluster cluster)
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = cluster.BootstrapServers }).Build();
        return admin.GetMetadata(TimeSpan.FromSeconds(10)).Topics.Where(t => t.Error.Code == ErrorCode.NoError).ToDictionary(t => t.Topic, t => t.Partitions.Count);
    }
}
