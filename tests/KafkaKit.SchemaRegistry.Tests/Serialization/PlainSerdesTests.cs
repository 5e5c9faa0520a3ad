using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using Google.Protobuf;
using Timestamp = Google.Protobuf.WellKnownTypes.Timestamp;
using KafkaKit.Producing;
using KafkaKit.Protobuf;
using KafkaKit.SchemaRegistry.Tests.Support;
using KafkaKit.Serialization;
using KafkaKit.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaKit.SchemaRegistry.Tests.Serialization;

/// <summary>The default JSON serde's options and the plain Protobuf serde.</summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class PlainSerdesTests
{
    private static readonly SerializationContext Value = new(MessageComponentType.Value, "t");

    public sealed class Parcel
    {
        public string OrderId { get; set; } = string.Empty;

        public string Label { get; set; } = string.Empty;
    }

    [Test]
    public void Json_Defaults_AreTodaysWebDefaults()
    {
        var bytes = KafkaSerializers.SerializerFor<Parcel>(new KafkaKitJsonOptions().ToSerializerOptions()).Serialize(new Parcel { OrderId = "o", Label = "Zürich" }, Value);
        var legacy = KafkaSerializers.SerializerFor<Parcel>().Serialize(new Parcel { OrderId = "o", Label = "Zürich" }, Value);
        var back = KafkaSerializers.DeserializerFor<Parcel>(new KafkaKitJsonOptions().ToSerializerOptions()).Deserialize("""{"ORDERID":"x","extra":1}"""u8, false, Value);

        Assert.Multiple(() =>
        {
            Assert.That(Encoding.UTF8.GetString(bytes), Is.EqualTo("""{"orderId":"o","label":"Z\u00FCrich"}"""));
            Assert.That(bytes, Is.EqualTo(legacy), "the same bytes as without options");
            Assert.That(back.OrderId, Is.EqualTo("x"), "case-insensitive, unknown members ignored");
        });
    }

    [Test]
    public void Json_SnakeCaseUnescapedAndStrict_AsConfigured()
    {
        var options = new KafkaKitJsonOptions { Naming = JsonNaming.SnakeCase, UnescapedText = true, UnmappedMembers = JsonUnmappedMembers.Fail }.ToSerializerOptions();
        var bytes = KafkaSerializers.SerializerFor<Parcel>(options).Serialize(new Parcel { OrderId = "o", Label = "Zürich" }, Value);
        var asIs = KafkaSerializers.SerializerFor<Parcel>(new KafkaKitJsonOptions { Naming = JsonNaming.AsIs }.ToSerializerOptions()).Serialize(new Parcel { OrderId = "o" }, Value);
        var deserializer = KafkaSerializers.DeserializerFor<Parcel>(options);

        var unknown = Assert.Throws<JsonException>(() => deserializer.Deserialize("""{"order_id":"x","extra":1}"""u8, false, Value));

        Assert.Multiple(() =>
        {
            Assert.That(Encoding.UTF8.GetString(bytes), Is.EqualTo("""{"order_id":"o","label":"Zürich"}"""));
            Assert.That(Encoding.UTF8.GetString(asIs), Does.StartWith("""{"OrderId":"o","""));
            Assert.That(unknown!.Message, Does.Contain("extra"));
            Assert.That(deserializer.Deserialize(bytes, false, Value).Label, Is.EqualTo("Zürich"));
        });
    }

    [Test]
    public async Task Json_FromConfiguration_ProducerWritesSnakeCase()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("parcels");
        var builder = Kit.NewHost($$"""
            { "KafkaKit": { "BootstrapServers": "{{cluster.BootstrapServers}}", "Json": { "Naming": "SnakeCase", "UnescapedText": true } } }
            """);
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit")).AddProducer<string, Parcel>("parcels");
        using var host = builder.Build();
        await host.StartAsync();

        await host.Services.GetRequiredService<IKafkaProducer<string, Parcel>>().ProduceAsync("parcels", new Message<string, Parcel> { Key = "k", Value = new Parcel { OrderId = "o-1", Label = "Café" } });
        var raw = Kit.Read(cluster, "parcels", 1).Single();
        await host.StopAsync();

        Assert.That(Encoding.UTF8.GetString(raw.Message.Value!), Is.EqualTo("""{"order_id":"o-1","label":"Café"}"""));
    }

    [Test]
    public async Task Protobuf_PlainSerde_RoundTripsThroughKafkaKit()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("ticks");
        var sent = Timestamp.FromDateTimeOffset(new DateTimeOffset(2026, 12, 7, 10, 0, 0, TimeSpan.Zero));
        await using (var producer = new KafkaProducerBuilder<string, Timestamp>("p", new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers }).UseProtobuf().Build())
        {
            await producer.ProduceAsync("ticks", new Message<string, Timestamp> { Key = "k", Value = sent });
        }

        var received = new List<Timestamp>();
        await using var consumer = new Consuming.KafkaConsumerBuilder<string, Timestamp>("c", Kit.ConsumerOptions(cluster, "ticks", "ticks"))
            .UseProtobuf()
            .SetHandler((r, _) => { lock (received) { received.Add(r.Message.Value); } return default; })
            .Build();
        await consumer.StartAsync();
        await Wait.ForAsync(() => { lock (received) { return received.Count == 1; } }, TimeSpan.FromSeconds(30), "the timestamp consumed");

        Assert.Multiple(() =>
        {
            Assert.That(received.Single(), Is.EqualTo(sent));
            Assert.That(Kit.Read(cluster, "ticks", 1).Single().Message.Value, Is.EqualTo(sent.ToByteArray()), "plain binary, no framing");
        });
    }
}
