using Confluent.Kafka;
using KafkaKit.Producing;
using KafkaKit.Tests.Support;
using Microsoft.Extensions.Options;

namespace KafkaKit.Tests.Producing;

/// <summary>Building a producer: every configuration problem is reported at Build, before any use.</summary>
public sealed partial class KafkaProducerBuilderTests
{
    private const string Bootstrap = "127.0.0.1:9"; // never contacted: nothing is produced

    [Test]
    public void Build_UnknownConfigKey_ThrowsNamingTheKey()
    {
        // Arrange
        var options = new KafkaProducerOptions { BootstrapServers = Bootstrap };
        options.Config["no.such.property"] = "1";

        // Act
        var e = Assert.Throws<OptionsValidationException>(() => new KafkaProducerBuilder<Null, string>("unknown-key", options).Build());

        // Assert
        Assert.That(e!.Failures.Single(), Does.Contain("\"no.such.property\""));
    }

    [Test]
    public void Build_UnknownKeyBadValueAndBadOption_ListsEveryProblemWithoutSecrets()
    {
        // Arrange
        var options = new KafkaProducerOptions { BootstrapServers = Bootstrap, MaxBlock = TimeSpan.FromSeconds(-1) };
        options.Config["no.such.property"] = "1";
        options.Config["queue.buffering.max.messages"] = "many";
        options.Config["sasl.password"] = "hunter2";
        options.Config["ssl.key.password"] = "s3cret-value";

        // Act
        var e = Assert.Throws<OptionsValidationException>(() => new KafkaProducerBuilder<Null, string>("bad-config", options).Build());

        // Assert
        Assert.That(e!.Failures.Count(), Is.EqualTo(3), e.Message);
        Assert.That(e.Failures, Has.One.Contains("\"no.such.property\""));
        Assert.That(e.Failures, Has.One.Contains("\"queue.buffering.max.messages\""));
        Assert.That(e.Failures, Has.One.Contains("MaxBlock"));
        Assert.That(e.Message, Does.Not.Contain("hunter2").And.Not.Contain("s3cret-value"));
    }

    [Test]
    public void Build_NegativeMaxBlockAndFlushTimeoutAndNoBootstrap_ListsEveryProblemAtOnce()
    {
        // Arrange
        var options = new KafkaProducerOptions
        {
            MaxBlock = TimeSpan.FromSeconds(-1),
            FlushTimeoutOnDispose = TimeSpan.FromMilliseconds(-5),
        };
        options.Retry.MaxRetryAttempts = -1;
        options.Retry.MaxRetryDuration = TimeSpan.Zero;

        // Act
        var e = Assert.Throws<OptionsValidationException>(() => new KafkaProducerBuilder<Null, string>("invalid", options).Build());

        // Assert
        Assert.That(e!.Failures.Count(), Is.EqualTo(5), e.Message);
        Assert.That(e.Failures, Has.One.Contains("Retry.MaxRetryDuration is 00:00:00; it must be more than 0, or -00:00:00.001 (Timeout.InfiniteTimeSpan)"));
        Assert.That(e.Failures, Has.One.Contains("MaxBlock"));
        Assert.That(e.Failures, Has.One.Contains("FlushTimeoutOnDispose"));
        Assert.That(e.Failures, Has.One.Contains("Retry.MaxRetryAttempts"));
        Assert.That(e.Failures, Has.One.Contains("bootstrap servers"));
        Assert.That(e.OptionsName, Is.EqualTo("invalid"));
    }

    [Test]
    public void Build_MaxBlockBeyondTimerRange_IsRefused()
    {
        // Arrange
        var options = new KafkaProducerOptions { BootstrapServers = Bootstrap, MaxBlock = TimeSpan.MaxValue };

        // Act
        var e = Assert.Throws<OptionsValidationException>(() => new KafkaProducerBuilder<Null, string>("huge", options).Build());

        // Assert
        Assert.That(e!.Failures, Has.One.Contains("MaxBlock"));
    }

    [TestCase("dotnet.producer.enable.delivery.reports", "false")]
    [TestCase("dotnet.producer.enable.background.poll", "false")]
    public void Build_DeliveryReportsTurnedOff_IsRefusedNamingTheKey(string key, string value)
    {
        // Arrange: without delivery reports served in the background, queue room is never freed and messages get no outcome.
        var options = new KafkaProducerOptions { BootstrapServers = Bootstrap };
        options.Config[key] = value;

        // Act
        var e = Assert.Throws<OptionsValidationException>(() => new KafkaProducerBuilder<Null, string>("no-reports", options).Build());

        // Assert
        Assert.That(e!.Failures, Has.One.Contains(key));
    }

    [Test]
    public async Task Build_ValidOptions_AppliesIdempotenceAndAcksDefaults()
    {
        // Arrange
        var options = new KafkaProducerOptions { BootstrapServers = Bootstrap };
        var logs = new CapturingLoggerFactory();

        // Act
        await using var producer = new KafkaProducerBuilder<Null, string>("defaults", options).SetLoggerFactory(logs).Build();

        // Assert
        var started = logs.WithEventId(1000).Single().Message;
        Assert.That(started, Does.Contain("enable.idempotence=true"));
        Assert.That(started, Does.Contain("acks=all"));
        Assert.That(producer.Name, Is.EqualTo("defaults"));
    }
}
