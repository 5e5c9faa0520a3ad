using KafkaKit.Consuming;
using Microsoft.Extensions.Options;
using static KafkaKit.Tests.Consuming.ConsumerTestKit;

namespace KafkaKit.Tests.Consuming;

/// <summary>Bad consumer options at Build: the exact exception type, and a message naming the bad value and what is allowed.</summary>
public sealed partial class KafkaConsumerBuilderTests
{
    [Test]
    public void ConsumerBuild_UnknownConfigKey_ThrowsOptionsValidationNamingTheKey()
    {
        var options = new KafkaConsumerOptions { BootstrapServers = Unreachable, GroupId = "g", Topics = { "t" } };
        options.Config["sesion.timeout.ms"] = "6000";

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("c", options).SetHandler((_, _) => default).Build());

        Assert.That(e!.Message, Does.Contain("has no property 'sesion.timeout.ms' (value not shown)"));
    }

    [TestCase(0)]
    [TestCase(10_001)]
    public void ConsumerBuild_MaxConcurrencyOutOfRange_ThrowsOptionsValidationNamingValueAndRange(int value)
    {
        var options = new KafkaConsumerOptions { BootstrapServers = Unreachable, GroupId = "g", Topics = { "t" }, MaxConcurrency = value };

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("c", options).SetHandler((_, _) => default).Build());

        Assert.That(e!.Failures, Is.EqualTo(new[] { $"Consumer 'c': MaxConcurrency is {value}; it must be between 1 and 10000." }));
    }

    [Test]
    public void ConsumerBuild_UndefinedOrdering_ThrowsOptionsValidationNamingValueAndModes()
    {
        var options = new KafkaConsumerOptions { BootstrapServers = Unreachable, GroupId = "g", Topics = { "t" }, Ordering = (ConsumerOrdering)7 };

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("c", options).SetHandler((_, _) => default).Build());

        Assert.That(e!.Failures, Is.EqualTo(new[] { "Consumer 'c': Ordering is 7; it must be Partition, Key or Unordered." }));
    }

    [Test]
    public void ConsumerBuild_InvalidTopicRegex_ThrowsOptionsValidationNamingThePattern()
    {
        var options = new KafkaConsumerOptions { BootstrapServers = Unreachable, GroupId = "g", Topics = { "^orders-(" } };

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("c", options).SetHandler((_, _) => default).Build());

        Assert.That(e!.Message, Does.Contain("Topics entry '^orders-('").And.Contain("not a valid regular expression"));
    }

    [Test]
    public void ConsumerBuild_NullTopicEntry_ThrowsOptionsValidationSayingSo()
    {
        var options = new KafkaConsumerOptions { BootstrapServers = Unreachable, GroupId = "g", Topics = { null! } };

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("c", options).SetHandler((_, _) => default).Build());

        Assert.That(e!.Failures, Is.EqualTo(new[] { "Consumer 'c': Topics has an empty entry." }));
    }
}
