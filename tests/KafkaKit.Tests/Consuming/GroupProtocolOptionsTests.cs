using Confluent.Kafka;
using KafkaKit.Consuming;
using Microsoft.Extensions.Options;
using static KafkaKit.Tests.Consuming.ConsumerTestKit;

namespace KafkaKit.Tests.Consuming;

/// <summary>KafkaConsumerOptions.GroupProtocol: what each protocol refuses at Build, and what the consumer runs with.</summary>
[TestFixture]
public sealed class GroupProtocolOptionsTests
{
    [Test]
    public void Build_ConsumerProtocolWithEverySettingItRefuses_ListsEachWithItsPlaceAndReason()
    {
        var options = new KafkaConsumerOptions
        {
            BootstrapServers = Unreachable,
            GroupId = "g",
            Topics = { "t" },
            GroupProtocol = GroupProtocol.Consumer,
            AssignmentStrategy = KafkaKit.Consuming.PartitionAssignmentStrategy.RoundRobin,
        };
        options.Config["session.timeout.ms"] = "6000";
        options.Config["heartbeat.interval.ms"] = "500";
        options.Config["group.protocol.type"] = "consumer";
        options.Config["group.remote.assignor"] = "sticky";

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("c", options).SetHandler((_, _) => default).Build());

        const string Protocol = "is not supported with the consumer group protocol (group.protocol=consumer, KIP-848, from GroupProtocol)";
        Assert.That(e!.Failures, Is.EquivalentTo(new[]
        {
            $"Consumer 'c': 'session.timeout.ms=6000' (from Config) {Protocol}: the broker sets the session timeout (group.consumer.session.timeout.ms); remove it, or use GroupProtocol Classic.",
            $"Consumer 'c': 'heartbeat.interval.ms=500' (from Config) {Protocol}: the broker sets the heartbeat interval (group.consumer.heartbeat.interval.ms); remove it, or use GroupProtocol Classic.",
            $"Consumer 'c': 'partition.assignment.strategy=roundrobin' (from AssignmentStrategy) {Protocol}: the broker assigns the partitions; choose its assignor with group.remote.assignor (uniform or range) or leave it to the broker; remove it, or use GroupProtocol Classic.",
            $"Consumer 'c': 'group.protocol.type=consumer' (from Config) {Protocol}: it belongs to the classic protocol; remove it, or use GroupProtocol Classic.",
            "Consumer 'c': 'group.remote.assignor=sticky' (from Config) is not a broker-side assignor: use uniform or range, or remove it to let the broker choose.",
        }));
    }

    [Test]
    public async Task Build_ConsumerProtocolWithDefaults_RunsWithGroupProtocolConsumerAndNoAssignmentStrategy()
    {
        var options = new KafkaConsumerOptions { BootstrapServers = Unreachable, GroupId = "g", Topics = { "t" }, GroupProtocol = GroupProtocol.Consumer };

        await using var consumer = new KafkaConsumerBuilder<string, string>("c", options).SetHandler((_, _) => default).Build();

        Assert.Multiple(() =>
        {
            Assert.That(consumer.Config.Get("group.protocol"), Is.EqualTo("consumer"));
            Assert.That(consumer.Config.Get("partition.assignment.strategy"), Is.Null, "KafkaKit's default strategy is not passed under the consumer protocol");
            Assert.That(consumer.Config.Get("enable.auto.offset.store"), Is.EqualTo("false"), "KafkaKit's other defaults stay");
        });
    }

    [Test]
    public async Task Build_ClassicProtocolWithDefaults_RunsWithCooperativeStickyAndNoGroupProtocol()
    {
        var options = new KafkaConsumerOptions { BootstrapServers = Unreachable, GroupId = "g", Topics = { "t" } };

        await using var consumer = new KafkaConsumerBuilder<string, string>("c", options).SetHandler((_, _) => default).Build();

        Assert.Multiple(() =>
        {
            Assert.That(consumer.Config.Get("group.protocol"), Is.Null, "librdkafka's default (classic)");
            Assert.That(consumer.Config.Get("partition.assignment.strategy"), Is.EqualTo("cooperative-sticky"));
        });
    }

    [Test]
    public void Build_UndefinedGroupProtocol_ThrowsNamingValueAndProtocols()
    {
        var options = new KafkaConsumerOptions { BootstrapServers = Unreachable, GroupId = "g", Topics = { "t" }, GroupProtocol = (GroupProtocol)5 };

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("c", options).SetHandler((_, _) => default).Build());

        Assert.That(e!.Failures, Has.Member("Consumer 'c': GroupProtocol is 5; it must be Classic or Consumer."));
    }
}
