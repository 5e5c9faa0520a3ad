using System.Text;
using Confluent.Kafka;

namespace KafkaKit.Producing;

/// <summary>
/// The size KafkaKit's backpressure accounting charges for a key or value, computed the same way at enqueue and at the
/// delivery report: exact for <c>byte[]</c>, <c>string</c> (UTF-8) and fixed-size primitives; 0 for other types, whose
/// bytes only librdkafka's own <c>queue.buffering.max.kbytes</c> check sees (reported as <c>Local_QueueFull</c> and
/// handled as backpressure).
/// </summary>
internal static class MessageSize
{
    public static long Of<TKey, TValue>(Message<TKey, TValue> message) => Of(message.Key) + Of(message.Value);

    private static long Of<T>(T value) => value switch
    {
        null => 0,
        byte[] bytes => bytes.Length,
        string text => Encoding.UTF8.GetByteCount(text),
        int or float => 4,
        long or double => 8,
        _ => 0,
    };
}
