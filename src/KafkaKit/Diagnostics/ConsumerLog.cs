using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Diagnostics;

/// <summary>Consumer log events. Event ids 2000-2099 are stable.</summary>
internal static partial class ConsumerLog
{
    [LoggerMessage(2000, LogLevel.Information, "Consumer {Name} starting: group {GroupId}, topics {Topics}, strategy {Strategy}, auto.offset.reset={Reset} (full configuration at Debug, event 2040).")]
    public static partial void Starting(ILogger logger, string name, string groupId, string topics, string strategy, string reset);

    /// <summary>One line per assignment: each partition as <c>topic [partition] @offset (why)</c>, written once the offsets are known.</summary>
    [LoggerMessage(2001, LogLevel.Information, "Consumer {Name}: assigned, {Count} in all, starting at: {Positions}")]
    public static partial void Assigned(ILogger logger, string name, int count, string positions);

    [LoggerMessage(2002, LogLevel.Information, "Consumer {Name}: revoked {Partitions} ({Count} in all); handlers drained and final offsets stored in {Elapsed}, committed as the revoke completes.")]
    public static partial void Revoked(ILogger logger, string name, int count, string partitions, TimeSpan elapsed);

    [LoggerMessage(2003, LogLevel.Warning, "Consumer {Name}: lost {Partitions} ({Count} in all); in-flight handlers cancelled, their offsets discarded, nothing committed.")]
    public static partial void Lost(ILogger logger, string name, int count, string partitions);

    [LoggerMessage(2004, LogLevel.Warning, "Consumer {Name}: commit failed: {Reason} ({Code}); the offsets stay stored and the next commit carries them.")]
    public static partial void CommitFailed(ILogger logger, string name, string reason, ErrorCode code);

    [LoggerMessage(2063, LogLevel.Warning, "Consumer {Name}: the final commit of revoked partitions failed: {Reason} ({Code}); their next owners start at the last committed offsets and receive the messages after them again: {Offsets}")]
    public static partial void ReleasedCommitFailed(ILogger logger, string name, string reason, ErrorCode code, string offsets);

    [LoggerMessage(2005, LogLevel.Warning, "Consumer {Name}: {Reason} ({Code}).")]
    public static partial void ClientError(ILogger logger, string name, string reason, ErrorCode code);

    [LoggerMessage(2006, LogLevel.Critical, "Consumer {Name} hit a fatal error: {Reason} ({Code}); stopping.")]
    public static partial void Fatal(ILogger logger, string name, string reason, ErrorCode code);

    /// <summary>One line per retry, without the stack trace: that is written once, with the final outcome (2008, or 2018 when the consumer stops).</summary>
    [LoggerMessage(2007, LogLevel.Warning, "Consumer {Name}: handling {Topic} [{Partition}] @{Offset} failed, retry {Attempt} in {Delay}: {ErrorType}: {Error}")]
    public static partial void HandlerRetry(ILogger logger, string name, string topic, int partition, long offset, int attempt, TimeSpan delay, string errorType, string error);

    /// <summary>The final outcome of a failed message. The stack trace is attached unless the action stops the consumer: then the stop line (2018) carries it.</summary>
    [LoggerMessage(2008, LogLevel.Error, "Consumer {Name}: {Topic} [{Partition}] @{Offset} failed ({Stage}); action {Action}.")]
    public static partial void MessageFailed(ILogger logger, Exception? exception, string name, string topic, int partition, long offset, string stage, Consuming.ConsumerErrorAction action);

    [LoggerMessage(2009, LogLevel.Information, "Consumer {Name}: {Topic} [{Partition}] @{Offset} dead-lettered to {DeadLetterTopic}")]
    public static partial void DeadLettered(ILogger logger, string name, string topic, int partition, long offset, string deadLetterTopic);

    [LoggerMessage(2010, LogLevel.Information, "Consumer {Name} stopping, step: {Step}")]
    public static partial void StopStep(ILogger logger, string name, string step);

    [LoggerMessage(2011, LogLevel.Warning, "Consumer {Name}: {Count} handlers outlived the {Timeout} bound and were cancelled; their offsets are not committed.")]
    public static partial void HandlersCancelled(ILogger logger, string name, int count, TimeSpan timeout);

    [LoggerMessage(2012, LogLevel.Information, "Consumer {Name} stopped ({State}).")]
    public static partial void Stopped(ILogger logger, string name, Consuming.KafkaConsumerState state);

    [LoggerMessage(2013, LogLevel.Error, "Consumer {Name}: the {Callback} callback threw; the rebalance goes on.")]
    public static partial void CallbackFailed(ILogger logger, Exception exception, string name, string callback);

    [LoggerMessage(2014, LogLevel.Error, "Consumer {Name} did not finish stopping within {Timeout}; the poll thread is left to finish on its own.")]
    public static partial void StopTimedOut(ILogger logger, string name, TimeSpan timeout);

    [LoggerMessage(2015, LogLevel.Warning, "Consumer {Name}: poll failed: {Reason} ({Code}).")]
    public static partial void ConsumeFailed(ILogger logger, string name, string reason, ErrorCode code);

    [LoggerMessage(2045, LogLevel.Debug, "Consumer {Name}: {Reason} ({Code}): expected while a subscription pattern matches no topic (event 2043)")]
    public static partial void PatternTopicNotAvailable(ILogger logger, string name, string reason, ErrorCode code);

    [LoggerMessage(2016, LogLevel.Error, "Consumer {Name}: leaving the group failed.")]
    public static partial void CloseFailed(ILogger logger, Exception exception, string name);

    [LoggerMessage(2017, LogLevel.Debug, "Consumer {Name} committed: {Offsets}")]
    public static partial void Committed(ILogger logger, string name, string offsets);

    [LoggerMessage(2018, LogLevel.Critical, "Consumer {Name} stopped on error: {Reason}")]
    public static partial void Faulted(ILogger logger, Exception exception, string name, string reason);

    [LoggerMessage(2019, LogLevel.Debug, "Consumer {Name}: paused {Topic} [{Partition}]: {Buffered} messages wait for its handler ({BufferedBytes} bytes buffered in all).")]
    public static partial void PartitionPaused(ILogger logger, string name, string topic, int partition, int buffered, long bufferedBytes);

    [LoggerMessage(2020, LogLevel.Debug, "Consumer {Name}: resumed {Topic} [{Partition}]: its buffer drained to half.")]
    public static partial void PartitionResumed(ILogger logger, string name, string topic, int partition);

    [LoggerMessage(2021, LogLevel.Warning, "Consumer {Name}: storing offset {Offset} of {Partition} failed: {Reason} ({Code}); the messages after the last stored offset will be delivered again.")]
    public static partial void StoreFailed(ILogger logger, string name, TopicPartition partition, long offset, string reason, ErrorCode code);

    [LoggerMessage(2022, LogLevel.Warning, "Consumer {Name}: the caller's stop token was cancelled before the stop finished; running handlers were cancelled and the poll thread finishes committing and leaving the group on its own.")]
    public static partial void StopAbandoned(ILogger logger, string name);

    [LoggerMessage(2023, LogLevel.Information, "Consumer {Name}: the final commit was refused: {Reason} ({Code}); polling until this member has rejoined, then committing again (within ShutdownTimeout).")]
    public static partial void FinalCommitRetrying(ILogger logger, string name, string reason, ErrorCode code);

    [LoggerMessage(2040, LogLevel.Debug, "Consumer {Name} configuration (secrets masked): {Config}")]
    public static partial void Configuration(ILogger logger, string name, string config);

    [LoggerMessage(2041, LogLevel.Information, "Consumer {Name}: subscription pattern {Pattern} started matching {Count} topics: {Topics}")]
    public static partial void PatternStartedMatching(ILogger logger, string name, string pattern, int count, string topics);

    [LoggerMessage(2042, LogLevel.Information, "Consumer {Name}: subscription pattern {Pattern} stopped matching {Count} topics: {Topics}")]
    public static partial void PatternStoppedMatching(ILogger logger, string name, string pattern, int count, string topics);

    [LoggerMessage(2043, LogLevel.Information, "Consumer {Name}: subscription pattern {Pattern} matches no topic yet; a matching topic created later is found at a metadata refresh (every {IntervalMs} ms, topic.metadata.refresh.interval.ms).")]
    public static partial void PatternMatchesNothing(ILogger logger, string name, string pattern, int intervalMs);

    [LoggerMessage(2044, LogLevel.Debug, "Consumer {Name}: listing the topics the subscription patterns match failed; the next assignment change lists them again.")]
    public static partial void PatternCheckFailed(ILogger logger, Exception exception, string name);

    [LoggerMessage(2060, LogLevel.Information, "{Client} {Name}: dead-letter producer created ({Config}).")]
    public static partial void DeadLetterProducerCreated(ILogger logger, string client, string name, string config);

    [LoggerMessage(2061, LogLevel.Warning, "{Client} {Name}: dead-letter producer: {Reason} ({Code}).")]
    public static partial void DeadLetterProducerError(ILogger logger, string client, string name, string reason, ErrorCode code);

    [LoggerMessage(2062, LogLevel.Warning, "{Client} {Name}: {Undelivered} dead-letter messages were not delivered within {Timeout} at stop; they were purged (their source offsets were not committed or their records not acknowledged, so they are consumed again).")]
    public static partial void DeadLetterPurged(ILogger logger, string client, string name, int undelivered, TimeSpan timeout);

    [LoggerMessage(2100, LogLevel.Warning, "Consumer {Name}: {Topic} [{Partition}] @{Offset} failed at index {Index} of a batch of {Count}; the messages before it are done, it is retried alone, the ones after it come again in the next batch.")]
    public static partial void BatchMessageFailed(ILogger logger, Exception exception, string name, string topic, int partition, long offset, int index, int count);

    [LoggerMessage(2101, LogLevel.Warning, "Consumer {Name}: the batch handler threw KafkaBatchException with index {Index} outside its batch of {Count} messages; counted as a failure of the whole batch.")]
    public static partial void BatchIndexOutOfRange(ILogger logger, string name, int index, int count);

    [LoggerMessage(2200, LogLevel.Information, "Consumer {Name}: {Topic} [{Partition}] @{Offset} written to retry topic {RetryTopic} (attempt {Attempt}, due {Due:O})")]
    public static partial void RetryScheduled(ILogger logger, string name, string topic, int partition, long offset, string retryTopic, int attempt, DateTimeOffset due);

    [LoggerMessage(2201, LogLevel.Debug, "Consumer {Name}: paused {Topic} [{Partition}] at offset {Offset} until its record is due at {Due:O}")]
    public static partial void RetryHeld(ILogger logger, string name, string topic, int partition, long offset, DateTimeOffset due);

    [LoggerMessage(2202, LogLevel.Debug, "Consumer {Name}: resumed {Topic} [{Partition}]: its held record is due")]
    public static partial void RetryReleased(ILogger logger, string name, string topic, int partition);

    [LoggerMessage(2203, LogLevel.Information, "Consumer {Name}: retry and dead-letter topics found: {Topics}")]
    public static partial void RetryTopicsFound(ILogger logger, string name, string topics);

    [LoggerMessage(2204, LogLevel.Warning, "Consumer {Name}: could not check that the retry topics exist ({Reason}); a write to a missing one stops the consumer")]
    public static partial void RetryTopicsUnchecked(ILogger logger, string name, string reason);

    [LoggerMessage(2205, LogLevel.Warning, "Consumer {Name}: holding {Topic} [{Partition}] until its record is due failed ({Reason}); the record is handled now")]
    public static partial void RetryHoldFailed(ILogger logger, string name, string topic, int partition, string reason);
}
