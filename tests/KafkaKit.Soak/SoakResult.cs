using System.Text.Json.Serialization;

namespace KafkaKit.Soak;

/// <summary>The outcome of a soak run: what it did, what it sampled, and each check.</summary>
public sealed record SoakResult
{
    public required TimeSpan Duration { get; init; }

    public required TimeSpan Warmup { get; init; }

    public required int Rate { get; init; }

    public required int Partitions { get; init; }

    /// <summary>Gets how long the whole run took: load, drain and teardown.</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>Gets how many messages were enqueued (sequence numbers 0 to this - 1).</summary>
    public required long Produced { get; init; }

    public required long Delivered { get; init; }

    public required long FailedDeliveries { get; init; }

    /// <summary>Gets how many enqueues threw (not enqueued).</summary>
    public required long Refused { get; init; }

    /// <summary>Gets the records in the topic (sum of end offsets): more than <see cref="Delivered"/> when the cluster wrote a retried batch twice.</summary>
    public required long Records { get; init; }

    public required long Bursts { get; init; }

    /// <summary>Gets how many enqueues waited for room in the producer's queue.</summary>
    public required long BackpressureWaits { get; init; }

    public required long MaxQueued { get; init; }

    /// <summary>Gets the largest number of produced messages a group had not handled yet, at a sample during the load.</summary>
    public required long MaxBacklog { get; init; }

    /// <summary>Gets the processor time of the soak's process (producer, consumers, sampling).</summary>
    public TimeSpan ProcessorTime { get; init; }

    /// <summary>Gets the processor time of the embedded cluster's process, or <see langword="null"/> on a real cluster.</summary>
    public TimeSpan? ClusterProcessorTime { get; init; }

    public required IReadOnlyList<SoakGroupResult> Groups { get; init; }

    /// <summary>Gets the samples: one before any client, one per interval during the load, one after the drain, one after teardown.</summary>
    public required IReadOnlyList<SoakSample> Samples { get; init; }

    public required IReadOnlyList<SoakGrowth> Growth { get; init; }

    public required IReadOnlyList<SoakCheck> Checks { get; init; }

    /// <summary>Gets whether every check passed.</summary>
    public bool Passed => Checks.Count > 0 && Checks.All(c => c.Passed);
}

/// <summary>One consumer group's counts.</summary>
public sealed record SoakGroupResult(
    string Name,
    string Strategy,
    long Handled,
    long HandlerCalls,
    long Duplicates,
    long Lost,
    IReadOnlyList<long> FirstMissing,
    int Joins,
    int Leaves,
    int Aborts,
    long AssignedCallbacks,
    long RevokedCallbacks,
    long LostCallbacks,
    long CommitFailures,
    int SettleTimeouts,
    IReadOnlyList<string> Faults,
    IReadOnlyDictionary<int, long> Committed,
    IReadOnlyDictionary<int, long> EndOffsets)
{
    /// <summary>Gets the membership changes after the two base members joined.</summary>
    public int MembershipChanges => Joins - 2 + Leaves + Aborts;
}

/// <summary>One sample of the process.</summary>
/// <param name="At">Time since the run started.</param>
/// <param name="Phase"><c>before</c> (no client yet), <c>load</c>, <c>drained</c> or <c>after</c> (everything disposed).</param>
/// <param name="ManagedBytes">The managed heap after a full blocking collection (its size less fragmentation), less the groups' ledgers (one bit per message, by design).</param>
/// <param name="WorkingSetBytes">The process's resident memory.</param>
/// <param name="PrivateBytes">The process's private memory (on Linux the data segment, VmData).</param>
/// <param name="Handles">Open handles (on Linux open file descriptors, the entries of /proc/self/fd).</param>
/// <param name="Threads">The process's threads, native ones included.</param>
/// <param name="PoolThreads">The .NET thread pool's threads among them.</param>
/// <param name="Queued">The producer's queue depth.</param>
/// <param name="Produced">Messages enqueued so far.</param>
/// <param name="Handled">Distinct messages handled so far, per group.</param>
/// <param name="Members">Members now, per group.</param>
public sealed record SoakSample(
    TimeSpan At,
    string Phase,
    long ManagedBytes,
    long WorkingSetBytes,
    long PrivateBytes,
    int Handles,
    int Threads,
    int PoolThreads,
    long Queued,
    long Produced,
    IReadOnlyList<long> Handled,
    IReadOnlyList<int> Members);

/// <summary>
/// The growth of one metric over the steady state: the lowest value of the last quarter of the steady samples minus the
/// lowest value of the first quarter (a floor to floor comparison, so that a sample taken while a member is joining or a
/// backlog is buffered does not count as growth; a leak raises the floor).
/// </summary>
public sealed record SoakGrowth(string Metric, string Unit, double Start, double End, double Growth, double? Bound, double FirstSteady, double LastSteady, double Max)
{
    public bool Passed => Bound is not { } bound || Growth <= bound;

    /// <summary>Gets the unit as printed after a number (" MB", or nothing for counts).</summary>
    [JsonIgnore]
    public string Suffix => Unit.Length == 0 ? "" : " " + Unit;
}

/// <summary>One check of a soak run.</summary>
public sealed record SoakCheck(string Name, bool Passed, string Detail);
