using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Producing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Consuming;

/// <summary>Options, message factories and recorders shared by the consumer tests.</summary>
internal static class ConsumerTestKit
{
    /// <summary>A bootstrap server where nothing listens (the producer tests' one): Build never connects.</summary>
    public const string Unreachable = ProducerTestKit.Unreachable;

    /// <summary>Consumer options for the embedded cluster: fast group settings (KafkaProbe.FastGroup), the given topics.</summary>
    public static KafkaConsumerOptions Options(EmbeddedKafkaCluster cluster, string group, params string[] topics) =>
        Options(cluster.BootstrapServers, group, topics);

    /// <summary>
    /// Consumer options with <paramref name="protocol"/>: for <see cref="GroupProtocol.Classic"/> as above; for
    /// <see cref="GroupProtocol.Consumer"/> without the client's session settings (the protocol refuses them), the cluster
    /// given the same timings instead (KafkaProbe.FastConsumerGroups).
    /// </summary>
    public static KafkaConsumerOptions Options(EmbeddedKafkaCluster cluster, string group, GroupProtocol protocol, params string[] topics)
    {
        var options = Options(cluster, group, topics);
        UseProtocol(cluster, options, protocol);
        return options;
    }

    /// <summary>Switches options made by <see cref="Options(EmbeddedKafkaCluster, string, string[])"/> to <paramref name="protocol"/> (see the overload above).</summary>
    public static void UseProtocol(EmbeddedKafkaCluster cluster, KafkaConsumerOptions options, GroupProtocol protocol)
    {
        options.GroupProtocol = protocol;
        if (protocol == GroupProtocol.Consumer)
        {
            options.Config.Remove("session.timeout.ms");
            options.Config.Remove("heartbeat.interval.ms");
            KafkaProbe.FastConsumerGroups(cluster);
        }
    }

    /// <summary>Consumer options for an embedded cluster known by its bootstrap servers (for example from another process).</summary>
    public static KafkaConsumerOptions Options(string bootstrapServers, string group, params string[] topics)
    {
        var options = new KafkaConsumerOptions { BootstrapServers = bootstrapServers, GroupId = group };
        foreach (var topic in topics)
        {
            options.Topics.Add(topic);
        }

        KafkaProbe.FastGroup(options.Config);
        return options;
    }

    /// <summary>Messages with values <c>prefix0</c>..<c>prefix(n-1)</c>.</summary>
    public static IEnumerable<Message<string, string>> Messages(string prefix, int count, int start = 0) =>
        Enumerable.Range(start, count).Select(i => new Message<string, string> { Key = prefix, Value = prefix + i.ToString(CultureInfo.InvariantCulture) });

    private static readonly TimeSpan CommittedProbeInterval = TimeSpan.FromMilliseconds(200);

    /// <summary>Waits until the group's committed offsets satisfy <paramref name="condition"/>, probing every 200 ms.</summary>
    public static Task<Dictionary<int, long>> WaitForCommittedAsync(
        EmbeddedKafkaCluster cluster, string group, string topic, int partitions, Func<Dictionary<int, long>, bool> condition, TimeSpan timeout, string what) =>
        WaitForCommittedAsync(cluster.BootstrapServers, group, topic, partitions, condition, timeout, what);

    /// <summary>Waits until the group's committed offsets satisfy <paramref name="condition"/>, probing every 200 ms.</summary>
    public static async Task<Dictionary<int, long>> WaitForCommittedAsync(
        string bootstrapServers, string group, string topic, int partitions, Func<Dictionary<int, long>, bool> condition, TimeSpan timeout, string what)
    {
        var deadline = Stopwatch.StartNew();
        var committed = KafkaProbe.Committed(bootstrapServers, group, topic, partitions);
        while (!condition(committed))
        {
            if (deadline.Elapsed >= timeout)
            {
                Assert.Fail($"Timed out after {timeout.TotalSeconds:F0} s waiting for committed offsets: {what}; last read {Format(committed)}");
            }

            await Task.Delay(CommittedProbeInterval, TestContext.CurrentContext.CancellationToken); // a poll interval, not a sleep
            committed = KafkaProbe.Committed(bootstrapServers, group, topic, partitions);
        }

        return committed;
    }

    public static string Format<TValue>(IReadOnlyDictionary<int, TValue> byPartition) =>
        string.Join(", ", byPartition.OrderBy(p => p.Key).Select(p => $"p{p.Key}={p.Value}"));

    /// <summary>Raises <paramref name="target"/> to <paramref name="value"/> if that is higher (any thread; for a high-water mark such as calls in flight).</summary>
    public static void InterlockedMax(ref int target, int value)
    {
        var seen = Volatile.Read(ref target);
        while (value > seen)
        {
            var before = Interlocked.CompareExchange(ref target, value, seen);
            if (before == seen)
            {
                return;
            }

            seen = before;
        }
    }
}

/// <summary>One handler call as a test saw it.</summary>
internal sealed record HandledMessage(string Consumer, string Topic, int Partition, long Offset, string? Value, TimeSpan At);

/// <summary>One rebalance callback as a test saw it.</summary>
internal sealed record RebalanceEvent(string Consumer, string Kind, int[] Partitions, TimeSpan At);

/// <summary>Records handler calls and rebalance callbacks of one or more consumers, with times from one clock.</summary>
internal sealed class ConsumerRecorder
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public ConcurrentQueue<HandledMessage> Handled { get; } = new();

    public ConcurrentQueue<RebalanceEvent> Events { get; } = new();

    public TimeSpan Now => _clock.Elapsed;

    public void Record<TKey>(string consumer, ConsumeResult<TKey, string> result) =>
        Handled.Enqueue(new HandledMessage(consumer, result.Topic, result.Partition.Value, result.Offset.Value, result.Message.Value, _clock.Elapsed));

    public List<HandledMessage> HandledBy(string consumer) => [.. Handled.Where(h => h.Consumer == consumer)];

    public List<RebalanceEvent> EventsOf(string consumer, string kind) => [.. Events.Where(e => e.Consumer == consumer && e.Kind == kind)];

    /// <summary>Writes everything recorded, and the captured log lines, to the test output (for failure diagnosis).</summary>
    public void Dump(CapturingLoggerFactory? logs = null)
    {
        var lines = Handled.Select(h => (h.At, $"handled {h.Consumer} p{h.Partition}@{h.Offset} {h.Value}"))
            .Concat(Events.Select(e => (e.At, $"{e.Kind} {e.Consumer} [{string.Join(",", e.Partitions)}]")))
            .OrderBy(l => l.At);
        foreach (var (at, text) in lines)
        {
            TestContext.Out.WriteLine($"{at.TotalSeconds,8:F3} {text}");
        }

        foreach (var line in logs?.Lines ?? [])
        {
            TestContext.Out.WriteLine($"log {line.Level} {line.EventId.Id} {line.Message} {line.Exception?.GetType().Name}");
        }
    }

    /// <summary>Registers assigned/revoked/lost callbacks that record into <see cref="Events"/>.</summary>
    public KafkaConsumerBuilder<TKey, TValue> Attach<TKey, TValue>(KafkaConsumerBuilder<TKey, TValue> builder, string consumer) => builder
        .SetPartitionsAssignedHandler(partitions =>
        {
            Events.Enqueue(new RebalanceEvent(consumer, "assigned", [.. partitions.Select(p => p.Partition.Value)], _clock.Elapsed));
            return null;
        })
        .SetPartitionsRevokedHandler(partitions => Events.Enqueue(new RebalanceEvent(consumer, "revoked", [.. partitions.Select(p => p.Partition.Value)], _clock.Elapsed)))
        .SetPartitionsLostHandler(partitions => Events.Enqueue(new RebalanceEvent(consumer, "lost", [.. partitions.Select(p => p.Partition.Value)], _clock.Elapsed)));
}

/// <summary>
/// Produces numbered messages (value = sequence number, keys spread over partitions) at a steady pace from a background
/// task until stopped; every message is confirmed delivered at <see cref="StopAsync"/>.
/// </summary>
internal sealed class SteadyProducer : IAsyncDisposable
{
    private readonly IProducer<string, string> _producer;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _run;
    private long _produced;
    private long _failed;

    public SteadyProducer(EmbeddedKafkaCluster cluster, string topic, int messagesPerTick = 2, TimeSpan? tick = null)
    {
        _producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = cluster.BootstrapServers, LingerMs = 5 })
            .SetLogHandler(static (_, _) => { })
            .Build();
        _run = RunAsync(topic, messagesPerTick, tick ?? TimeSpan.FromMilliseconds(10));
    }

    /// <summary>Gets how many messages were handed to the producer so far (values 0 to this - 1).</summary>
    public long Produced => Interlocked.Read(ref _produced);

    /// <summary>Stops producing and waits until every message is delivered.</summary>
    /// <returns>The number of messages produced (values 0 to this - 1).</returns>
    public async Task<long> StopAsync()
    {
        await _stop.CancelAsync();
        await _run;
        if (_producer.Flush(TimeSpan.FromSeconds(30)) != 0 || Interlocked.Read(ref _failed) != 0)
        {
            Assert.Fail($"the steady producer could not deliver every message ({Interlocked.Read(ref _failed)} failed)");
        }

        return Produced;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await _stop.CancelAsync();
        }

        await _run;
        _producer.Dispose();
        _stop.Dispose();
    }

    private async Task RunAsync(string topic, int messagesPerTick, TimeSpan tick)
    {
        using var timer = new PeriodicTimer(tick);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                for (var i = 0; i < messagesPerTick; i++)
                {
                    var n = Interlocked.Read(ref _produced).ToString(CultureInfo.InvariantCulture);
                    _producer.Produce(topic, new Message<string, string> { Key = "k" + n, Value = n }, report =>
                    {
                        if (report.Error.IsError)
                        {
                            Interlocked.Increment(ref _failed);
                        }
                    });
                    Interlocked.Increment(ref _produced);
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // stopped
        }
    }
}

/// <summary>
/// Reads a group's committed offsets at a fixed interval from a background task until stopped, and records every
/// partition whose committed offset moved backwards between two samples.
/// </summary>
internal sealed class CommittedOffsetsSampler : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<string> _decreases = new();
    private readonly Task _run;
    private int _samples;

    public CommittedOffsetsSampler(string bootstrapServers, string group, string topic, int partitions, TimeSpan interval) =>
        _run = Task.Run(() => RunAsync(bootstrapServers, group, topic, partitions, interval));

    /// <summary>Gets how many samples were read so far.</summary>
    public int Samples => Volatile.Read(ref _samples);

    /// <summary>Gets the moves backwards seen so far, as <c>pN: before -> after at sample S</c>.</summary>
    public IReadOnlyCollection<string> Decreases => _decreases;

    /// <summary>Stops sampling and waits for the background task.</summary>
    public async Task StopAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await _stop.CancelAsync();
        }

        await _run;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _stop.Dispose();
    }

    private async Task RunAsync(string bootstrapServers, string group, string topic, int partitions, TimeSpan interval)
    {
        var highest = new Dictionary<int, long>();
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                var committed = KafkaProbe.Committed(bootstrapServers, group, topic, partitions);
                var sample = Interlocked.Increment(ref _samples);
                foreach (var (partition, offset) in committed)
                {
                    if (highest.TryGetValue(partition, out var before) && offset < before)
                    {
                        _decreases.Enqueue($"p{partition}: {before} -> {offset} at sample {sample}");
                    }

                    highest[partition] = Math.Max(offset, highest.GetValueOrDefault(partition, long.MinValue));
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // stopped
        }
    }
}
