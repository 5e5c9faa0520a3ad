using Confluent.Kafka;
using Confluent.SchemaRegistry;
using KafkaKit.Consuming;
using KafkaKit.Internal;
using KafkaKit.Producing;
using KafkaKit.SchemaRegistry.Avro;
using KafkaKit.SchemaRegistry.Tests.Support;
using KafkaKit.Serialization;
using KafkaKit.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace KafkaKit.SchemaRegistry.Tests.Integration;

/// <summary>Bad registry settings and inputs: each error names the setting, subject, id or type and what to do.</summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class BadInputTests
{
    public sealed class Plain
    {
        public string Name { get; set; } = string.Empty;
    }

    [Test]
    public async Task HostStart_InvalidRegistrySettings_FailsListingEveryProblem_SecretMasked()
    {
        var builder = Kit.NewHost("""
            {
              "KafkaKit": {
                "BootstrapServers": "127.0.0.1:1",
                "SchemaRegistry": {
                  "Url": "localhost:8081,ftp://registry",
                  "BasicAuthUserInfo": "no-colon-s3cret",
                  "UseLatestVersion": true,
                  "SubjectNameStrategy": "Associated",
                  "Config": { "basic.auth.user.info": "app:s3cret" }
                }
              }
            }
            """);
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit")).AddSchemaRegistry();
        using var host = builder.Build();

        var error = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Multiple(() =>
        {
            Assert.That(error!.Failures.Count(), Is.EqualTo(6), string.Join(Environment.NewLine, error.Failures));
            Assert.That(error.Message, Does.Contain("'localhost:8081'").And.Contain("'ftp://registry'"));
            Assert.That(error.Message, Does.Contain("BasicAuthUserInfo must be of the form 'user:password'"));
            Assert.That(error.Message, Does.Contain("UseLatestVersion").And.Contain("AutoRegisterSchemas"));
            Assert.That(error.Message, Does.Contain("SubjectNameStrategy is 'Associated'"));
            Assert.That(error.Message, Does.Contain("'basic.auth.user.info'"));
            Assert.That(error.Message, Does.Not.Contain("s3cret"));
        });
    }

    [Test]
    public void Masking_BasicAuthUserInfo_NeverShown()
    {
        var options = new SchemaRegistryOptions { Url = "https://registry:8081", BasicAuthUserInfo = "app:s3cret" };
        options.Config["schema.registry.basic.auth.user.info"] = "other:pa55";

        Assert.Multiple(() =>
        {
            Assert.That(options.ToString(), Does.Contain("app:***").And.Not.Contain("s3cret").And.Not.Contain("pa55"));
            Assert.That(ConfigText.Redacted([new("basic.auth.user.info", "app:s3cret"), new("schema.registry.basic.auth.user.info", "app:s3cret")]), Does.Not.Contain("s3cret"));
            Assert.That(SchemaRegistryOptions.MaskUrl("http://app:s3cret@registry:8081"), Is.EqualTo("http://app:***@registry:8081"));
        });
    }

    [Test]
    public void UseAvro_TypeWithoutSchema_RefusedAtBuildNamingType()
    {
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = "http://127.0.0.1:1" });

        var error = Assert.Throws<InvalidOperationException>(() =>
            new KafkaProducerBuilder<string, Plain>("p", new KafkaProducerOptions { BootstrapServers = "127.0.0.1:1" }).UseAvro(client, new SchemaRegistryOptions()));

        Assert.That(error!.Message, Does.Contain(typeof(Plain).FullName).And.Contain("avrogen").And.Contain("UseJsonSchema"));
    }

    [Test]
    public void UseAvro_WithoutAddSchemaRegistry_SaysWhatToCall()
    {
        using var services = new ServiceCollection().AddOptions().BuildServiceProvider();

        var error = Assert.Throws<InvalidOperationException>(() =>
            new KafkaConsumerBuilder<string, Order>("c", new KafkaConsumerOptions()).UseAvro(services));

        Assert.That(error!.Message, Does.Contain("AddSchemaRegistry()"));
    }

    [Test]
    public async Task Produce_SubjectMissingWithAutoRegisterOff_FailsNamingSubjectAndFix()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        await using var registry = EmbeddedSchemaRegistry.Start();
        cluster.CreateTopic("orders");
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        await using var producer = new KafkaProducerBuilder<string, Order>("p", new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers })
            .UseAvro(client, new SchemaRegistryOptions { Url = registry.Url, AutoRegisterSchemas = false })
            .Build();

        var error = Assert.ThrowsAsync<ProduceException<string, Order>>(async () =>
            await producer.ProduceAsync("orders", new Message<string, Order> { Key = "k", Value = new Order { Id = "o" } }));

        Assert.Multiple(() =>
        {
            Assert.That(error!.Error.Code, Is.EqualTo(ErrorCode.Local_ValueSerialization));
            Assert.That(error.Message, Does.Contain("orders-value").And.Contain("AutoRegisterSchemas"));
            Assert.That(Kit.EndOffset(cluster, "orders"), Is.Zero);
        });
    }

    [Test]
    public async Task TryEnqueue_WithAvro_ThrowsNotSupportedNamingEnqueueAsync_NothingEnqueued()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        await using var registry = EmbeddedSchemaRegistry.Start();
        cluster.CreateTopic("orders");
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        await using var producer = new KafkaProducerBuilder<string, Order>("p", new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers })
            .UseAvro(client, new SchemaRegistryOptions { Url = registry.Url })
            .Build();
        await producer.ProduceAsync("orders", new Message<string, Order> { Key = "warm", Value = new Order { Id = "warm" } });

        // With the schema id cached, Confluent's serializer still completes on another thread.
        var error = Assert.Throws<NotSupportedException>(() => producer.TryEnqueue("orders", new Message<string, Order> { Key = "k", Value = new Order { Id = "o" } }));

        Assert.Multiple(async () =>
        {
            Assert.That(error!.Message, Does.Contain("EnqueueAsync").And.Contain("'p'").And.Contain("value serializer"));
            Assert.That(await producer.FlushAsync(), Is.Zero);
            Assert.That(Kit.EndOffset(cluster, "orders"), Is.EqualTo(1), "only the warm-up record");
        });
    }

    [Test]
    public async Task Produce_UnreachableRegistryUrl_FailsTypedWithinMaxBlock()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("orders");
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = "http://127.0.0.1:1", MaxRetries = 1 });
        await using var producer = new KafkaProducerBuilder<string, Order>("p", new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers, MaxBlock = TimeSpan.FromSeconds(1) })
            .UseAvro(client, new SchemaRegistryOptions { Url = "http://127.0.0.1:1" })
            .Build();

        var error = Assert.ThrowsAsync<SerializationUnavailableException>(async () =>
            await producer.ProduceAsync("orders", new Message<string, Order> { Key = "k", Value = new Order { Id = "o" } }));

        Assert.That(error!.Message, Does.Contain("orders").Or.Contain("MaxBlock"));
    }

    [Test]
    public async Task Produce_WrongCredentials_FailsNamingTheSetting_PasswordNotShown()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        await using var registry = EmbeddedSchemaRegistry.Start(basicAuthUserInfo: "app:right");
        cluster.CreateTopic("orders");
        var options = new SchemaRegistryOptions { Url = registry.Url, BasicAuthUserInfo = "app:wrong" };
        using var client = new CachedSchemaRegistryClient(options.ToClientConfig());
        await using var producer = new KafkaProducerBuilder<string, Order>("p", new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers, MaxBlock = TimeSpan.FromSeconds(1) })
            .UseAvro(client, options)
            .Build();

        var error = Assert.ThrowsAsync<SerializationUnavailableException>(async () =>
            await producer.ProduceAsync("orders", new Message<string, Order> { Key = "k", Value = new Order { Id = "o" } }));

        Assert.That(error!.ToString(), Does.Contain("BasicAuthUserInfo").And.Not.Contain("app:wrong"));
    }
}
