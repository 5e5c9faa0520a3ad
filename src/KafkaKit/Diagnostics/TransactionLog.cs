using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Diagnostics;

/// <summary>Exactly-once (transactional) consumer log events. Event ids 2300-2339 are stable.</summary>
internal static partial class TransactionLog
{
    [LoggerMessage(2300, LogLevel.Information, "Consumer {Name}: transactional producer ready, transactional.id {TransactionalId}, initialized in {Elapsed}")]
    public static partial void Initialized(ILogger logger, string name, string transactionalId, TimeSpan elapsed);

    [LoggerMessage(2301, LogLevel.Debug, "Consumer {Name}: transaction committed with {Records} records, offsets {Offsets}")]
    public static partial void Committed(ILogger logger, string name, int records, string offsets);

    [LoggerMessage(2302, LogLevel.Warning, "Consumer {Name}: transaction aborted ({Reason}); {Records} handled records are handled again from {Positions}")]
    public static partial void Aborted(ILogger logger, string name, string reason, int records, string positions);

    [LoggerMessage(2303, LogLevel.Warning, "Consumer {Name}: {Operation} failed with a retriable error: {Reason} ({Code}); retrying within {Timeout}")]
    public static partial void Retrying(ILogger logger, string name, string operation, string reason, ErrorCode code, TimeSpan timeout);

    [LoggerMessage(2304, LogLevel.Critical, "Consumer {Name}: the transactional producer can no longer be used ({Operation}: {Reason}); the open transaction is not committed and the consumer stops")]
    public static partial void Unusable(ILogger logger, string name, string operation, string reason);

    [LoggerMessage(2305, LogLevel.Warning, "Consumer {Name}: transactional producer: {Reason} ({Code})")]
    public static partial void ProducerError(ILogger logger, string name, string reason, ErrorCode code);

    [LoggerMessage(2306, LogLevel.Information, "Consumer {Name}: final transaction {Outcome} at stop ({Records} records)")]
    public static partial void Finished(ILogger logger, string name, string outcome, int records);

    [LoggerMessage(2307, LogLevel.Warning, "Consumer {Name}: a transaction call ({Operation}) has not returned; the transactional producer is left undisposed")]
    public static partial void CallStillRunning(ILogger logger, string name, string operation);
}
