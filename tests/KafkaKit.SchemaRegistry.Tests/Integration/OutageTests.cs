using System.Text;
using Confluent.Kafka;
using Confluent.SchemaRegistry;
using KafkaKit.Consuming;
using KafkaKit.Hosting;
using KafkaKit.Producing;
using KafkaKit.SchemaRegistry.Avro;
using KafkaKit.SchemaRegistry.Tests.Support;
using KafkaKit.Serialization;
using KafkaKit.Testing;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace KafkaKit.SchemaRegistry.Tests.Integration;

/// <summary>A registry outage is transient (wait, retry, Degraded), never poison; undecodable bytes are poison.</summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class OutageTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);

    [Test]
    public async Task Consume_RegistryDownTenSeconds_NothingDeadLettered_AllHandledAfter()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        await using var registry = EmbeddedSchemaRegistry.Start();
        cluster.CreateTopic("orders");
        cluster.CreateTopic("orders.DLT");
        var options = new SchemaRegistryOptions { Url = registry.Url };
        using (var warm = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url }))
        {
            await using var producer = new KafkaProducerBuilder<string, Order>("p", new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers }).UseAvro(warm, options).Build();
            for (var i = 0; i < 20; i++)
            {
                await producer.ProduceAsync("orders", new Message<string, Order> { Key = $"k{i}", Value = new Order { Id = $"o-{i}", Amount = i } });
            }
        }

        // A consumer with a cold cache meets the outage at its first record.
        registry.SetUnavailable(true);
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        var consumerOptions = Kit.ConsumerOptions(cluster, "orders", "billing");
        consumerOptions.OnError = ConsumerErrorAction.DeadLetter;
        var handled = new List<string>();
        await using var consumer = new KafkaConsumerBuilder<string, Order>("billing", consumerOptions)
            .UseAvro(client, options)
            .SetHandler((r, _) => { lock (handled) { handled.Add(r.Message.Value.Id); } return default; })
            .Build();
        var health = KafkaClientHealth.For(consumer);
        await consumer.StartAsync();

        await Wait.ForAsync(() => consumer.DeserializerUnavailableFor >= TimeSpan.FromSeconds(10), Long, "the consumer waited 10 s for the registry");
        var during = health.Evaluate();
        var handledDuring = handled.Count;
        registry.SetUnavailable(false);
        await Wait.ForAsync(() => { lock (handled) { return handled.Count == 20; } }, Long, "all 20 records handled after the outage");

        Assert.Multiple(() =>
        {
            Assert.That(handledDuring, Is.Zero);
            Assert.That(during.Status, Is.EqualTo(HealthStatus.Degraded));
            Assert.That(during.Description, Does.Contain("schema registry"));
            Assert.That(handled, Is.EqualTo(Enumerable.Range(0, 20).Select(i => $"o-{i}")), "in order, each once");
            Assert.That(Kit.EndOffset(cluster, "orders.DLT"), Is.Zero, "nothing dead-lettered");
            Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Running));
            Assert.That(consumer.DeserializerUnavailableFor, Is.Null);
            Assert.That(health.Evaluate().Status, Is.EqualTo(HealthStatus.Healthy));
        });
    }

    [Test]
    public async Task Produce_RegistryDownThenUp_WithinMaxBlock_EveryMessageDelivered()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        await using var registry = EmbeddedSchemaRegistry.Start();
        cluster.CreateTopic("orders");
        registry.SetUnavailable(true);
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        await using var producer = new KafkaProducerBuilder<string, Order>("p", new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers, MaxBlock = TimeSpan.FromSeconds(45) })
            .UseAvro(client, new SchemaRegistryOptions { Url = registry.Url })
            .Build();
        var health = KafkaClientHealth.For(producer);

        var produces = Enumerable.Range(0, 10)
            .Select(i => producer.ProduceAsync("orders", new Message<string, Order> { Key = $"k{i}", Value = new Order { Id = $"o-{i}" } }).AsTask())
            .ToList();
        await Wait.ForAsync(() => health.Evaluate().Status == HealthStatus.Degraded, Long, "the producer reports the registry unreachable");
        var pendingDuring = produces.Count(t => !t.IsCompleted);
        registry.SetUnavailable(false);
        var results = await Task.WhenAll(produces);

        Assert.Multiple(() =>
        {
            Assert.That(pendingDuring, Is.EqualTo(10), "the produces waited instead of failing");
            Assert.That(results.Select(r => r.Status), Is.All.EqualTo(PersistenceStatus.Persisted));
            Assert.That(Kit.EndOffset(cluster, "orders"), Is.EqualTo(10));
            Assert.That(health.Evaluate().Status, Is.EqualTo(HealthStatus.Healthy));
        });
    }

    [Test]
    public async Task Produce_RegistryDownLongerThanMaxBlock_EachFailsTyped_NothingEnqueued()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        await using var registry = EmbeddedSchemaRegistry.Start();
        cluster.CreateTopic("orders");
        registry.SetUnavailable(true);
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        await using var producer = new KafkaProducerBuilder<string, Order>("p", new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers, MaxBlock = TimeSpan.FromSeconds(2) })
            .UseAvro(client, new SchemaRegistryOptions { Url = registry.Url })
            .Build();

        var outcomes = await Task.WhenAll(Enumerable.Range(0, 5).Select(async i =>
        {
            try
            {
                await producer.EnqueueAsync("orders", new Message<string, Order> { Key = $"k{i}", Value = new Order { Id = $"o-{i}" } });
                return null;
            }
            catch (Exception e)
            {
                return e;
            }
        }));

        Assert.Multiple(() =>
        {
            Assert.That(outcomes, Has.All.InstanceOf<SerializationUnavailableException>());
            Assert.That(outcomes[0]!.Message, Does.Contain("orders").Or.Contain("MaxBlock"));
            Assert.That(producer.QueuedMessages, Is.Zero);
            Assert.That(Kit.EndOffset(cluster, "orders"), Is.Zero, "nothing was enqueued");
        });
    }

    [Test]
    public async Task Consume_BytesWithoutMagicByteAndUnknownSchemaId_DeadLetteredWithSchemaId_GoodRecordHandled()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        await using var registry = EmbeddedSchemaRegistry.Start();
        cluster.CreateTopic("orders");
        cluster.CreateTopic("orders.DLT");
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        var options = new SchemaRegistryOptions { Url = registry.Url };
        using (var raw = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = cluster.BootstrapServers }).Build())
        {
            await raw.ProduceAsync("orders", new Message<string, byte[]> { Key = "plain", Value = Encoding.UTF8.GetBytes("{\"id\":\"json\"}") });
            await raw.ProduceAsync("orders", new Message<string, byte[]> { Key = "unknown", Value = [0, 0, 0, 0x10, 0x92, 2, 65] });
        }

        await using (var producer = new KafkaProducerBuilder<string, Order>("p", new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers }).UseAvro(client, options).Build())
        {
            await producer.ProduceAsync("orders", new Message<string, Order> { Key = "good", Value = new Order { Id = "good", Amount = 1 } });
        }

        var consumerOptions = Kit.ConsumerOptions(cluster, "orders", "billing");
        consumerOptions.OnError = ConsumerErrorAction.DeadLetter;
        var handled = new List<string>();
        await using var consumer = new KafkaConsumerBuilder<string, Order>("billing", consumerOptions)
            .UseAvro(client, options)
            .SetHandler((r, _) => { lock (handled) { handled.Add(r.Message.Value.Id); } return default; })
            .Build();
        await consumer.StartAsync();
        await Wait.ForAsync(() => { lock (handled) { return handled.Count == 1; } }, Long, "the good record handled");
        var dead = Kit.Read(cluster, "orders.DLT", 2);

        string Header(ConsumeResult<byte[]?, byte[]?> r, string key) => r.Message.Headers.TryGetLastBytes(key, out var v) ? Encoding.UTF8.GetString(v) : "(none)";
        Assert.Multiple(() =>
        {
            Assert.That(handled, Is.EqualTo(new[] { "good" }));
            Assert.That(dead, Has.Count.EqualTo(2));
            Assert.That(Header(dead[0], "kafkakit-dlt-exception-message"), Does.Contain("magic byte").And.Contain("orders"));
            Assert.That(Header(dead[0], SchemaRegistrySerdes.SchemaIdHeader), Is.EqualTo("(none)"));
            Assert.That(Header(dead[1], "kafkakit-dlt-exception-message"), Does.Contain("schema id 4242").And.Contain("not known"));
            Assert.That(Header(dead[1], SchemaRegistrySerdes.SchemaIdHeader), Is.EqualTo("4242"));
            Assert.That(dead[1].Message.Value, Is.EqualTo(new byte[] { 0, 0, 0, 0x10, 0x92, 2, 65 }), "the raw bytes");
        });
    }
}
