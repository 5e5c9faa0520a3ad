using System.Text;
using Confluent.Kafka;

namespace KafkaKit.Producing;

/// <summary>
/// The size KafkaKit's backpressure accounting charges for a key or value, computed the same way at enqueue and at the
/// delivery report: exact for <c>byte[]</c>, <c>string</c> (UTF-8) and fixed-size primitives; 0 for other types, whose
/// bytes only librdkafka's own <c>queue.buffering.max.kbytes</c> check sees (reported as <c>Local_QueueFull</c> and
/// handled as backpressure).
/// </summary>
/// <remarks>
/// Confluent.Kafka hands a delivery report the key and value objects given at produce time, unless
/// <c>dotnet.producer.delivery.report.fields</c> leaves them out (then the report carries <see langword="default"/>).
/// A part left out of reports is therefore never charged, so what enqueue charges is always what the report returns.
/// </remarks>
/// <param name="countKey">Whether keys are charged (they are in delivery reports).</param>
/// <param name="countValue">Whether values are charged (they are in delivery reports).</param>
internal readonly struct MessageSize(bool countKey, bool countValue)
{
    /// <summary>Gets the accounting for the default delivery-report fields (key and value both reported).</summary>
    public static MessageSize KeyAndValue => new(true, true);

    /// <summary>Gets the accounting for a producer config: keys and values are charged when delivery reports carry them.</summary>
    /// <param name="config">The merged producer properties.</param>
    /// <returns>The accounting.</returns>
    public static MessageSize For(IEnumerable<KeyValuePair<string, string>> config)
    {
        var fields = config.FirstOrDefault(p => p.Key == ConfigPropertyNames.Producer.DeliveryReportFields).Value;
        if (fields is null)
        {
            return KeyAndValue;
        }

        var parts = fields.Replace(" ", string.Empty, StringComparison.Ordinal).Split(',');
        if (parts.Contains("all"))
        {
            return KeyAndValue;
        }

        return new MessageSize(parts.Contains("key"), parts.Contains("value"));
    }

    /// <summary>Gets the charged size of a message.</summary>
    /// <param name="message">The message (at enqueue) or the delivery report's message.</param>
    /// <returns>The size in bytes.</returns>
    public long Of<TKey, TValue>(Message<TKey, TValue>? message) =>
        message is null ? 0 : (countKey ? Of(message.Key) : 0) + (countValue ? Of(message.Value) : 0);

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
