using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Testing;

namespace KafkaKit.Benchmarks;

/// <summary>
/// Exactly-once consume-transform-produce, one output per input: a raw Confluent.Kafka transactional loop written like
/// Confluent's ExactlyOnce example (one thread: <c>Consume</c>, <c>Produce</c>, and every <see cref="TransactionRecords"/>
/// records or <see cref="TransactionInterval"/> after a transaction's first record <c>SendOffsetsToTransaction</c> with the positions +
/// <c>CommitTransaction</c> + <c>BeginTransaction</c>) against KafkaKit's transactional consumer with the same
/// transaction size and interval. Each invocation measures the time for a joined, idle member to consume
/// <see cref="Messages"/> inputs that reach the cluster when it starts and to commit the transactions holding their
/// outputs (the last commit included).
/// </summary>
[MemoryDiagnoser]
public class ExactlyOnceBenchmarks
{
    /// <summary>Inputs per invocation (100-byte values, spread over <see cref="Partitions"/> partitions).</summary>
    public const int Messages = 6000;

    private const int Partitions = 3;
    private const int TransactionRecords = 500;
    private const string Input = "bench-eos-in";
    private const string Output = "bench-eos-out";
    private static readonly TimeSpan TransactionInterval = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(10);

    private EmbeddedKafkaCluster? _cluster;
    private IProducer<byte[]?, byte[]>? _feeder;
    private Thread? _flushing;
    private Thread? _rawLoop;
    private volatile bool _stopRaw;
    private KafkaConsumer<Ignore, byte[]>? _kafkaKit;
    private TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _committed;
    private long _handled;
    private long _target;
    private Exception? _rawError;

    /// <summary>Starts the cluster and the raw transactional loop (joined, warmed up).</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(ConfluentTransactionalLoop))]
    public Task SetupConfluentAsync()
    {
        Start();
        _rawLoop = new Thread(RawLoop) { IsBackground = true, Name = "bench-eos-raw" };
        _rawLoop.Start();
        Prepare();
        return RunAsync(); // warm-up: the join and the first transactions, not measured
    }

    /// <summary>Starts the cluster and the KafkaKit transactional consumer (joined, warmed up).</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(KafkaKitTransactionalConsumer))]
    public async Task SetupKafkaKitAsync()
    {
        Start();
        var options = BenchmarkEnvironment.KafkaKitConsumerOptions(_cluster!, "bench-eos-kafkakit", Input);
        options.Transactions.TransactionalIdPrefix = "bench-eos";
        options.Transactions.MaxRecords = TransactionRecords;
        options.Transactions.MaxInterval = TransactionInterval;
        options.Transactions.OperationTimeout = CallTimeout;
        _kafkaKit = new KafkaConsumerBuilder<Ignore, byte[]>("kafkakit", options)
            .SetTransactionalHandler(async (result, transaction, ct) =>
            {
                await transaction.ProduceAsync(Output, new Message<Null, byte[]> { Value = result.Message.Value }, ct).ConfigureAwait(false);
                Interlocked.Increment(ref _handled);
            })
            .Build();

        // Every lease has ended when a transaction commits, so the records handled so far are the committed ones.
        _kafkaKit.Transactions!.TransactionCommitted = _ => Committed(Interlocked.Read(ref _handled));
        await _kafkaKit.StartAsync().ConfigureAwait(false);
        await BenchmarkEnvironment.JoinKafkaKitAsync(_kafkaKit, Partitions).ConfigureAwait(false);
        Prepare();
        await RunAsync().ConfigureAwait(false); // warm-up, not measured
    }

    /// <summary>Queues the invocation's inputs in the holding feeder.</summary>
    [IterationSetup]
    public void Prepare()
    {
        if (_flushing?.Join(BenchmarkEnvironment.InvocationTimeout) == false)
        {
            throw new InvalidOperationException("The feeder did not deliver the previous batch.");
        }

        Volatile.Write(ref _done, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        Interlocked.Add(ref _target, Messages);
        var value = BenchmarkEnvironment.NewValue();
        for (var i = 0; i < Messages; i++)
        {
            _feeder!.Produce(new TopicPartition(Input, i % Partitions), new Message<byte[]?, byte[]> { Value = value });
        }
    }

    /// <summary>Raw Confluent.Kafka transactional loop: release the inputs, wait until their outputs are committed.</summary>
    /// <returns>A task that completes when the last input's transaction committed.</returns>
    [Benchmark(Baseline = true, OperationsPerInvoke = Messages)]
    public Task ConfluentTransactionalLoop() => RunAsync();

    /// <summary>KafkaKit transactional consumer: release the inputs, wait until their outputs are committed.</summary>
    /// <returns>A task that completes when the last input's transaction committed.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public Task KafkaKitTransactionalConsumer() => RunAsync();

    /// <summary>Stops the members and the cluster.</summary>
    /// <returns>A task that completes when released.</returns>
    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        _stopRaw = true;
        _rawLoop?.Join(BenchmarkEnvironment.InvocationTimeout);
        if (_kafkaKit is not null)
        {
            await _kafkaKit.DisposeAsync().ConfigureAwait(false);
        }

        _flushing?.Join(BenchmarkEnvironment.InvocationTimeout);
        _feeder?.Dispose();
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync().ConfigureAwait(false);
        }
    }

    private void Start()
    {
        _cluster = BenchmarkEnvironment.StartCluster();
        _cluster.CreateTopic(Input, Partitions);
        _cluster.CreateTopic(Output, Partitions);
        _feeder = BenchmarkEnvironment.HoldingProducer(_cluster);
    }

    private async Task RunAsync()
    {
        _flushing = new Thread(() => _feeder!.Flush(BenchmarkEnvironment.InvocationTimeout)) { IsBackground = true, Name = "bench-eos-flush" };
        _flushing.Start();
        try
        {
            await Volatile.Read(ref _done).Task.WaitAsync(BenchmarkEnvironment.InvocationTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException(
                $"{Interlocked.Read(ref _committed)} of {Interlocked.Read(ref _target)} inputs committed within {BenchmarkEnvironment.InvocationTimeout} (KafkaKit state {_kafkaKit?.State}, fault {_kafkaKit?.Fault?.Message}; raw error {_rawError?.Message}).");
        }
    }

    private void Committed(long total)
    {
        Interlocked.Exchange(ref _committed, total);
        if (total >= Interlocked.Read(ref _target))
        {
            Volatile.Read(ref _done).TrySetResult();
        }
    }

    /// <summary>The raw member, like Confluent's ExactlyOnce example, committing by size as well as by time.</summary>
    private void RawLoop()
    {
        var consumerConfig = new ConsumerConfig
        {
            BootstrapServers = _cluster!.BootstrapServers,
            GroupId = "bench-eos-raw",
            EnableAutoCommit = false,
            IsolationLevel = IsolationLevel.ReadCommitted,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            PartitionAssignmentStrategy = Confluent.Kafka.PartitionAssignmentStrategy.CooperativeSticky,
            SessionTimeoutMs = 6000,
            HeartbeatIntervalMs = 500,
            FetchWaitMaxMs = BenchmarkEnvironment.FetchWaitMaxMs,
        };
        var producerConfig = new ProducerConfig(BenchmarkEnvironment.ProducerProperties.ToDictionary(p => p.Key, p => p.Value))
        {
            BootstrapServers = _cluster.BootstrapServers,
            TransactionalId = "bench-eos-raw",
            EnableIdempotence = true,
        };
        using var producer = new ProducerBuilder<Null, byte[]>(producerConfig).SetLogHandler(static (_, _) => { }).Build();
        using var consumer = new ConsumerBuilder<Ignore, byte[]>(consumerConfig).SetLogHandler(static (_, _) => { }).Build();
        try
        {
            producer.InitTransactions(CallTimeout);
            consumer.Subscribe(Input);
            producer.BeginTransaction();
            long inTransaction = 0;
            long committed = 0;
            var firstInTransaction = DateTime.UtcNow;
            while (!_stopRaw)
            {
                var result = consumer.Consume(TimeSpan.FromMilliseconds(100));
                if (result is not null)
                {
                    producer.Produce(Output, new Message<Null, byte[]> { Value = result.Message.Value });
                    if (inTransaction++ == 0)
                    {
                        firstInTransaction = DateTime.UtcNow;
                    }
                }

                if (inTransaction > 0 && (inTransaction >= TransactionRecords || DateTime.UtcNow - firstInTransaction >= TransactionInterval))
                {
                    producer.SendOffsetsToTransaction(
                        consumer.Assignment.Select(a => new TopicPartitionOffset(a, consumer.Position(a))),
                        consumer.ConsumerGroupMetadata,
                        CallTimeout);
                    producer.CommitTransaction();
                    producer.BeginTransaction();
                    committed += inTransaction;
                    inTransaction = 0;
                    Committed(committed);
                }
            }

            consumer.Close();
        }
        catch (Exception e)
        {
            _rawError = e;
        }
    }
}
