using Microsoft.Extensions.Logging;

namespace KafkaKit.Diagnostics;

/// <summary>Log lines of async serialization (schema registries): event ids 4100-4119.</summary>
internal static partial class SerializationLog
{
    [LoggerMessage(4100, LogLevel.Warning, "Producer {Name}: the serializer's service is unreachable for topic {Topic}, retrying in {Delay} within MaxBlock: {Reason}")]
    public static partial void ProduceWaiting(ILogger logger, string name, string topic, TimeSpan delay, string reason);

    [LoggerMessage(4101, LogLevel.Error, "Producer {Name}: the serializer's service stayed unreachable for topic {Topic} ({Waited}); the message was not enqueued: {Reason}")]
    public static partial void ProduceUnavailable(ILogger logger, string name, string topic, TimeSpan waited, string reason);

    [LoggerMessage(4102, LogLevel.Information, "Producer {Name}: the serializer's service answers again (topic {Topic}, unreachable for {Duration}).")]
    public static partial void ProduceRecovered(ILogger logger, string name, string topic, TimeSpan duration);

    [LoggerMessage(4103, LogLevel.Warning, "Consumer {Name}: the deserializer's service is unreachable for {Topic} [{Partition}] @{Offset}; the record is not failed, the partition waits and deserialization is retried with backoff: {Reason}")]
    public static partial void ConsumeWaiting(ILogger logger, string name, string topic, int partition, long offset, string reason);

    [LoggerMessage(4104, LogLevel.Information, "Consumer {Name}: the deserializer's service answers again ({Topic} [{Partition}] @{Offset} deserialized after {Attempts} attempts).")]
    public static partial void ConsumeRecovered(ILogger logger, string name, string topic, int partition, long offset, int attempts);
}
