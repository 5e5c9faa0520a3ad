using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.DependencyInjection;
using KafkaKit.Hosting;
using KafkaKit.Producing;
using KafkaKit.Tests.Support;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace KafkaKit.Tests.Reliability;

/// <summary>
/// A well-formed bootstrap server that no broker answers at: Build succeeds, the client error is logged naming the
/// server, the health check reports unhealthy, and nothing is dropped silently. No cluster.
/// </summary>
[TestFixture]
[Category(ReliabilityKit.Category)]
[Parallelizable(ParallelScope.Self)]
public sealed class UnreachableBrokerReliabilityTests
{
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
}
