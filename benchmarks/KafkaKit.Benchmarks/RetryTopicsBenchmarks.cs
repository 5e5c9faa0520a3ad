using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using KafkaKit.Consuming;

namespace KafkaKit.Benchmarks;

/// <summary>
/// One partition, no-op handler, every 10th record fails once: how much the failures cost the rest of the partition.
/// Baseline: no record fails. <c>OnError = RetryTopics</c> (<c>Delays = [1 s]</c>): the failed record is written to
/// the retry topic and the partition goes on. In-place retry (<c>Retry.MaxRetryAttempts = 1</c>, 1 s backoff, the default
/// <c>OnError</c>): the partition waits 1 s at each failure. Each invocation measures the time until every record of
/// the batch has been handed to the handler once (a failing record at its first, failing call); retried copies from
/// the retry topic are handled meanwhile or later and are not counted. See <see cref="ConsumeFixture"/> for the shape.
/// </summary>
[MemoryDiagnoser]
public class RetryTopicsBenchmarks
{
    /// <summary>Messages per invocation.</summary>
    public const int Messages = 200;

    private const string Topic = "bench-retry";
    private static readonly TimeSpan Delay = TimeSpan.FromSeconds(1);

    private readonly HashSet<long> _failed = [];
    private ConsumeFixture? _fixture;
    private bool _fail;

    /// <summary>No failures.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(NoFailures))]
    public Task SetupNoFailuresAsync() => StartAsync(fail: false, _ => { });

    /// <summary>Every 10th record fails once; retry topics.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(RetryTopicsEveryTenthFailsOnce))]
    public Task SetupRetryTopicsAsync() => StartAsync(fail: true, options =>
    {
        options.OnError = ConsumerErrorAction.RetryTopics;
        options.Retry.MaxRetryAttempts = 0;
        options.RetryTopics.Delays.Add(Delay);
        _fixture!.Cluster.CreateTopic(Topic + ".retry.1", 1);
        _fixture.Cluster.CreateTopic(Topic + ".DLT", 1);
    });

    /// <summary>Every 10th record fails once; in-place retry after 1 s.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(InPlaceRetryEveryTenthFailsOnce))]
    public Task SetupInPlaceAsync() => StartAsync(fail: true, options =>
    {
        options.Retry.MaxRetryAttempts = 1;
        options.Retry.BaseDelay = Delay;
        options.Retry.MaxDelay = Delay;
    });

    /// <summary>Queues the invocation's messages in the holding feeder.</summary>
    [IterationSetup]
    public void Prepare() => _fixture!.Prepare();

    /// <summary>No record fails.</summary>
    /// <returns>A task that completes when the batch was handled.</returns>
    [Benchmark(Baseline = true, OperationsPerInvoke = Messages)]
    public Task NoFailures() => _fixture!.RunKafkaKitAsync();

    /// <summary>Every 10th record fails once and goes to the retry topic.</summary>
    /// <returns>A task that completes when every record was handed to the handler once.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public Task RetryTopicsEveryTenthFailsOnce() => _fixture!.RunKafkaKitAsync();

    /// <summary>Every 10th record fails once and is retried in place after 1 s.</summary>
    /// <returns>A task that completes when every record was handed to the handler once.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public Task InPlaceRetryEveryTenthFailsOnce() => _fixture!.RunKafkaKitAsync();

    /// <summary>Stops the consumer and the cluster.</summary>
    /// <returns>A task that completes when released.</returns>
    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        if (_fixture is not null)
        {
            await _fixture.DisposeAsync().ConfigureAwait(false);
        }
    }

    private Task StartAsync(bool fail, Action<KafkaConsumerOptions> configure)
    {
        _fail = fail;
        _fixture = new ConsumeFixture(Topic, partitions: 1, Messages);
        return _fixture.StartTypedAsync(options =>
        {
            configure(options);
            return new KafkaConsumerBuilder<Ignore, byte[]>("kafkakit-bench-retry", options).SetHandler(Handle).Build();
        });
    }

    /// <summary>Counts a source record at its first call; fails every 10th once. Retried copies (other topics, or a second call) are not counted.</summary>
    private ValueTask Handle(ConsumeResult<Ignore, byte[]> result, CancellationToken cancellationToken)
    {
        if (result.Topic != Topic)
        {
            return ValueTask.CompletedTask;
        }

        // One partition, handled one at a time: no lock needed for _failed.
        var offset = result.Offset.Value;
        if (_fail && offset % 10 == 0)
        {
            if (_failed.Add(offset))
            {
                _fixture!.Count();
                throw new InvalidOperationException("fails once");
            }

            return ValueTask.CompletedTask; // the in-place retry of a counted record
        }

        _fixture!.Count();
        return ValueTask.CompletedTask;
    }
}
