using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Diagnostics;

/// <summary>Topic declaration log events. Event ids 1100-1129 are stable.</summary>
internal static partial class TopicLog
{
    [LoggerMessage(1100, LogLevel.Information, "Topic {Topic} created: {Partitions} partitions, replication factor {ReplicationFactor}, config {Config}")]
    public static partial void Created(ILogger logger, string topic, string partitions, string replicationFactor, string config);

    [LoggerMessage(1101, LogLevel.Debug, "Topic {Topic} exists with {Partitions} partitions: left as it is")]
    public static partial void Exists(ILogger logger, string topic, int partitions);

    [LoggerMessage(1102, LogLevel.Error, "Topic {Topic} has {Partitions} partitions, fewer than the {Declared} declared: KafkaKit never adds partitions (keys would move to other partitions); add them with the Admin API or kafka-topics --alter, or declare {Partitions} (required: {Required})")]
    public static partial void FewerPartitions(ILogger logger, string topic, int partitions, int declared, bool required);

    [LoggerMessage(1103, LogLevel.Error, "Topic {Topic} is not created: its replication factor {ReplicationFactor} is above the {Brokers} brokers of the cluster (required: {Required})")]
    public static partial void ReplicationFactorTooHigh(ILogger logger, string topic, int replicationFactor, int brokers, bool required);

    [LoggerMessage(1104, LogLevel.Error, "Topic {Topic} could not be created: {Reason} (Kafka error {Code}, required: {Required})")]
    public static partial void CreateFailed(ILogger logger, string topic, string reason, ErrorCode code, bool required);

    [LoggerMessage(1105, LogLevel.Error, "Declared topics could not be checked: no answer to a metadata request within {Timeout}: {Reason} (Kafka error {Code})")]
    public static partial void MetadataFailed(ILogger logger, TimeSpan timeout, string reason, ErrorCode code);

    [LoggerMessage(1106, LogLevel.Critical, "The application does not start: {Count} required topic problem(s), each logged above (events 1102-1105)")]
    public static partial void RequiredFailed(ILogger logger, int count);

    [LoggerMessage(1107, LogLevel.Warning, "{Count} topic problem(s) of topics not required: the application starts, and health reports them as Degraded")]
    public static partial void OptionalFailed(ILogger logger, int count);
}
