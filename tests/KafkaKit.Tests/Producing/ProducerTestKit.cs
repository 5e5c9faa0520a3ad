using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.InteropServices;
using Confluent.Kafka;
using KafkaKit.Internal;
using KafkaKit.Producing;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Producing;

/// <summary>Shared helpers of the producer tests: topics and producers.</summary>
internal static class ProducerTestKit
{
    /// <summary>A bootstrap server where nothing listens: Build never connects, so bad-input tests need no cluster.</summary>
    public const string Unreachable = "127.0.0.1:9";

    private static int _topicCounter;

    public static string NewTopic(string prefix) => $"{prefix}-{Interlocked.Increment(ref _topicCounter)}-{Guid.NewGuid():N}";

    public static string NewName(string prefix) => $"{prefix}-{Guid.NewGuid():N}";

    /// <summary>Creates a topic on the cluster and returns its name.</summary>
    public static string NewTopic(this EmbeddedKafkaCluster cluster, string prefix, int partitions)
    {
        var topic = NewTopic(prefix);
        cluster.CreateTopic(topic, partitions, replicationFactor: 1);
        return topic;
    }

    /// <summary>Producer options for the cluster with extra librdkafka properties.</summary>
    public static KafkaProducerOptions Options(string bootstrapServers, params (string Key, string Value)[] config)
    {
        var options = new KafkaProducerOptions { BootstrapServers = bootstrapServers };
        foreach (var (key, value) in config)
        {
            options.Config[key] = value;
        }

        return options;
    }

    /// <summary>Builds a producer, optionally logging into <paramref name="logs"/>.</summary>
    public static IKafkaProducer<TKey, TValue> Build<TKey, TValue>(
        KafkaProducerOptions options, CapturingLoggerFactory? logs = null, string? name = null, Action<KafkaProducerBuilder<TKey, TValue>>? configure = null)
    {
        var builder = new KafkaProducerBuilder<TKey, TValue>(name ?? NewName("producer"), options);
        if (logs is not null)
        {
            builder.SetLoggerFactory(logs);
        }

        configure?.Invoke(builder);
        return builder.Build();
    }

    /// <summary>Gets the captured log lines of one event id.</summary>
    public static IEnumerable<CapturingLoggerFactory.LogLine> WithEventId(this CapturingLoggerFactory logs, int eventId) =>
        logs.Lines.Where(l => l.EventId.Id == eventId);

    /// <summary>
    /// Checks records of keyed sequences read back from a topic: key <c>key-k</c> carried the values 0 to
    /// <c>next[k]</c> - 1 in that order. Per key, in offset order, the first occurrences must be exactly that sequence
    /// (no loss, no reordering); repeated values are counted as duplicates (batches written twice).
    /// </summary>
    /// <returns>The duplicates, and one line per key whose first occurrences are not its sequence.</returns>
    public static (int Duplicates, List<string> Broken) CheckKeyedSequences(IEnumerable<ConsumeResult<string, long>> records, IReadOnlyList<long> next)
    {
        var duplicates = 0;
        var broken = new List<string>();
        foreach (var byKey in records.GroupBy(r => r.Message.Key))
        {
            var firsts = new List<long>();
            var seen = new HashSet<long>();
            foreach (var r in byKey.OrderBy(r => r.Offset.Value))
            {
                if (seen.Add(r.Message.Value))
                {
                    firsts.Add(r.Message.Value);
                }
                else
                {
                    duplicates++;
                }
            }

            var k = int.Parse(byKey.Key["key-".Length..], System.Globalization.CultureInfo.InvariantCulture);
            if (!firsts.SequenceEqual(Enumerable.Range(0, (int)next[k]).Select(n => (long)n)))
            {
                broken.Add($"{byKey.Key}: {firsts.Count} distinct of {next[k]}");
            }
        }

        return (duplicates, broken);
    }

    /// <summary>The delivery outcomes seen by per-message callbacks.</summary>
    public sealed class Outcomes
    {
        private readonly ConcurrentDictionary<ErrorCode, int> _byCode = new();
        private long _delivered;
        private long _failed;

        public long Delivered => Interlocked.Read(ref _delivered);

        public long Failed => Interlocked.Read(ref _failed);

        public long Total => Delivered + Failed;

        public IReadOnlyDictionary<ErrorCode, int> ByCode => _byCode;

        public void Record<TKey, TValue>(DeliveryReport<TKey, TValue> report)
        {
            _byCode.AddOrUpdate(report.Error.Code, 1, (_, n) => n + 1);
            if (report.Error.IsError)
            {
                Interlocked.Increment(ref _failed);
            }
            else
            {
                Interlocked.Increment(ref _delivered);
            }
        }

        public override string ToString() =>
            $"delivered {Delivered}, failed {Failed} ({string.Join(", ", _byCode.Select(p => $"{p.Key}={p.Value}"))})";
    }
}

/// <summary>
/// Watches delivery callbacks: which threads ran them, whether two ever overlapped, and whether the delivered offsets of
/// each partition arrived in increasing order.
/// </summary>
internal sealed class DeliveryOrderProbe(int partitions)
{
    private readonly long[] _lastOffset = Enumerable.Repeat(-1L, partitions).ToArray();
    private readonly ConcurrentDictionary<int, bool> _threads = new();
    private int _running;
    private int _overlaps;
    private int _outOfOrder;

    public int Threads => _threads.Count;

    public int Overlaps => Volatile.Read(ref _overlaps);

    public int OutOfOrder => Volatile.Read(ref _outOfOrder);

    public void Observe<TKey, TValue>(DeliveryReport<TKey, TValue> report)
    {
        if (Interlocked.Increment(ref _running) > 1)
        {
            Interlocked.Increment(ref _overlaps);
        }

        _threads.TryAdd(Environment.CurrentManagedThreadId, true);
        if (!report.Error.IsError)
        {
            var p = report.Partition.Value;
            if (report.Offset.Value <= Interlocked.Exchange(ref _lastOffset[p], report.Offset.Value))
            {
                Interlocked.Increment(ref _outOfOrder);
            }
        }

        Interlocked.Decrement(ref _running);
    }

    public override string ToString() => $"{Threads} callback thread(s), {Overlaps} overlapping callbacks, {OutOfOrder} out-of-order offsets";
}

/// <summary>Sums the measurements of one "KafkaKit" counter for one client (tag messaging.client.id).</summary>
internal sealed class CounterCapture : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly string _clientId;
    private readonly ConcurrentQueue<(long Value, string? ErrorType)> _measurements = new();

    public CounterCapture(string instrument, string clientId)
    {
        _clientId = clientId;
        _listener.InstrumentPublished = (i, l) =>
        {
            if (i.Meter.Name == "KafkaKit" && i.Name == instrument)
            {
                l.EnableMeasurementEvents(i);
            }
        };
        _listener.SetMeasurementEventCallback<long>(OnMeasurement);
        _listener.Start();
    }

    public long Sum => _measurements.Sum(m => m.Value);

    public long SumWhere(Func<string?, bool> errorType) => _measurements.Where(m => errorType(m.ErrorType)).Sum(m => m.Value);

    public void Dispose() => _listener.Dispose();

    private void OnMeasurement(Instrument instrument, long value, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? state)
    {
        string? client = null;
        string? errorType = null;
        foreach (var tag in tags)
        {
            if (tag.Key == "messaging.client.id")
            {
                client = tag.Value as string;
            }
            else if (tag.Key == "error.type")
            {
                errorType = tag.Value as string;
            }
        }

        if (client == _clientId)
        {
            _measurements.Enqueue((value, errorType));
        }
    }
}

/// <summary>
/// librdkafka's <c>rd_kafka_test_fatal_error</c>, called on a producer's own librdkafka instance: the embedded cluster
/// cannot make an idempotent producer fail fatally, so this raises a real fatal error (as a fenced or out-of-sequence
/// idempotent producer would get) inside the producer's client.
/// </summary>
internal static class FatalErrorHook
{
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate int TestFatalError(IntPtr rk, int err, [MarshalAs(UnmanagedType.LPUTF8Str)] string reason);

    /// <returns><see cref="ErrorCode.NoError"/> when raised; <see cref="ErrorCode.Local_PrevInProgress"/> when a fatal error was raised before.</returns>
    public static ErrorCode Raise<TKey, TValue>(IKafkaProducer<TKey, TValue> producer, ErrorCode code, string reason)
    {
        // Confluent.Kafka keeps the rd_kafka_t in an internal SafeHandle (as Internal/Librdkafka does for purge).
        var handle = (SafeHandle)typeof(Handle)
            .GetProperty("LibrdkafkaHandle", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic)!
            .GetValue(producer.Inner.Handle)!;
        var raise = Marshal.GetDelegateForFunctionPointer<TestFatalError>(NativeLibrary.GetExport(Librdkafka.Handle, "rd_kafka_test_fatal_error"));
        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            return (ErrorCode)raise(handle.DangerousGetHandle(), (int)code, reason);
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }
}
