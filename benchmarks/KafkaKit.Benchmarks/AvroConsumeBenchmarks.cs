using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using Confluent.Kafka.SyncOverAsync;
using Confluent.SchemaRegistry;
using Confluent.SchemaRegistry.Serdes;
using KafkaKit.Consuming;
using KafkaKit.SchemaRegistry;
using KafkaKit.SchemaRegistry.Avro;
using KafkaKit.Testing;

namespace KafkaKit.Benchmarks;

/// <summary>
/// Avro consume + handle from one partition with a no-op handler, schema cached after the warm-up: a raw Confluent
/// <c>Consume</c> loop with Confluent's <c>AvroDeserializer</c> made synchronous by <c>AsSyncOverAsync</c> (Confluent's
/// documented way to use it with <c>Consume</c>) + <c>StoreOffset</c>, against KafkaKit's consumer with <c>UseAvro</c>
/// (the async deserializer awaited on the handler side). Same feeder and timing as <see cref="ConsumeBenchmarks"/>.
/// </summary>
[MemoryDiagnoser]
public class AvroConsumeBenchmarks
{
    /// <summary>Messages per invocation (as <see cref="ConsumeBenchmarks.Messages"/>: the cluster's per-partition cap).</summary>
    public const int Messages = 20_000;

    private const string Topic = "bench-avro-consume";

    private EmbeddedSchemaRegistry? _registry;
    private CachedSchemaRegistryClient? _client;
    private ConsumeFixture? _fixture;
    private IDeserializer<BenchOrder>? _syncOverAsync;

    /// <summary>Raw consumer with the Avro deserializer (AsSyncOverAsync); joined and warmed up.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(ConfluentConsumeAvroSyncOverAsync))]
    public async Task SetupConfluentAsync()
    {
        _fixture = await StartAsync().ConfigureAwait(false);
        _syncOverAsync = new AvroDeserializer<BenchOrder>(_client).AsSyncOverAsync();
        _fixture.StartRaw();
    }

    /// <summary>KafkaKit consumer with <c>UseAvro</c>; joined and warmed up.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(KafkaKitConsumerAvro))]
    public async Task SetupKafkaKitAsync()
    {
        _fixture = await StartAsync().ConfigureAwait(false);
        var registryOptions = new SchemaRegistryOptions { Url = _registry!.Url };
        await _fixture.StartTypedAsync<BenchOrder>(options => new KafkaConsumerBuilder<Ignore, BenchOrder>("kafkakit-bench-avro", options)
            .UseAvro(_client!, registryOptions)
            .SetHandler(HandleAsync)
            .Build()).ConfigureAwait(false);
    }

    /// <summary>Queues the invocation's messages in the holding feeder.</summary>
    [IterationSetup]
    public void Prepare() => _fixture!.Prepare();

    /// <summary>Raw: release the batch, then <c>Consume</c> + Avro deserialize (sync over async) + <c>StoreOffset</c>.</summary>
    /// <returns>The number of messages handled.</returns>
    [Benchmark(Baseline = true, OperationsPerInvoke = Messages)]
    public int ConfluentConsumeAvroSyncOverAsync()
    {
        _fixture!.Release();
        var consumer = _fixture.Raw!;
        var deadline = DateTime.UtcNow + BenchmarkEnvironment.InvocationTimeout;
        var handled = 0;
        while (handled < Messages)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(100));
            if (result is null)
            {
                ConsumeFixture.ThrowIfLate(deadline, handled, Messages);
                continue;
            }

            // What ConsumerBuilder.SetValueDeserializer(deserializer.AsSyncOverAsync()) does inside Consume.
            _ = _syncOverAsync!.Deserialize(result.Message.Value, false, new SerializationContext(MessageComponentType.Value, result.Topic, result.Message.Headers));
            consumer.StoreOffset(result);
            handled++;
        }

        return handled;
    }

    /// <summary>KafkaKit: release the batch and wait until the handler has seen all of it.</summary>
    /// <returns>A task that completes when the last message was handled.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public Task KafkaKitConsumerAvro() => _fixture!.RunKafkaKitAsync();

    /// <summary>Stops the consumers, the registry and the cluster.</summary>
    /// <returns>A task that completes when released.</returns>
    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        if (_fixture is not null)
        {
            await _fixture.DisposeAsync().ConfigureAwait(false);
        }

        _client?.Dispose();
        if (_registry is not null)
        {
            await _registry.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task<ConsumeFixture> StartAsync()
    {
        _registry = EmbeddedSchemaRegistry.Start();
        _client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = _registry.Url });
        var value = await new AvroSerializer<BenchOrder>(_client).SerializeAsync(
            new BenchOrder { Id = "order-000000000001", Customer = "customer-0000000001", Amount = 42.5, Note = new string('n', 40) },
            new SerializationContext(MessageComponentType.Value, Topic)).ConfigureAwait(false);
        return new ConsumeFixture(Topic, 1, Messages, value);
    }

    /// <summary>The no-op handler: count and complete synchronously.</summary>
    private ValueTask HandleAsync(ConsumeResult<Ignore, BenchOrder> result, CancellationToken cancellationToken)
    {
        _fixture!.Count();
        return default;
    }
}
