using System.Collections.Concurrent;
using System.Text;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.DependencyInjection;
using KafkaKit.Producing;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace KafkaKit.Tests.DependencyInjection;

/// <summary>
/// The start-time validator and the builders merge and check settings through one path: what one accepts the other
/// accepts, with the same merged values, and every refusal names the place of the setting.
/// </summary>
[TestFixture]
public sealed class KafkaKitOptionsValidatorTests
{
    private const string Shared = "127.0.0.1:9";
    private const string Own = "127.0.0.1:8";

    /// <summary>
    /// One case of the matrix: the settings, then for the producer and for the consumer either the expected
    /// bootstrap servers of the built client (accepted) or a text every refusal must contain (refused).
    /// </summary>
    public sealed record Case(string Name, Action<KafkaKitOptions, KafkaProducerOptions, KafkaConsumerOptions> Arrange, string? ProducerServers, string? ProducerRefusal, string? ConsumerServers, string? ConsumerRefusal, string? GroupId = "g")
    {
        public override string ToString() => Name;
    }

    public static IEnumerable<Case> Matrix() =>
    [
        new("Client bootstrap.servers only", (k, p, c) => k.Client["bootstrap.servers"] = Shared, Shared, null, Shared, null),
        new("shared BootstrapServers only", (k, p, c) => k.BootstrapServers = Shared, Shared, null, Shared, null),
        new("own BootstrapServers beats shared", (k, p, c) => { k.BootstrapServers = Shared; p.BootstrapServers = Own; c.BootstrapServers = Own; }, Own, null, Own, null),
        new("own Config beats Client", (k, p, c) => { k.Client["bootstrap.servers"] = Shared; p.Config["bootstrap.servers"] = Own; c.Config["bootstrap.servers"] = Own; }, Own, null, Own, null),
        new("shared BootstrapServers and Client disagree", (k, p, c) => { k.BootstrapServers = Shared; k.Client["bootstrap.servers"] = Own; }, null, "KafkaKit:BootstrapServers ('127.0.0.1:9') and 'bootstrap.servers=127.0.0.1:8' (from KafkaKit:Client) disagree", null, "disagree"),
        new("own BootstrapServers and own Config disagree", (k, p, c) => { p.BootstrapServers = Shared; p.Config["bootstrap.servers"] = Own; c.BootstrapServers = Shared; c.Config["bootstrap.servers"] = Own; }, null, "KafkaKit:Producers:p:BootstrapServers ('127.0.0.1:9') and 'bootstrap.servers=127.0.0.1:8' (from KafkaKit:Producers:p:Config) disagree", null, "KafkaKit:Consumers:c:BootstrapServers"),
        new("no bootstrap servers anywhere", (k, p, c) => { }, null, "set KafkaKit:BootstrapServers, KafkaKit:Client:bootstrap.servers, KafkaKit:Producers:p:BootstrapServers or KafkaKit:Producers:p:Config:bootstrap.servers", null, "KafkaKit:Consumers:c:Config:bootstrap.servers"),
        new("malformed Client bootstrap.servers", (k, p, c) => k.Client["bootstrap.servers"] = "127.0.0.1:99999", null, "(from KafkaKit:Client)", null, "(from KafkaKit:Client)"),
        new("bad Client value", (k, p, c) => { k.BootstrapServers = Shared; k.Client["socket.timeout.ms"] = "soon"; }, null, "KafkaKit:Client: librdkafka refuses 'socket.timeout.ms=soon'", null, "KafkaKit:Client: librdkafka refuses 'socket.timeout.ms=soon'"),
        new("Client turns delivery reports off", (k, p, c) => { k.BootstrapServers = Shared; k.Client["dotnet.producer.enable.delivery.reports"] = "false"; }, null, "'dotnet.producer.enable.delivery.reports=false' (from KafkaKit:Client) is not allowed", Shared, null),
        new("Client turns periodic commits off", (k, p, c) => { k.BootstrapServers = Shared; k.Client["enable.auto.commit"] = "0"; }, Shared, null, null, "'enable.auto.commit=0' (from KafkaKit:Client) is not allowed"),
        new("group id from Client only", (k, p, c) => { k.BootstrapServers = Shared; k.Client["group.id"] = "from-client"; }, Shared, null, Shared, null, GroupId: null),
        new("own GroupId and own Config group.id disagree", (k, p, c) => { k.BootstrapServers = Shared; c.Config["group.id"] = "other"; }, Shared, null, null, "KafkaKit:Consumers:c:GroupId ('g') and 'group.id=other' (from KafkaKit:Consumers:c:Config) disagree"),
        new("consumer protocol refuses shared session.timeout.ms", (k, p, c) => { k.BootstrapServers = Shared; k.Client["session.timeout.ms"] = "6000"; c.GroupProtocol = GroupProtocol.Consumer; }, Shared, null, null, "Consumer 'c': 'session.timeout.ms=6000' (from KafkaKit:Client) is not supported with the consumer group protocol (group.protocol=consumer, KIP-848, from KafkaKit:Consumers:c:GroupProtocol): the broker sets the session timeout"),
        new("consumer protocol refuses an explicit AssignmentStrategy", (k, p, c) => { k.BootstrapServers = Shared; c.GroupProtocol = GroupProtocol.Consumer; c.AssignmentStrategy = KafkaKit.Consuming.PartitionAssignmentStrategy.Range; }, Shared, null, null, "'partition.assignment.strategy=range' (from KafkaKit:Consumers:c:AssignmentStrategy) is not supported with the consumer group protocol"),
        new("consumer protocol from Client refuses own heartbeat.interval.ms", (k, p, c) => { k.BootstrapServers = Shared; k.Client["group.protocol"] = "consumer"; c.Config["heartbeat.interval.ms"] = "500"; }, Shared, null, null, "'heartbeat.interval.ms=500' (from KafkaKit:Consumers:c:Config) is not supported with the consumer group protocol (group.protocol=consumer, KIP-848, from KafkaKit:Client)"),
        new("consumer protocol with a remote assignor", (k, p, c) => { k.BootstrapServers = Shared; c.GroupProtocol = GroupProtocol.Consumer; c.Config["group.remote.assignor"] = "uniform"; }, Shared, null, Shared, null),
        new("classic protocol refuses a remote assignor", (k, p, c) => { k.BootstrapServers = Shared; c.Config["group.remote.assignor"] = "range"; }, Shared, null, null, "'group.remote.assignor=range' (from KafkaKit:Consumers:c:Config) applies only to the consumer group protocol"),
        new("bad own value next to a secret", (k, p, c) => { k.BootstrapServers = Shared; p.Config["sasl.password"] = "hunter2"; c.Config["sasl.password"] = "hunter2"; c.Config["fetch.min.bytes"] = "lots"; }, Shared, null, null, "Consumer 'c' (KafkaKit:Consumers:c:Config): librdkafka refuses 'fetch.min.bytes=lots'"),
    ];

    [TestCaseSource(nameof(Matrix))]
    [CancelAfter(30_000)]
    public async Task Regression_C22_ValidatorAndBuilders_AcceptAndRefuseTheSameSettingsWithTheSameMergedValues(Case matrixCase)
    {
        // Arrange: one producer 'p' and one consumer 'c', set as the case says
        var shared = new KafkaKitOptions();
        var producerOptions = new KafkaProducerOptions();
        var consumerOptions = new KafkaConsumerOptions { GroupId = matrixCase.GroupId, Topics = { "t" }, OnError = ConsumerErrorAction.DeadLetter };
        matrixCase.Arrange(shared, producerOptions, consumerOptions);
        shared.Producers["p"] = producerOptions;
        shared.Consumers["c"] = consumerOptions;
        var logs = new CapturingLoggerFactory();

        // Act: the start-time validator, one client at a time, and each builder as DI calls it
        string[] Validate(Action<KafkaKitRegistry> register, KafkaKitOptions options)
        {
            var registry = new KafkaKitRegistry();
            register(registry);
            var result = new KafkaKitOptionsValidator(registry).Validate(null, options);
            return result.Failed ? [.. result.Failures] : [];
        }

        var producerOnly = Clone(shared, withConsumer: false);
        var consumerOnly = Clone(shared, withConsumer: true);
        var validatorOnProducer = Validate(r => r.AddProducer("p"), producerOnly);
        var validatorOnConsumer = Validate(r => r.AddConsumer("c"), consumerOnly);
        string[] producerRefusals = [];
        string? producerConfig = null;
        try
        {
            var producer = new KafkaProducerBuilder<string, string>("p", producerOptions).SetShared(shared).SetLoggerFactory(logs).Build();
            producerConfig = logs.Lines.Single(l => l.EventId.Id == 1040).Message; // the whole configuration (Debug)
            await producer.DisposeAsync();
        }
        catch (OptionsValidationException e)
        {
            producerRefusals = [.. e.Failures];
        }

        string[] consumerRefusals = [];
        KafkaConsumer<string, string>? consumer = null;
        try
        {
            consumer = new KafkaConsumerBuilder<string, string>("c", consumerOptions).SetShared(shared).SetHandler((_, _) => default).Build();
        }
        catch (OptionsValidationException e)
        {
            consumerRefusals = [.. e.Failures];
        }

        // Assert
        if (consumer is not null)
        {
            await consumer.DisposeAsync();
        }

        Assert.Multiple(() =>
        {
            Assert.That(producerRefusals, Is.EquivalentTo(validatorOnProducer), "the producer builder and the validator refuse the same problems");
            Assert.That(consumerRefusals, Is.EquivalentTo(validatorOnConsumer), "the consumer builder and the validator refuse the same problems");
            if (matrixCase.ProducerServers is { } producerServers)
            {
                Assert.That(producerRefusals, Is.Empty, "producer accepted");
                Assert.That(producerConfig, Does.Contain($"bootstrap.servers={producerServers}, ").And.Contain("client.id=p").And.Contain("acks=all"), "the producer runs with the merged values");
            }
            else
            {
                Assert.That(producerRefusals, Has.Some.Contains(matrixCase.ProducerRefusal), "producer refused, naming the place");
            }

            if (matrixCase.ConsumerServers is { } consumerServers)
            {
                Assert.That(consumerRefusals, Is.Empty, "consumer accepted");
                Assert.That(consumer!.DeadLetters!.Config["bootstrap.servers"], Is.EqualTo(consumerServers), "the consumer (and its dead-letter producer) runs with the merged values");
                Assert.That(consumer.GroupId, Is.EqualTo(matrixCase.GroupId ?? shared.Client["group.id"]));
            }
            else
            {
                Assert.That(consumerRefusals, Has.Some.Contains(matrixCase.ConsumerRefusal), "consumer refused, naming the place");
            }

            Assert.That(string.Join("\n", producerRefusals.Concat(consumerRefusals)), Does.Not.Contain("hunter2"));
        });
    }

    [Test]
    public void Validate_SharedProblemAndTwoClients_ReportsTheSharedProblemOnceNamingItsPlace()
    {
        var options = new KafkaKitOptions { BootstrapServers = Shared };
        options.Client["no.such.property"] = "1";
        var registry = new KafkaKitRegistry();
        registry.AddProducer("p");
        registry.AddConsumer("c");
        options.Consumers["c"] = new KafkaConsumerOptions { GroupId = "g", Topics = { "t" } };

        var result = new KafkaKitOptionsValidator(registry).Validate(null, options);

        Assert.That(result.Failures, Has.Exactly(1).StartsWith("KafkaKit:Client: librdkafka has no property 'no.such.property' (value not shown)"));
        Assert.That(result.Failures.Count(), Is.EqualTo(1), string.Join(Environment.NewLine, result.Failures));
    }

    [Test]
    [CancelAfter(90_000)]
    public async Task Regression_C22_BootstrapServersOnlyInSharedClientSettings_HostStartsAndClientsUseThem()
    {
        // Arrange: bootstrap.servers only in KafkaKit:Client, no KafkaKit:BootstrapServers
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("orders");
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes($$"""
            {
              "KafkaKit": {
                "Client": { "bootstrap.servers": "{{cluster.BootstrapServers}}" },
                "Producers": { "orders": { } },
                "Consumers": {
                  "billing": { "GroupId": "billing", "Topics": [ "orders" ], "Config": { "session.timeout.ms": "6000", "heartbeat.interval.ms": "500" } }
                }
              }
            }
            """)));
        builder.Services.AddLogging();
        builder.Services.AddSingleton<Handled>();
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit"))
            .AddProducer<string, string>("orders")
            .AddConsumer<string, string, RecordingHandler>("billing");
        using var host = builder.Build();

        // Act
        await host.StartAsync();
        var producer = host.Services.GetRequiredService<IKafkaProducer<string, string>>();
        var delivered = await producer.ProduceAsync("orders", new Message<string, string> { Key = "k", Value = "c22" });
        var handled = host.Services.GetRequiredService<Handled>();
        await Wait.ForAsync(() => handled.Values.Contains("c22"), TimeSpan.FromSeconds(30), "the consumer handles the message");
        await host.StopAsync();

        // Assert
        Assert.That(delivered.Status, Is.EqualTo(PersistenceStatus.Persisted));
        Assert.That(delivered.Offset.Value, Is.EqualTo(0));
        Assert.That(KafkaProbe.EndOffsets(cluster.BootstrapServers, "orders", 1)[0], Is.EqualTo(1));
        Assert.That(handled.Values, Is.EqualTo(new[] { "c22" }));
    }

    [Test]
    public void HostStart_ValuesThatDoNotConvertInsideClientSections_EachNamedWithWhatIsAllowed()
    {
        // The configuration binder drops a whole Producers/Consumers entry silently when one of its values does not
        // convert; every such value must be reported instead of the client running on defaults.
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes("""
            {
              "KafkaKit": {
                "BootstrapServers": "127.0.0.1:9",
                "Producers": { "p": { "MaxBlock": "forever", "Retry": { "MaxRetryAttempts": "many" } } },
                "Consumers": { "c": { "GroupId": "g", "Topics": [ "t" ], "OnError": "Explode", "Ordering": "Sequential", "OnErorr": "Skip" } },
                "Topics": { "audit": { "Parts": 3 } }
              }
            }
            """)));
        builder.Services.AddLogging();
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit"))
            .AddProducer<string, string>("p")
            .AddConsumer<string, string, RecordingHandler>("c");
        using var host = builder.Build();

        var e = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Multiple(() =>
        {
            Assert.That(e!.Message, Does.Contain("'KafkaKit:Producers:p:MaxBlock=forever' is not a valid TimeSpan"));
            Assert.That(e.Message, Does.Contain("'KafkaKit:Producers:p:Retry:MaxRetryAttempts=many' is not a valid Int32"));
            Assert.That(e.Message, Does.Contain("'KafkaKit:Consumers:c:OnError=Explode' is not a valid ConsumerErrorAction: use one of Stop, DeadLetter, Skip"));
            Assert.That(e.Message, Does.Contain("'KafkaKit:Consumers:c:Ordering=Sequential' is not a valid ConsumerOrdering: use one of Partition, Key, Unordered"));
            Assert.That(e.Message, Does.Contain("'KafkaKit:Consumers:c:OnErorr' is not a setting of KafkaConsumerOptions: use one of "), "a misspelt option is reported, not ignored");
            Assert.That(e.Message, Does.Contain("'KafkaKit:Topics:audit:Parts' is not a setting of TopicDeclaration: use one of Config, Partitions, ReplicationFactor, Required"));
            Assert.That(e.Message, Does.Not.Contain("GroupId is not set").And.Not.Contain("Topics is empty"),
                "the entry the binder dropped is not validated as if it had no settings (its GroupId and Topics are set)");
        });
    }

    [Test]
    public void HostStart_EntryWithAnUnconvertibleValue_ItsOtherProblemsListedToo()
    {
        // The binder drops the whole entry for the bad value; its other settings are still checked, all in one error.
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes("""
            {
              "KafkaKit": {
                "BootstrapServers": "127.0.0.1:9",
                "Consumers": { "c": { "GroupId": "g", "Topics": [ "t" ], "OnError": "Explode", "MaxConcurrency": 0, "RetryTopics": { "Delays": [ "00:00:01", "soon" ] } } },
                "ShareConsumers": { "s": { "MaxDeliveryAttempts": "five", "MaxConcurrency": 0 } }
              }
            }
            """)));
        builder.Services.AddLogging();
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit"))
            .AddConsumer<string, string, RecordingHandler>("c")
            .AddShareConsumer<string, string, RecordingHandler>("s");
        using var host = builder.Build();

        var e = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        TestContext.Out.WriteLine(string.Join(Environment.NewLine, e!.Failures));

        Assert.Multiple(() =>
        {
            Assert.That(e.Failures, Has.Some.Contains("'KafkaKit:Consumers:c:OnError=Explode' is not a valid ConsumerErrorAction"));
            Assert.That(e.Failures, Has.Some.Contains("'KafkaKit:Consumers:c:RetryTopics:Delays:1=soon' is not a valid TimeSpan"), "a bad element of a list is named");
            Assert.That(e.Failures, Has.Some.Contains("MaxConcurrency").And.Contains("'c'"), "the dropped consumer entry's other problem");
            Assert.That(e.Failures.Where(f => f.Contains("'c'", StringComparison.Ordinal)), Has.None.Contains("GroupId is not set").And.None.Contains("Topics is empty").And.None.Contains("OnError is Stop"),
                "its GroupId and Topics are set, and its OnError was not Stop (it did not convert)");
            Assert.That(e.Failures, Has.Some.Contains("'KafkaKit:ShareConsumers:s:MaxDeliveryAttempts=five' is not a valid Int32"));
            Assert.That(e.Failures, Has.Some.Contains("'s'").And.Contains("GroupId is not set"), "the share consumer entry's missing GroupId");
            Assert.That(e.Failures, Has.Some.Contains("'s'").And.Contains("MaxConcurrency"));
        });
    }

    [Test]
    public void HostStart_ShareConsumerWithAConsumersGroupId_Refused()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes("""
            {
              "KafkaKit": {
                "BootstrapServers": "127.0.0.1:9",
                "Consumers": { "worker": { "GroupId": "mailers", "Topics": [ "t" ] } },
                "ShareConsumers": { "mailer": { "Topics": [ "t" ], "Config": { "group.id": "mailers" } } }
              }
            }
            """)));
        builder.Services.AddLogging();
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit"))
            .AddConsumer<string, string, RecordingHandler>("worker")
            .AddShareConsumer<string, string, RecordingHandler>("mailer");
        using var host = builder.Build();

        var e = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.That(e!.Failures, Is.EqualTo(new[] { "Share consumer 'mailer' and consumer 'worker' both use group id 'mailers': a group is either a share group or a consumer group; give the share consumer a group id of its own." }));
    }

    private static KafkaKitOptions Clone(KafkaKitOptions shared, bool withConsumer)
    {
        var copy = new KafkaKitOptions { BootstrapServers = shared.BootstrapServers };
        foreach (var (key, value) in shared.Client)
        {
            copy.Client[key] = value;
        }

        if (withConsumer)
        {
            copy.Consumers["c"] = shared.Consumers["c"];
        }
        else
        {
            copy.Producers["p"] = shared.Producers["p"];
        }

        return copy;
    }

    public sealed class Handled
    {
        public ConcurrentQueue<string> Values { get; } = new();
    }

    public sealed class RecordingHandler(Handled handled) : IKafkaMessageHandler<string, string>
    {
        public ValueTask HandleAsync(ConsumeResult<string, string> result, CancellationToken cancellationToken)
        {
            handled.Values.Enqueue(result.Message.Value);
            return ValueTask.CompletedTask;
        }
    }
}
