using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Hosting;
using KafkaKit.Testing;
using KafkaKit.Tests.Consuming;
using KafkaKit.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Tests.DependencyInjection;

/// <summary>What the application does when a hosted consumer faults, and how a handler's missing dependency is found.</summary>
[TestFixture]
public sealed class HostedConsumerFaultTests
{
    [Test]
    [CancelAfter(90_000)]
    public async Task Regression_C17_HandlerFailsWithOnErrorStop_HostStopsWithExitCode1AndCommitsOnlyHandled()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("orders", partitions: 1);
        KafkaProbe.Produce(cluster.BootstrapServers, "orders", new[] { "m0", "m1", "poison", "m3" }.Select(v => new Message<string, string> { Key = "k", Value = v }), partition: 0);

        var clock = Stopwatch.StartNew();
        await using var process = HostedConsumerProcess.Start(cluster.BootstrapServers, "orders");
        var exited = await process.WaitForExitAsync(TimeSpan.FromSeconds(60));
        var took = clock.Elapsed;
        var lines = process.Lines.ToList();
        var output = string.Join(Environment.NewLine, lines);

        Assert.That(exited, Is.True, $"the host stops by itself; output:{Environment.NewLine}{output}");
        var critical = lines.Where(l => l.StartsWith("log Critical ", StringComparison.Ordinal)).ToList();
        var committed = KafkaProbe.Committed(cluster.BootstrapServers, HostedConsumerProcess.Group, "orders", 1);
        TestContext.Out.WriteLine($"process exited after {took.TotalSeconds:F1} s with {process.ExitCode}; critical: {string.Join(" | ", critical)}");
        Assert.Multiple(() =>
        {
            Assert.That(process.ExitCode, Is.EqualTo(1), output);
            Assert.That(lines, Does.Contain("stopping"), "ApplicationStopping fired");
            Assert.That(lines.Where(l => l.StartsWith("handled ", StringComparison.Ordinal)), Is.EqualTo(new[] { "handled m0", "handled m1" }), "m3 is never handled");
            Assert.That(critical, Has.Count.EqualTo(1), output);
            Assert.That(critical.FirstOrDefault(), Does.Contain($"log Critical 2018 Consumer {HostedConsumerProcess.ConsumerName} ")
                .And.Contain("orders [0] @2").And.Contain("OnError is Stop").And.Contain("DeadLetter").And.Contain("Skip"));
            Assert.That(lines, Has.One.StartsWith($"log Error 3100 Consumer {HostedConsumerProcess.ConsumerName} ").And.Contain("exit code 1"));
            Assert.That(committed[0], Is.EqualTo(2), "the stop commits what was handled (m0, m1), not the failed record");
        });
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Regression_C17_OnFaultKeepHostRunning_HostKeepsRunningAndHealthIsUnhealthy()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("orders", partitions: 1);
        KafkaProbe.Produce(cluster.BootstrapServers, "orders", new[] { "m0", "poison" }.Select(v => new Message<string, string> { Value = v }), partition: 0);
        var logs = new CapturingLoggerFactory();
        var builder = NewHost(logs);
        builder.Services.AddKafkaKit(o =>
            {
                var consumer = ConsumerTestKit.Options(cluster, "billing", "orders");
                consumer.Retry.MaxRetryAttempts = 1;
                consumer.Retry.BaseDelay = TimeSpan.FromMilliseconds(10);
                consumer.OnFault = ConsumerFaultBehavior.KeepHostRunning;
                o.Consumers["orders-worker"] = consumer;
            })
            .AddConsumer<string, string, FailingHandler>("orders-worker");
        builder.Services.AddHealthChecks().AddKafkaKit();
        using var host = builder.Build();
        var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
        var exitCode = Environment.ExitCode;

        await host.StartAsync();
        await Wait.ForAsync(() => logs.Count(3101) == 1, TimeSpan.FromSeconds(30), "the consumer faulted and the decision to keep the host running was logged");
        var health = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        var stoppingAfterFault = lifetime.ApplicationStopping.IsCancellationRequested;
        await host.StopAsync();

        Assert.Multiple(() =>
        {
            Assert.That(stoppingAfterFault, Is.False, "the application was not asked to stop");
            Assert.That(logs.Count(3100), Is.Zero, "no 'stopping the application' line");
            Assert.That(Environment.ExitCode, Is.EqualTo(exitCode), "the exit code is left alone");
            Assert.That(health.Status, Is.EqualTo(HealthStatus.Unhealthy));
            Assert.That(health.Entries["kafkakit"].Data.Values.Single()!.ToString(), Does.Contain("stopped on error").And.Contain("orders [0] @1"));
            Assert.That(KafkaProbe.Committed(cluster.BootstrapServers, "billing", "orders", 1)[0], Is.EqualTo(1), "m0 committed, the failed record not");
        });
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Regression_C18_HandlerDependencyMissingInProduction_HostStartFailsNamingHandlerAndService()
    {
        var logs = new CapturingLoggerFactory();
        var builder = NewHost(logs);
        builder.Services.AddKafkaKit(o =>
            {
                var consumer = new KafkaConsumerOptions { GroupId = "billing" };
                consumer.Topics.Add("orders");
                o.BootstrapServers = "127.0.0.1:1";
                o.Consumers["orders-worker"] = consumer;
            })
            .AddConsumer<string, Order, OrderHandler>("orders-worker");
        using var host = builder.Build();

        var clock = Stopwatch.StartNew();
        var error = Assert.CatchAsync<InvalidOperationException>(() => host.StartAsync());
        var took = clock.Elapsed;

        Assert.Multiple(() =>
        {
            Assert.That(host.Services.GetRequiredService<IHostEnvironment>().EnvironmentName, Is.EqualTo(Environments.Production));
            Assert.That(error!.Message, Does.Contain("'orders-worker'").And.Contain(typeof(OrderHandler).FullName).And.Contain(typeof(IPaymentGateway).FullName));
            Assert.That(logs.Count(2000), Is.Zero, "the consumer is not started");
            Assert.That(took, Is.LessThan(TimeSpan.FromSeconds(2)));
        });
        await host.StopAsync();
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Regression_C18_HandlerUnresolvableAtRunTime_ConsumerStopsAtOnceWithoutRetryOrOnError()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("orders", partitions: 1);
        KafkaProbe.Produce(cluster.BootstrapServers, "orders", new[] { "m0", "m1", "m2" }.Select(v => new Message<string, string> { Value = v }), partition: 0);
        var logs = new CapturingLoggerFactory();
        var builder = NewHost(logs);
        var resolutions = 0;
        var handled = 0;
        builder.Services.AddScoped(sp =>
        {
            // The start check (1) and the handlers of m0 (2) and m1 (3) succeed; the handler of m2 (4) asks for a
            // service nobody registered.
            if (Interlocked.Increment(ref resolutions) == 4)
            {
                sp.GetRequiredService<IPaymentGateway>();
            }

            return new CountingHandler(() => Interlocked.Increment(ref handled));
        });
        builder.Services.AddKafkaKit(o =>
            {
                var consumer = ConsumerTestKit.Options(cluster, "billing", "orders");
                consumer.Retry.MaxRetryAttempts = 3;
                consumer.Retry.BaseDelay = TimeSpan.FromMilliseconds(10);
                consumer.OnError = ConsumerErrorAction.Skip; // would step past a failed message: must not apply
                consumer.OnFault = ConsumerFaultBehavior.KeepHostRunning;
                o.Consumers["orders-worker"] = consumer;
            })
            .AddConsumer<string, string, CountingHandler>("orders-worker");
        using var host = builder.Build();

        await host.StartAsync();
        var service = host.Services.GetServices<IHostedService>().OfType<KafkaConsumerService<string, string>>().Single();
        await Wait.ForAsync(() => service.Consumer?.State == KafkaConsumerState.Faulted, TimeSpan.FromSeconds(30), "the consumer stopped on the configuration error");
        await service.Watching;
        await host.StopAsync();

        Assert.Multiple(() =>
        {
            Assert.That(resolutions, Is.EqualTo(4), "resolved at start, for m0 and m1, and once for m2: not retried");
            Assert.That(handled, Is.EqualTo(2));
            Assert.That(logs.Count(2007), Is.Zero, "no retry");
            Assert.That(logs.Count(2008), Is.Zero, "OnError (Skip) does not apply");
            Assert.That(service.Consumer!.Fault!.Message, Does.Contain(typeof(CountingHandler).FullName).And.Contain(typeof(IPaymentGateway).FullName).And.Contain("orders [0] @2"));
            Assert.That(logs.Lines.Where(l => l.Level == LogLevel.Critical).Select(l => l.EventId.Id), Is.EqualTo(new[] { 2018 }));
            Assert.That(KafkaProbe.Committed(cluster.BootstrapServers, "billing", "orders", 1)[0], Is.EqualTo(2), "m2 is not committed");
        });
    }

    /// <summary>A production host logging to <paramref name="logs"/> (also for the share consumer's fault tests).</summary>
    internal static HostApplicationBuilder NewHost(CapturingLoggerFactory logs)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, EnvironmentName = Environments.Production });
        builder.Services.AddSingleton<ILoggerFactory>(logs);
        return builder;
    }

    public sealed record Order(int Id);

    public interface IPaymentGateway;

    public sealed class OrderHandler(IPaymentGateway gateway) : IKafkaMessageHandler<string, Order>
    {
        public ValueTask HandleAsync(ConsumeResult<string, Order> result, CancellationToken cancellationToken) =>
            gateway is null ? throw new InvalidOperationException() : ValueTask.CompletedTask;
    }

    public sealed class FailingHandler : IKafkaMessageHandler<string, string>
    {
        public ValueTask HandleAsync(ConsumeResult<string, string> result, CancellationToken cancellationToken) =>
            result.Message.Value == "poison" ? throw new InvalidOperationException("cannot handle poison") : ValueTask.CompletedTask;
    }

    public sealed class CountingHandler(Action onHandled) : IKafkaMessageHandler<string, string>
    {
        public ValueTask HandleAsync(ConsumeResult<string, string> result, CancellationToken cancellationToken)
        {
            onHandled();
            return ValueTask.CompletedTask;
        }
    }
}
