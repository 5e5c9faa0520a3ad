using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Diagnostics;

/// <summary>Producer log events. Event ids 1000-1099 are stable.</summary>
internal static partial class ProducerLog
{
    [LoggerMessage(1000, LogLevel.Information, "Producer {Name} started: bootstrap.servers={BootstrapServers}, acks={Acks}, enable.idempotence={Idempotence} (full configuration at Debug, event 1040).")]
    public static partial void Started(ILogger logger, string name, string bootstrapServers, string acks, string idempotence);

    [LoggerMessage(1040, LogLevel.Debug, "Producer {Name} configuration (secrets masked): {Config}")]
    public static partial void Configuration(ILogger logger, string name, string config);

    [LoggerMessage(1001, LogLevel.Error, "Producer {Name}: the delivery callback for {Topic} threw; later deliveries continue.")]
    public static partial void DeliveryCallbackFailed(ILogger logger, Exception exception, string name, string topic);

    [LoggerMessage(1002, LogLevel.Error, "Producer {Name}: a message to {Topic} [{Partition}] was not delivered: {Reason} ({Code}).")]
    public static partial void DeliveryFailed(ILogger logger, string name, string topic, int partition, string reason, ErrorCode code);

    [LoggerMessage(1003, LogLevel.Critical, "Producer {Name} hit a fatal error and is faulted: {Reason} ({Code}). Every further call fails; dispose and recreate it.")]
    public static partial void Faulted(ILogger logger, string name, string reason, ErrorCode code);

    [LoggerMessage(1004, LogLevel.Warning, "Producer {Name}: {Reason} ({Code}).")]
    public static partial void ClientError(ILogger logger, string name, string reason, ErrorCode code);

    [LoggerMessage(1005, LogLevel.Information, "Producer {Name} disposing: flushing {Queued} queued messages for at most {Timeout}.")]
    public static partial void Disposing(ILogger logger, string name, long queued, TimeSpan timeout);

    [LoggerMessage(1006, LogLevel.Error, "Producer {Name}: {Undelivered} messages were not delivered within the flush timeout; they were purged and reported failed.")]
    public static partial void Purged(ILogger logger, string name, long undelivered);

    [LoggerMessage(1007, LogLevel.Information, "Producer {Name} disposed.")]
    public static partial void Disposed(ILogger logger, string name);

    [LoggerMessage(1008, LogLevel.Warning, "Producer {Name}: produce to {Topic} failed with {Code}; retry {Attempt} in {Delay}.")]
    public static partial void Retrying(ILogger logger, string name, string topic, ErrorCode code, int attempt, TimeSpan delay);

    [LoggerMessage(1009, LogLevel.Debug, "Producer {Name}: queue full at {Queued} messages; waiting for room.")]
    public static partial void WaitingForRoom(ILogger logger, string name, long queued);

    [LoggerMessage(1010, LogLevel.Error, "Producer {Name}: the delivery-failed handler threw.")]
    public static partial void DeliveryFailedHandlerFailed(ILogger logger, Exception exception, string name);

    [LoggerMessage(1011, LogLevel.Error, "Producer {Name}: {Undelivered} messages still had no outcome when the producer was destroyed.")]
    public static partial void LostAtDispose(ILogger logger, string name, long undelivered);

    [LoggerMessage(1012, LogLevel.Warning, "Producer {Name}: the queue stayed full for {Waited} ({Queued} messages awaiting delivery reports); a message for {Topic} was refused.")]
    public static partial void QueueFull(ILogger logger, string name, string topic, TimeSpan waited, long queued);

    [LoggerMessage(1013, LogLevel.Error, "Producer {Name}: serving delivery reports failed; the delivery thread goes on.")]
    public static partial void PumpFailed(ILogger logger, Exception exception, string name);
}
