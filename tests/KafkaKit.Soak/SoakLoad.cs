using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using KafkaKit.Producing;

namespace KafkaKit.Soak;

/// <summary>
/// The produce side of a soak run: a KafkaKit producer writing numbered, keyed messages (key and value start with the
/// sequence number) at a steady rate, with bursts of five times the queue limit enqueued back to back so the queue fills
/// and <see cref="IKafkaProducer{TKey, TValue}.EnqueueAsync"/> waits for room (backpressure).
/// </summary>
internal sealed class SoakLoad : IAsyncDisposable
{
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(10);
    private readonly IKafkaProducer<string, string> _producer;
    private readonly SoakOptions _options;
    private readonly string _topic;
    private readonly string _padding;
    private readonly Action<DeliveryReport<string, string>> _onDelivery;
    private readonly ConcurrentQueue<string> _problems = new();
    private long _produced;
    private long _delivered;
    private long _failed;
    private long _refused;
    private long _waits;
    private long _bursts;
    private long _maxQueued;

    public SoakLoad(SoakOptions options, string bootstrapServers, string topic, SoakLog log)
    {
        _options = options;
        _topic = topic;
        _padding = new string('x', Math.Max(0, options.ValueBytes - 12));
        _onDelivery = OnDelivery;
        var producerOptions = new KafkaProducerOptions { BootstrapServers = bootstrapServers };
        // Batches of several messages: the embedded cluster answers a Fetch with one batch per partition, so at 1000 msg/s a
        // few-millisecond linger (batches of one message) would make every consumer's catch-up crawl after a rebalance.
        producerOptions.Config["linger.ms"] = "50";
        producerOptions.Config["queue.buffering.max.messages"] = options.QueueLimit.ToString(CultureInfo.InvariantCulture);
        _producer = new KafkaProducerBuilder<string, string>("soak-producer", producerOptions).SetLoggerFactory(log).Build();
    }

    /// <summary>Gets how many messages were enqueued (sequence numbers 0 to this - 1).</summary>
    public long Produced => Interlocked.Read(ref _produced);

    public long Delivered => Interlocked.Read(ref _delivered);

    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>Gets how many enqueues threw (queue still full after MaxBlock, faulted producer); those messages were not enqueued.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Gets how many enqueues did not complete at once and waited for room.</summary>
    public long BackpressureWaits => Interlocked.Read(ref _waits);

    public long Bursts => Interlocked.Read(ref _bursts);

    /// <summary>Gets the highest queue depth seen right after an enqueue.</summary>
    public long MaxQueued => Interlocked.Read(ref _maxQueued);

    /// <summary>Gets the producer's current queue depth.</summary>
    public long Queued => _producer.QueuedMessages;

    public Error? FatalError => _producer.FatalError;

    /// <summary>Gets the first few failed deliveries and refused enqueues, described.</summary>
    public IReadOnlyCollection<string> Problems => _problems;

    /// <summary>Produces until <paramref name="duration"/> has passed since the call, or <paramref name="cancellationToken"/>.</summary>
    public async Task RunAsync(TimeSpan duration, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var steady = 0L;
        var nextBurst = _options.BurstInterval / 2;
        using var timer = new PeriodicTimer(Tick);
        while (clock.Elapsed < duration && await timer.WaitForNextTickAsync(cancellationToken))
        {
            // Catch up on what the rate asks for so far: a late tick (or a burst) does not lower the steady rate.
            for (var due = (long)(clock.Elapsed.TotalSeconds * _options.Rate) - steady; due > 0; due--, steady++)
            {
                await EnqueueAsync(cancellationToken);
            }

            if (clock.Elapsed >= nextBurst)
            {
                Interlocked.Increment(ref _bursts);
                for (var i = 0; i < _options.BurstSize; i++)
                {
                    await EnqueueAsync(cancellationToken);
                }

                nextBurst += _options.BurstInterval;
            }
        }
    }

    /// <summary>Waits until every enqueued message has its outcome.</summary>
    /// <returns>The number of messages still without an outcome.</returns>
    public ValueTask<int> FlushAsync(CancellationToken cancellationToken) => _producer.FlushAsync(cancellationToken);

    public ValueTask DisposeAsync() => _producer.DisposeAsync();

    private async ValueTask EnqueueAsync(CancellationToken cancellationToken)
    {
        var seq = Interlocked.Read(ref _produced);
        var key = seq.ToString(CultureInfo.InvariantCulture);
        var message = new Message<string, string> { Key = key, Value = key + ":" + _padding };
        try
        {
            var pending = _producer.EnqueueAsync(_topic, message, _onDelivery, cancellationToken);
            if (!pending.IsCompleted)
            {
                Interlocked.Increment(ref _waits);
            }

            await pending;
            Interlocked.Increment(ref _produced);
        }
        catch (Exception e) when (e is ProducerQueueFullException or ProducerFaultedException or ProduceException<string, string>)
        {
            Interlocked.Increment(ref _refused);
            Note($"enqueue of {seq} refused: {e.Message}");
            return;
        }

        var queued = _producer.QueuedMessages;
        if (queued > Interlocked.Read(ref _maxQueued))
        {
            Interlocked.Exchange(ref _maxQueued, queued);
        }
    }

    private void OnDelivery(DeliveryReport<string, string> report)
    {
        if (report.Error.IsError)
        {
            Interlocked.Increment(ref _failed);
            Note($"delivery of {report.Message.Key} failed: {report.Error.Reason} ({report.Error.Code})");
        }
        else
        {
            Interlocked.Increment(ref _delivered);
        }
    }

    private void Note(string problem)
    {
        if (_problems.Count < 10)
        {
            _problems.Enqueue(problem);
        }
    }
}
