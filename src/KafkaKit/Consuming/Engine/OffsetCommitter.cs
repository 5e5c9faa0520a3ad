using Confluent.Kafka;
using KafkaKit.Diagnostics;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Consuming;

/// <summary>
/// Hands the partitions' committable offsets to librdkafka's offset store and commits the stored offsets
/// synchronously; counts and classifies commit failures. librdkafka commits the stored offsets itself every
/// <c>auto.commit.interval.ms</c> and when partitions are revoked (<c>enable.auto.commit=true</c>,
/// <c>enable.auto.offset.store=false</c>); those commits' outcomes arrive at <see cref="OnCommitted"/>.
/// </summary>
/// <remarks>
/// <see cref="Store"/> and <see cref="Commit"/> run on the poll thread (<see cref="Store"/> also inside rebalance
/// callbacks, so it never throws); <see cref="OnCommitted"/> runs on the poll thread too (librdkafka's offset-commit
/// callback is served by <c>Consume</c>).
/// </remarks>
internal sealed class OffsetCommitter
{
    private readonly string _name;
    private readonly string _groupId;
    private readonly ILogger _logger;
    private readonly bool _storesOffsets;
    private long _failures;

    /// <summary>Initializes a new instance of the <see cref="OffsetCommitter"/> class.</summary>
    /// <param name="name">The consumer's name, for logs.</param>
    /// <param name="groupId">The consumer group, for the commit-failure metric.</param>
    /// <param name="logger">The consumer's logger.</param>
    /// <param name="storesOffsets">Whether offsets are stored and committed here; <see langword="false"/> for a transactional consumer, whose offsets are committed inside its transactions (<see cref="TransactionCoordinator"/>).</param>
    public OffsetCommitter(string name, string groupId, ILogger logger, bool storesOffsets = true)
    {
        _name = name;
        _groupId = groupId;
        _logger = logger;
        _storesOffsets = storesOffsets;
    }

    /// <summary>Gets the number of offset commits that failed so far.</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>Whether a commit refused with <paramref name="code"/> can succeed later (the group is rebalancing, or its coordinator moved or is loading).</summary>
    /// <param name="code">The commit's error (for a per-partition failure, see <see cref="ErrorCodeOf"/>).</param>
    /// <returns><see langword="true"/> when retrying the commit after some polls can succeed.</returns>
    public static bool IsRetriableCommitError(ErrorCode code) => code is ErrorCode.RebalanceInProgress or ErrorCode.IllegalGeneration
        or ErrorCode.NotCoordinatorForGroup or ErrorCode.GroupLoadInProgress or ErrorCode.GroupCoordinatorNotAvailable
        or ErrorCode.Local_WaitCoord or ErrorCode.Local_Transport or ErrorCode.RequestTimedOut or ErrorCode.Local_TimedOut;

    /// <summary>The error of a failed librdkafka call; for a per-partition failure, the first partition's error.</summary>
    /// <param name="e">The exception.</param>
    /// <returns>The error code.</returns>
    public static ErrorCode ErrorCodeOf(KafkaException e) => e switch
    {
        TopicPartitionOffsetException partial => partial.Results.Select(r => r.Error.Code).FirstOrDefault(c => c != ErrorCode.NoError, e.Error.Code),
        TopicPartitionException partial => partial.Results.Select(r => r.Error.Code).FirstOrDefault(c => c != ErrorCode.NoError, e.Error.Code),
        _ => e.Error.Code,
    };

    /// <summary>Stores the partition's committable offset in librdkafka when it is newer than the last stored one and the partition is owned.</summary>
    /// <param name="consumer">The client.</param>
    /// <param name="offsets">The partition's tracker.</param>
    public void Store(IConsumer<byte[]?, byte[]?> consumer, OffsetTracker offsets)
    {
        if (!_storesOffsets || !offsets.TakeStore(out var completed))
        {
            return; // nothing new; offsets never move backwards
        }

        try
        {
            consumer.StoreOffset(new TopicPartitionOffset(offsets.Partition, completed));
            offsets.MarkStored(completed);
        }
        catch (KafkaException e) when (ErrorCodeOf(e) == ErrorCode.Local_State)
        {
            // the partition is no longer assigned (a rebalance is under way): its next owner starts from the last commit
        }
        catch (KafkaException e)
        {
            // Store runs inside rebalance callbacks too: an exception there would reach librdkafka. The offset stays
            // unstored; the message is delivered again (at least once).
            ConsumerLog.StoreFailed(_logger, _name, offsets.Partition, completed, e.Error.Reason, ErrorCodeOf(e));
        }
    }

    /// <summary>Commits the stored offsets synchronously.</summary>
    /// <returns>The error when the commit failed (logged and counted), or <see langword="null"/> (also when there was nothing to commit).</returns>
    /// <param name="consumer">The client.</param>
    /// <param name="stopping">Whether the stop's final commit is being made: a refusal it will retry is logged as information, not as a warning.</param>
    public Error? Commit(IConsumer<byte[]?, byte[]?> consumer, bool stopping = false)
    {
        if (!_storesOffsets)
        {
            return null;
        }

        try
        {
            var committed = consumer.Commit();
            ConsumerLog.Committed(_logger, _name, string.Join(", ", committed));
            return null;
        }
        catch (KafkaException e) when (ErrorCodeOf(e) == ErrorCode.Local_NoOffset)
        {
            return null; // nothing stored since the last commit
        }
        catch (KafkaException e)
        {
            // A per-partition refusal surfaces as Local_Partial: classify it by the partitions' own error, so a commit
            // refused with REBALANCE_IN_PROGRESS is recognised (and retried at stop) whichever way librdkafka reports it.
            var error = new Error(ErrorCodeOf(e), e.Error.Reason);
            Count();
            if (stopping && IsRetriableCommitError(error.Code))
            {
                ConsumerLog.FinalCommitRetrying(_logger, _name, error.Reason, error.Code);
            }
            else
            {
                ConsumerLog.CommitFailed(_logger, _name, error.Reason, error.Code);
            }

            return error;
        }
    }

    /// <summary>librdkafka's report of a commit (its own periodic and revoke-time ones, and <see cref="Commit"/>'s): a failure is logged and counted.</summary>
    /// <param name="committed">The report.</param>
    /// <param name="owned">The partitions owned now: a failed commit of others (the final commit of a revoke) is not carried by a later one.</param>
    public void OnCommitted(CommittedOffsets committed, IReadOnlyCollection<TopicPartition> owned)
    {
        if (!committed.Error.IsError)
        {
            return;
        }

        Count();
        var released = committed.Offsets.Where(o => !owned.Contains(o.TopicPartition)).ToList();
        if (released.Count > 0)
        {
            // librdkafka clears a removed partition's stored offset once it sent that commit: nothing carries it again.
            ConsumerLog.ReleasedCommitFailed(_logger, _name, committed.Error.Reason, committed.Error.Code, string.Join(", ", released.Select(o => $"{o.Topic} [{o.Partition.Value}] @{o.Offset.Value}")));
        }
        else
        {
            ConsumerLog.CommitFailed(_logger, _name, committed.Error.Reason, committed.Error.Code);
        }
    }

    private void Count()
    {
        Interlocked.Increment(ref _failures);
        KafkaKitMetrics.CommitFailures.Add(1, new KeyValuePair<string, object?>("messaging.consumer.group.name", _groupId));
    }
}
