using Avro;
using Schema = Avro.Schema;
using Avro.Specific;
using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using Confluent.SchemaRegistry;
using Confluent.SchemaRegistry.Serdes;
using KafkaKit.Producing;
using KafkaKit.SchemaRegistry;
using KafkaKit.SchemaRegistry.Avro;
using KafkaKit.Testing;

namespace KafkaKit.Benchmarks;

/// <summary>
/// Avro with Schema Registry on the embedded cluster and embedded registry (schema ids cached after the warm-up, as in
/// a running service): awaited produce, raw Confluent <c>ProduceAsync</c> with Confluent's <c>AvroSerializer</c>
/// against KafkaKit's <c>ProduceAsync</c> with <c>UseAvro</c> (the same serializer, awaited before the backpressure
/// gate); and fire-and-forget: raw Confluent <c>Produce</c> after awaiting the same <c>AvroSerializer</c> (what a user
/// writes by hand), KafkaKit <c>EnqueueAsync</c> with Avro, and <c>EnqueueAsync</c> with the default sync JSON serde of
/// the same record.
/// </summary>
[MemoryDiagnoser]
public class AvroBenchmarks
{
    /// <summary>Messages per invocation.</summary>
    public const int Messages = 20_000;

    /// <summary>Awaited produces in flight at once.</summary>
    public const int Concurrency = 1_000;

    private const string Topic = "bench-avro";
    private const int Partitions = 6;

    private readonly Task[] _workers = new Task[Concurrency];
    private readonly Message<Null, BenchOrder> _message = new() { Value = new BenchOrder { Id = "order-000000000001", Customer = "customer-0000000001", Amount = 42.5, Note = new string('n', 40) } };
    private readonly Message<Null, BenchOrderJson> _jsonMessage = new() { Value = new BenchOrderJson("order-000000000001", "customer-0000000001", 42.5, new string('n', 40)) };
    private EmbeddedKafkaCluster? _cluster;
    private EmbeddedSchemaRegistry? _registry;
    private CachedSchemaRegistryClient? _client;
    private IProducer<Null, BenchOrder>? _raw;
    private IProducer<Null, byte[]>? _rawBytes;
    private AvroSerializer<BenchOrder>? _serializer;
    private Action<DeliveryReport<Null, byte[]>>? _countingHandler;
    private long _failed;
    private IKafkaProducer<Null, BenchOrder>? _kafkaKit;
    private IKafkaProducer<Null, BenchOrderJson>? _kafkaKitJson;

    /// <summary>Raw: cluster, registry, Confluent producer with the Avro serializer; warmed up.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(ConfluentAvroProduceAsync))]
    public async Task SetupConfluentAsync()
    {
        Start();
        var config = new ProducerConfig { BootstrapServers = _cluster!.BootstrapServers };
        foreach (var (key, value) in BenchmarkEnvironment.ProducerProperties)
        {
            config.Set(key, value);
        }

        _raw = new ProducerBuilder<Null, BenchOrder>(config)
            .SetValueSerializer(new AvroSerializer<BenchOrder>(_client))
            .SetLogHandler(static (_, _) => { })
            .SetErrorHandler(static (_, _) => { })
            .Build();
        await ConfluentAvroProduceAsync().ConfigureAwait(false);
    }

    /// <summary>Raw fire-and-forget: cluster, registry, Confluent byte producer and an <c>AvroSerializer</c>; warmed up.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(ConfluentAvroFireAndForgetAsync))]
    public async Task SetupConfluentFireAndForgetAsync()
    {
        Start();
        _rawBytes = BenchmarkEnvironment.RawProducer(_cluster!);
        _serializer = new AvroSerializer<BenchOrder>(_client);

        // Cached once, as in FireAndForgetProduceBenchmarks: every message gets an outcome on both sides.
        _countingHandler = report =>
        {
            if (report.Error.IsError)
            {
                Interlocked.Increment(ref _failed);
            }
        };
        await ConfluentAvroFireAndForgetAsync().ConfigureAwait(false);
    }

    /// <summary>KafkaKit: cluster, registry, producer with <c>UseAvro</c>; warmed up.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Targets = [nameof(KafkaKitAvroProduceAsync), nameof(KafkaKitAvroEnqueueAsync)])]
    public async Task SetupKafkaKitAsync()
    {
        Start();
        _kafkaKit = new KafkaProducerBuilder<Null, BenchOrder>("bench-avro", Options())
            .UseAvro(_client!, new SchemaRegistryOptions { Url = _registry!.Url })
            .Build();
        await KafkaKitAvroProduceAsync().ConfigureAwait(false);
    }

    /// <summary>KafkaKit with the default (sync JSON) serde of the same record; warmed up.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(KafkaKitJsonEnqueueAsync))]
    public async Task SetupKafkaKitJsonAsync()
    {
        Start();
        _kafkaKitJson = new KafkaProducerBuilder<Null, BenchOrderJson>("bench-json", Options()).Build();
        await KafkaKitJsonEnqueueAsync().ConfigureAwait(false);
    }

    /// <summary>Raw Confluent.Kafka <c>ProduceAsync</c> with <c>AvroSerializer</c>, 1,000 concurrent awaits.</summary>
    /// <returns>A task that completes when every message is acknowledged.</returns>
    [Benchmark(Baseline = true, OperationsPerInvoke = Messages)]
    public Task ConfluentAvroProduceAsync() => RunWorkersAsync(async () =>
    {
        for (var i = 0; i < Messages / Concurrency; i++)
        {
            await _raw!.ProduceAsync(Topic, _message).ConfigureAwait(false);
        }
    });

    /// <summary>KafkaKit <c>ProduceAsync</c> with <c>UseAvro</c>, 1,000 concurrent awaits.</summary>
    /// <returns>A task that completes when every message is acknowledged.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public Task KafkaKitAvroProduceAsync() => RunWorkersAsync(async () =>
    {
        for (var i = 0; i < Messages / Concurrency; i++)
        {
            await _kafkaKit!.ProduceAsync(Topic, _message).ConfigureAwait(false);
        }
    });

    /// <summary>
    /// Raw Confluent.Kafka fire-and-forget, as a user writes it by hand: await the <c>AvroSerializer</c>, then
    /// <c>Produce</c> the bytes with a cached delivery handler that counts failures (on <c>Local_QueueFull</c>, poll 100 ms
    /// and try again), then <c>Flush</c> and check that nothing failed.
    /// </summary>
    /// <returns>A task that completes when every message is delivered.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public async Task ConfluentAvroFireAndForgetAsync()
    {
        var context = new SerializationContext(MessageComponentType.Value, Topic);
        for (var i = 0; i < Messages; i++)
        {
            var bytes = await _serializer!.SerializeAsync(_message.Value, context).ConfigureAwait(false);
            while (true)
            {
                try
                {
#pragma warning disable VSTHRD103 // Produce only enqueues (the fire-and-forget a user writes by hand); it does not wait for the broker
                    _rawBytes!.Produce(Topic, new Message<Null, byte[]> { Value = bytes }, _countingHandler);
#pragma warning restore VSTHRD103
                    break;
                }
                catch (ProduceException<Null, byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                {
                    _rawBytes!.Poll(TimeSpan.FromMilliseconds(100));
                }
            }
        }

        var left = _rawBytes!.Flush(BenchmarkEnvironment.InvocationTimeout);
        if (left > 0 || Interlocked.Read(ref _failed) > 0)
        {
            throw new InvalidOperationException($"{left} messages undelivered after the flush, {Interlocked.Read(ref _failed)} failed.");
        }
    }

    /// <summary>KafkaKit fire-and-forget <c>EnqueueAsync</c> with <c>UseAvro</c>, then <c>FlushAsync</c>.</summary>
    /// <returns>A task that completes when every message is delivered.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public async Task KafkaKitAvroEnqueueAsync()
    {
        for (var i = 0; i < Messages; i++)
        {
            await _kafkaKit!.EnqueueAsync(Topic, _message).ConfigureAwait(false);
        }

        await FlushAsync(_kafkaKit!).ConfigureAwait(false);
    }

    /// <summary>KafkaKit fire-and-forget <c>EnqueueAsync</c> with the default sync JSON serde of the same record.</summary>
    /// <returns>A task that completes when every message is delivered.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public async Task KafkaKitJsonEnqueueAsync()
    {
        for (var i = 0; i < Messages; i++)
        {
            await _kafkaKitJson!.EnqueueAsync(Topic, _jsonMessage).ConfigureAwait(false);
        }

        await FlushAsync(_kafkaKitJson!).ConfigureAwait(false);
    }

    /// <summary>Disposes the producers, the registry client, the registry and the cluster.</summary>
    /// <returns>A task that completes when released.</returns>
    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        _raw?.Dispose();
        _rawBytes?.Dispose();
        foreach (var producer in new IAsyncDisposable?[] { _kafkaKit, _kafkaKitJson })
        {
            if (producer is not null)
            {
                await producer.DisposeAsync().ConfigureAwait(false);
            }
        }

        _client?.Dispose();
        if (_registry is not null)
        {
            await _registry.DisposeAsync().ConfigureAwait(false);
        }

        if (_cluster is not null)
        {
            await _cluster.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static async Task FlushAsync<TValue>(IKafkaProducer<Null, TValue> producer)
    {
        using var timeout = new CancellationTokenSource(BenchmarkEnvironment.InvocationTimeout);
        var left = await producer.FlushAsync(timeout.Token).ConfigureAwait(false);
        if (left > 0)
        {
            throw new InvalidOperationException($"{left} messages undelivered after the flush.");
        }
    }

    private KafkaProducerOptions Options()
    {
        var options = new KafkaProducerOptions { BootstrapServers = _cluster!.BootstrapServers };
        foreach (var (key, value) in BenchmarkEnvironment.ProducerProperties)
        {
            options.Config[key] = value;
        }

        return options;
    }

    private void Start()
    {
        _cluster = BenchmarkEnvironment.StartCluster();
        _cluster.CreateTopic(Topic, Partitions);
        _registry = EmbeddedSchemaRegistry.Start();
        _client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = _registry.Url });
    }

    private async Task RunWorkersAsync(Func<Task> worker)
    {
        for (var w = 0; w < Concurrency; w++)
        {
            _workers[w] = worker();
        }

        await Task.WhenAll(_workers).ConfigureAwait(false);
    }
}

/// <summary>The benchmark record as JSON (the same fields as <see cref="BenchOrder"/>).</summary>
public sealed record BenchOrderJson(string Id, string Customer, double Amount, string Note);

/// <summary>The benchmark record as an Avro specific record (written as avrogen would).</summary>
public sealed class BenchOrder : ISpecificRecord
{
    /// <summary>The Avro schema.</summary>
    public static readonly Schema _SCHEMA = Schema.Parse(
        """{"type":"record","name":"BenchOrder","namespace":"kafkakit.bench","fields":[{"name":"id","type":"string"},{"name":"customer","type":"string"},{"name":"amount","type":"double"},{"name":"note","type":"string"}]}""");

    /// <summary>Gets or sets the id.</summary>
    public string Id { get; set; } = string.Empty;

    /// <summary>Gets or sets the customer.</summary>
    public string Customer { get; set; } = string.Empty;

    /// <summary>Gets or sets the amount.</summary>
    public double Amount { get; set; }

    /// <summary>Gets or sets the note.</summary>
    public string Note { get; set; } = string.Empty;

    /// <inheritdoc/>
    public Schema Schema => _SCHEMA;

    /// <inheritdoc/>
    public object Get(int fieldPos) => fieldPos switch
    {
        0 => Id,
        1 => Customer,
        2 => Amount,
        3 => Note,
        _ => throw new AvroRuntimeException($"Bad index {fieldPos} in Get()"),
    };

    /// <inheritdoc/>
    public void Put(int fieldPos, object fieldValue)
    {
        switch (fieldPos)
        {
            case 0: Id = (string)fieldValue; break;
            case 1: Customer = (string)fieldValue; break;
            case 2: Amount = (double)fieldValue; break;
            case 3: Note = (string)fieldValue; break;
            default: throw new AvroRuntimeException($"Bad index {fieldPos} in Put()");
        }
    }
}
