using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using Confluent.Kafka;
using KafkaKit.Consuming;

namespace KafkaKit.Sharing;

/// <summary>
/// The header KafkaKit adds to a share-group record before its handler runs, UTF-8 text, and a helper to read it.
/// </summary>
[Experimental(KafkaShareConsumer.DiagnosticId)]
public static class ShareHeaders
{
    /// <summary>
    /// Header with the record's delivery count as the broker counts it (KIP-932; librdkafka
    /// <c>rd_kafka_message_delivery_count</c>): <c>1</c> on the first delivery, 2 after one release or lock expiry, and so
    /// on up to the broker's <c>group.share.delivery.count.limit</c> (decimal text). Set on the record the handler receives
    /// (replacing any header of that name the producer wrote); not written back to Kafka, and not copied to a dead letter.
    /// </summary>
    public const string DeliveryCount = "kafkakit-delivery-count";

    /// <summary>
    /// Gets the delivery count of a record a share consumer handed to its handler: 1 for a first delivery. Compare it with
    /// <see cref="KafkaShareConsumerOptions.MaxDeliveryAttempts"/> to tell the last attempt (a failure then is final).
    /// </summary>
    /// <param name="headers">The record's headers (<c>result.Message.Headers</c>); <see langword="null"/> counts as none.</param>
    /// <returns>The delivery count, 0 when the record carries no (valid) <see cref="DeliveryCount"/> header (it does not come from a share consumer).</returns>
    public static int DeliveryCountOf(Headers? headers) =>
        RetryTopicHeaders.Text(headers, DeliveryCount) is { } text && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var count) ? count : 0;
}
