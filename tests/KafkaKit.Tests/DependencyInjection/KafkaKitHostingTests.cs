using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Producing;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KafkaKit.Tests.DependencyInjection;

[TestFixture]
public sealed class KafkaKitHostingTests
{
    private static HostApplicationBuilder NewHost(string json, CapturingLoggerFactory? logs = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json)));
        builder.Services.AddLogging();
        if (logs is not null)
        {
            builder.Services.AddSingleton<ILoggerFactory>(logs);
        }

        return builder;
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task AddKafkaKit_AppSettingsWithNamedProducerAndConsumer_MovesMessagesEndToEnd()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("orders", partitions: 2);
        var builder = NewHost($$"""
            {
              "KafkaKit": {
                "BootstrapServers": "{{cluster.BootstrapServers}}",
                "Producers": { "orders": { "Config": { "linger.ms": "1" } } },
                "Consumers": {
                  "billing": {
                    "GroupId": "billing",
                    "Topics": [ "orders" ],
                    "Config": { "session.timeout.ms": "6000", "heartbeat.interval.ms": "500" }
                  }
                }
              }
            }
            """);
        builder.Services.AddSingleton<Received>();
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit"))
            .AddProducer<string, Order>("orders")
            .AddConsumer<string, Order, OrderHandler>("billing");
        using var host = builder.Build();
        await host.StartAsync();

        var producer = host.Services.GetRequiredKeyedService<IKafkaProducer<string, Order>>("orders");
        Assert.That(host.Services.GetRequiredService<IKafkaProducer<string, Order>>(), Is.SameAs(producer), "the first producer of a type is also the unkeyed one");
        for (var i = 0; i < 100; i++)
        {
            await producer.ProduceAsync("orders", new Message<string, Order> { Key = $"c{i % 7}", Value = new Order(i, $"customer-{i % 7}") });
        }

        var received = host.Services.GetRequiredService<Received>();
        await Wait.ForAsync(() => received.Orders.Count == 100, TimeSpan.FromSeconds(30), "100 orders handled");
        await host.StopAsync();

        Assert.That(received.Orders.Keys.Order(), Is.EqualTo(Enumerable.Range(0, 100)));
        Assert.That(received.Orders[42], Is.EqualTo("customer-0"), "the JSON value round-trips");
        Assert.That(received.Scopes.Distinct().Count(), Is.EqualTo(100), "the handler is resolved from a new scope per message");
        Assert.That(KafkaProbe.Committed(cluster.BootstrapServers, "billing", "orders", 2), Is.EqualTo(KafkaProbe.EndOffsets(cluster.BootstrapServers, "orders", 2)));
    }

    [Test]
    public void Start_InvalidConfiguration_FailsWithEveryProblemListed()
    {
        var builder = NewHost("""
            {
              "KafkaKit": {
                "Client": { "no.such.property": "1" },
                "Producers": { "orders": { "MaxBlock": "-00:00:01", "Config": { "acks": "maybe" } } },
                "Consumers": { "billing": { "Topics": [ "^[" ], "Config": { "enable.auto.offset.store": "true" } } }
              }
            }
            """);
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit"))
            .AddProducer<string, string>("orders")
            .AddConsumer<string, string, NoopHandler>("billing");
        using var host = builder.Build();

        var error = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.That(error!.Failures, Has.Some.Contains("no.such.property"));
        Assert.That(error.Failures, Has.Some.Contains("acks=maybe"));
        Assert.That(error.Failures, Has.Some.Contains("MaxBlock"));
        Assert.That(error.Failures, Has.Some.Contains("Producer 'orders' has no bootstrap servers"));
        Assert.That(error.Failures, Has.Some.Contains("GroupId is not set"));
        Assert.That(error.Failures, Has.Some.Contains("'^['"));
        Assert.That(error.Failures, Has.Some.Contains("enable.auto.offset.store=true"));
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Run_WithSaslSecrets_SecretsNeverAppearInLogsOrErrors()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        const string secret = "Sup3r-S3cret-Pa55";
        var logs = new CapturingLoggerFactory();
        var builder = NewHost($$"""
            {
              "KafkaKit": {
                "BootstrapServers": "{{cluster.BootstrapServers}}",
                "Client": {
                  "security.protocol": "SASL_PLAINTEXT",
                  "sasl.mechanisms": "PLAIN",
                  "sasl.username": "user",
                  "sasl.password": "{{secret}}",
                  "ssl.key.password": "{{secret}}",
                  "debug": "security,conf"
                },
                "Producers": { "orders": { "MaxBlock": "00:00:01", "FlushTimeoutOnDispose": "00:00:01", "Config": { "message.timeout.ms": "2000" } } },
                "Consumers": { "billing": { "GroupId": "billing", "Topics": [ "orders" ], "Config": { "sasl.oauthbearer.client.secret": "{{secret}}" } } }
              }
            }
            """, logs);
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit"))
            .AddProducer<string, string>("orders")
            .AddConsumer<string, string, NoopHandler>("billing");
        using var host = builder.Build();
        try
        {
            await host.StartAsync();
            var producer = host.Services.GetRequiredService<IKafkaProducer<string, string>>();
            var outcome = new TaskCompletionSource<Error>();
            await producer.EnqueueAsync("orders", new Message<string, string> { Value = "x" }, report => outcome.TrySetResult(report.Error));
            await outcome.Task.WaitAsync(TimeSpan.FromSeconds(20));
        }
        catch (Exception e)
        {
            Assert.That(e.ToString(), Does.Not.Contain(secret));
        }
        finally
        {
            await host.StopAsync();
        }

        Assert.That(logs.Lines, Is.Not.Empty);
        Assert.That(logs.Lines.Where(l => l.Message.Contains(secret, StringComparison.Ordinal) || (l.Exception?.ToString().Contains(secret, StringComparison.Ordinal) ?? false)).Select(l => l.Message), Is.Empty);
        Assert.That(logs.Lines.Any(l => l.Message.Contains("sasl.password=***", StringComparison.Ordinal)), "the started line shows the property, redacted");
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Regression_C13_UnreachableCluster_HostStartsAtOnceAndConsumerReportsWhy()
    {
        var logs = new CapturingLoggerFactory();
        var builder = NewHost("""
            {
              "KafkaKit": {
                "BootstrapServers": "127.0.0.1:1",
                "Consumers": { "billing": { "GroupId": "billing", "Topics": [ "orders" ] } }
              }
            }
            """, logs);
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit")).AddConsumer<string, string, NoopHandler>("billing");
        builder.Services.AddSingleton<FlagService>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<FlagService>());
        builder.Services.AddHealthChecks().AddKafkaKit();
        using var host = builder.Build();

        var clock = Stopwatch.StartNew();
        await host.StartAsync();
        var started = clock.Elapsed;

        Assert.That(started, Is.LessThan(TimeSpan.FromSeconds(2)));
        Assert.That(host.Services.GetRequiredService<FlagService>().Started, Is.True, "the next hosted service started");
        await Wait.ForAsync(() => logs.Count(2005) > 0, TimeSpan.FromSeconds(20), "the consumer logs why it cannot reach the cluster");
        var health = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.That(health.Status, Is.EqualTo(HealthStatus.Unhealthy));
        Assert.That(health.Entries["kafkakit"].Data.Values.Single()!.ToString(), Does.Contain("no broker reachable"));
        var stopping = Stopwatch.StartNew();
        await host.StopAsync();
        Assert.That(stopping.Elapsed, Is.LessThan(TimeSpan.FromSeconds(15)), "stop is bounded even without a cluster");
    }

    [Test]
    [CancelAfter(90_000)]
    public async Task HealthCheck_AllBrokersDownThenUp_UnhealthyThenHealthy()
    {
        await using var cluster = EmbeddedKafkaCluster.Start(brokers: 2);
        cluster.CreateTopic("orders");
        var builder = NewHost($$"""{ "KafkaKit": { "BootstrapServers": "{{cluster.BootstrapServers}}" } }""");
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit")).AddProducer<string, string>("orders");
        builder.Services.AddHealthChecks().AddKafkaKit();
        using var host = builder.Build();
        await host.StartAsync();
        var producer = host.Services.GetRequiredService<IKafkaProducer<string, string>>();
        await producer.ProduceAsync("orders", new Message<string, string> { Value = "warm-up" });
        var health = host.Services.GetRequiredService<HealthCheckService>();
        Assert.That((await health.CheckHealthAsync()).Status, Is.EqualTo(HealthStatus.Healthy));

        cluster.SetBrokerDown(1);
        cluster.SetBrokerDown(2);
        var down = await health.CheckHealthAsync();
        cluster.SetBrokerUp(1);
        cluster.SetBrokerUp(2);
        var up = await health.CheckHealthAsync();
        for (var deadline = DateTime.UtcNow.AddSeconds(30); up.Status != HealthStatus.Healthy && DateTime.UtcNow < deadline;)
        {
            await Task.Delay(50);
            up = await health.CheckHealthAsync();
        }
        await host.StopAsync();

        Assert.That(down.Status, Is.EqualTo(HealthStatus.Unhealthy));
        Assert.That(up.Status, Is.EqualTo(HealthStatus.Healthy));
    }

    [Test]
    public void AddKafkaKit_CalledTwice_IsHarmlessAndDuplicateNamesAreRefused()
    {
        var services = new ServiceCollection();
        var first = services.AddKafkaKit(o => o.BootstrapServers = "localhost:9092");
        var count = services.Count;
        var second = services.AddKafkaKit(o => o.Client["linger.ms"] = "5");
        Assert.That(services.Count, Is.EqualTo(count + 1), "the second call adds only its configure action");
        first.AddProducer<string, string>("a");

        Assert.That(() => second.AddProducer<string, string>("a"), Throws.InvalidOperationException.With.Message.Contains("'a'"));
        using var provider = services.BuildServiceProvider();
        var options = provider.GetRequiredService<IOptions<KafkaKit.KafkaKitOptions>>().Value;
        Assert.That(options.BootstrapServers, Is.EqualTo("localhost:9092"));
        Assert.That(options.Client["linger.ms"], Is.EqualTo("5"));
    }

    public sealed record Order(int Id, string Customer);

    public sealed class Received
    {
        public ConcurrentDictionary<int, string> Orders { get; } = new();

        public ConcurrentBag<object> Scopes { get; } = [];
    }

    public sealed class OrderHandler(Received received, IServiceProvider scope) : IKafkaMessageHandler<string, Order>
    {
        public ValueTask HandleAsync(ConsumeResult<string, Order> result, CancellationToken cancellationToken)
        {
            received.Scopes.Add(scope);
            received.Orders[result.Message.Value.Id] = result.Message.Value.Customer;
            return ValueTask.CompletedTask;
        }
    }

    public sealed class NoopHandler : IKafkaMessageHandler<string, string>
    {
        public ValueTask HandleAsync(ConsumeResult<string, string> result, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }

    public sealed class FlagService : IHostedService
    {
        public bool Started { get; private set; }

        public Task StartAsync(CancellationToken cancellationToken)
        {
            Started = true;
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
