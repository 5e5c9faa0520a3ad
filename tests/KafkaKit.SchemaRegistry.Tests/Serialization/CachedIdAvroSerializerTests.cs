using Confluent.Kafka;
using Confluent.SchemaRegistry;
using Confluent.SchemaRegistry.Serdes;
using KafkaKit.SchemaRegistry.Avro;
using KafkaKit.SchemaRegistry.Tests.Support;
using KafkaKit.Testing;

namespace KafkaKit.SchemaRegistry.Tests.Serialization;

/// <summary>The steady state of UseAvro writes the very bytes Confluent's serializer writes.</summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class CachedIdAvroSerializerTests
{
    [Test]
    public async Task SerializeAsync_AfterFirstRecord_SameBytesAsConfluent_PerTopicSchemaId()
    {
        await using var registry = EmbeddedSchemaRegistry.Start();
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        await client.RegisterSchemaAsync("other-value", new Schema(OrderV2._SCHEMA.ToString(), SchemaType.Avro)); // ids differ per topic
        var confluent = new AvroSerializer<Order>(client);
        var cached = new CachedIdAvroSerializer<Order>(new AvroSerializer<Order>(client), useLatestVersion: false);

        foreach (var topic in new[] { "orders", "other" })
        {
            var context = new SerializationContext(MessageComponentType.Value, topic);
            for (var i = 0; i < 5; i++)
            {
                var order = new Order { Id = $"o-{i}-é", Amount = i * 1.5 };
                var first = cached.SerializeAsync(order, context);
                var mine = await first;
                var theirs = await confluent.SerializeAsync(order, context);
                Assert.That(mine, Is.EqualTo(theirs), $"{topic} record {i}");
                if (i > 0)
                {
                    Assert.That(first.IsCompletedSuccessfully, Is.True, "the steady state completes synchronously");
                }
            }
        }

        var strings = new CachedIdAvroSerializer<string>(new AvroSerializer<string>(client), useLatestVersion: false);
        var stringContext = new SerializationContext(MessageComponentType.Value, "texts");
        foreach (var text in new[] { "first", "zweite ü", string.Empty })
        {
            Assert.That(await strings.SerializeAsync(text, stringContext), Is.EqualTo(await new AvroSerializer<string>(client).SerializeAsync(text, stringContext)), text);
        }

        var back = await new AvroDeserializer<Order>(client).DeserializeAsync(
            await cached.SerializeAsync(new Order { Id = "x", Amount = 2 }, new SerializationContext(MessageComponentType.Value, "other")),
            false,
            new SerializationContext(MessageComponentType.Value, "other"));
        Assert.That((back.Id, back.Amount), Is.EqualTo(("x", 2.0)));
    }
}
