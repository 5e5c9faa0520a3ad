using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Testing;

namespace KafkaKit.Benchmarks;

/// <summary>
/// The cluster, feeder and consumers of one consume benchmark case. Each invocation measures the time for an already
/// joined, idle consumer to fetch and handle N messages that reach the cluster at the start of the invocation.
/// </summary>
/// <remarks>
/// <para>
/// Why this shape. Joining a group takes 0.1-3 s on the embedded cluster and KafkaKit's engine only subscribes (no
/// manual Assign, no external seek), so a fresh group or a rewind per invocation would put a join inside the measured
/// region. So each side keeps one consumer that joined in the global setup, and each invocation measures the time to
/// handle N new messages:
/// </para>
/// <list type="number">
/// <item>Iteration setup (not measured): N messages are handed to a feeder producer that holds them (a minute of
/// <c>linger.ms</c>, batches big enough for all of them, see <see cref="BenchmarkEnvironment.HoldingProducer"/>), so
/// the consumers, idle at the end of their partitions, see nothing yet.</item>
/// <item>Invocation (measured): the feeder is flushed on a separate thread, which sends the batch to the cluster at
/// once, and the invocation waits until the N-th message is handled (raw: its own poll loop on the benchmark thread;
/// KafkaKit: the handler counts, the benchmark awaits the last one).</item>
/// </list>
/// <para>
/// Both sides thus start from the same state (joined, idle, nothing prefetched) and fetch, hand over, handle and store
/// offsets for every message inside the measurement; the shared fixed cost is one produce round trip plus at most
/// <see cref="BenchmarkEnvironment.FetchWaitMaxMs"/> until the idle consumer's next fetch.
/// </para>
/// <para>
/// Neither side is held by pausing: a librdkafka <c>Resume</c> takes up to ~1 s before the partition is fetched again
/// (measured here: 0.7-1 s on the embedded cluster; pause also drops the prefetched messages), which would dwarf the
/// measurement. Nor is KafkaKit's handler held by a gate: its engine pauses a partition whose buffer is full, with the
/// same cost.
/// </para>
/// <para>
/// Retention: every invocation writes only N new messages (at most ~2.2 MB per partition) and the consumer reads all of
/// them before the next batch, so each partition holds at most two batches, under the embedded cluster's ~5 MB /
/// 100,000 message-set cap; older, consumed data is pruned without effect. (Crossing the cap with an append is not
/// harmless: measured with 2 x 2.75 MB, the cluster dropped the new, unread batch as well.)
/// </para>
/// </remarks>
internal sealed class ConsumeFixture : IAsyncDisposable
{
    private readonly string _topic;
    private readonly int _partitions;
    private readonly int _messages;
    private readonly Message<byte[]?, byte[]>[] _batch; // message i of an invocation is _batch[i % length]
    private readonly TopicPartition[] _targets;
    private readonly EmbeddedKafkaCluster _cluster;
    private readonly IProducer<byte[]?, byte[]> _feeder;
    private Thread? _flushing;
    private IAsyncDisposable? _typed;
    private int _undelivered;
    private TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _handled;
    private long _target;

    /// <summary>Initializes a new instance of the <see cref="ConsumeFixture"/> class: starts the cluster, creates the topic.</summary>
    /// <param name="topic">The topic.</param>
    /// <param name="partitions">Its partitions (message i of an invocation goes to partition i % partitions).</param>
    /// <param name="messagesPerInvocation">Messages per invocation.</param>
    /// <param name="value">The value of every message, or <see langword="null"/> for <see cref="BenchmarkEnvironment.NewValue"/>.</param>
    /// <param name="keys">0 for messages without a key; otherwise message i has the key <c>k{i % keys}</c> (UTF-8).</param>
    public ConsumeFixture(string topic, int partitions, int messagesPerInvocation, byte[]? value = null, int keys = 0)
    {
        var bytes = value ?? BenchmarkEnvironment.NewValue();
        _batch = keys == 0
            ? [new() { Key = null, Value = bytes }]
            : [.. Enumerable.Range(0, keys).Select(k => new Message<byte[]?, byte[]> { Key = System.Text.Encoding.UTF8.GetBytes("k" + k.ToString(System.Globalization.CultureInfo.InvariantCulture)), Value = bytes })];
        _topic = topic;
        _partitions = partitions;
        _messages = messagesPerInvocation;
        _targets = Enumerable.Range(0, partitions).Select(p => new TopicPartition(topic, p)).ToArray();
        _cluster = BenchmarkEnvironment.StartCluster();
        _cluster.CreateTopic(topic, partitions);
        _feeder = BenchmarkEnvironment.HoldingProducer(_cluster);
    }

    /// <summary>Gets the embedded cluster (for a case that needs more topics).</summary>
    public EmbeddedKafkaCluster Cluster => _cluster;

    /// <summary>Gets the raw consumer (after <see cref="StartRaw"/>).</summary>
    public IConsumer<Ignore, byte[]>? Raw { get; private set; }

    /// <summary>Gets the KafkaKit consumer (after <see cref="StartKafkaKitAsync"/>).</summary>
    public KafkaConsumer<Ignore, byte[]>? KafkaKit { get; private set; }

    /// <summary>Subscribes the raw consumer, joins and consumes one warm-up batch.</summary>
    public void StartRaw()
    {
        Raw = BenchmarkEnvironment.RawConsumer(_cluster, "bench-raw-" + _topic);
        Raw.Subscribe(_topic);
        BenchmarkEnvironment.JoinRaw(Raw, _partitions);
        Prepare();
        Release();
        ConsumeRaw(Raw, _messages);
    }

    /// <summary>Starts the KafkaKit consumer with <paramref name="handler"/>, waits for its assignment and lets it handle one warm-up batch.</summary>
    /// <param name="handler">The handler; it must call <see cref="Count"/> once per message, last.</param>
    /// <param name="configure">Changes the shared consumer options (e.g. <see cref="KafkaConsumerOptions.Ordering"/>), or <see langword="null"/>.</param>
    /// <returns>A task that completes when warmed up.</returns>
    public async Task StartKafkaKitAsync(Func<ConsumeResult<Ignore, byte[]>, CancellationToken, ValueTask> handler, Action<KafkaConsumerOptions>? configure = null)
    {
        var options = BenchmarkEnvironment.KafkaKitConsumerOptions(_cluster, "bench-kafkakit-" + _topic, _topic);
        configure?.Invoke(options);
        KafkaKit = new KafkaConsumerBuilder<Ignore, byte[]>("kafkakit-bench-consumer", options).SetHandler(handler).Build();
        await KafkaKit.StartAsync().ConfigureAwait(false);
        await BenchmarkEnvironment.JoinKafkaKitAsync(KafkaKit, _partitions).ConfigureAwait(false);
        Prepare();
        await RunKafkaKitAsync().ConfigureAwait(false);
    }

    /// <summary>Starts a KafkaKit consumer of another value type (e.g. Avro values), joined and warmed up like <see cref="StartKafkaKitAsync"/>.</summary>
    /// <typeparam name="TValue">The value type.</typeparam>
    /// <param name="build">Builds the consumer from the shared consumer options.</param>
    /// <returns>A task that completes when ready.</returns>
    public async Task StartTypedAsync<TValue>(Func<KafkaConsumerOptions, KafkaConsumer<Ignore, TValue>> build)
    {
        var consumer = build(BenchmarkEnvironment.KafkaKitConsumerOptions(_cluster, "bench-kafkakit-" + _topic, _topic));
        _typed = consumer;
        await consumer.StartAsync().ConfigureAwait(false);
        await BenchmarkEnvironment.JoinKafkaKitAsync(consumer, _partitions).ConfigureAwait(false);
        Prepare();
        await RunKafkaKitAsync().ConfigureAwait(false);
    }

    /// <summary>Iteration setup: check the previous batch was acknowledged, then queue the next one in the holding feeder.</summary>
    /// <exception cref="InvalidOperationException">The previous batch was not acknowledged.</exception>
    public void Prepare()
    {
        if (!WaitForFlush() || Volatile.Read(ref _undelivered) > 0)
        {
            throw new InvalidOperationException($"The feeder did not deliver the previous batch to '{_topic}' within {BenchmarkEnvironment.InvocationTimeout}.");
        }

        Volatile.Write(ref _done, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        Volatile.Write(ref _target, Volatile.Read(ref _target) + _messages);
        for (var i = 0; i < _messages; i++)
        {
            _feeder.Produce(_targets[i % _partitions], _batch[i % _batch.Length]);
        }
    }

    /// <summary>First measured step: send the held batch to the cluster (flushed on a dedicated thread).</summary>
    public void Release()
    {
        _flushing = new Thread(() => Volatile.Write(ref _undelivered, _feeder.Flush(BenchmarkEnvironment.InvocationTimeout)))
        {
            IsBackground = true,
            Name = "bench-feeder-flush",
        };
        _flushing.Start();
    }

    /// <summary>The measured part of the KafkaKit side: release the batch and wait until it is handled.</summary>
    /// <returns>A task that completes when the last message of the batch was handled.</returns>
    public async Task RunKafkaKitAsync()
    {
        Release();
        try
        {
            await Volatile.Read(ref _done).Task.WaitAsync(BenchmarkEnvironment.InvocationTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException(
                $"KafkaKit handled {Interlocked.Read(ref _handled)} of {Volatile.Read(ref _target)} messages within {BenchmarkEnvironment.InvocationTimeout} (state {KafkaKit?.State}, fault {KafkaKit?.Fault?.Message}).");
        }
    }

    /// <summary>Counts one handled message (KafkaKit handlers call it last).</summary>
    public void Count() => Count(1);

    /// <summary>Counts handled messages (a batch handler calls it last, once per batch).</summary>
    /// <param name="messages">The number of messages handled.</param>
    public void Count(int messages)
    {
        var target = Volatile.Read(ref _target);
        var handled = Interlocked.Add(ref _handled, messages);
        if (handled >= target && handled - messages < target)
        {
            Volatile.Read(ref _done).TrySetResult();
        }
    }

    /// <summary>The raw loop without simulated I/O: <c>Consume</c> + <c>StoreOffset</c> until <paramref name="count"/> messages were read.</summary>
    /// <param name="consumer">The consumer.</param>
    /// <param name="count">The number of messages.</param>
    /// <returns><paramref name="count"/>.</returns>
    public static int ConsumeRaw(IConsumer<Ignore, byte[]> consumer, int count)
    {
        var deadline = DateTime.UtcNow + BenchmarkEnvironment.InvocationTimeout;
        var handled = 0;
        while (handled < count)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(100));
            if (result is null)
            {
                ThrowIfLate(deadline, handled, count);
                continue;
            }

            consumer.StoreOffset(result);
            handled++;
        }

        return handled;
    }

    /// <summary>Fails a raw loop that has not got its messages in time.</summary>
    /// <param name="deadline">The deadline.</param>
    /// <param name="handled">Messages handled so far.</param>
    /// <param name="expected">Messages expected.</param>
    /// <exception cref="TimeoutException">The deadline passed.</exception>
    public static void ThrowIfLate(DateTime deadline, int handled, int expected)
    {
        if (DateTime.UtcNow > deadline)
        {
            throw new TimeoutException($"Handled {handled} of {expected} messages within {BenchmarkEnvironment.InvocationTimeout}.");
        }
    }

    private bool WaitForFlush() => _flushing?.Join(BenchmarkEnvironment.InvocationTimeout) ?? true;

    public async ValueTask DisposeAsync()
    {
        if (_typed is not null)
        {
            await _typed.DisposeAsync().ConfigureAwait(false);
        }

        if (KafkaKit is not null)
        {
            await KafkaKit.DisposeAsync().ConfigureAwait(false);
        }

        if (Raw is not null)
        {
            Raw.Close();
            Raw.Dispose();
        }

        WaitForFlush();
        _feeder.Dispose();
        await _cluster.DisposeAsync().ConfigureAwait(false);
    }
}
