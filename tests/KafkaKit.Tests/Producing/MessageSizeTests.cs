using Confluent.Kafka;
using KafkaKit.Producing;

namespace KafkaKit.Tests.Producing;

/// <summary>What the backpressure accounting charges per message.</summary>
public sealed class MessageSizeTests
{
    [Test]
    public void Of_KnownTypes_ChargesSerializedSize()
    {
        var size = MessageSize.KeyAndValue;
        Assert.That(size.Of(new Message<string, byte[]> { Key = "é", Value = new byte[10] }), Is.EqualTo(12));
        Assert.That(size.Of(new Message<int, long> { Key = 1, Value = 2 }), Is.EqualTo(12));
        Assert.That(size.Of(new Message<Null, string> { Value = null! }), Is.Zero);
    }

    [TestCase(null, 15)]
    [TestCase("all", 15)]
    [TestCase("key,value", 15)]
    [TestCase("value, timestamp", 10)]
    [TestCase("key", 5)]
    [TestCase("none", 0)]
    public void For_DeliveryReportFields_ChargesOnlyWhatReportsCarryBack(string? fields, long expected)
    {
        // Arrange: a part left out of delivery reports comes back as default, so charging it would leak room forever.
        var config = new Dictionary<string, string>();
        if (fields is not null)
        {
            config[ConfigPropertyNames.Producer.DeliveryReportFields] = fields;
        }

        // Act
        var charged = MessageSize.For(config).Of(new Message<string, string> { Key = "12345", Value = "1234567890" });

        // Assert
        Assert.That(charged, Is.EqualTo(expected));
    }
}
