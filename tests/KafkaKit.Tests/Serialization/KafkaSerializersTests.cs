using System.Text.Json;
using Confluent.Kafka;
using KafkaKit.Serialization;

namespace KafkaKit.Tests.Serialization;

/// <summary>The JSON deserializer on input it cannot turn into the target type: an exception naming the type (and topic).</summary>
[TestFixture]
[Parallelizable(ParallelScope.Self)]
public sealed class KafkaSerializersTests
{
    [Test]
    public void JsonDeserializer_NullJsonForNonNullableReferenceType_ThrowsInvalidDataNamingTypeAndTopic()
    {
        var deserializer = KafkaSerializers.DeserializerFor<Order>();

        var e = Assert.Throws<InvalidDataException>(() => deserializer.Deserialize("null"u8, false, new SerializationContext(MessageComponentType.Value, "orders")));

        Assert.That(e!.Message, Does.Contain("'null'").And.Contain(nameof(Order)).And.Contain("'orders'"));
    }

    [Test]
    public void JsonDeserializer_NullJsonForValueType_ThrowsJsonExceptionNamingTheType()
    {
        var deserializer = KafkaSerializers.DeserializerFor<Point>();

        var e = Assert.Throws<JsonException>(() => deserializer.Deserialize("null"u8, false, new SerializationContext(MessageComponentType.Value, "points")));

        Assert.That(e!.Message, Does.Contain(nameof(Point)));
    }

    /// <summary>A JSON reference type.</summary>
    public sealed record Order(string Id);

    /// <summary>A JSON value type.</summary>
    public readonly record struct Point(int X, int Y);
}
