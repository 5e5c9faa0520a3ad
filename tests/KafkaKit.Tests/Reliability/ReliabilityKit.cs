using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Producing;
using KafkaKit.Testing;
using KafkaKit.Tests.Consuming;
using KafkaKit.Tests.Producing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Reliability;

/// <summary>Shared pieces of the reliability scenarios: the result row, the ledger of handled messages, a numbered stream.</summary>
internal static class ReliabilityKit
{
    /// <summary>The NUnit category of the reliability suite (<c>--filter Category=Reliability</c>).</summary>
    public const string Category = "Reliability";

    /// <summary>
    /// Writes the scenario's one result row to the test output, in the fixed format
    /// <c>RELIABILITY | scenario | produced | handled | duplicates | dead-lettered | lost | seconds</c>
    /// (handled = distinct messages handled at least once; duplicates = handler completions beyond the first).
    /// </summary>
    public static void Row(string scenario, long produced, long handled, long duplicates, long deadLettered, long lost, TimeSpan elapsed) =>
        TestContext.Out.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"RELIABILITY | {scenario} | {produced} | {handled} | {duplicates} | {deadLettered} | {lost} | {elapsed.TotalSeconds:F1}"));

    /// <summary>Consumer options on the embedded cluster with fast group settings and quick periodic commits.</summary>
    public static KafkaConsumerOptions ConsumerOptions(EmbeddedKafkaCluster cluster, string group, string topic) =>
        ConsumerOptions(cluster.BootstrapServers, group, topic);

    /// <summary>As <see cref="ConsumerOptions(EmbeddedKafkaCluster, string, string)"/>, for a cluster known by its bootstrap servers.</summary>
    public static KafkaConsumerOptions ConsumerOptions(string bootstrapServers, string group, string topic)
    {
        var options = ConsumerTestKit.Options(bootstrapServers, group, topic);
        options.CommitInterval = TimeSpan.FromMilliseconds(500);
        options.Config["reconnect.backoff.max.ms"] = "1000"; // reconnect within a second of a broker coming back
        return options;
    }

    /// <summary>Waits until the group's committed offsets equal the topic's end offsets; returns both.</summary>
    public static Task<(Dictionary<int, long> Committed, Dictionary<int, long> Ends)> WaitForCommittedAtEndAsync(
        EmbeddedKafkaCluster cluster, string group, string topic, int partitions, TimeSpan timeout) =>
        WaitForCommittedAtEndAsync(cluster.BootstrapServers, group, topic, partitions, timeout);

    /// <summary>Waits until the group's committed offsets equal the topic's end offsets; returns both.</summary>
    public static async Task<(Dictionary<int, long> Committed, Dictionary<int, long> Ends)> WaitForCommittedAtEndAsync(
        string bootstrapServers, string group, string topic, int partitions, TimeSpan timeout)
    {
        var ends = KafkaProbe.EndOffsets(bootstrapServers, topic, partitions);
        var committed = await ConsumerTestKit.WaitForCommittedAsync(
            bootstrapServers, group, topic, partitions, c => ends.All(e => c[e.Key] == e.Value), timeout, $"committed offsets reach the end offsets {ConsumerTestKit.Format(ends)}");
        return (committed, ends);
    }

    /// <summary>Parses a message key or value that carries its sequence number as decimal text.</summary>
    public static long Seq(string? text) => long.Parse(text!, NumberStyles.Integer, CultureInfo.InvariantCulture);
}

/// <summary>Counts handler completions per sequence number: distinct, duplicates and what was never handled.</summary>
internal sealed class Ledger
{
    private readonly ConcurrentDictionary<long, int> _handled = new();
    private long _calls;

    /// <summary>Gets the number of distinct messages handled at least once.</summary>
    public int Distinct => _handled.Count;

    /// <summary>Gets the number of completed handler calls.</summary>
    public long Calls => Interlocked.Read(ref _calls);

    /// <summary>Gets the completions beyond the first of each message.</summary>
    public long Duplicates => Calls - Distinct;

    public void Record(long seq)
    {
        _handled.AddOrUpdate(seq, 1, static (_, n) => n + 1);
        Interlocked.Increment(ref _calls);
    }

    public bool Contains(long seq) => _handled.ContainsKey(seq);

    /// <summary>Gets the sequence numbers in 0..<paramref name="produced"/>-1 that were neither handled nor in <paramref name="elsewhere"/>.</summary>
    public List<long> Missing(long produced, IReadOnlySet<long>? elsewhere = null)
    {
        var missing = new List<long>();
        for (var seq = 0L; seq < produced; seq++)
        {
            if (!_handled.ContainsKey(seq) && !(elsewhere?.Contains(seq) ?? false))
            {
                missing.Add(seq);
            }
        }

        return missing;
    }
}

/// <summary>
/// Produces numbered messages from a background task at a steady pace with a raw Confluent producer (the consumer is
/// the system under test): message n has key n (decimal text), the value <c>value(n)</c> and goes to partition
/// n % partitions, so every partition receives the stream in order. With <c>keys</c> above 0, message n has the key
/// <c>k{n % keys}</c> instead and goes to partition (n % keys) % partitions (each key in one partition; the value
/// carries the sequence number). <see cref="StopAsync"/> confirms every delivery.
/// </summary>
internal sealed class NumberedStream : IAsyncDisposable
{
    private readonly IProducer<string, string> _producer;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _run;
    private readonly int _partitions;
    private readonly int _keys;
    private long _produced;
    private long _failed;

    public NumberedStream(EmbeddedKafkaCluster cluster, string topic, int partitions, Func<long, string>? value = null, int messagesPerTick = 2, TimeSpan? tick = null, int keys = 0)
        : this(cluster.BootstrapServers, topic, partitions, value, messagesPerTick, tick, keys)
    {
    }

    public NumberedStream(string bootstrapServers, string topic, int partitions, Func<long, string>? value = null, int messagesPerTick = 2, TimeSpan? tick = null, int keys = 0)
    {
        _partitions = partitions;
        _keys = keys;
        _producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = bootstrapServers, LingerMs = 5 })
            .SetLogHandler(static (_, _) => { })
            .Build();
        _run = RunAsync(topic, value ?? (n => n.ToString(CultureInfo.InvariantCulture)), messagesPerTick, tick ?? TimeSpan.FromMilliseconds(10));
    }

    /// <summary>Gets how many messages were handed to the producer so far (sequence numbers 0 to this - 1).</summary>
    public long Produced => Interlocked.Read(ref _produced);

    /// <summary>Gets the partition of message <paramref name="seq"/>.</summary>
    public int PartitionOf(long seq) => (int)((_keys > 0 ? seq % _keys : seq) % _partitions);

    /// <summary>Gets the key of message <paramref name="seq"/>.</summary>
    public string KeyOf(long seq) => _keys > 0 ? "k" + (seq % _keys).ToString(CultureInfo.InvariantCulture) : seq.ToString(CultureInfo.InvariantCulture);

    /// <summary>Stops producing and waits until every message is delivered.</summary>
    /// <returns>The number of messages produced.</returns>
    public async Task<long> StopAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await _stop.CancelAsync();
        }

        await _run;
        var undelivered = await Task.Run(() => _producer.Flush(TimeSpan.FromSeconds(60)));
        if (undelivered != 0 || Interlocked.Read(ref _failed) != 0)
        {
            Assert.Fail($"the test's stream could not deliver every message ({undelivered} undelivered, {Interlocked.Read(ref _failed)} failed)");
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

    private async Task RunAsync(string topic, Func<long, string> value, int messagesPerTick, TimeSpan tick)
    {
        await Task.Yield();
        using var timer = new PeriodicTimer(tick);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                for (var i = 0; i < messagesPerTick; i++)
                {
                    var n = Interlocked.Read(ref _produced);
                    _producer.Produce(
                        new TopicPartition(topic, PartitionOf(n)),
                        new Message<string, string> { Key = KeyOf(n), Value = value(n) },
                        report =>
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
/// Enqueues numbered messages through a KafkaKit producer (the system under test) from a background task at a steady
/// pace: message n has the value n (decimal text) and the key <c>key(n)</c>; every outcome goes to
/// <see cref="Outcomes"/>. Waits for room like any caller (Backpressure = Wait).
/// </summary>
internal sealed class EnqueueStream : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _run;
    private long _sent;

    public EnqueueStream(IKafkaProducer<string, string> producer, string topic, Func<long, string> key, int messagesPerTick = 2, TimeSpan? tick = null)
    {
        _run = Task.Run(() => RunAsync(producer, topic, key, messagesPerTick, tick ?? TimeSpan.FromMilliseconds(10)));
    }

    /// <summary>Gets the delivery outcomes of the messages enqueued so far.</summary>
    public ProducerTestKit.Outcomes Outcomes { get; } = new();

    /// <summary>Gets how many messages were enqueued so far (values 0 to this - 1).</summary>
    public long Sent => Interlocked.Read(ref _sent);

    /// <summary>Stops enqueueing (an enqueue waiting for room finishes first).</summary>
    /// <returns>The number of messages enqueued.</returns>
    public async Task<long> StopAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await _stop.CancelAsync();
        }

        await _run;
        return Sent;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _stop.Dispose();
    }

    private async Task RunAsync(IKafkaProducer<string, string> producer, string topic, Func<long, string> key, int messagesPerTick, TimeSpan tick)
    {
        using var pace = new PeriodicTimer(tick);
        try
        {
            while (await pace.WaitForNextTickAsync(_stop.Token))
            {
                for (var i = 0; i < messagesPerTick; i++)
                {
                    var n = Interlocked.Read(ref _sent);
                    await producer.EnqueueAsync(topic, new Message<string, string> { Key = key(n), Value = n.ToString(CultureInfo.InvariantCulture) }, Outcomes.Record, CancellationToken.None);
                    Interlocked.Increment(ref _sent);
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // stopped
        }
    }
}
