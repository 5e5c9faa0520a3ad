using System.Text;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Consuming;
using KafkaKit.Tests.Support;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Time.Testing;

namespace KafkaKit.Tests.DependencyInjection;

/// <summary>A <see cref="TimeProvider"/> registered in DI is the hosted consumers' clock.</summary>
[TestFixture]
public sealed class KafkaKitTimeProviderTests
{
    /// <summary>
    /// The handler fails its first call; the retry delay is up to an hour (Retry.BaseDelay = MaxDelay = 1 h, with jitter).
    /// On the system clock the retry would come minutes to an hour later; with a <see cref="FakeTimeProvider"/> in DI it
    /// comes as soon as the fake clock is advanced past the delay.
    /// </summary>
    [Test]
    [CancelAfter(60_000)]
    public async Task AddConsumer_FakeTimeProviderRegistered_RetryDelayRunsOnIt()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("timed", partitions: 1);
        KafkaProbe.Produce(cluster.BootstrapServers, "timed", [new Message<string, string> { Key = "k", Value = "v" }], partition: 0);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes($$"""
            {
              "KafkaKit": {
                "BootstrapServers": "{{cluster.BootstrapServers}}",
                "Consumers": {
                  "timed": {
                    "GroupId": "timed",
                    "Topics": [ "timed" ],
                    "Retry": { "MaxRetryAttempts": 1, "BaseDelay": "01:00:00", "MaxDelay": "01:00:00" },
                    "Config": { "session.timeout.ms": "6000", "heartbeat.interval.ms": "500" }
                  }
                }
              }
            }
            """)));
        var time = new FakeTimeProvider();
        var calls = new Calls();
        builder.Services.AddLogging();
        builder.Services.AddSingleton<TimeProvider>(time);
        builder.Services.AddSingleton(calls);
        builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit")).AddConsumer<string, string, FailFirstCallHandler>("timed");
        using var host = builder.Build();
        await host.StartAsync();

        await Wait.ForAsync(() => calls.Count == 1, TimeSpan.FromSeconds(30), "the first (failing) call");
        var advanced = TimeSpan.Zero;
        await Wait.ForAsync(
            () =>
            {
                if (calls.Count < 2)
                {
                    time.Advance(TimeSpan.FromMinutes(1));
                    advanced += TimeSpan.FromMinutes(1);
                }

                return calls.Count >= 2;
            },
            TimeSpan.FromSeconds(20),
            "the retry once the fake clock passed its delay");
        await ConsumerTestKit.WaitForCommittedAsync(cluster, "timed", "timed", 1, c => c[0] == 1, TimeSpan.FromSeconds(30), "committed after the retry");
        await host.StopAsync();

        TestContext.Out.WriteLine($"the retry came after the fake clock advanced {advanced.TotalMinutes:F0} min");
        Assert.Multiple(() =>
        {
            // The wait above is what fails on the system clock; this checks the delay was the configured one: at most
            // 1 h, plus the few minutes advanced before the failed call reached the retry pipeline.
            Assert.That(advanced, Is.InRange(TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(65)), "fake time advanced until the retry");
            Assert.That(calls.Count, Is.EqualTo(2), "the failed call and its retry");
        });
    }

    public sealed class Calls
    {
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public int Next() => Interlocked.Increment(ref _count);
    }

    public sealed class FailFirstCallHandler(Calls calls) : IKafkaMessageHandler<string, string>
    {
        public ValueTask HandleAsync(ConsumeResult<string, string> result, CancellationToken cancellationToken) =>
            calls.Next() == 1 ? throw new InvalidOperationException("the first call fails") : ValueTask.CompletedTask;
    }
}
