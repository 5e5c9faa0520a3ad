using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Diagnostics;

/// <summary>Share consumer (KIP-932) log events. Event ids 6000-6049 are stable.</summary>
internal static partial class ShareConsumerLog
{
    [LoggerMessage(6000, LogLevel.Information, "Share consumer {Name} started: share group {GroupId}, topics {Topics}, MaxConcurrency {MaxConcurrency}, MaxDeliveryAttempts {MaxDeliveryAttempts} (librdkafka's share consumer is a preview).")]
    public static partial void Started(ILogger logger, string name, string groupId, string topics, int maxConcurrency, int maxDeliveryAttempts);

    [LoggerMessage(6001, LogLevel.Error, "Share consumer {Name} could not start: {Reason}")]
    public static partial void StartFailed(ILogger logger, string name, string reason);

    [LoggerMessage(6002, LogLevel.Warning, "Share consumer {Name}: poll failed: {Reason} ({Code}); polling continues.")]
    public static partial void PollFailed(ILogger logger, string name, string reason, ErrorCode code);

    [LoggerMessage(6003, LogLevel.Warning, "Share consumer {Name}: librdkafka delivered {Topic} [{Partition}] @{Offset} as an error ({Code}); librdkafka acknowledged it itself (corrupt records are rejected, undecompressable ones released).")]
    public static partial void RecordError(ILogger logger, string name, string topic, int partition, long offset, ErrorCode code);

    [LoggerMessage(6004, LogLevel.Warning, "Share consumer {Name}: handling {Topic} [{Partition}] @{Offset} failed on delivery {Attempt} of {MaxAttempts}, released for redelivery: {ErrorType}: {Error}")]
    public static partial void Released(ILogger logger, string name, string topic, int partition, long offset, int attempt, int maxAttempts, string errorType, string error);

    [LoggerMessage(6005, LogLevel.Error, "Share consumer {Name}: {Topic} [{Partition}] @{Offset} rejected on delivery {Attempt} ({Why}), the broker archives it: {ErrorType}: {Error}")]
    public static partial void Rejected(ILogger logger, string name, string topic, int partition, long offset, int attempt, string why, string errorType, string error);

    [LoggerMessage(6006, LogLevel.Warning, "Share consumer {Name}: {Topic} [{Partition}] @{Offset} dead-lettered to {DeadLetterTopic} on delivery {Attempt} ({Why}) and accepted: {ErrorType}: {Error}")]
    public static partial void DeadLettered(ILogger logger, string name, string topic, int partition, long offset, string deadLetterTopic, int attempt, string why, string errorType, string error);

    [LoggerMessage(6007, LogLevel.Error, "Share consumer {Name}: dead-lettering {Topic} [{Partition}] @{Offset} failed; the record is released for redelivery and the share consumer stops (OnFault applies): {ErrorType}: {Error}")]
    public static partial void DeadLetterFailed(ILogger logger, string name, string topic, int partition, long offset, string errorType, string error);

    [LoggerMessage(6008, LogLevel.Warning, "Share consumer {Name}: acknowledging {Topic} [{Partition}] @{Offset} as {Type} was refused: {Reason} ({Code}); the record is redelivered when its lock expires.")]
    public static partial void AcknowledgeFailed(ILogger logger, string name, string topic, int partition, long offset, string type, string reason, ErrorCode code);

    [LoggerMessage(6009, LogLevel.Warning, "Share consumer {Name}: the broker did not take the acknowledgements of {Count} records of {Topic} [{Partition}]: {Reason} ({Code}); they are redelivered: at once when the broker ended the share session, otherwise when their locks expire.")]
    public static partial void AcknowledgementCommitFailed(ILogger logger, string name, string topic, int partition, int count, string reason, ErrorCode code);

    [LoggerMessage(6010, LogLevel.Information, "Share consumer {Name} stopping: {InFlight} handlers running, waiting at most {Timeout}.")]
    public static partial void Stopping(ILogger logger, string name, int inFlight, TimeSpan timeout);

    [LoggerMessage(6011, LogLevel.Warning, "Share consumer {Name}: {Count} handlers still running after ShutdownTimeout ({Timeout}); their token is cancelled and their records released.")]
    public static partial void ShutdownTimedOut(ILogger logger, string name, int count, TimeSpan timeout);

    [LoggerMessage(6012, LogLevel.Information, "Share consumer {Name}: released {Count} records not handled at stop; other members receive them at once.")]
    public static partial void ReleasedAtStop(ILogger logger, string name, int count);

    [LoggerMessage(6013, LogLevel.Warning, "Share consumer {Name}: the final acknowledgement commit failed: {Reason} ({Code}); the records concerned are redelivered: at once when the broker ended the share session, otherwise when their locks expire.")]
    public static partial void FinalCommitFailed(ILogger logger, string name, string reason, ErrorCode code);

    [LoggerMessage(6014, LogLevel.Warning, "Share consumer {Name}: close failed: {Reason} ({Code}); the broker removes the member after its session timeout.")]
    public static partial void CloseFailed(ILogger logger, string name, string reason, ErrorCode code);

    [LoggerMessage(6015, LogLevel.Information, "Share consumer {Name} stopped {StopDuration} after the stop began: {Accepted} accepted, {Released} released, {Rejected} rejected, {DeadLettered} dead-lettered.")]
    public static partial void Stopped(ILogger logger, string name, TimeSpan stopDuration, long accepted, long released, long rejected, long deadLettered);

    [LoggerMessage(6016, LogLevel.Critical, "Share consumer {Name} faulted: {Reason}")]
    public static partial void Faulted(ILogger logger, string name, string reason, Exception? exception);

    [LoggerMessage(6017, LogLevel.Warning, "Share consumer {Name}: deserializing {Topic} [{Partition}] @{Offset} waits for an unreachable service, released for redelivery: {Error}")]
    public static partial void DeserializerUnavailable(ILogger logger, string name, string topic, int partition, long offset, string error);

    [LoggerMessage(6018, LogLevel.Warning, "Share consumer {Name}: {Reason} ({Code}).")]
    public static partial void ClientError(ILogger logger, string name, string reason, ErrorCode code);

    [LoggerMessage(6040, LogLevel.Warning, "Share consumer {Name}: the dead-letter producer got no metadata within {Timeout} at start; the share consumer starts anyway and the first dead letter connects it (on the embedded cluster that may end the share sessions, so dead-lettered records can come again): {Error}")]
    public static partial void DeadLetterConnectFailed(ILogger logger, string name, TimeSpan timeout, string error);

    [LoggerMessage(6041, LogLevel.Warning, "Share consumer {Name}: the handler of {Topic} [{Partition}] @{Offset} failed after the share consumer was disposed; the record was released at stop and is delivered again, not dead-lettered here: {ErrorType}: {Error}")]
    public static partial void EndedAfterStop(ILogger logger, string name, string topic, int partition, long offset, string errorType, string error);
}
