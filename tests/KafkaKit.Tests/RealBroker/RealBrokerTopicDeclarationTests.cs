using Confluent.Kafka;
using KafkaKit.Topics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaKit.Tests.RealBroker;

/// <summary>
/// KafkaKit:Topics through Confluent's admin client on a real broker (see <see cref="RealBrokerCluster"/>): the embedded
/// cluster answers no CreateTopics request, so this tier is where the real create path runs. Without a broker the test
/// is reported skipped with the reason.
/// </summary>
[TestFixture]
[Category("RealBroker")]
[Parallelizable(ParallelScope.Self)]
public sealed class RealBrokerTopicDeclarationTests
{
    [Test]
    [CancelAfter(120_000)]
    public async Task HostStart_MissingTopic_CreatedThroughTheAdminApiWithDeclaredPartitionsAndConfig()
    {
        var cluster = RealBrokerCluster.Require();
        var topic = "declared-" + Guid.NewGuid().ToString("N")[..8];
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddKafkaKit(o =>
        {
            o.BootstrapServers = cluster.BootstrapServers;
            o.Topics[topic] = new TopicDeclaration { Partitions = 3, ReplicationFactor = 1, Config = { ["cleanup.policy"] = "compact" } };
        });
        using var host = builder.Build();

        await host.StartAsync();
        await host.StopAsync();

        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = cluster.BootstrapServers }).Build();
        var metadata = admin.GetMetadata(topic, TimeSpan.FromSeconds(10)).Topics.Single();
        var configs = await admin.DescribeConfigsAsync([new Confluent.Kafka.Admin.ConfigResource { Type = Confluent.Kafka.Admin.ResourceType.Topic, Name = topic }]);
        Assert.Multiple(() =>
        {
            Assert.That(metadata.Error.Code, Is.EqualTo(ErrorCode.NoError), metadata.Error.Reason);
            Assert.That(metadata.Partitions, Has.Count.EqualTo(3));
            Assert.That(configs.Single().Entries["cleanup.policy"].Value, Is.EqualTo("compact"));
        });
    }
}
