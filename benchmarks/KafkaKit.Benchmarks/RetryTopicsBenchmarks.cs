using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using KafkaKit.Consuming;

namespace KafkaKit.Benchmarks;

/// <summary>
/// One partition, no-op handler, every 10th record fails once, <c>OnError = RetryTopics</c> (<c>Delays = [1 s]</c>):
/// the failed record is written to the retry topic and the partition goes on. Baseline: no record fails. Each
/// invocation measures the time until every record of the batch has been handed to the handler once (a failing record
/// at its first, failing call); retried copies are handled later and not counted. See <see cref="ConsumeFixture"/>.
/// </summary>
[MemoryDiagnoser]
public class RetryTopicsBenchmarks
{
    /// <summary>Messages per invocation.</summary>
    public const int Messages = 2000;

    private EveryTenthFailsOnce? _case;

    /// <summary>No failures.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(NoFailures))]
    public Task SetupNoFailuresAsync() => (_case = new EveryTenthFailsOnce("bench-retry-topics", Messages, fail: false)).StartAsync(_ => { });

    /// <summary>Every 10th record fails once; retry topics.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(RetryTopicsEveryTenthFailsOnce))]
    public Task SetupRetryTopicsAsync() => (_case = new EveryTenthFailsOnce("bench-retry-topics", Messages, fail: true)).StartAsync(_case.RetryTopics);

    /// <summary>Every 10th record fails once; skipped (the cost of the exception alone, for reference).</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(SkipEveryTenthFailsOnce))]
    public Task SetupSkipAsync() => (_case = new EveryTenthFailsOnce("bench-retry-topics", Messages, fail: true)).StartAsync(EveryTenthFailsOnce.Skip);

    /// <summary>Queues the invocation's messages in the holding feeder.</summary>
    [IterationSetup]
    public void Prepare() => _case!.Fixture.Prepare();

    /// <summary>No record fails.</summary>
    /// <returns>A task that completes when the batch was handled.</returns>
    [Benchmark(Baseline = true, OperationsPerInvoke = Messages)]
    public Task NoFailures() => _case!.Fixture.RunKafkaKitAsync();

    /// <summary>Every 10th record fails once and is skipped: what the handler's exception costs without any retry.</summary>
    /// <returns>A task that completes when every record was handed to the handler once.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public Task SkipEveryTenthFailsOnce() => _case!.Fixture.RunKafkaKitAsync();

    /// <summary>Every 10th record fails once and goes to the retry topic.</summary>
    /// <returns>A task that completes when every record was handed to the handler once.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public Task RetryTopicsEveryTenthFailsOnce() => _case!.Fixture.RunKafkaKitAsync();

    /// <summary>Stops the consumer and the cluster.</summary>
    /// <returns>A task that completes when released.</returns>
    [GlobalCleanup]
    public ValueTask CleanupAsync() => _case?.Fixture.DisposeAsync() ?? ValueTask.CompletedTask;
}

/// <summary>
/// The in-place baseline of <see cref="RetryTopicsBenchmarks"/>: the same partition and failures, retried in place
/// (<c>Retry.MaxRetryAttempts = 1</c>, 1 s backoff): the partition waits 1 s at each failure. A smaller batch (each
/// invocation lasts about 20 s); compare the <c>Msg/s</c> columns of the two tables.
/// </summary>
[MemoryDiagnoser]
[BenchmarkCategory(BenchmarkConfig.Long)]
public class InPlaceRetryBenchmarks
{
    /// <summary>Messages per invocation.</summary>
    public const int Messages = 200;

    private EveryTenthFailsOnce? _case;

    /// <summary>No failures.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(NoFailures))]
    public Task SetupNoFailuresAsync() => (_case = new EveryTenthFailsOnce("bench-retry-in-place", Messages, fail: false)).StartAsync(_ => { });

    /// <summary>Every 10th record fails once; in-place retry after 1 s.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(InPlaceRetryEveryTenthFailsOnce))]
    public Task SetupInPlaceAsync() => (_case = new EveryTenthFailsOnce("bench-retry-in-place", Messages, fail: true)).StartAsync(EveryTenthFailsOnce.InPlace);

    /// <summary>Queues the invocation's messages in the holding feeder.</summary>
    [IterationSetup]
    public void Prepare() => _case!.Fixture.Prepare();

    /// <summary>No record fails.</summary>
    /// <returns>A task that completes when the batch was handled.</returns>
    [Benchmark(Baseline = true, OperationsPerInvoke = Messages)]
    public Task NoFailures() => _case!.Fixture.RunKafkaKitAsync();

    /// <summary>Every 10th record fails once and is retried in place after 1 s.</summary>
    /// <returns>A task that completes when every record was handed to the handler once.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public Task InPlaceRetryEveryTenthFailsOnce() => _case!.Fixture.RunKafkaKitAsync();

    /// <summary>Stops the consumer and the cluster.</summary>
    /// <returns>A task that completes when released.</returns>
    [GlobalCleanup]
    public ValueTask CleanupAsync() => _case?.Fixture.DisposeAsync() ?? ValueTask.CompletedTask;
}

/// <summary>A one-partition consumer whose handler fails every 10th source record once (or never).</summary>
internal sealed class EveryTenthFailsOnce
{
    private static readonly TimeSpan Delay = TimeSpan.FromSeconds(1);

    private readonly string _topic;
    private readonly bool _fail;
    private readonly HashSet<long> _failed = [];

    public EveryTenthFailsOnce(string topic, int messages, bool fail)
    {
        _topic = topic;
        _fail = fail;
        Fixture = new ConsumeFixture(topic, partitions: 1, messages);
    }

    public ConsumeFixture Fixture { get; }

    /// <summary>In-place retry: one retry after 1 s, then (never reached) the default OnError.</summary>
    public static void InPlace(KafkaConsumerOptions options)
    {
        options.Retry.MaxRetryAttempts = 1;
        options.Retry.BaseDelay = Delay;
        options.Retry.MaxDelay = Delay;
    }

    /// <summary>No retry: the failed record is skipped (<c>OnError = Skip</c>).</summary>
    public static void Skip(KafkaConsumerOptions options)
    {
        options.OnError = ConsumerErrorAction.Skip;
        options.Retry.MaxRetryAttempts = 0;
    }

    /// <summary>Retry topics: one tier of 1 s, no in-place retry; creates the retry and dead-letter topics.</summary>
    public void RetryTopics(KafkaConsumerOptions options)
    {
        options.OnError = ConsumerErrorAction.RetryTopics;
        options.Retry.MaxRetryAttempts = 0;
        options.RetryTopics.Delays.Add(Delay);
        Fixture.Cluster.CreateTopic(_topic + ".retry.1", 1);
        Fixture.Cluster.CreateTopic(_topic + ".DLT", 1);
    }

    /// <summary>Starts the consumer (joined, warmed up) with the options <paramref name="configure"/> adjusts.</summary>
    public Task StartAsync(Action<KafkaConsumerOptions> configure) => Fixture.StartTypedAsync(options =>
    {
        configure(options);
        return new KafkaConsumerBuilder<Ignore, byte[]>("kafkakit-bench-retry", options).SetHandler(Handle).Build();
    });

    /// <summary>Counts a source record at its first call; fails every 10th once. Retried copies (another topic, or a second call) are not counted.</summary>
    private ValueTask Handle(ConsumeResult<Ignore, byte[]> result, CancellationToken cancellationToken)
    {
        if (result.Topic != _topic)
        {
            return ValueTask.CompletedTask;
        }

        // One partition, handled one at a time: no lock needed for _failed.
        var offset = result.Offset.Value;
        if (_fail && offset % 10 == 0)
        {
            if (_failed.Add(offset))
            {
                Fixture.Count();
                throw new InvalidOperationException("fails once");
            }

            return ValueTask.CompletedTask; // the in-place retry of a counted record
        }

        Fixture.Count();
        return ValueTask.CompletedTask;
    }
}
