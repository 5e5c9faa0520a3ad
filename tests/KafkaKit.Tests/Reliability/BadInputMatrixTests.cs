using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.DependencyInjection;
using KafkaKit.Hosting;
using KafkaKit.Producing;
using KafkaKit.Serialization;
using KafkaKit.Testing;
using KafkaKit.Tests.Consuming;
using KafkaKit.Tests.Support;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace KafkaKit.Tests.Reliability;

/// <summary>
/// Bad input to producer, consumer and their options: each case asserts the exact exception type and that its message
/// names the bad value and what is allowed. Most cases need no cluster; the rest use a one-broker embedded cluster.
/// </summary>
[TestFixture]
[Category(ReliabilityKit.Category)]
[Parallelizable(ParallelScope.Self)]
public sealed class BadInputMatrixTests
{
    private const string Unreachable = "127.0.0.1:9"; // nothing listens; Build never connects

    // ---- configuration ------------------------------------------------------------------------------------------

    /// <summary>
    /// librdkafka accepts any text for bootstrap.servers when it is configured: "not a host:port" became host "not a host",
    /// port 0, logged as unresolvable on every reconnect while Build had succeeded. KafkaKit now refuses malformed entries
    /// at Build (and at host start), naming the entry and what is allowed.
    /// </summary>
    [TestCase("not a host:port", "not a host:port")]
    [TestCase("broker1:9092,broker2:port", "broker2:port")]
    [TestCase("broker1:70000", "broker1:70000")]
    [TestCase("PLAINTEXT://:9092", "PLAINTEXT://:9092")]
    public void Build_MalformedBootstrapServers_ThrowsOptionsValidationNamingTheEntry(string servers, string bad)
    {
        var producer = Assert.Throws<OptionsValidationException>(() => new KafkaProducerBuilder<string, string>("p", new KafkaProducerOptions { BootstrapServers = servers }).Build());
        var consumer = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("c", new KafkaConsumerOptions { BootstrapServers = servers, GroupId = "g", Topics = { "t" } })
            .SetHandler((_, _) => default).Build());

        Assert.Multiple(() =>
        {
            Assert.That(producer!.Failures.Single(), Does.StartWith($"Producer 'p' has a malformed bootstrap server '{bad}'").And.Contain("host:port").And.Contain("1 to 65535"));
            Assert.That(consumer!.Failures.Single(), Does.StartWith($"Consumer 'c' has a malformed bootstrap server '{bad}'"));
        });
    }

    [TestCase("localhost")]
    [TestCase("127.0.0.1:9092, 127.0.0.1:9093")]
    [TestCase("SSL://broker.example.com:9093")]
    [TestCase("[::1]:9092,[fe80::1]")]
    public void Build_WellFormedBootstrapServers_Accepted(string servers)
    {
        Assert.DoesNotThrowAsync(async () => await new KafkaProducerBuilder<string, string>("p", new KafkaProducerOptions { BootstrapServers = servers, FlushTimeoutOnDispose = TimeSpan.Zero }).Build().DisposeAsync());
    }

    /// <summary>
    /// A well-formed bootstrap server that does not resolve can only fail at run time: the producer logs the resolution
    /// failure (event 1004), the health check reports it unhealthy, and a message enqueued meanwhile gets its failed
    /// outcome at dispose.
    /// </summary>
    [Test]
    [CancelAfter(30_000)]
    public async Task Producer_UnresolvableBootstrapServer_LogsTheErrorHealthUnhealthyMessageFailsAtDispose()
    {
        var logs = new CapturingLoggerFactory();
        var options = new KafkaProducerOptions { BootstrapServers = "no-such-host.invalid:9092", FlushTimeoutOnDispose = TimeSpan.FromMilliseconds(200) };
        var producer = new KafkaProducerBuilder<string, string>("unresolvable", options).SetLoggerFactory(logs).Build();
        var outcome = new TaskCompletionSource<Error>(TaskCreationOptions.RunContinuationsAsynchronously);
        await producer.EnqueueAsync("t", new Message<string, string> { Key = "k", Value = "v" }, r => outcome.TrySetResult(r.Error));
        var clients = new KafkaKitClients();
        clients.Add(KafkaClientHealth.For(producer));

        await Wait.ForAsync(() => logs.Count(1004) > 0, TimeSpan.FromSeconds(15), "a client error is logged");
        var health = await new KafkaKitHealthCheck(clients).CheckHealthAsync(new HealthCheckContext());
        await producer.DisposeAsync();
        var error = await outcome.Task.WaitAsync(TimeSpan.FromSeconds(10));

        var errors = string.Join(" | ", logs.Lines.Where(l => l.EventId.Id == 1004).Select(l => l.Message).Distinct().Take(3));
        TestContext.Out.WriteLine($"client errors: {errors}; health: {health.Status} {string.Join(", ", health.Data.Values)}; outcome {error.Code}");
        Assert.Multiple(() =>
        {
            Assert.That(errors, Does.Contain("no-such-host.invalid:9092"), "the log names the server that could not be resolved");
            Assert.That(health.Status, Is.EqualTo(HealthStatus.Unhealthy));
            Assert.That(string.Join(", ", health.Data.Values), Does.Contain("no broker reachable"));
            Assert.That(error.Code, Is.EqualTo(ErrorCode.Local_PurgeQueue), "the undeliverable message gets its failed outcome");
        });
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Consumer_UnresolvableBootstrapServer_LogsTheErrorKeepsRunningHealthUnhealthy()
    {
        var logs = new CapturingLoggerFactory();
        var options = new KafkaConsumerOptions { BootstrapServers = "no-such-host.invalid:9092", GroupId = "g", Topics = { "t" } };
        await using var consumer = new KafkaConsumerBuilder<string, string>("unresolvable", options).SetLoggerFactory(logs).SetHandler((_, _) => default).Build();
        await consumer.StartAsync();
        var clients = new KafkaKitClients();
        clients.Add(KafkaClientHealth.For(consumer));

        await Wait.ForAsync(() => logs.Count(2005) > 0, TimeSpan.FromSeconds(15), "a client error is logged");
        var health = await new KafkaKitHealthCheck(clients).CheckHealthAsync(new HealthCheckContext());

        var errors = string.Join(" | ", logs.Lines.Where(l => l.EventId.Id == 2005).Select(l => l.Message).Distinct().Take(3));
        TestContext.Out.WriteLine($"client errors: {errors}; health: {health.Status} {string.Join(", ", health.Data.Values)}");
        Assert.Multiple(() =>
        {
            Assert.That(errors, Does.Contain("no-such-host.invalid:9092"));
            Assert.That(health.Status, Is.EqualTo(HealthStatus.Unhealthy));
            Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Running), "the consumer keeps retrying: the brokers may appear");
        });
    }

    [Test]
    public void ProducerBuild_UnknownConfigKey_ThrowsOptionsValidationNamingTheKey()
    {
        var options = new KafkaProducerOptions { BootstrapServers = Unreachable };
        options.Config["lingr.ms"] = "5";

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaProducerBuilder<string, string>("p", options).Build());

        Assert.That(e!.Message, Does.Contain("'lingr.ms=5'").And.Contain("No such configuration property"));
    }

    [Test]
    public void ConsumerBuild_UnknownConfigKey_ThrowsOptionsValidationNamingTheKey()
    {
        var options = new KafkaConsumerOptions { BootstrapServers = Unreachable, GroupId = "g", Topics = { "t" } };
        options.Config["sesion.timeout.ms"] = "6000";

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("c", options).SetHandler((_, _) => default).Build());

        Assert.That(e!.Message, Does.Contain("'sesion.timeout.ms=6000'").And.Contain("No such configuration property"));
    }

    [Test]
    public void ProducerBuild_NegativeLingerMs_ThrowsOptionsValidationNamingValueAndRange()
    {
        var options = new KafkaProducerOptions { BootstrapServers = Unreachable };
        options.Config["linger.ms"] = "-5";

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaProducerBuilder<string, string>("p", options).Build());

        Assert.That(e!.Message, Does.Contain("'linger.ms=-5'").And.Contain("outside allowed range"));
    }

    [TestCase(0)]
    [TestCase(10_001)]
    public void ConsumerBuild_MaxConcurrencyOutOfRange_ThrowsOptionsValidationNamingValueAndRange(int value)
    {
        var options = new KafkaConsumerOptions { BootstrapServers = Unreachable, GroupId = "g", Topics = { "t" }, MaxConcurrency = value };

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("c", options).SetHandler((_, _) => default).Build());

        Assert.That(e!.Failures, Is.EqualTo(new[] { $"Consumer 'c': MaxConcurrency is {value}; it must be between 1 and 10000." }));
    }

    [Test]
    public void ProducerBuild_NegativeMaxBlock_ThrowsOptionsValidationNamingValueAndRange()
    {
        var options = new KafkaProducerOptions { BootstrapServers = Unreachable, MaxBlock = TimeSpan.FromSeconds(-1) };

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaProducerBuilder<string, string>("p", options).Build());

        Assert.That(e!.Message, Does.Contain("MaxBlock is -00:00:01").And.Contain("must be between 0 and"));
    }

    [Test]
    public void ConsumerBuild_InvalidTopicRegex_ThrowsOptionsValidationNamingThePattern()
    {
        var options = new KafkaConsumerOptions { BootstrapServers = Unreachable, GroupId = "g", Topics = { "^orders-(" } };

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("c", options).SetHandler((_, _) => default).Build());

        Assert.That(e!.Message, Does.Contain("Topics entry '^orders-('").And.Contain("not a valid regular expression"));
    }

    [Test]
    public void ConsumerBuild_NullTopicEntry_ThrowsOptionsValidationSayingSo()
    {
        var options = new KafkaConsumerOptions { BootstrapServers = Unreachable, GroupId = "g", Topics = { null! } };

        var e = Assert.Throws<OptionsValidationException>(() => new KafkaConsumerBuilder<string, string>("c", options).SetHandler((_, _) => default).Build());

        Assert.That(e!.Failures, Is.EqualTo(new[] { "Consumer 'c': Topics has an empty entry." }));
    }

    // ---- producing ----------------------------------------------------------------------------------------------

    [Test]
    [CancelAfter(30_000)]
    public async Task Enqueue_NullTopic_ThrowsArgumentNullNamingTopic()
    {
        await using var producer = new KafkaProducerBuilder<string, string>("p", new KafkaProducerOptions { BootstrapServers = Unreachable }).Build();

        var e = Assert.ThrowsAsync<ArgumentNullException>(async () => await producer.EnqueueAsync(null!, new Message<string, string> { Value = "v" }));

        Assert.Multiple(() =>
        {
            Assert.That(e!.ParamName, Is.EqualTo("topic"));
            Assert.That(producer.QueuedMessages, Is.Zero);
        });
    }

    /// <summary>librdkafka refuses a message larger than message.max.bytes when it is produced: nothing is enqueued.</summary>
    [Test]
    [CancelAfter(30_000)]
    public async Task Enqueue_ValueOverMessageMaxBytes_ThrowsMsgSizeTooLargeBeforeEnqueueNamingTheLimit()
    {
        var options = new KafkaProducerOptions { BootstrapServers = Unreachable };
        options.Config["message.max.bytes"] = "1000";
        await using var producer = new KafkaProducerBuilder<string, string>("p", options).Build();

        var e = Assert.ThrowsAsync<ProduceException<string, string>>(async () => await producer.EnqueueAsync("t", new Message<string, string> { Value = new string('x', 5_000) }));

        TestContext.Out.WriteLine($"{e!.Error.Code}: {e.Message}");
        Assert.Multiple(() =>
        {
            Assert.That(e.Error.Code, Is.EqualTo(ErrorCode.MsgSizeTooLarge));
            Assert.That(e.Message, Does.Contain("message.max.bytes").And.Contain("1000"), "the message names the limit");
            Assert.That(producer.QueuedMessages, Is.Zero, "nothing enqueued");
        });
    }

    /// <summary>Headers count toward message.max.bytes (librdkafka adds their serialized size to key and value).</summary>
    [Test]
    [CancelAfter(30_000)]
    public async Task Enqueue_HeadersOverMessageMaxBytes_ThrowsMsgSizeTooLargeBeforeEnqueue()
    {
        var options = new KafkaProducerOptions { BootstrapServers = Unreachable };
        options.Config["message.max.bytes"] = "1000";
        await using var producer = new KafkaProducerBuilder<string, string>("p", options).Build();
        var message = new Message<string, string> { Value = "small", Headers = new Headers { { "big", new byte[5_000] } } };

        var e = Assert.ThrowsAsync<ProduceException<string, string>>(async () => await producer.EnqueueAsync("t", message));

        Assert.Multiple(() =>
        {
            Assert.That(e!.Error.Code, Is.EqualTo(ErrorCode.MsgSizeTooLarge));
            Assert.That(e.Message, Does.Contain("message.max.bytes").And.Contain("1000"));
            Assert.That(producer.QueuedMessages, Is.Zero);
        });
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Producer_DisposedTwice_SecondDisposeIsANoOp()
    {
        var producer = new KafkaProducerBuilder<string, string>("p", new KafkaProducerOptions { BootstrapServers = Unreachable }).Build();
        await producer.DisposeAsync();

        Assert.DoesNotThrowAsync(async () => await producer.DisposeAsync());
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Producer_UsedAfterDispose_ThrowsObjectDisposedOnEveryCall()
    {
        var producer = new KafkaProducerBuilder<string, string>("p", new KafkaProducerOptions { BootstrapServers = Unreachable }).Build();
        await producer.DisposeAsync();
        var message = new Message<string, string> { Value = "v" };

        Assert.Multiple(() =>
        {
            Assert.ThrowsAsync<ObjectDisposedException>(async () => await producer.EnqueueAsync("t", message));
            Assert.Throws<ObjectDisposedException>(() => producer.TryEnqueue("t", message));
            Assert.ThrowsAsync<ObjectDisposedException>(async () => await producer.ProduceAsync("t", message));
            Assert.ThrowsAsync<ObjectDisposedException>(async () => await producer.FlushAsync());
            Assert.Throws<ObjectDisposedException>(() => producer.Flush(TimeSpan.FromSeconds(1)));
        });
    }

    // ---- consuming ----------------------------------------------------------------------------------------------

    [Test]
    public void ConsumerStart_TokenAlreadyCancelled_ThrowsOperationCanceledAndStaysCreated()
    {
        var consumer = BuildIdleConsumer();
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();

        var e = Assert.Throws<OperationCanceledException>(() => _ = consumer.StartAsync(cancelled.Token));

        Assert.Multiple(() =>
        {
            Assert.That(e!.CancellationToken, Is.EqualTo(cancelled.Token));
            Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Created), "nothing was started");
        });
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Consumer_DisposedTwice_SecondDisposeIsANoOp()
    {
        var consumer = BuildIdleConsumer();
        await consumer.StartAsync();
        await consumer.DisposeAsync();

        Assert.DoesNotThrowAsync(async () => await consumer.DisposeAsync());
        Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Stopped));
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task ConsumerStart_AfterDispose_ThrowsObjectDisposed()
    {
        var consumer = BuildIdleConsumer();
        await consumer.DisposeAsync();

        var e = Assert.Throws<ObjectDisposedException>(() => _ = consumer.StartAsync());

        Assert.That(e!.Message, Does.Contain("Consumer 'idle' was disposed"), "names the consumer");
    }

    [Test]
    public void JsonDeserializer_NullJsonForNonNullableReferenceType_ThrowsInvalidDataNamingTypeAndTopic()
    {
        var deserializer = KafkaSerializers.DeserializerFor<Order>();

        var e = Assert.Throws<InvalidDataException>(() => deserializer.Deserialize("null"u8, false, new SerializationContext(MessageComponentType.Value, "orders")));

        Assert.That(e!.Message, Does.Contain("'null'").And.Contain(nameof(Order)).And.Contain("'orders'"));
    }

    [Test]
    public void JsonDeserializer_NullJsonForValueType_ThrowsJsonExceptionNamingTheType()
    {
        var deserializer = KafkaSerializers.DeserializerFor<Point>();

        var e = Assert.Throws<JsonException>(() => deserializer.Deserialize("null"u8, false, new SerializationContext(MessageComponentType.Value, "points")));

        Assert.That(e!.Message, Does.Contain(nameof(Point)));
    }

    /// <summary>
    /// A handler that throws before returning its task and one that throws after an await go through the same path:
    /// retried in place (<c>Retry.MaxRetryAttempts</c>), then <c>OnError</c> (Skip here), and the partition goes on.
    /// </summary>
    [Test]
    [CancelAfter(60_000)]
    public async Task Handler_ThrowsSynchronouslyOrAsynchronously_BothRetriedThenOnErrorTheSameWay()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("throws", partitions: 1);
        KafkaProbe.Produce(cluster.BootstrapServers, "throws", [
            new Message<string, string> { Key = "k", Value = "sync" },
            new Message<string, string> { Key = "k", Value = "async" },
            new Message<string, string> { Key = "k", Value = "ok" },
        ]);
        var options = ConsumerTestKit.Options(cluster, "throws-group", "throws");
        options.OnError = ConsumerErrorAction.Skip;
        options.Retry.MaxRetryAttempts = 2;
        options.Retry.BaseDelay = TimeSpan.FromMilliseconds(10);
        options.CommitInterval = TimeSpan.FromMilliseconds(200);
        var logs = new CapturingLoggerFactory();
        var calls = new ConcurrentQueue<string>();
        await using var consumer = new KafkaConsumerBuilder<string, string>("throws", options)
            .SetLoggerFactory(logs)
            .SetHandler((r, ct) =>
            {
                calls.Enqueue(r.Message.Value);
                return r.Message.Value switch
                {
                    "sync" => throw new InvalidOperationException("thrown synchronously"),
                    "async" => ThrowAfterAwaitAsync(ct),
                    _ => ValueTask.CompletedTask,
                };
            })
            .Build();

        await consumer.StartAsync();
        await ConsumerTestKit.WaitForCommittedAsync(cluster, "throws-group", "throws", 1, c => c[0] == 3, TimeSpan.FromSeconds(20), "offset 3");

        var failed = logs.Lines.Where(l => l.EventId.Id == 2008).Select(l => l.Message).ToList();
        var retries = logs.Lines.Where(l => l.EventId.Id == 2007).Select(l => l.Exception?.Message).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(calls, Is.EqualTo(new[] { "sync", "sync", "sync", "async", "async", "async", "ok" }), "each failing message: one call and two retries");
            Assert.That(retries.Count(m => m == "thrown synchronously"), Is.EqualTo(2));
            Assert.That(retries.Count(m => m == "thrown after an await"), Is.EqualTo(2));
            Assert.That(failed, Has.Count.EqualTo(2));
            Assert.That(failed, Has.All.Contain("handler").And.Contain("Skip"));
            Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Running));
        });
    }

    private static async ValueTask ThrowAfterAwaitAsync(CancellationToken cancellationToken)
    {
        await Task.Delay(1, cancellationToken);
        throw new InvalidOperationException("thrown after an await");
    }

    private static KafkaConsumer<string, string> BuildIdleConsumer() =>
        new KafkaConsumerBuilder<string, string>("idle", new KafkaConsumerOptions { BootstrapServers = Unreachable, GroupId = "g", Topics = { "t" } })
            .SetHandler((_, _) => default)
            .Build();

    /// <summary>A JSON reference type.</summary>
    public sealed record Order(string Id);

    /// <summary>A JSON value type.</summary>
    public readonly record struct Point(int X, int Y);
}
