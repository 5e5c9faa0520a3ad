using Confluent.Kafka;
using Confluent.SchemaRegistry;
using KafkaKit.Producing;
using KafkaKit.SchemaRegistry.Avro;
using KafkaKit.SchemaRegistry.Json;
using KafkaKit.SchemaRegistry.Tests.Support;
using KafkaKit.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaKit.SchemaRegistry.Tests.Integration;

/// <summary>Avro and JSON Schema records through KafkaKit on the embedded cluster and registry, wired from configuration.</summary>
[TestFixture]
[CancelAfter(90_000)]
public sealed class RoundTripTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(45);

    [Test]
    public async Task Avro_FromDiConfiguration_RoundTripsAndRegistersSubject()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        await using var registry = EmbeddedSchemaRegistry.Start();
        cluster.CreateTopic("orders");
        var builder = Kit.NewHost(Kit.Settings(cluster, registry, "orders", "billing"));
        builder.Services.AddSingleton<Received<Order>>();
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit"))
            .AddSchemaRegistry()
            .AddProducer<string, Order>("orders", (sp, p) => p.UseAvro(sp))
            .AddConsumer<string, Order, CollectingHandler<Order>>("billing", (sp, c) => c.UseAvro(sp));
        using var host = builder.Build();
        await host.StartAsync();

        var producer = host.Services.GetRequiredService<IKafkaProducer<string, Order>>();
        for (var i = 0; i < 20; i++)
        {
            await producer.ProduceAsync("orders", new Message<string, Order> { Key = $"k{i}", Value = new Order { Id = $"o-{i}", Amount = i } });
        }

        var received = host.Services.GetRequiredService<Received<Order>>();
        await Wait.ForAsync(() => received.Values.Count == 20, Long, "20 Avro orders handled");
        await host.StopAsync();

        Assert.Multiple(() =>
        {
            Assert.That(received.Values.Select(o => o.Id), Is.EquivalentTo(Enumerable.Range(0, 20).Select(i => $"o-{i}")));
            Assert.That(received.Values.Sum(o => o.Amount), Is.EqualTo(190));
            Assert.That(registry.Subjects, Is.EqualTo(new[] { "orders-value" }));
            var raw = Kit.Read(cluster, "orders", 1).Single();
            Assert.That(raw.Message.Value![0], Is.Zero, "Confluent wire format on the topic");
        });
    }

    [Test]
    public async Task AvroKeyAndValue_FromDiConfiguration_RoundTripsUnderKeyAndValueSubjects()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        await using var registry = EmbeddedSchemaRegistry.Start();
        cluster.CreateTopic("orders");
        var builder = Kit.NewHost(Kit.Settings(cluster, registry, "orders", "billing"));
        builder.Services.AddSingleton<ReceivedPairs<OrderKey, Order>>();
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit"))
            .AddSchemaRegistry()
            .AddProducer<OrderKey, Order>("orders", (sp, p) => p.UseAvroKey(sp).UseAvro(sp))
            .AddConsumer<OrderKey, Order, PairHandler<OrderKey, Order>>("billing", (sp, c) => c.UseAvroKey(sp).UseAvro(sp));
        using var host = builder.Build();
        await host.StartAsync();

        var producer = host.Services.GetRequiredService<IKafkaProducer<OrderKey, Order>>();
        for (var i = 0; i < 10; i++)
        {
            await producer.ProduceAsync("orders", new Message<OrderKey, Order> { Key = new OrderKey { Customer = $"c{i}", Region = i % 3 }, Value = new Order { Id = $"o-{i}", Amount = i } });
        }

        var received = host.Services.GetRequiredService<ReceivedPairs<OrderKey, Order>>();
        await Wait.ForAsync(() => received.Pairs.Count == 10, Long, "10 Avro keyed orders handled");
        await host.StopAsync();

        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        var keySchema = await client.GetLatestSchemaAsync("orders-key");
        var raw = Kit.Read(cluster, "orders", 1).Single();
        Assert.Multiple(() =>
        {
            Assert.That(received.Pairs.Select(p => (p.Key.Customer, p.Key.Region, p.Value.Id)), Is.EquivalentTo(Enumerable.Range(0, 10).Select(i => ($"c{i}", i % 3, $"o-{i}"))));
            Assert.That(registry.Subjects, Is.EquivalentTo(new[] { "orders-key", "orders-value" }));
            Assert.That(keySchema.SchemaString, Does.Contain("OrderKey"));
            Assert.That(raw.Message.Key![0], Is.Zero, "Confluent wire format in the key");
            Assert.That(System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(raw.Message.Key.AsSpan(1, 4)), Is.EqualTo(keySchema.Id), "the key carries the id of the orders-key schema");
        });
    }

    [Test]
    public async Task AvroKeyOnly_StringValue_ValueKeepsUtf8Serde()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        await using var registry = EmbeddedSchemaRegistry.Start();
        cluster.CreateTopic("orders");
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        await using (var producer = new KafkaProducerBuilder<OrderKey, string>("p", new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers })
            .UseAvroKey(client, new SchemaRegistryOptions { Url = registry.Url })
            .Build())
        {
            await producer.ProduceAsync("orders", new Message<OrderKey, string> { Key = new OrderKey { Customer = "c", Region = 1 }, Value = "plain" });
        }

        var raw = Kit.Read(cluster, "orders", 1).Single();
        Assert.Multiple(() =>
        {
            Assert.That(registry.Subjects, Is.EqualTo(new[] { "orders-key" }));
            Assert.That(raw.Message.Key![0], Is.Zero);
            Assert.That(System.Text.Encoding.UTF8.GetString(raw.Message.Value!), Is.EqualTo("plain"));
        });
    }

    [Test]
    public async Task JsonSchemaKeyAndValue_FromDiConfiguration_RoundTripsUnderKeyAndValueSubjects()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        await using var registry = EmbeddedSchemaRegistry.Start();
        cluster.CreateTopic("shipments");
        var builder = Kit.NewHost(Kit.Settings(cluster, registry, "shipments", "dispatch"));
        builder.Services.AddSingleton<ReceivedPairs<ShipmentKey, Shipment>>();
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit"))
            .AddSchemaRegistry()
            .AddProducer<ShipmentKey, Shipment>("shipments", (sp, p) => p.UseJsonSchemaKey(sp).UseJsonSchema(sp))
            .AddConsumer<ShipmentKey, Shipment, PairHandler<ShipmentKey, Shipment>>("dispatch", (sp, c) => c.UseJsonSchemaKey(sp).UseJsonSchema(sp));
        using var host = builder.Build();
        await host.StartAsync();

        var producer = host.Services.GetRequiredService<IKafkaProducer<ShipmentKey, Shipment>>();
        for (var i = 0; i < 10; i++)
        {
            await producer.EnqueueAsync("shipments", new Message<ShipmentKey, Shipment> { Key = new ShipmentKey { Warehouse = $"w{i}", Lane = i }, Value = new Shipment { Id = $"s-{i}", Parcels = i } });
        }

        Assert.That(await producer.FlushAsync(), Is.Zero);
        var received = host.Services.GetRequiredService<ReceivedPairs<ShipmentKey, Shipment>>();
        await Wait.ForAsync(() => received.Pairs.Count == 10, Long, "10 JSON Schema keyed shipments handled");
        await host.StopAsync();

        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        Assert.Multiple(async () =>
        {
            Assert.That(received.Pairs.Select(p => (p.Key.Warehouse, p.Key.Lane, p.Value.Parcels)), Is.EquivalentTo(Enumerable.Range(0, 10).Select(i => ($"w{i}", i, i))));
            Assert.That((await client.GetLatestSchemaAsync("shipments-key")).SchemaType, Is.EqualTo(SchemaType.Json));
            Assert.That((await client.GetLatestSchemaAsync("shipments-key")).SchemaString, Does.Contain("Warehouse"));
        });
    }

    [Test]
    public async Task JsonSchema_FromDiConfiguration_RoundTrips()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        await using var registry = EmbeddedSchemaRegistry.Start();
        cluster.CreateTopic("shipments");
        var builder = Kit.NewHost(Kit.Settings(cluster, registry, "shipments", "dispatch"));
        builder.Services.AddSingleton<Received<Shipment>>();
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit"))
            .AddSchemaRegistry()
            .AddProducer<string, Shipment>("shipments", (sp, p) => p.UseJsonSchema(sp))
            .AddConsumer<string, Shipment, CollectingHandler<Shipment>>("dispatch", (sp, c) => c.UseJsonSchema(sp));
        using var host = builder.Build();
        await host.StartAsync();

        var producer = host.Services.GetRequiredService<IKafkaProducer<string, Shipment>>();
        for (var i = 0; i < 10; i++)
        {
            await producer.EnqueueAsync("shipments", new Message<string, Shipment> { Key = $"k{i}", Value = new Shipment { Id = $"s-{i}", Parcels = i } });
        }

        Assert.That(await producer.FlushAsync(), Is.Zero);
        var received = host.Services.GetRequiredService<Received<Shipment>>();
        await Wait.ForAsync(() => received.Values.Count == 10, Long, "10 JSON Schema shipments handled");
        await host.StopAsync();

        Assert.Multiple(async () =>
        {
            Assert.That(received.Values.Select(s => s.Parcels).Order(), Is.EqualTo(Enumerable.Range(0, 10)));
            using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
            Assert.That((await client.GetLatestSchemaAsync("shipments-value")).SchemaType, Is.EqualTo(SchemaType.Json));
        });
    }

    [Test]
    public async Task Avro_CompatibleEvolution_OldAndNewConsumersReadBothVersions()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        await using var registry = EmbeddedSchemaRegistry.Start();
        cluster.CreateTopic("orders");
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        var options = new SchemaRegistryOptions { Url = registry.Url };
        await using (var v1 = new KafkaProducerBuilder<string, Order>("v1", new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers }).UseAvro(client, options).Build())
        {
            await v1.ProduceAsync("orders", new Message<string, Order> { Key = "a", Value = new Order { Id = "old", Amount = 1 } });
        }

        await using (var v2 = new KafkaProducerBuilder<string, OrderV2>("v2", new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers }).UseAvro(client, options).Build())
        {
            await v2.ProduceAsync("orders", new Message<string, OrderV2> { Key = "b", Value = new OrderV2 { Id = "new", Amount = 2, Currency = "USD" } });
        }

        var old = new List<Order>();
        var current = new List<OrderV2>();
        await using var oldConsumer = new Consuming.KafkaConsumerBuilder<string, Order>("old", Kit.ConsumerOptions(cluster, "orders", "old"))
            .UseAvro(client, options)
            .SetHandler((r, _) => { lock (old) { old.Add(r.Message.Value); } return default; })
            .Build();
        await using var newConsumer = new Consuming.KafkaConsumerBuilder<string, OrderV2>("new", Kit.ConsumerOptions(cluster, "orders", "new"))
            .UseAvro(client, options)
            .SetHandler((r, _) => { lock (current) { current.Add(r.Message.Value); } return default; })
            .Build();
        await oldConsumer.StartAsync();
        await newConsumer.StartAsync();

        await Wait.ForAsync(() => { lock (old) { lock (current) { return old.Count == 2 && current.Count == 2; } } }, Long, "both consumers read both records");

        Assert.Multiple(async () =>
        {
            Assert.That(old.Select(o => (o.Id, o.Amount)), Is.EqualTo(new[] { ("old", 1.0), ("new", 2.0) }), "the old reader skips the added field");
            Assert.That(current.Select(o => (o.Id, o.Currency)), Is.EqualTo(new[] { ("old", "EUR"), ("new", "USD") }), "the new reader fills the default");
            Assert.That(await client.GetSubjectVersionsAsync("orders-value"), Is.EqualTo(new[] { 1, 2 }));
        });
    }

    [Test]
    public async Task Avro_GenericRecordProduced_ReadAsGenericAndAsGeneratedType()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        await using var registry = EmbeddedSchemaRegistry.Start();
        cluster.CreateTopic("orders");
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        var options = new SchemaRegistryOptions { Url = registry.Url };
        var record = new global::Avro.Generic.GenericRecord((global::Avro.RecordSchema)Order._SCHEMA);
        record.Add("id", "generic-1");
        record.Add("amount", 7.5);
        await using (var producer = new KafkaProducerBuilder<string, global::Avro.Generic.GenericRecord>("g", new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers }).UseAvro(client, options).Build())
        {
            await producer.ProduceAsync("orders", new Message<string, global::Avro.Generic.GenericRecord> { Key = "k", Value = record });
        }

        var generic = new List<global::Avro.Generic.GenericRecord>();
        var specific = new List<Order>();
        await using var genericConsumer = new Consuming.KafkaConsumerBuilder<string, global::Avro.Generic.GenericRecord>("generic", Kit.ConsumerOptions(cluster, "orders", "generic"))
            .UseAvro(client, options)
            .SetHandler((r, _) => { lock (generic) { generic.Add(r.Message.Value); } return default; })
            .Build();
        await using var specificConsumer = new Consuming.KafkaConsumerBuilder<string, Order>("specific", Kit.ConsumerOptions(cluster, "orders", "specific"))
            .UseAvro(client, options)
            .SetHandler((r, _) => { lock (specific) { specific.Add(r.Message.Value); } return default; })
            .Build();
        await genericConsumer.StartAsync();
        await specificConsumer.StartAsync();

        await Wait.ForAsync(() => { lock (generic) { lock (specific) { return generic.Count == 1 && specific.Count == 1; } } }, Long, "both consumers read the record");

        Assert.Multiple(() =>
        {
            Assert.That(generic[0]["id"], Is.EqualTo("generic-1"));
            Assert.That((specific[0].Id, specific[0].Amount), Is.EqualTo(("generic-1", 7.5)));
        });
    }

    [Test]
    public async Task Avro_IncompatibleChange_ProduceRefusedWithRegistryMessage_NothingEnqueued()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        await using var registry = EmbeddedSchemaRegistry.Start();
        cluster.CreateTopic("orders");
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        var options = new SchemaRegistryOptions { Url = registry.Url };
        await using (var v1 = new KafkaProducerBuilder<string, Order>("v1", new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers }).UseAvro(client, options).Build())
        {
            await v1.ProduceAsync("orders", new Message<string, Order> { Key = "a", Value = new Order { Id = "old", Amount = 1 } });
        }

        await using var broken = new KafkaProducerBuilder<string, OrderBroken>("broken", new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers }).UseAvro(client, options).Build();
        var refused = Assert.ThrowsAsync<ProduceException<string, OrderBroken>>(async () =>
            await broken.ProduceAsync("orders", new Message<string, OrderBroken> { Key = "b", Value = new OrderBroken { Id = "x", Customer = "c" } }));

        Assert.Multiple(() =>
        {
            Assert.That(refused!.Error.Code, Is.EqualTo(ErrorCode.Local_ValueSerialization));
            Assert.That(refused.Message, Does.Contain("incompatible").And.Contain("orders-value").And.Contain("default"));
            Assert.That(Kit.EndOffset(cluster, "orders"), Is.EqualTo(1), "nothing was enqueued");
        });
    }
}
