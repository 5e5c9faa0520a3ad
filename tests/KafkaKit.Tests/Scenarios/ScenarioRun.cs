using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Tests.Reliability;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Scenarios;

/// <summary>
/// One scenario's run: its cluster, a topic and a group of its own, the ledger of handled messages, captured logs and
/// the run's clock. Disposing it disposes the cluster (which for a shared real broker releases nothing).
/// </summary>
internal sealed class ScenarioRun : IAsyncDisposable
{
    /// <summary>The periodic commit interval of the scenarios' members (KafkaKit's default is 5 s).</summary>
    public static readonly TimeSpan CommitInterval = TimeSpan.FromMilliseconds(500);

    private ScenarioRun(ClusterUnderTest cluster, string topic, int partitions, GroupProtocol protocol)
    {
        Protocol = protocol;
        Cluster = cluster;
        Topic = topic;
        Partitions = partitions;
        Group = ClusterUnderTest.UniqueName(topic[..topic.IndexOf('-', StringComparison.Ordinal)] + "-group");
    }

    public ClusterUnderTest Cluster { get; }

    public string Servers => Cluster.BootstrapServers;

    public string Topic { get; }

    public int Partitions { get; }

    public string Group { get; }

    /// <summary>Gets the group protocol of the run's members.</summary>
    public GroupProtocol Protocol { get; }

    public Ledger Ledger { get; } = new();

    public CapturingLoggerFactory Logs { get; } = new();

    public Stopwatch Clock { get; } = Stopwatch.StartNew();

    /// <summary>Starts a run on <paramref name="cluster"/> with a new topic named after <paramref name="name"/>.</summary>
    public static async Task<ScenarioRun> StartAsync(ClusterUnderTest cluster, string name, int partitions, GroupProtocol protocol = GroupProtocol.Classic)
    {
        try
        {
            return new ScenarioRun(cluster, await cluster.NewTopicAsync(name, partitions), partitions, protocol);
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Builds a KafkaKit member of the run's group on its topic: the cluster's consumer options, periodic commits every
    /// <see cref="CommitInterval"/>, logging into <see cref="Logs"/>, then <paramref name="configure"/>.
    /// </summary>
    public KafkaConsumer<string, TValue> Member<TValue>(
        string name, Func<ConsumeResult<string, TValue>, CancellationToken, ValueTask> handler, Action<KafkaConsumerOptions>? configure = null)
    {
        var options = Cluster.ConsumerOptions(Group, Topic, Protocol);
        options.CommitInterval = CommitInterval;
        configure?.Invoke(options);
        return new KafkaConsumerBuilder<string, TValue>(name, options).SetHandler(handler).SetLoggerFactory(Logs).Build();
    }

    /// <summary>Starts the members and waits until they share the partitions (see <see cref="WaitForSettledAsync"/>).</summary>
    public async Task StartSettledAsync(params KafkaConsumer<string, string>[] members)
    {
        foreach (var member in members)
        {
            await member.StartAsync();
        }

        await WaitForSettledAsync([.. members.Select(m => (Func<int>)(() => m.Assignment.Count))]);
    }

    /// <summary>Waits until the members together own all partitions and each owns at least one.</summary>
    /// <param name="owned">Per member: how many partitions it owns now.</param>
    public Task WaitForSettledAsync(params Func<int>[] owned) =>
        Wait.ForAsync(
            () => owned.All(o => o() > 0) && owned.Sum(o => o()) == Partitions,
            Cluster.GroupChangeTimeout,
            $"the {owned.Length} members share the {Partitions} partitions");

    /// <summary>Starts a numbered stream into the run's topic (see <see cref="NumberedStream"/>).</summary>
    public NumberedStream Stream(Func<long, string>? value = null) => new(Servers, Topic, Partitions, value);

    /// <summary>
    /// Stops the stream (every message delivered), waits until the ledger holds every message and the group's committed
    /// offsets reach the end offsets.
    /// </summary>
    public async Task<StreamEnd> DrainAsync(NumberedStream stream)
    {
        var produced = await stream.StopAsync();
        await Wait.ForAsync(() => Ledger.Missing(produced).Count == 0, TimeSpan.FromSeconds(60), $"every one of {produced} messages handled");
        var (committed, ends) = await ReliabilityKit.WaitForCommittedAtEndAsync(Servers, Group, Topic, Partitions, TimeSpan.FromSeconds(60));
        return new StreamEnd(produced, committed, ends, Ledger.Missing(produced).Count);
    }

    /// <summary>Reads the group's committed offsets now.</summary>
    public Dictionary<int, long> Committed() => KafkaProbe.Committed(Servers, Group, Topic, Partitions);

    /// <summary>Counts the captured log lines of fatal errors, rebalance callback failures and stops on error (2006, 2013, 2018).</summary>
    public int Failures() => Logs.Count(2006) + Logs.Count(2013) + Logs.Count(2018);

    /// <summary>
    /// Writes the scenario's one result row to the test output:
    /// <c>SCENARIO | cluster | scenario | produced | handled | duplicates | dead-lettered | lost | seconds</c>
    /// (handled = distinct messages handled, or read back for a producer scenario; duplicates = handler completions
    /// beyond the first, or records written twice).
    /// </summary>
    public void Row(string scenario, long produced, long handled, long duplicates, long deadLettered, long lost) =>
        TestContext.Out.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"SCENARIO | {Cluster.Name} | {scenario} | {produced} | {handled} | {duplicates} | {deadLettered} | {lost} | {Clock.Elapsed.TotalSeconds:F1}"));

    /// <summary>Writes the row of a consumer scenario from the ledger.</summary>
    public void Row(string scenario, StreamEnd end, long deadLettered = 0) =>
        Row(scenario, end.Produced, Ledger.Distinct, Ledger.Duplicates, deadLettered, end.Lost);

    /// <summary>
    /// The expectation on duplicates the cluster allows: none where the brokers deduplicate an idempotent producer's
    /// retried batches, otherwise counted (any number).
    /// </summary>
    public NUnit.Framework.Constraints.IResolveConstraint AllowedDuplicates() =>
        Cluster.DeduplicatesRetriedBatches ? Is.Zero : Is.GreaterThanOrEqualTo(0);

    public ValueTask DisposeAsync() => Cluster.DisposeAsync();

    /// <summary>Waits (without sleeping a fixed time) until <paramref name="duration"/> has passed since <paramref name="since"/>.</summary>
    public static Task LastsAsync(Stopwatch since, TimeSpan duration, string what) =>
        Wait.ForAsync(() => since.Elapsed >= duration, duration + TimeSpan.FromSeconds(5), what);
}

/// <summary>How a drained stream ended: messages produced, the group's committed and the topic's end offsets, messages lost.</summary>
internal sealed record StreamEnd(long Produced, Dictionary<int, long> Committed, Dictionary<int, long> Ends, int Lost);

/// <summary>
/// Watches the order in which a handler sees messages: per partition the offsets must increase, and per key the
/// sequence numbers carried in the values must increase.
/// </summary>
internal sealed class HandlingOrder
{
    private readonly Dictionary<int, long> _lastOffset = [];
    private readonly Dictionary<string, long> _lastSeq = new(StringComparer.Ordinal);
    private readonly List<string> _violations = [];

    /// <summary>Gets the first violations seen (at most 20), as text.</summary>
    public IReadOnlyList<string> Violations
    {
        get
        {
            lock (_violations)
            {
                return [.. _violations];
            }
        }
    }

    public void Observe(int partition, long offset, string key, long seq)
    {
        lock (_violations)
        {
            if (_lastOffset.TryGetValue(partition, out var last) && offset <= last)
            {
                Add($"p{partition}: offset {offset} after {last}");
            }

            if (_lastSeq.TryGetValue(key, out var lastSeq) && seq <= lastSeq)
            {
                Add($"key {key}: {seq} after {lastSeq}");
            }

            _lastOffset[partition] = offset;
            _lastSeq[key] = seq;
        }
    }

    private void Add(string violation)
    {
        if (_violations.Count < 20)
        {
            _violations.Add(violation);
        }
    }
}
