using System.Globalization;
using System.Text;
using Confluent.Kafka;

namespace KafkaKit.Consuming;

/// <summary>
/// The headers KafkaKit adds to a record it writes to a retry topic (<see cref="ConsumerErrorAction.RetryTopics"/>), all
/// UTF-8 text, and helpers a handler uses to tell a retried record from a first delivery. The record keeps its original
/// key, value and headers; the headers below are replaced at each tier.
/// </summary>
public static class RetryTopicHeaders
{
    /// <summary>Header with the retry tier the record was written to: <c>1</c> for the first retry topic (decimal text).</summary>
    public const string Attempt = "kafkakit-retry-attempt";

    /// <summary>Header with the topic the record was first consumed from.</summary>
    public const string OriginalTopic = "kafkakit-retry-original-topic";

    /// <summary>Header with the partition the record was first consumed from (decimal text).</summary>
    public const string OriginalPartition = "kafkakit-retry-original-partition";

    /// <summary>Header with the offset the record had in its original topic (decimal text).</summary>
    public const string OriginalOffset = "kafkakit-retry-original-offset";

    /// <summary>Header with the original record's timestamp, Unix epoch milliseconds UTC (decimal text).</summary>
    public const string OriginalTimestamp = "kafkakit-retry-original-timestamp";

    /// <summary>Header with the full type name of the exception of the last failure.</summary>
    public const string ExceptionType = "kafkakit-retry-exception-type";

    /// <summary>Header with the message of the exception of the last failure, cut to <see cref="MaxExceptionMessageLength"/> characters.</summary>
    public const string ExceptionMessage = "kafkakit-retry-exception-message";

    /// <summary>Header with when the record is due to be handled again, Unix epoch milliseconds UTC (decimal text).</summary>
    public const string Due = "kafkakit-retry-due";

    /// <summary>The longest exception message written to <see cref="ExceptionMessage"/>, characters.</summary>
    public const int MaxExceptionMessageLength = 1000;

    /// <summary>Gets which retry tier a record was read from: 0 for a first delivery, 1 for the first retry topic, and so on.</summary>
    /// <param name="headers">The record's headers (<c>result.Message.Headers</c>); <see langword="null"/> counts as none.</param>
    /// <returns>The tier, 0 when the record carries no (valid) <see cref="Attempt"/> header.</returns>
    public static int AttemptOf(Headers? headers) =>
        Text(headers, Attempt) is { } text && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var attempt) ? attempt : 0;

    /// <summary>Gets the topic a retried record was first consumed from.</summary>
    /// <param name="headers">The record's headers.</param>
    /// <returns>The original topic, or <see langword="null"/> for a first delivery (then the record's own topic is the original).</returns>
    public static string? OriginalTopicOf(Headers? headers) => Text(headers, OriginalTopic);

    /// <summary>The last value of header <paramref name="key"/> as UTF-8 text, or <see langword="null"/>.</summary>
    internal static string? Text(Headers? headers, string key) =>
        headers is not null && headers.TryGetLastBytes(key, out var bytes) && bytes is not null ? Encoding.UTF8.GetString(bytes) : null;
}
