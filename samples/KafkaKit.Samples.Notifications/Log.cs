using Confluent.Kafka;

namespace KafkaKit.Samples.Notifications;

/// <summary>The sample's log messages (event ids 5000-5099).</summary>
internal static partial class Log
{
    [LoggerMessage(5000, LogLevel.Warning, "No KafkaKit:BootstrapServers configured: started an EMBEDDED Kafka cluster ({Brokers} brokers) at {BootstrapServers} with topic '{Topic}' ({Partitions} partitions). Its data is in memory only and is lost when this process exits. Set KafkaKit__BootstrapServers=host:port to use a real cluster. Another process of the sample (e.g. --role api) can use this one with: --KafkaKit:BootstrapServers {BootstrapServers}")]
    public static partial void EmbeddedClusterStarted(ILogger logger, int brokers, string bootstrapServers, string topic, int partitions);

    [LoggerMessage(5001, LogLevel.Information, "Notifications sample running as role '{Role}' against {BootstrapServers}")]
    public static partial void Running(ILogger logger, string role, string bootstrapServers);

    [LoggerMessage(5002, LogLevel.Information, "Notification {NotificationId} from '{SenderId}' to '{RecipientId}' accepted: {TopicPartitionOffset}")]
    public static partial void Accepted(ILogger logger, Guid notificationId, string senderId, string recipientId, TopicPartitionOffset topicPartitionOffset);

    [LoggerMessage(5003, LogLevel.Warning, "Notification {NotificationId} was not produced (answered {Status}): {Reason}")]
    public static partial void ProduceFailed(ILogger logger, Guid notificationId, int status, string reason);

    [LoggerMessage(5004, LogLevel.Warning, "Notification {NotificationId} got no acknowledgement within {Timeout} (answered 503); librdkafka still owns it and it may be delivered later.")]
    public static partial void ProduceTimedOut(ILogger logger, Guid notificationId, TimeSpan timeout);

    [LoggerMessage(5005, LogLevel.Information, "Notification {NotificationId}, answered 503 after its timeout, was delivered later: {TopicPartitionOffset}")]
    public static partial void DeliveredAfterTimeout(ILogger logger, Guid notificationId, TopicPartitionOffset topicPartitionOffset);

    [LoggerMessage(5006, LogLevel.Warning, "Notification {NotificationId}, answered 503 after its timeout, finally failed: {Reason}")]
    public static partial void FailedAfterTimeout(ILogger logger, Guid notificationId, string reason);

    [LoggerMessage(5010, LogLevel.Debug, "Notification {NotificationId} for '{RecipientId}' handed to {Connections} open connections ({TopicPartitionOffset}).")]
    public static partial void Delivered(ILogger logger, Guid notificationId, string recipientId, int connections, TopicPartitionOffset topicPartitionOffset);

    [LoggerMessage(5011, LogLevel.Information, "Notification {NotificationId} came again ({TopicPartitionOffset}, at-least-once redelivery): already delivered, skipped.")]
    public static partial void Duplicate(ILogger logger, Guid notificationId, TopicPartitionOffset topicPartitionOffset);

    [LoggerMessage(5012, LogLevel.Warning, "Skipped the record at {TopicPartitionOffset}: {Reason}")]
    public static partial void Skipped(ILogger logger, TopicPartitionOffset topicPartitionOffset, string reason);

    [LoggerMessage(5013, LogLevel.Warning, "Closed a connection (WebSocket or event stream) of '{UserId}': it fell {Buffer} notifications behind (its page reconnects and catches up).")]
    public static partial void SlowStreamClosed(ILogger logger, string userId, int buffer);

    [LoggerMessage(5014, LogLevel.Information, "WebSocket of '{UserId}' opened: {Replayed} notifications replayed, {Connections} open connections of this user")]
    public static partial void WebSocketOpened(ILogger logger, string userId, int replayed, int connections);

    [LoggerMessage(5015, LogLevel.Information, "WebSocket of '{UserId}' closed: {Reason}")]
    public static partial void WebSocketClosed(ILogger logger, string userId, string reason);

    [LoggerMessage(5020, LogLevel.Information, "Topic '{Topic}' created ({Partitions} partitions).")]
    public static partial void TopicCreated(ILogger logger, string topic, int partitions);

    [LoggerMessage(5021, LogLevel.Debug, "Topic '{Topic}' exists already.")]
    public static partial void TopicExists(ILogger logger, string topic);

    [LoggerMessage(5022, LogLevel.Warning, "Could not create topic '{Topic}' ({Reason}); going on: create it yourself or let the cluster auto-create it.")]
    public static partial void TopicNotCreated(ILogger logger, string topic, string reason);
}
