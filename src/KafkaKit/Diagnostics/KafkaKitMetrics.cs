using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace KafkaKit.Diagnostics;

/// <summary>The instruments of the "KafkaKit" meter (names after the OpenTelemetry messaging conventions where one exists).</summary>
internal static class KafkaKitMetrics
{
    public const string MeterName = "KafkaKit";

    private static readonly Meter Meter = new(MeterName, typeof(KafkaKitMetrics).Assembly.GetName().Version?.ToString());

    /// <summary>messaging.client.sent.messages: messages whose delivery was reported, tagged with topic and error.type on failure.</summary>
    public static readonly Counter<long> SentMessages = Meter.CreateCounter<long>(
        "messaging.client.sent.messages", "{message}", "Messages whose delivery outcome was reported (error.type set when it failed).");

    /// <summary>messaging.client.consumed.messages: messages handed to a handler.</summary>
    public static readonly Counter<long> ConsumedMessages = Meter.CreateCounter<long>(
        "messaging.client.consumed.messages", "{message}", "Messages delivered to a handler.");

    /// <summary>messaging.process.duration: handler run time, seconds.</summary>
    public static readonly Histogram<double> ProcessDuration = Meter.CreateHistogram<double>(
        "messaging.process.duration", "s", "Duration of one handler call.");

    /// <summary>kafkakit.consumer.batch.size: messages in each batch handed to a batch handler.</summary>
    public static readonly Histogram<long> BatchSize = Meter.CreateHistogram<long>(
        "kafkakit.consumer.batch.size", "{message}", "Messages in one batch handed to a batch handler.");

    /// <summary>kafkakit.producer.callback.errors: exceptions thrown by user delivery callbacks.</summary>
    public static readonly Counter<long> CallbackErrors = Meter.CreateCounter<long>(
        "kafkakit.producer.callback.errors", "{exception}", "Exceptions thrown by delivery callbacks (logged, not propagated).");

    /// <summary>kafkakit.producer.backpressure.wait: time an enqueue waited for room, seconds.</summary>
    public static readonly Histogram<double> BackpressureWait = Meter.CreateHistogram<double>(
        "kafkakit.producer.backpressure.wait", "s", "Time an enqueue waited for room in the local queue.");

    /// <summary>kafkakit.consumer.commit.failures: offset commits refused by the cluster.</summary>
    public static readonly Counter<long> CommitFailures = Meter.CreateCounter<long>(
        "kafkakit.consumer.commit.failures", "{commit}", "Offset commits that failed (logged; the next commit carries the offsets).");

    /// <summary>kafkakit.consumer.handler.errors: handler failures after retries, by outcome.</summary>
    public static readonly Counter<long> HandlerErrors = Meter.CreateCounter<long>(
        "kafkakit.consumer.handler.errors", "{message}", "Messages whose handling failed after retries, tagged with the action taken.");

    /// <summary>kafkakit.share_consumer.records: records of share consumers by acknowledgement, tag <c>outcome</c> = accepted, released, rejected or dead_lettered (dead-lettered records are accepted).</summary>
    public static readonly Counter<long> ShareRecords = Meter.CreateCounter<long>(
        "kafkakit.share_consumer.records", "{record}", "Records a share consumer acknowledged, tagged with the outcome (accepted, released, rejected, dead_lettered).");

    /// <summary>kafkakit.share_consumer.delivery_attempts: the broker's delivery count of each record handed to a share consumer's handler.</summary>
    public static readonly Histogram<long> ShareDeliveryAttempts = Meter.CreateHistogram<long>(
        "kafkakit.share_consumer.delivery_attempts", "{attempt}", "Delivery count (1 = first delivery) of each record handed to a share consumer's handler.");

    private static readonly ConcurrentDictionary<object, Func<IEnumerable<Measurement<long>>>> QueueSources = new();
    private static readonly ConcurrentDictionary<object, Func<IEnumerable<Measurement<long>>>> LagSources = new();

    /// <summary>kafkakit.producer.queue.messages: messages each producer handed to librdkafka and awaits reports for.</summary>
    public static readonly ObservableGauge<long> ProducerQueue = Meter.CreateObservableGauge(
        "kafkakit.producer.queue.messages", () => QueueSources.Values.SelectMany(s => s()), "{message}", "Messages in the producer's local queue awaiting delivery reports.");

    /// <summary>kafkakit.consumer.lag: per assigned partition, messages behind the high watermark (librdkafka statistics, when <c>statistics.interval.ms</c> is set).</summary>
    public static readonly ObservableGauge<long> ConsumerLag = Meter.CreateObservableGauge(
        "kafkakit.consumer.lag", () => LagSources.Values.SelectMany(s => s()), "{message}", "Consumer lag per assigned partition, from librdkafka statistics (statistics.interval.ms).");

    /// <summary>Reports a producer's queue depth until the returned registration is disposed.</summary>
    public static IDisposable ObserveQueue(Func<IEnumerable<Measurement<long>>> source) => Register(QueueSources, source);

    /// <summary>Reports a consumer's lag until the returned registration is disposed.</summary>
    public static IDisposable ObserveLag(Func<IEnumerable<Measurement<long>>> source) => Register(LagSources, source);

    private static IDisposable Register(ConcurrentDictionary<object, Func<IEnumerable<Measurement<long>>>> sources, Func<IEnumerable<Measurement<long>>> source)
    {
        var registration = new Registration(sources);
        sources[registration] = source;
        return registration;
    }

    public static TagList Tags(string clientName, string topic) => new()
    {
        { "messaging.system", "kafka" },
        { "messaging.client.id", clientName },
        { "messaging.destination.name", topic },
    };

    private sealed class Registration(ConcurrentDictionary<object, Func<IEnumerable<Measurement<long>>>> sources) : IDisposable
    {
        public void Dispose() => sources.TryRemove(this, out _);
    }
}
