using Confluent.Kafka;
using KafkaKit.Consuming;

namespace KafkaKit.Samples.Notifications;

/// <summary>The worker's KafkaKit handler: hands each notification to its recipient's open connections and history.</summary>
internal sealed class NotificationDeliveryHandler(NotificationHub hub, UserDirectory users, ILogger<NotificationDeliveryHandler> logger)
    : IKafkaMessageHandler<string, Notification>
{
    public ValueTask HandleAsync(ConsumeResult<string, Notification> result, CancellationToken cancellationToken)
    {
        var notification = result.Message.Value;
        if (notification is null)
        {
            Log.Skipped(logger, result.TopicPartitionOffset, "no value");
        }
        else if (!users.Contains(notification.RecipientId))
        {
            Log.Skipped(logger, result.TopicPartitionOffset, $"unknown recipient '{notification.RecipientId}'");
        }
        else
        {
            var connections = hub.Publish(notification);
            if (connections < 0)
            {
                Log.Duplicate(logger, notification.Id, result.TopicPartitionOffset);
            }
            else
            {
                Log.Delivered(logger, notification.Id, notification.RecipientId, connections, result.TopicPartitionOffset);
            }
        }

        return ValueTask.CompletedTask;
    }
}
