using System.Collections.Concurrent;
using System.Globalization;
using Confluent.Kafka;
using KafkaKit.Consuming;
using PartitionAssignmentStrategy = KafkaKit.Consuming.PartitionAssignmentStrategy;

namespace KafkaKit.Soak;

/// <summary>
/// One consumer group of a soak run whose membership churns: it starts with two members, then repeats
/// join, leave (graceful <see cref="KafkaConsumer{TKey, TValue}.StopAsync"/>), join, abort, each after the previous
/// rebalance settled and the group consumed steadily for a pause. The member that leaves or aborts is the oldest, so every
/// member is replaced in turn. Every handled message is recorded in the group's ledger.
/// </summary>
/// <remarks>
/// Abort: <see cref="KafkaConsumer{TKey, TValue}.StopAsync"/> with an already-cancelled token, then dispose. Running
/// handlers are cancelled at once, nothing is drained, the final commit is tried once: what a process that is being killed
/// gets done. (KafkaKit still leaves the group; a member that never leaves, as after a real crash, is the crash scenario of
/// the reliability suite.)
/// </remarks>
internal sealed class SoakGroup
{
    private const int BaseMembers = 2;
    private static readonly ChurnAction[] Script = [ChurnAction.Join, ChurnAction.Leave, ChurnAction.Join, ChurnAction.Abort];
    private static readonly TimeSpan SettlePoll = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan SettleTimeout = TimeSpan.FromSeconds(60);

    private readonly string _bootstrapServers;
    private readonly string _topic;
    private readonly int _partitions;
    private readonly SoakLog _log;
    private readonly List<KafkaConsumer<string, string>> _members = [];
    private readonly ConcurrentQueue<string> _faults = new();
    private int _created;
    private long _assigned;
    private long _revoked;
    private long _lost;
    private long _commitFailuresOfGone;

    public SoakGroup(string name, PartitionAssignmentStrategy strategy, string groupId, string bootstrapServers, string topic, int partitions, SoakLog log)
    {
        Name = name;
        Strategy = strategy;
        GroupId = groupId;
        _bootstrapServers = bootstrapServers;
        _topic = topic;
        _partitions = partitions;
        _log = log;
    }

    private enum ChurnAction
    {
        Join,
        Leave,
        Abort,
    }

    public string Name { get; }

    public PartitionAssignmentStrategy Strategy { get; }

    public string GroupId { get; }

    public HandledLedger Ledger { get; } = new();

    public int Joins { get; private set; }

    public int Leaves { get; private set; }

    public int Aborts { get; private set; }

    /// <summary>Gets how often a membership change was followed by a rebalance that did not settle within 60 s.</summary>
    public int SettleTimeouts { get; private set; }

    public long AssignedCallbacks => Interlocked.Read(ref _assigned);

    public long RevokedCallbacks => Interlocked.Read(ref _revoked);

    public long LostCallbacks => Interlocked.Read(ref _lost);

    /// <summary>Gets the members' failed commits (refused during rebalances on the embedded cluster; logged and retried by the next commit).</summary>
    public long CommitFailures
    {
        get
        {
            lock (_members)
            {
                return Interlocked.Read(ref _commitFailuresOfGone) + _members.Sum(m => m.CommitFailures);
            }
        }
    }

    /// <summary>Gets the members' faults and unexpected end states, described.</summary>
    public IReadOnlyCollection<string> Faults => _faults;

    /// <summary>Gets the number of members now.</summary>
    public int Members
    {
        get
        {
            lock (_members)
            {
                return _members.Count;
            }
        }
    }

    /// <summary>Gets whether every partition is assigned and every member owns some (each rebalance finished).</summary>
    public bool Settled
    {
        get
        {
            lock (_members)
            {
                var owned = _members.Select(m => m.Assignment.Count).ToArray();
                return owned.Sum() == _partitions && owned.All(n => n > 0 || _members.Count > _partitions);
            }
        }
    }

    /// <summary>Starts the two base members.</summary>
    public async Task StartAsync()
    {
        for (var i = 0; i < BaseMembers; i++)
        {
            await JoinAsync();
        }
    }

    /// <summary>Changes the membership by the script until <paramref name="cancellationToken"/> is cancelled.</summary>
    /// <param name="output">Where each change is reported.</param>
    /// <param name="clock">The run's clock, for the report.</param>
    /// <param name="pause">How long the group consumes steadily between a settled rebalance and the next change.</param>
    /// <param name="cancellationToken">Ends the churn; a change under way is completed first.</param>
    public async Task ChurnAsync(TextWriter output, Func<TimeSpan> clock, TimeSpan pause, CancellationToken cancellationToken)
    {
        try
        {
            for (var step = 0; ; step++)
            {
                await WaitSettledAsync(cancellationToken);
                await Task.Delay(pause, cancellationToken); // steady consumption between two changes (load pacing, not a wait for a condition)
                var action = Script[step % Script.Length];
                var before = Members;
                await (action switch
                {
                    ChurnAction.Join => JoinAsync(),
                    ChurnAction.Leave => LeaveAsync(abort: false),
                    _ => LeaveAsync(abort: true),
                });
                await output.WriteLineAsync($"{clock().TotalSeconds,7:F1}s {Name}: {action.ToString().ToLowerInvariant()} ({before} -> {Members} members)");
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // the load phase is over
        }
    }

    /// <summary>Waits until the group settled, or 60 s (counted in <see cref="SettleTimeouts"/>).</summary>
    public async Task WaitSettledAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(SettleTimeout);
        using var poll = new PeriodicTimer(SettlePoll);
        try
        {
            while (!Settled)
            {
                await poll.WaitForNextTickAsync(timeout.Token);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            SettleTimeouts++;
        }
    }

    /// <summary>Stops every member gracefully, all at once, and checks how each ended.</summary>
    public async Task StopAllAsync()
    {
        KafkaConsumer<string, string>[] members;
        lock (_members)
        {
            members = [.. _members];
        }

        await Task.WhenAll(members.Select(m => m.StopAsync()));
        foreach (var member in members)
        {
            await RemoveAsync(member);
        }
    }

    private async Task JoinAsync()
    {
        var name = string.Create(CultureInfo.InvariantCulture, $"{Name}-{++_created}");
        var options = new KafkaConsumerOptions
        {
            BootstrapServers = _bootstrapServers,
            GroupId = GroupId,
            AssignmentStrategy = Strategy,
            CommitInterval = TimeSpan.FromMilliseconds(500),
            RevokeTimeout = TimeSpan.FromSeconds(2),
            ShutdownTimeout = TimeSpan.FromSeconds(10),
        };
        options.Topics.Add(_topic);

        // The embedded cluster completes a rebalance only after session.timeout.ms - 1 s: keep it at a broker's minimum.
        options.Config["session.timeout.ms"] = "6000";
        options.Config["heartbeat.interval.ms"] = "500";
        var member = new KafkaConsumerBuilder<string, string>(name, options)
            .SetLoggerFactory(_log)
            .SetHandler(HandleAsync)
            .SetPartitionsAssignedHandler(_ =>
            {
                Interlocked.Increment(ref _assigned);
                return null;
            })
            .SetPartitionsRevokedHandler(_ => Interlocked.Increment(ref _revoked))
            .SetPartitionsLostHandler(_ => Interlocked.Increment(ref _lost))
            .Build();
        lock (_members)
        {
            _members.Add(member);
        }

        await member.StartAsync();
        Joins++;
    }

    private async Task LeaveAsync(bool abort)
    {
        KafkaConsumer<string, string> oldest;
        lock (_members)
        {
            if (_members.Count <= 1)
            {
                return; // the group keeps at least one member
            }

            oldest = _members[0];
        }

        if (abort)
        {
            using var killed = new CancellationTokenSource();
            await killed.CancelAsync();
            await oldest.StopAsync(killed.Token); // returns at once; the poll thread finishes on its own
            Aborts++;
        }
        else
        {
            await oldest.StopAsync();
            Leaves++;
        }

        await RemoveAsync(oldest);
    }

    private async Task RemoveAsync(KafkaConsumer<string, string> member)
    {
        await member.DisposeAsync(); // after an abort: waits for the poll thread's last commit and Close()
        lock (_members)
        {
            _members.Remove(member);
            Interlocked.Add(ref _commitFailuresOfGone, member.CommitFailures);
        }

        if (member.Fault is not null || member.State != KafkaConsumerState.Stopped)
        {
            _faults.Enqueue($"{member.Name} ended {member.State}: {member.Fault?.Message ?? "no fault recorded"}");
        }
    }

    private async ValueTask HandleAsync(ConsumeResult<string, string> result, CancellationToken cancellationToken)
    {
        var seq = long.Parse(result.Message.Key, NumberStyles.None, CultureInfo.InvariantCulture);
        if (seq % 64 == 0)
        {
            await Task.Delay(1, cancellationToken); // a short I/O stand-in, so some calls are in flight when a member goes
        }

        Ledger.Record(seq);
    }
}
