using System.Collections.Concurrent;
using System.Text;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Consuming;
using KafkaKit.Tests.Support;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace KafkaKit.Tests.DependencyInjection;

/// <summary>AddBatchConsumer: options bound from configuration, a handler scope per batch, validation at host start.</summary>
[TestFixture]
public sealed class BatchConsumerHostingTests
{
    [Test]
    [CancelAfter(60_000)]
    public async Task AddBatchConsumer_BatchOptionsFromConfiguration_BatchesBoundedScopePerBatchAndAllCommitted()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("events", partitions: 1);
        KafkaProbe.Produce(cluster.BootstrapServers, "events", ConsumerTestKit.Messages("e", 50));
        var builder = NewHost($$"""
            {
              "KafkaKit": {
                "BootstrapServers": "{{cluster.BootstrapServers}}",
                "Consumers": {
                  "loader": {
                    "GroupId": "loader",
                    "Topics": [ "events" ],
                    "CommitInterval": "00:00:00.100",
                    "Batch": { "MaxBatchSize": 20, "MaxBatchWait": "00:00:05" },
                    "Config": { "session.timeout.ms": "6000", "heartbeat.interval.ms": "500" }
                  }
                }
              }
            }
            """);
        builder.Services.AddSingleton<Received>();
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit")).AddBatchConsumer<string, string, LoadHandler>("loader");
        using var host = builder.Build();
        await host.StartAsync();

        var received = host.Services.GetRequiredService<Received>();
        await Wait.ForAsync(() => received.Values.Count == 50, TimeSpan.FromSeconds(30), "50 handled");
        await ConsumerTestKit.WaitForCommittedAsync(cluster, "loader", "events", 1, c => c[0] == 50, TimeSpan.FromSeconds(15), "all 50 committed");
        await host.StopAsync();

        Assert.Multiple(() =>
        {
            Assert.That(received.Values, Is.EqualTo(Enumerable.Range(0, 50).Select(i => $"e{i}")));
            Assert.That(received.Sizes, Has.All.InRange(1, 20));
            Assert.That(received.Sizes[0], Is.EqualTo(20), "the first batch is full (the 50 were waiting)");
            Assert.That(received.Scopes.Distinct().Count(), Is.EqualTo(received.Sizes.Count), "a new scope per batch");
        });
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task AddBatchConsumer_KeyOrdering_HostStartFailsNamingTheProblem()
    {
        var builder = NewHost($$"""
            {
              "KafkaKit": {
                "BootstrapServers": "{{ConsumerTestKit.Unreachable}}",
                "Consumers": { "loader": { "GroupId": "loader", "Topics": [ "events" ], "Ordering": "Key" } }
              }
            }
            """);
        builder.Services.AddSingleton<Received>();
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit")).AddBatchConsumer<string, string, LoadHandler>("loader");
        using var host = builder.Build();

        var e = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.That(e!.Message, Does.Contain("Ordering is Key, but a batch handler needs Ordering = Partition"));
        await host.StopAsync();
    }

    private static HostApplicationBuilder NewHost(string json)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json)));
        builder.Services.AddLogging();
        return builder;
    }

    public sealed class Received
    {
        public ConcurrentQueue<string> Values { get; } = new();

        public List<int> Sizes { get; } = [];

        public ConcurrentBag<object> Scopes { get; } = [];
    }

    public sealed class LoadHandler(Received received, IServiceProvider scope) : IKafkaBatchHandler<string, string>
    {
        public ValueTask HandleAsync(IReadOnlyList<ConsumeResult<string, string>> batch, CancellationToken cancellationToken)
        {
            received.Scopes.Add(scope);
            lock (received.Sizes)
            {
                received.Sizes.Add(batch.Count);
            }

            foreach (var result in batch)
            {
                received.Values.Enqueue(result.Message.Value);
            }

            return ValueTask.CompletedTask;
        }
    }
}
