using Confluent.Kafka;
using KafkaKit.Diagnostics;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Consuming;

/// <summary>
/// Finds where each newly assigned partition starts and why (the assigned callback's choice, the committed offset, or
/// <c>auto.offset.reset</c>) and logs them as one line per rebalance (event 2001).
/// </summary>
/// <remarks>
/// The lookups take network round trips, so they never run inside the assigned callback: one at a time, in rebalance
/// order, each on a thread of its own (a long-running continuation), bounded by <see cref="LookupTimeout"/>. They call
/// into the client from that thread: the stop waits for them (<see cref="WaitForLookups"/>) before disposing it.
/// </remarks>
internal sealed class StartPositions
{
    /// <summary>The bound of one assignment's lookups.</summary>
    internal static readonly TimeSpan LookupTimeout = TimeSpan.FromSeconds(2);

    private const long OffsetTailBase = -2000; // librdkafka's RD_KAFKA_OFFSET_TAIL_BASE: -2000 - n starts n messages before the end

    private readonly string _name;
    private readonly ConsumerConfig _config;
    private readonly Func<bool> _stopRequested;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private Task _lookups = Task.CompletedTask; // poll thread: the chain of lookups

    /// <summary>Initializes a new instance of the <see cref="StartPositions"/> class.</summary>
    /// <param name="name">The consumer's name, for the log line.</param>
    /// <param name="config">The consumer's librdkafka properties (<c>auto.offset.reset</c>).</param>
    /// <param name="stopRequested">Whether the consumer is stopping: lookups not yet made are skipped.</param>
    /// <param name="logger">The consumer's logger.</param>
    /// <param name="time">The time source of <see cref="LookupTimeout"/>.</param>
    public StartPositions(string name, ConsumerConfig config, Func<bool> stopRequested, ILogger logger, TimeProvider time)
    {
        _name = name;
        _config = config;
        _stopRequested = stopRequested;
        _logger = logger;
        _time = time;
    }

    /// <summary>Queues the lookup and log line of one assignment (poll thread; returns at once).</summary>
    /// <param name="consumer">The client.</param>
    /// <param name="starts">The assigned partitions with the callback's choices or <see cref="Offset.Unset"/>.</param>
    public void LogLater(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartitionOffset> starts) =>
        _lookups = _lookups.ContinueWith(
            _ => Log(consumer, starts), CancellationToken.None, TaskContinuationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>Blocks until the queued lookups ended (the stop sequence, on the poll thread, which may block).</summary>
    public void WaitForLookups() => ((IAsyncResult)_lookups).AsyncWaitHandle.WaitOne();

    /// <summary>Whether the assigned callback chose this start (a concrete offset, beginning, end or n before the end), rather than leaving it to the committed offset.</summary>
    private static bool ChosenByCallback(Offset offset) =>
        offset.Value >= 0 || offset == Offset.Beginning || offset == Offset.End || offset.Value <= OffsetTailBase;

    private static long? Find(Dictionary<TopicPartition, long>? offsets, TopicPartition partition) =>
        offsets is not null && offsets.TryGetValue(partition, out var offset) ? offset : null;

    /// <summary>
    /// Finds each newly assigned partition's start offset and why, and logs them as one line (event 2001). Runs on a
    /// thread of its own after the assignment callback returned; bounded by <see cref="LookupTimeout"/>.
    /// </summary>
    /// <remarks>
    /// The committed offsets are read just after the assignment, before this member can have committed anything newer
    /// for them (its first commit comes at the next <see cref="KafkaConsumerOptions.CommitInterval"/> tick at the
    /// earliest). Where no offset is committed, the offset <c>auto.offset.reset</c> leads to is read from the partition's
    /// watermarks: the low one for earliest, the high one for latest.
    /// </remarks>
    private void Log(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartitionOffset> starts)
    {
        var deadline = _time.GetTimestamp() + (long)(LookupTimeout.TotalSeconds * _time.TimestampFrequency);
        TimeSpan Left() => TimeSpan.FromSeconds(Math.Max(0, deadline - _time.GetTimestamp()) / (double)_time.TimestampFrequency);
        var reset = _config.AutoOffsetReset ?? AutoOffsetReset.Latest;
        var resetName = reset.ToString().ToLowerInvariant();
        var resetTarget = reset switch
        {
            AutoOffsetReset.Earliest => Offset.Beginning,
            AutoOffsetReset.Latest => Offset.End,
            _ => Offset.Unset,
        };
        try
        {
            // 1. The group's committed offsets, for the partitions the assigned callback left to them (one request).
            Dictionary<TopicPartition, Offset>? committed = null;
            var committedFailure = "lookup skipped while stopping";
            var toLookUp = starts.Where(s => !ChosenByCallback(s.Offset)).Select(s => s.TopicPartition).ToList();
            if (toLookUp.Count > 0 && !_stopRequested())
            {
                try
                {
                    committed = consumer.Committed(toLookUp, Left()).ToDictionary(c => c.TopicPartition, c => c.Offset);
                }
                catch (KafkaException e)
                {
                    committedFailure = e.Error.Reason;
                }
            }

            // 2. Where each partition starts: a number, or a logical offset (beginning, end, n before the end) with why.
            var targets = new List<(TopicPartition Partition, Offset Target, string Why)>(starts.Count);
            foreach (var start in starts)
            {
                if (ChosenByCallback(start.Offset))
                {
                    var how = start.Offset.Value >= 0 ? string.Empty
                        : start.Offset == Offset.Beginning ? "beginning, "
                        : start.Offset == Offset.End ? "end, "
                        : $"{OffsetTailBase - start.Offset.Value} before the end, ";
                    targets.Add((start.TopicPartition, start.Offset, $"{how}set by the partitions-assigned callback"));
                }
                else if (committed is null)
                {
                    targets.Add((start.TopicPartition, Offset.Unset, $"committed offset unknown: {committedFailure}; else {resetName}: auto.offset.reset"));
                }
                else if (committed.TryGetValue(start.TopicPartition, out var offset) && !offset.IsSpecial)
                {
                    targets.Add((start.TopicPartition, offset, "committed"));
                }
                else
                {
                    targets.Add((start.TopicPartition, resetTarget, resetTarget == Offset.Unset
                        ? "no committed offset and auto.offset.reset=error: the partition reports an error"
                        : $"{resetName}: auto.offset.reset, no committed offset"));
                }
            }

            // 3. The watermarks the logical offsets stand for: one ListOffsets per kind for all partitions
            //    (timestamp -2 is the earliest offset, -1 the latest).
            var earliest = Watermarks(consumer, targets.Where(t => t.Target == Offset.Beginning || t.Target.Value <= OffsetTailBase).Select(t => t.Partition), Offset.Beginning.Value, Left);
            var latest = Watermarks(consumer, targets.Where(t => t.Target == Offset.End || t.Target.Value <= OffsetTailBase).Select(t => t.Partition), Offset.End.Value, Left);
            var positions = targets.Select(t =>
            {
                long? number = t.Target.Value >= 0 ? t.Target.Value
                    : t.Target == Offset.Beginning ? Find(earliest, t.Partition)
                    : t.Target == Offset.End ? Find(latest, t.Partition)
                    : t.Target.Value <= OffsetTailBase && Find(latest, t.Partition) is { } high
                        ? Math.Max(Find(earliest, t.Partition) ?? 0, high - (OffsetTailBase - t.Target.Value))
                        : null;
                var at = number?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?";
                return $"{t.Partition.Topic} [{t.Partition.Partition.Value}] @{at} ({t.Why})";
            });
            ConsumerLog.Assigned(_logger, _name, starts.Count, string.Join(", ", positions));
        }
        catch (ObjectDisposedException)
        {
            // the consumer stopped meanwhile
        }
    }

    /// <summary>The earliest (-2) or latest (-1) offset of each partition in one request; <see langword="null"/> when it failed or time ran out.</summary>
    private Dictionary<TopicPartition, long>? Watermarks(IConsumer<byte[]?, byte[]?> consumer, IEnumerable<TopicPartition> partitions, long which, Func<TimeSpan> left)
    {
        var list = partitions.Select(p => new TopicPartitionTimestamp(p, new Timestamp(which, TimestampType.NotAvailable))).ToList();
        if (list.Count == 0 || _stopRequested() || left() <= TimeSpan.Zero)
        {
            return null;
        }

        try
        {
            return consumer.OffsetsForTimes(list, left()).Where(o => o.Offset.Value >= 0).ToDictionary(o => o.TopicPartition, o => o.Offset.Value);
        }
        catch (KafkaException)
        {
            return null; // logged as "?"
        }
    }
}
