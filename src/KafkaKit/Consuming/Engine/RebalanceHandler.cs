using Confluent.Kafka;
using KafkaKit.Diagnostics;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Consuming;

/// <summary>
/// librdkafka's rebalance callbacks: starts workers for assigned partitions and sets their start positions; drains,
/// stores and retires the workers of revoked partitions; cancels and retires those of lost ones; runs the user's
/// callbacks (their exceptions are logged, never reach librdkafka). Logs each assignment's start positions (event
/// 2001) from a lookup made after the assigned callback returned.
/// </summary>
/// <remarks>
/// Nothing here depends on the protocol: Confluent.Kafka passes the partitions that move, incrementally for
/// cooperative-sticky and for the consumer group protocol (KIP-848, where librdkafka reports the rebalance protocol as
/// COOPERATIVE), the whole assignment for eager strategies; this handler drains, stores and retires exactly those.
/// The callbacks run on the poll thread, inside <c>Consume</c>; the start-position lookup runs on a thread of its own
/// (see <see cref="StartPositions"/>).
/// </remarks>
internal sealed class RebalanceHandler
{
    private readonly string _name;
    private readonly KafkaConsumerOptions _options;
    private readonly RebalanceCallbacks _callbacks;
    private readonly PartitionSet _partitions;
    private readonly OffsetCommitter _committer;
    private readonly StartPositions _startPositions;
    private readonly Func<bool> _stopRequested;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;

    /// <summary>Initializes a new instance of the <see cref="RebalanceHandler"/> class.</summary>
    /// <param name="name">The consumer's name, for logs.</param>
    /// <param name="config">The consumer's librdkafka properties (<c>auto.offset.reset</c>, for the start positions).</param>
    /// <param name="options">The consumer's options (<see cref="KafkaConsumerOptions.RevokeTimeout"/>).</param>
    /// <param name="callbacks">The user's callbacks.</param>
    /// <param name="partitions">The workers.</param>
    /// <param name="committer">Stores the revoked partitions' final offsets.</param>
    /// <param name="stopRequested">Whether the consumer is stopping (no new workers; lookups give up).</param>
    /// <param name="logger">The consumer's logger.</param>
    /// <param name="time">The time source of the revoke and lookup bounds.</param>
    public RebalanceHandler(
        string name,
        ConsumerConfig config,
        KafkaConsumerOptions options,
        RebalanceCallbacks callbacks,
        PartitionSet partitions,
        OffsetCommitter committer,
        Func<bool> stopRequested,
        ILogger logger,
        TimeProvider time)
    {
        _name = name;
        _options = options;
        _callbacks = callbacks;
        _partitions = partitions;
        _committer = committer;
        _stopRequested = stopRequested;
        _logger = logger;
        _time = time;
        _startPositions = new StartPositions(name, config, stopRequested, logger, time);
    }

    /// <summary>Gets or sets the transactional consumer's commit path (commits or aborts at a revoke or loss), or <see langword="null"/>.</summary>
    public TransactionCoordinator? Transactions { get; set; }

    /// <summary>Gets or sets the timestamp (<see cref="TimeProvider.GetTimestamp"/>) that bounds the stop's drain, once stopping (poll thread).</summary>
    public long? ShutdownDeadline { get; set; }

    /// <summary>Starts workers, runs the user's assigned callback and returns the start offsets (poll thread, inside <c>Consume</c>).</summary>
    /// <param name="consumer">The client.</param>
    /// <param name="partitions">The assigned partitions (incremental with cooperative-sticky and the consumer group protocol, the whole assignment with eager strategies).</param>
    /// <returns>The start offsets: the callback's choices, <see cref="Offset.Unset"/> (committed offset, else <c>auto.offset.reset</c>) for the rest.</returns>
    public List<TopicPartitionOffset> OnAssigned(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartition> partitions)
    {
        _partitions.Add(_stopRequested() ? [] : partitions);
        IEnumerable<TopicPartitionOffset>? chosen = null;
        if (_callbacks.Assigned is { } assigned)
        {
            try
            {
                chosen = assigned(partitions);
            }
            catch (Exception e)
            {
                ConsumerLog.CallbackFailed(_logger, e, _name, "partitions-assigned");
            }
        }

        var starts = partitions.Select(p => new TopicPartitionOffset(p, Offset.Unset)).ToList();
        if (chosen is not null)
        {
            foreach (var choice in chosen)
            {
                var index = starts.FindIndex(s => s.TopicPartition == choice.TopicPartition);
                if (index >= 0)
                {
                    starts[index] = choice;
                }
            }
        }

        // The start positions take network round trips to find (up to StartPositions.LookupTimeout): never here, where
        // librdkafka waits for this callback before it fetches the partitions and before this member can take its next
        // rebalance step. One lookup at a time, in rebalance order, on a thread of its own; only when the line will be
        // written, and nothing in the rebalance waits for it, so its timing does not depend on the log level.
        if (starts.Count > 0 && _logger.IsEnabled(LogLevel.Information))
        {
            _startPositions.LogLater(consumer, starts);
        }

        return starts;
    }

    /// <summary>
    /// Drains the revoked partitions' workers (up to <see cref="KafkaConsumerOptions.RevokeTimeout"/>, then cancels
    /// them), stores their final offsets, retires them and runs the user's revoked callback (poll thread).
    /// </summary>
    /// <param name="consumer">The client.</param>
    /// <param name="partitions">The revoked partitions.</param>
    public void OnRevoked(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartitionOffset> partitions)
    {
        var started = _time.GetTimestamp();
        var workers = _partitions.Take(partitions);

        // While stopping, a revoke (another member joined or left meanwhile) is bounded by what is left of ShutdownTimeout.
        var timeout = _options.RevokeTimeout;
        if (ShutdownDeadline is { } deadline)
        {
            var left = TimeSpan.FromSeconds(Math.Max(0, deadline - started) / (double)_time.TimestampFrequency);
            timeout = left < timeout ? left : timeout;
        }

        Transactions?.BeforeDrain(consumer, timeout);
        _partitions.Drain(workers, timeout);
        Transactions?.OnRevoked(consumer, partitions, timeout - _time.GetElapsedTime(started) is { Ticks: > 0 } remaining ? remaining : TimeSpan.Zero);
        foreach (var worker in workers)
        {
            _committer.Store(consumer, worker.Offsets);
            _partitions.Retire(consumer, worker);
        }

        // No commit here: once this callback returns, librdkafka removes the partitions and, with enable.auto.commit
        // (always on in KafkaKit), commits their stored offsets and waits for that commit before the member rejoins
        // (rd_kafka_assignment_serve_removals; not for a lost assignment). A commit here as well would only keep the
        // group waiting one more round trip; its outcome reaches OnCommitted (logged and counted when it fails).
        ConsumerLog.Revoked(_logger, _name, partitions.Count, string.Join(", ", partitions.Select(p => $"{p.Topic} [{p.Partition.Value}]")), _time.GetElapsedTime(started));
        Invoke(_callbacks.Revoked, partitions, "partitions-revoked");
    }

    /// <summary>Cancels the lost partitions' workers, retires them without storing anything and runs the user's lost callback (poll thread).</summary>
    /// <param name="consumer">The client.</param>
    /// <param name="partitions">The lost partitions.</param>
    public void OnLost(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartitionOffset> partitions)
    {
        // Cancel, then give the handlers a short grace to observe it: the partitions can be assigned back to this member
        // at once (a rejoin after a session timeout), and a cancelled call should not overlap the next delivery of the
        // same message.
        var workers = _partitions.Take(partitions);
        foreach (var worker in workers)
        {
            worker.Cancel();
        }

        _partitions.AwaitCancelled(workers);
        Transactions?.OnLost(partitions);
        foreach (var worker in workers)
        {
            _partitions.Retire(consumer, worker);
        }

        ConsumerLog.Lost(_logger, _name, partitions.Count, string.Join(", ", partitions.Select(p => $"{p.Topic} [{p.Partition.Value}]")));
        Invoke(_callbacks.Lost, partitions, "partitions-lost");
    }

    /// <summary>Waits until the start-position lookups have ended (stop sequence, poll thread; they give up once a stop was requested).</summary>
    public void WaitForStartLookups() => _startPositions.WaitForLookups();

    private void Invoke(Action<IReadOnlyList<TopicPartitionOffset>>? callback, List<TopicPartitionOffset> partitions, string name)
    {
        if (callback is null)
        {
            return;
        }

        try
        {
            callback(partitions);
        }
        catch (Exception e)
        {
            ConsumerLog.CallbackFailed(_logger, e, _name, name);
        }
    }
}
