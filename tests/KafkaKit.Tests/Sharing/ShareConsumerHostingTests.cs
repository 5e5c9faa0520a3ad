using System.Collections.Concurrent;
using System.Text;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Tests.Support;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace KafkaKit.Tests.Sharing;

[TestFixture]
public sealed class ShareConsumerHostingTests
{
    private static HostApplicationBuilder NewHost(string json)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json)));
        builder.Services.AddLogging();
        return builder;
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task AddShareConsumer_FromConfiguration_HandlesRecordsInScopesAndReportsHealth()
    {
        await using var cluster = ShareTestKit.Cluster();
        cluster.CreateTopic("emails");
        using var producer = ShareTestKit.Producer(cluster);
        var builder = NewHost($$"""
            { "KafkaKit": { "BootstrapServers": "{{cluster.BootstrapServers}}",
              "ShareConsumers": { "mailer": { "GroupId": "mailers", "Topics": [ "emails" ], "MaxConcurrency": 4 } } } }
            """);
        builder.Services.AddSingleton<Received>();
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit"))
            .AddShareConsumer<string, string, EmailHandler>("mailer");
        builder.Services.AddHealthChecks().AddKafkaKit();
        using var host = builder.Build();
        await host.StartAsync();

        ShareTestKit.Produce(producer, "emails", 50);
        var received = host.Services.GetRequiredService<Received>();
        await Wait.ForAsync(() => received.Values.Count == 50, TimeSpan.FromSeconds(30), () => $"50 records handled; {received.Values.Count} so far");
        var health = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        await host.StopAsync();

        Assert.Multiple(() =>
        {
            Assert.That(received.Values.Keys, Is.EquivalentTo(Enumerable.Range(0, 50).Select(i => "v" + i)));
            Assert.That(received.Scopes.Distinct().Count(), Is.EqualTo(50), "the handler is resolved from a new scope per record");
            Assert.That(health.Status, Is.EqualTo(HealthStatus.Healthy), string.Join("; ", health.Entries.Select(e => $"{e.Key}: {e.Value.Description}")));
            Assert.That(health.Entries.Values.SelectMany(e => e.Data.Keys), Has.Some.Contains("share consumer 'mailer'"), "the share consumer is one of the clients the health check judges");
        });
    }

    [Test]
    public void Start_InvalidShareConsumerConfiguration_FailsWithEveryProblemListed()
    {
        var builder = NewHost("""
            { "KafkaKit": { "BootstrapServers": "localhost:9092",
              "ShareConsumers": { "mailer": { "Topics": [ "^emails" ], "MaxConcurency": 4, "MaxDeliveryAttempts": 0, "Config": { "share.acknowledgement.mode": "implicit" } } } } }
            """);
        builder.Services.AddSingleton<Received>();
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit"))
            .AddShareConsumer<string, string, EmailHandler>("mailer");
        using var host = builder.Build();
        var error = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        TestContext.Out.WriteLine(string.Join(Environment.NewLine, error!.Failures));
        Assert.That(error.Failures, Has.Some.Contains("KafkaKit:ShareConsumers:mailer:MaxConcurency").And.Some.Contains("is not a setting of KafkaShareConsumerOptions"));
    }

    private sealed class Received
    {
        public ConcurrentDictionary<string, int> Values { get; } = new();

        public ConcurrentQueue<Guid> Scopes { get; } = new();
    }

    private sealed class EmailHandler(Received received) : IKafkaMessageHandler<string, string>
    {
        private readonly Guid _scope = Guid.NewGuid();

        public ValueTask HandleAsync(ConsumeResult<string, string> result, CancellationToken cancellationToken)
        {
            received.Scopes.Enqueue(_scope);
            received.Values.AddOrUpdate(result.Message.Value, 1, (_, n) => n + 1);
            return ValueTask.CompletedTask;
        }
    }
}
