using System.Globalization;
using System.Text;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaKit.Tests.Consuming.Transactions;

/// <summary><c>AddTransactionalConsumer</c> under a host, options from configuration.</summary>
[TestFixture]
public sealed class TransactionalConsumerHostingTests
{
    [Test]
    [CancelAfter(60_000)]
    public async Task AddTransactionalConsumer_FromConfiguration_CopiesEveryInputOnceAndStops()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("in", 2);
        cluster.CreateTopic("out", 2);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes($$"""
            {
              "KafkaKit": {
                "BootstrapServers": "{{cluster.BootstrapServers}}",
                "Consumers": {
                  "copier": {
                    "GroupId": "copier",
                    "Topics": [ "in" ],
                    "Transactions": { "TransactionalIdPrefix": "copier-0", "MaxRecords": 20 },
                    "Config": { "session.timeout.ms": "6000", "heartbeat.interval.ms": "500" }
                  }
                }
              }
            }
            """)));
        builder.Services.AddLogging();
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit")).AddTransactionalConsumer<string, string, CopyHandler>("copier");
        using var host = builder.Build();
        await host.StartAsync();

        KafkaProbe.Produce(cluster.BootstrapServers, "in", Enumerable.Range(0, 50).Select(i => new Message<string, string> { Key = "k" + i, Value = i.ToString(CultureInfo.InvariantCulture) }));
        await Wait.ForAsync(() => KafkaProbe.ReadAll(cluster.BootstrapServers, "out", 2, 50, TimeSpan.FromSeconds(3)).Count >= 50, TimeSpan.FromSeconds(30), "50 outputs written");
        await host.StopAsync();

        var outputs = KafkaProbe.ReadAll(cluster.BootstrapServers, "out", 2, 50, TimeSpan.FromSeconds(10))
            .Select(r => int.Parse(Encoding.UTF8.GetString(r.Message.Value!), CultureInfo.InvariantCulture)).Order().ToList();
        Assert.That(outputs, Is.EqualTo(Enumerable.Range(0, 50)), "each input copied once (no transaction aborted in this run)");
    }

    private sealed class CopyHandler : ITransactionalMessageHandler<string, string>
    {
        public ValueTask HandleAsync(ConsumeResult<string, string> result, TransactionContext transaction, CancellationToken cancellationToken) =>
            transaction.ProduceAsync("out", new Message<string, string> { Key = result.Message.Key, Value = result.Message.Value }, cancellationToken);
    }
}
