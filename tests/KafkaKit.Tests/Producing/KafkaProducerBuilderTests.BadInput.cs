using KafkaKit.Consuming;
using KafkaKit.Producing;
using Microsoft.Extensions.Options;
using static KafkaKit.Tests.Producing.ProducerTestKit;

namespace KafkaKit.Tests.Producing;

/// <summary>
/// Bad producer options at Build: the exact exception type, and a message naming the bad value and what is allowed.
/// The bootstrap-server cases also build a consumer, which validates the servers the same way.
/// </summary>
public sealed partial class KafkaProducerBuilderTests
{
    /// <summary>
    /// librdkafka accepts any text for bootstrap.servers when it is configured: "not a host:port" became host "not a host",
    /// port 0, logged as unresolvable on every reconnect while Build had succeeded. KafkaKit now refuses malformed entries
    /// at Build (and at host start), naming the entry and what is allowed.
    /// </summary>
    [TestCase("not a host:port", "not a host:port")]
    [TestCase("broker1:9092,broker2:port", "broker2:port")]
    [TestCase("broker1:70000", "broker1:70000")]
    [TestCase("PLAINTEXT://:9092", "PLAINTEXT://:9092")]
    public void Build_MalformedBootstrapServers_ThrowsOptionsValidationNamingTheEntry(string servers, string bad)
    {
        var producer = Assert.Throws<OptionsValidationException>(() => new KafkaProducerBuilder<string, string>("p", new KafkaProducerOptions { BootstrapServers = servers }).Build());
        var consumer = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("c", new KafkaConsumerOptions { BootstrapServers = servers, GroupId = "g", Topics = { "t" } })
            .SetHandler((_, _) => default).Build());

        Assert.Multiple(() =>
        {
            Assert.That(producer!.Failures.Single(), Does.StartWith($"Producer 'p' has a malformed bootstrap server '{bad}'").And.Contain("host:port").And.Contain("1 to 65535"));
            Assert.That(consumer!.Failures.Single(), Does.StartWith($"Consumer 'c' has a malformed bootstrap server '{bad}'"));
        });
    }

    [TestCase("localhost")]
    [TestCase("127.0.0.1:9092, 127.0.0.1:9093")]
    [TestCase("SSL://broker.example.com:9093")]
    [TestCase("[::1]:9092,[fe80::1]")]
    public void Build_WellFormedBootstrapServers_Accepted(string servers)
    {
        Assert.DoesNotThrowAsync(async () => await new KafkaProducerBuilder<string, string>("p", new KafkaProducerOptions { BootstrapServers = servers, FlushTimeoutOnDispose = TimeSpan.Zero }).Build().DisposeAsync());
    }

    [Test]
    public void ProducerBuild_UnknownConfigKey_ThrowsOptionsValidationNamingTheKey()
    {
        var options = new KafkaProducerOptions { BootstrapServers = Unreachable };
        options.Config["lingr.ms"] = "5";

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaProducerBuilder<string, string>("p", options).Build());

        Assert.That(e!.Message, Does.Contain("'lingr.ms=5'").And.Contain("No such configuration property"));
    }

    [Test]
    public void ProducerBuild_NegativeLingerMs_ThrowsOptionsValidationNamingValueAndRange()
    {
        var options = new KafkaProducerOptions { BootstrapServers = Unreachable };
        options.Config["linger.ms"] = "-5";

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaProducerBuilder<string, string>("p", options).Build());

        Assert.That(e!.Message, Does.Contain("'linger.ms=-5'").And.Contain("outside allowed range"));
    }

    [Test]
    public void ProducerBuild_NegativeMaxBlock_ThrowsOptionsValidationNamingValueAndRange()
    {
        var options = new KafkaProducerOptions { BootstrapServers = Unreachable, MaxBlock = TimeSpan.FromSeconds(-1) };

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaProducerBuilder<string, string>("p", options).Build());

        Assert.That(e!.Message, Does.Contain("MaxBlock is -00:00:01").And.Contain("must be between 0 and"));
    }
}
