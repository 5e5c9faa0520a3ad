using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Producing;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Diagnostics;

[TestFixture]
[NonParallelizable] // listens to process-wide ActivitySource and Meter events
public sealed class ObservabilityTests
{
    [Test]
    [CancelAfter(60_000)]
    public async Task Tracing_ProducedMessage_ConsumerActivityContinuesTheProducersTrace()
    {
        var topic = "traced-" + Guid.NewGuid().ToString("N")[..6];
        var stopped = new ConcurrentBag<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "KafkaKit",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = stopped.Add,
        };
        ActivitySource.AddActivityListener(listener);
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic(topic);

        using var request = new Activity("incoming-request").Start();
        await using (var producer = new KafkaProducerBuilder<string, string>("traced-producer", new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers }).Build())
        {
            await producer.ProduceAsync(topic, new Message<string, string> { Key = "k", Value = "v" });
            Assert.That(Activity.Current, Is.SameAs(request), "the send span does not stay current on the caller's flow");
        }

        request.Stop();
        Activity.Current = null;
        var seen = new TaskCompletionSource<(ActivityTraceId TraceId, ActivitySpanId ParentSpanId, string? Name)>();
        var options = new KafkaConsumerOptions { BootstrapServers = cluster.BootstrapServers, GroupId = topic, Topics = { topic } };
        KafkaProbe.FastGroup(options.Config);
        var consumer = new KafkaConsumerBuilder<string, string>("traced-consumer", options)
            .SetHandler((_, _) =>
            {
                var current = Activity.Current;
                seen.TrySetResult((current?.TraceId ?? default, current?.ParentSpanId ?? default, current?.OperationName));
                return ValueTask.CompletedTask;
            })
            .Build();
        await consumer.StartAsync();
        var (traceId, parentSpanId, name) = await seen.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await consumer.StopAsync();

        var send = stopped.Single(a => a.OperationName == $"send {topic}");
        Assert.Multiple(() =>
        {
            Assert.That(send.TraceId, Is.EqualTo(request.TraceId), "the send span is a child of the caller's activity");
            Assert.That(send.Kind, Is.EqualTo(ActivityKind.Producer));
            Assert.That(send.GetTagItem("messaging.destination.name"), Is.EqualTo(topic));
            Assert.That(traceId, Is.EqualTo(request.TraceId), "the handler runs inside a span of the producer's trace");
            Assert.That(parentSpanId, Is.EqualTo(send.SpanId), "the process span's parent is the send span");
            Assert.That(name, Is.EqualTo($"process {topic}"));
        });
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Metrics_ProduceAndConsume_InstrumentsCarryTopicAndOutcome()
    {
        var topic = "metered-" + Guid.NewGuid().ToString("N")[..6];
        var measurements = new ConcurrentQueue<(string Instrument, double Value, Dictionary<string, object?> Tags)>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "KafkaKit")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        void Record<T>(Instrument instrument, T value, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? state)
        {
            var copy = new Dictionary<string, object?>();
            foreach (var tag in tags)
            {
                copy[tag.Key] = tag.Value;
            }

            if (Equals(copy.GetValueOrDefault("messaging.destination.name"), topic))
            {
                measurements.Enqueue((instrument.Name, Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture), copy));
            }
        }

        listener.SetMeasurementEventCallback<double>(Record);
        listener.Start();
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic(topic, partitions: 2);
        var queueDepths = new ConcurrentQueue<long>();
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, state) =>
        {
            Record(instrument, value, tags, state);
            if (instrument.Name == "kafkakit.producer.queue.messages" && tags.ToArray().Any(t => t.Key == "messaging.client.id" && Equals(t.Value, "metered-producer")))
            {
                queueDepths.Enqueue(value);
            }
        });
        await using (var producer = new KafkaProducerBuilder<string, string>("metered-producer", new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers, Config = { ["linger.ms"] = "60000" } }).Build())
        {
            for (var i = 0; i < 10; i++)
            {
                await producer.EnqueueAsync(topic, new Message<string, string> { Key = $"k{i}", Value = "v" });
            }

            listener.RecordObservableInstruments(); // 10 lingering in the queue
            Assert.That(await producer.FlushAsync(), Is.Zero);
            listener.RecordObservableInstruments(); // none after the flush
        }

        Assert.That(queueDepths, Is.EqualTo(new long[] { 10, 0 }), "kafkakit.producer.queue.messages");

        var handled = 0;
        var options = new KafkaConsumerOptions { BootstrapServers = cluster.BootstrapServers, GroupId = topic, Topics = { topic }, CommitInterval = TimeSpan.FromMilliseconds(100) };
        KafkaProbe.FastGroup(options.Config);
        options.Config["statistics.interval.ms"] = "100";
        var consumer = new KafkaConsumerBuilder<string, string>("metered-consumer", options)
            .SetHandler((_, _) =>
            {
                Interlocked.Increment(ref handled);
                return ValueTask.CompletedTask;
            })
            .Build();
        await consumer.StartAsync();
        await Wait.ForAsync(() => Volatile.Read(ref handled) == 10, TimeSpan.FromSeconds(30), "10 handled");
        await Wait.ForAsync(() => measurements.Count(m => m.Instrument == "messaging.process.duration") == 10, TimeSpan.FromSeconds(5), "10 durations");
        await Wait.ForAsync(
            () =>
            {
                listener.RecordObservableInstruments();
                var lags = measurements.Where(m => m.Instrument == "kafkakit.consumer.lag").TakeLast(2).ToList();
                return lags.Count == 2 && lags.All(m => m.Value == 0);
            },
            TimeSpan.FromSeconds(10),
            "kafkakit.consumer.lag reports 0 for both partitions once everything is committed");
        await consumer.StopAsync();

        var sent = measurements.Where(m => m.Instrument == "messaging.client.sent.messages").ToList();
        var consumed = measurements.Where(m => m.Instrument == "messaging.client.consumed.messages").ToList();
        Assert.Multiple(() =>
        {
            Assert.That(sent.Sum(m => m.Value), Is.EqualTo(10));
            Assert.That(sent.All(m => Equals(m.Tags["messaging.system"], "kafka") && Equals(m.Tags["messaging.client.id"], "metered-producer") && !m.Tags.ContainsKey("error.type")));
            Assert.That(consumed.Sum(m => m.Value), Is.EqualTo(10));
            Assert.That(consumed.All(m => Equals(m.Tags["messaging.client.id"], "metered-consumer")));
            Assert.That(measurements.Where(m => m.Instrument == "messaging.process.duration").All(m => m.Value >= 0));
        });
    }
}
