using KafkaKit.Consuming;
using Microsoft.Extensions.Options;

namespace KafkaKit.Tests.Consuming;

/// <summary>Options validation at Build: every problem is reported at once, before anything connects.</summary>
[TestFixture]
[Parallelizable(ParallelScope.Self)] // fixtures overlap (most of their time is spent waiting on the cluster); tests within one run in sequence
public sealed partial class KafkaConsumerBuilderTests
{
    [Test]
    [CancelAfter(10_000)]
    public void Build_ManyProblems_ThrowsOneOptionsValidationExceptionListingEvery()
    {
        var options = new KafkaConsumerOptions { BootstrapServers = "127.0.0.1:9", GroupId = "g", RevokeTimeout = TimeSpan.FromSeconds(10) };
        options.Topics.Add("^[");
        options.Config["enable.auto.offset.store"] = "true";
        options.Config["enable.auto.commit"] = "false";
        options.Config["max.poll.interval.ms"] = "10000";

        var error = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("bad", options).Build());

        Assert.Multiple(() =>
        {
            Assert.That(error!.Failures.Count(), Is.EqualTo(5), string.Join(Environment.NewLine, error.Failures));
            Assert.That(error.Message, Does.Contain("'^['").And.Contain("not a valid regular expression"));
            Assert.That(error.Message, Does.Contain("enable.auto.offset.store=true"));
            Assert.That(error.Message, Does.Contain("enable.auto.commit=false"));
            Assert.That(error.Message, Does.Contain("RevokeTimeout").And.Contain("max.poll.interval.ms (10000 ms)"));
            Assert.That(error.Message, Does.Contain("no handler"));
            Assert.That(error.OptionsName, Is.EqualTo("bad"));
        });
    }

    [Test]
    [CancelAfter(10_000)]
    public void Build_UnknownPropertyAndBadValue_LibrdkafkaRefusesEachNamingIt()
    {
        var options = new KafkaConsumerOptions { BootstrapServers = "127.0.0.1:9", GroupId = "g", Topics = { "t" } };
        options.Config["no.such.property"] = "1";
        options.Config["session.timeout.ms"] = "soon";
        options.Config["sasl.password"] = "do-not-echo";

        var error = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("typos", options).SetHandler((_, _) => default).Build());

        Assert.Multiple(() =>
        {
            Assert.That(error!.Failures.Count(), Is.EqualTo(2), string.Join(Environment.NewLine, error.Failures));
            Assert.That(error.Message, Does.Contain("'no.such.property=1'"));
            Assert.That(error.Message, Does.Contain("'session.timeout.ms=soon'"));
            Assert.That(error.Message, Does.Not.Contain("do-not-echo"));
        });
    }

    [Test]
    [CancelAfter(10_000)]
    public void Build_NoTopicsNoGroupNoServersNoHandler_ListsEachMissingSetting()
    {
        var options = new KafkaConsumerOptions { MaxConcurrency = 0, PartitionBufferSize = 0, PollTimeout = TimeSpan.FromSeconds(10) };
        options.Retry.MaxRetryAttempts = -1;

        var error = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("empty", options).Build());

        Assert.Multiple(() =>
        {
            Assert.That(error!.Message, Does.Contain("Topics is empty"));
            Assert.That(error.Message, Does.Contain("GroupId is not set"));
            Assert.That(error.Message, Does.Contain("no bootstrap servers"));
            Assert.That(error.Message, Does.Contain("no handler"));
            Assert.That(error.Message, Does.Contain("MaxConcurrency is 0"));
            Assert.That(error.Message, Does.Contain("PartitionBufferSize is 0"));
            Assert.That(error.Message, Does.Contain("PollTimeout"));
            Assert.That(error.Message, Does.Contain("Retry.MaxRetryAttempts is -1"));
            Assert.That(error.Failures.Count(), Is.EqualTo(8));
        });
    }

    [Test]
    [CancelAfter(10_000)]
    public void Build_ConflictsInSharedClientPropertiesOrDefaults_AreCaughtToo()
    {
        var shared = new KafkaKitOptions { BootstrapServers = "127.0.0.1:9" };
        shared.Client["enable.auto.commit"] = "false";
        shared.Client["enable.auto.offset.store"] = "true";
        var options = new KafkaConsumerOptions { GroupId = "g", RevokeTimeout = TimeSpan.FromMinutes(6) };
        options.Topics.Add("t");

        var error = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("shared", options)
            .SetShared(shared)
            .SetHandler((_, _) => ValueTask.CompletedTask)
            .Build());

        Assert.Multiple(() =>
        {
            Assert.That(error!.Message, Does.Contain("enable.auto.commit=false"), "a shared property would silently turn periodic commits off");
            Assert.That(error.Message, Does.Contain("enable.auto.offset.store=true"));
            Assert.That(error.Message, Does.Contain("max.poll.interval.ms (300000 ms)"), "librdkafka's default applies when the key is absent");
            Assert.That(error.Failures.Count(), Is.EqualTo(3));
        });
    }

    [Test]
    [CancelAfter(10_000)]
    public void Build_ValidOptions_BuildsWithoutConnecting()
    {
        var options = new KafkaConsumerOptions { BootstrapServers = "127.0.0.1:9", GroupId = "g" };
        options.Topics.Add("^orders-.*");
        options.Topics.Add("payments");

        var consumer = new KafkaConsumerBuilder<string, string>("ok", options).SetHandler((_, _) => ValueTask.CompletedTask).Build();

        Assert.Multiple(() =>
        {
            Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Created));
            Assert.That(consumer.GroupId, Is.EqualTo("g"));
            Assert.That(consumer.Assignment, Is.Empty);
        });
    }
}
