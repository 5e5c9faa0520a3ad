using System.Collections.Concurrent;
using System.Text;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Hosting;
using KafkaKit.Sharing;
using KafkaKit.Testing;
using KafkaKit.Tests.DependencyInjection;
using KafkaKit.Tests.Support;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KafkaKit.Tests.Sharing;

/// <summary>The share consumer's parity with the consumer: OnFault in the host, the stalled-poll health rule, the delivery count for the handler.</summary>
[TestFixture]
public sealed class ShareConsumerFaultTests
{
    private const string WorkerName = "jobs-worker";
    private const string Group = "jobs-group";

    /// <summary>
    /// Registers the share consumer <see cref="WorkerName"/> whose handler can be created once (the host's start check) and
    /// never again: every later resolution asks for <see cref="IJobStore"/>, which nobody registered. Used in-process and by
    /// <see cref="HostedConsumerProcess"/> (the exit code needs a process of its own).
    /// </summary>
    internal static void AddFaultingShareConsumer(IServiceCollection services, string bootstrapServers, string topic, ConsumerFaultBehavior onFault = ConsumerFaultBehavior.StopHost)
    {
        var resolutions = 0;
        services.AddScoped(sp =>
        {
            if (Interlocked.Increment(ref resolutions) > 1)
            {
                sp.GetRequiredService<IJobStore>();
            }

            return new JobHandler();
        });
        services.AddKafkaKit(o =>
            {
                var options = new KafkaShareConsumerOptions { BootstrapServers = bootstrapServers, GroupId = Group, ShutdownTimeout = TimeSpan.FromSeconds(5), OnFault = onFault };
                options.Topics.Add(topic);
                o.ShareConsumers[WorkerName] = options;
            })
            .AddShareConsumer<string, string, JobHandler>(WorkerName);
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task HostedShareConsumer_HandlerCannotBeCreated_HostStopsWithExitCode1AndTheRecordIsReleased()
    {
        await using var cluster = ShareTestKit.Cluster();
        cluster.CreateTopic("jobs");
        using var producer = ShareTestKit.Producer(cluster);
        ShareTestKit.Produce(producer, "jobs", 1);

        await using var process = HostedConsumerProcess.Start(cluster.BootstrapServers, "jobs", share: true);
        var exited = await process.WaitForExitAsync(TimeSpan.FromSeconds(60));
        var lines = process.Lines.ToList();
        var output = string.Join(Environment.NewLine, lines);
        Assert.That(exited, Is.True, $"the host stops by itself; output:{Environment.NewLine}{output}");

        // The released record goes to the next member of the group, on its second delivery.
        var seen = new ConcurrentQueue<(string Value, int Count)>();
        await using var next = new KafkaShareConsumerBuilder<string, string>("next", ShareTestKit.Options(cluster, Group, "jobs"))
            .SetHandler((r, _) =>
            {
                seen.Enqueue((r.Message.Value, ShareHeaders.DeliveryCountOf(r.Message.Headers)));
                return ValueTask.CompletedTask;
            })
            .Build();
        await next.StartAsync();
        await Wait.ForAsync(() => !seen.IsEmpty, TimeSpan.FromSeconds(30), "the released record is delivered to the next member");

        var critical = lines.Where(l => l.StartsWith("log Critical ", StringComparison.Ordinal)).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(process.ExitCode, Is.EqualTo(1), output);
            Assert.That(lines, Does.Contain("stopping"), "ApplicationStopping fired");
            Assert.That(critical, Has.Count.EqualTo(1), output);
            Assert.That(critical.FirstOrDefault(), Does.StartWith($"log Critical 6016 Share consumer {WorkerName} faulted: ")
                .And.Contain(typeof(JobHandler).FullName).And.Contain(typeof(IJobStore).FullName).And.Contain("jobs [0] @0"));
            Assert.That(lines, Has.One.StartsWith($"log Error 3100 Consumer {WorkerName} ").And.Contain("exit code 1"));
            Assert.That(lines, Has.One.StartsWith($"log Information 6015 Share consumer {WorkerName} stopped").And.Contain("0 accepted, 1 released"));
            Assert.That(seen, Is.EqualTo(new[] { ("v0", 2) }), "released, not rejected: delivered again with delivery count 2");
        });
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task HostedShareConsumer_OnFaultKeepHostRunning_HostKeepsRunningAndHealthIsUnhealthy()
    {
        await using var cluster = ShareTestKit.Cluster();
        cluster.CreateTopic("jobs");
        using var producer = ShareTestKit.Producer(cluster);
        var logs = new CapturingLoggerFactory();
        var builder = HostedConsumerFaultTests.NewHost(logs);
        AddFaultingShareConsumer(builder.Services, cluster.BootstrapServers, "jobs", ConsumerFaultBehavior.KeepHostRunning);
        builder.Services.AddHealthChecks().AddKafkaKit();
        using var host = builder.Build();
        var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
        var exitCode = Environment.ExitCode;

        await host.StartAsync();
        ShareTestKit.Produce(producer, "jobs", 1);
        await Wait.ForAsync(() => logs.Count(3101) == 1, TimeSpan.FromSeconds(30), "the share consumer faulted and the decision to keep the host running was logged");
        var service = host.Services.GetServices<IHostedService>().OfType<KafkaShareConsumerService<string, string>>().Single();
        var health = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        var stoppingAfterFault = lifetime.ApplicationStopping.IsCancellationRequested;
        await host.StopAsync();

        Assert.Multiple(() =>
        {
            Assert.That(stoppingAfterFault, Is.False, "the application was not asked to stop");
            Assert.That(logs.Count(3100), Is.Zero, "no 'stopping the application' line");
            Assert.That(Environment.ExitCode, Is.EqualTo(exitCode), "the exit code is left alone");
            Assert.That(service.Consumer!.State, Is.EqualTo(KafkaConsumerState.Faulted));
            Assert.That((service.Consumer.Accepted, service.Consumer.Released, service.Consumer.Rejected), Is.EqualTo((0L, 1L, 0L)), "the record was released, not failed");
            Assert.That(health.Status, Is.EqualTo(HealthStatus.Unhealthy));
            Assert.That(health.Entries["kafkakit"].Data.Values.Single()!.ToString(), Does.Contain("stopped on error").And.Contain(typeof(IJobStore).FullName));
        });
    }

    /// <summary>
    /// A handler that takes longer than MaxPollInterval keeps the poll thread waiting for its batch (librdkafka refuses the
    /// next poll until the batch is acknowledged): the poll thread is live, so the share consumer is Degraded, not
    /// Unhealthy; healthy again once the batch is done.
    /// </summary>
    [Test]
    [CancelAfter(60_000)]
    public async Task Health_HandlerSlowerThanMaxPollInterval_DegradedNotUnhealthyThenHealthy()
    {
        await using var cluster = ShareTestKit.Cluster();
        cluster.CreateTopic("slow");
        using var producer = ShareTestKit.Producer(cluster);
        var options = ShareTestKit.Options(cluster, "slow-group", "slow");
        options.MaxPollInterval = TimeSpan.FromSeconds(1);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var entered = 0;
        await using var consumer = new KafkaShareConsumerBuilder<string, string>("slow", options)
            .SetHandler(async (_, ct) =>
            {
                Interlocked.Increment(ref entered);
                await release.Task.WaitAsync(ct);
            })
            .Build();
        var health = KafkaClientHealth.For(consumer);
        await consumer.StartAsync();
        ShareTestKit.Produce(producer, "slow", 1);

        await Wait.ForAsync(() => consumer.SinceLastPoll > TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(30), () => $"the handler ({entered} entered) holds the poll thread past MaxPollInterval; since last poll {consumer.SinceLastPoll}");
        var waiting = health.Judge(null);
        var evaluated = health.Evaluate();
        release.SetResult();
        await Wait.ForAsync(() => consumer.Accepted == 1, TimeSpan.FromSeconds(30), "the record is accepted");
        await Wait.ForAsync(() => health.Judge(null).Ready == HealthStatus.Healthy, TimeSpan.FromSeconds(10), () => $"healthy again: {health.Judge(null).Description}");

        Assert.Multiple(() =>
        {
            Assert.That((waiting.Live, waiting.Ready), Is.EqualTo((HealthStatus.Healthy, HealthStatus.Degraded)), waiting.Description);
            Assert.That(waiting.Description, Does.Contain("for the handlers of 1 records of the current batch").And.Contain("MaxPollInterval is 1 s"));
            Assert.That(evaluated.Status, Is.EqualTo(HealthStatus.Degraded));
            Assert.That(health.Judge(null).Live, Is.EqualTo(HealthStatus.Healthy));
        });
    }

    [Test]
    public void ProbeRules_PollThreadNotRunForLongerThanMaxPollInterval_NotLive()
    {
        var stalled = ProbeRules.ShareConsumer(new(KafkaConsumerState.Running, null, TimeSpan.FromSeconds(7), (TimeSpan.FromSeconds(7), 3), TimeSpan.FromSeconds(5), "0 accepted"));
        var waiting = ProbeRules.ShareConsumer(new(KafkaConsumerState.Running, null, TimeSpan.FromMilliseconds(50), (TimeSpan.FromSeconds(7), 3), TimeSpan.FromSeconds(5), "0 accepted"));
        var fine = ProbeRules.ShareConsumer(new(KafkaConsumerState.Running, null, TimeSpan.FromMilliseconds(50), (TimeSpan.FromSeconds(4), 3), TimeSpan.FromSeconds(5), "0 accepted"));

        Assert.Multiple(() =>
        {
            Assert.That((stalled.Live, stalled.Ready), Is.EqualTo((HealthStatus.Unhealthy, HealthStatus.Unhealthy)));
            Assert.That(stalled.Description, Does.Contain("has not run for 7 s (MaxPollInterval is 5 s)"));
            Assert.That((waiting.Live, waiting.Ready), Is.EqualTo((HealthStatus.Healthy, HealthStatus.Degraded)));
            Assert.That((fine.Live, fine.Ready), Is.EqualTo((HealthStatus.Healthy, HealthStatus.Healthy)));
        });
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task DeliveryCount_RecordReleasedTwice_HandlerSeesCounts123AndOtherHeadersKept()
    {
        await using var cluster = ShareTestKit.Cluster(maxDeliveryAttempts: 5);
        cluster.CreateTopic("counted");
        using var producer = ShareTestKit.Producer(cluster);
        producer.Produce("counted", new Message<string, string>
        {
            Key = "k",
            Value = "job",
            Headers = new Headers { { "origin", Encoding.UTF8.GetBytes("billing") }, { ShareHeaders.DeliveryCount, Encoding.UTF8.GetBytes("99") } },
        });
        Assert.That(producer.Flush(TimeSpan.FromSeconds(30)), Is.Zero);
        var seen = new ConcurrentQueue<(int Count, int CountHeaders, string? Origin)>();
        await using var consumer = new KafkaShareConsumerBuilder<string, string>("counted", ShareTestKit.Options(cluster, "counted-group", "counted"))
            .SetHandler((r, _) =>
            {
                var headers = r.Message.Headers;
                seen.Enqueue((ShareHeaders.DeliveryCountOf(headers), headers.Count(h => h.Key == ShareHeaders.DeliveryCount), RetryTopicHeaders.Text(headers, "origin")));
                return seen.Count < 3 ? throw new InvalidOperationException("not yet") : ValueTask.CompletedTask;
            })
            .Build();
        await consumer.StartAsync();
        await Wait.ForAsync(() => consumer.Accepted == 1, TimeSpan.FromSeconds(30), () => $"accepted on the third delivery; seen {seen.Count}, released {consumer.Released}");

        Assert.Multiple(() =>
        {
            Assert.That(seen.Select(s => s.Count), Is.EqualTo(new[] { 1, 2, 3 }));
            Assert.That(seen.Select(s => s.CountHeaders), Is.All.EqualTo(1), "KafkaKit's header replaces the producer's header of that name");
            Assert.That(seen.Select(s => s.Origin), Is.All.EqualTo("billing"), "the producer's other headers are kept");
            Assert.That(consumer.Released, Is.EqualTo(2));
            Assert.That(ShareHeaders.DeliveryCountOf(null), Is.Zero);
            Assert.That(ShareHeaders.DeliveryCountOf(new Headers { { ShareHeaders.DeliveryCount, Encoding.UTF8.GetBytes("x") } }), Is.Zero);
        });
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task DeadLetterProduceFails_ShareConsumerReleasesTheRecordAndFaults()
    {
        await using var cluster = ShareTestKit.Cluster(maxDeliveryAttempts: 5);
        cluster.CreateTopic("jobs");
        cluster.CreateTopic("jobs.DLT");
        using var producer = ShareTestKit.Producer(cluster);
        ShareTestKit.Produce(producer, "jobs", 1);
        cluster.PushRequestErrors(ApiKey.Produce, ErrorCode.MsgSizeTooLarge, ErrorCode.MsgSizeTooLarge, ErrorCode.MsgSizeTooLarge);
        var options = ShareTestKit.Options(cluster, "dlt-group", "jobs");
        options.MaxDeliveryAttempts = 1;
        options.DeadLetterTopic = "jobs.DLT";
        var logs = new CapturingLoggerFactory();
        await using var consumer = new KafkaShareConsumerBuilder<string, string>("dlt", options)
            .SetHandler((_, _) => throw new InvalidOperationException("cannot handle"))
            .SetLoggerFactory(logs)
            .Build();
        await consumer.StartAsync();

        await Wait.ForAsync(() => consumer.State == KafkaConsumerState.Faulted, TimeSpan.FromSeconds(30), () => $"the share consumer faulted; state {consumer.State}, released {consumer.Released}");

        Assert.Multiple(() =>
        {
            Assert.That(consumer.Fault!.Message, Does.Contain("could not dead-letter jobs [0] @0 to jobs.DLT"));
            Assert.That((consumer.Accepted, consumer.Released, consumer.DeadLettered), Is.EqualTo((0L, 1L, 0L)), "released, neither accepted nor counted as dead-lettered");
            Assert.That(logs.Count(6007), Is.EqualTo(1), "dead-letter failure logged");
            Assert.That(logs.Lines.Where(l => l.Level == LogLevel.Critical).Select(l => l.EventId.Id), Is.EqualTo(new[] { 6016 }));
        });
    }

    [Test]
    public void Build_BadOnFaultAndMaxPollInterval_ListsEveryProblem()
    {
        var options = new KafkaShareConsumerOptions { BootstrapServers = "localhost:9092", GroupId = "g", OnFault = (ConsumerFaultBehavior)7, MaxPollInterval = TimeSpan.FromMilliseconds(50) };
        options.Topics.Add("t");

        var error = Assert.Throws<OptionsValidationException>(() => new KafkaShareConsumerBuilder<string, string>("bad", options).SetHandler((_, _) => ValueTask.CompletedTask).Build());

        Assert.That(error!.Failures, Has.Some.Contains("OnFault is 7; it must be StopHost or KeepHostRunning")
            .And.Some.Contains("MaxPollInterval is 00:00:00.0500000; it must be between 1 s and 1 h")
            .And.Some.Contains("must be longer than PollTimeout"));
    }

    [Test]
    public void Configuration_OnFaultAndMaxPollInterval_BoundAndBadValuesListed()
    {
        static IHost Build(string share)
        {
            var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
            builder.Configuration.AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(
                $$"""{ "KafkaKit": { "BootstrapServers": "localhost:9092", "ShareConsumers": { "mailer": { "GroupId": "g", "Topics": [ "t" ], {{share}} } } } }""")));
            builder.Services.AddKafkaKit(builder.Configuration.GetSection("KafkaKit")).AddShareConsumer<string, string, JobHandler>("mailer");
            return builder.Build();
        }

        using var good = Build("\"OnFault\": \"KeepHostRunning\", \"MaxPollInterval\": \"00:00:02\"");
        var bound = good.Services.GetRequiredService<IOptions<KafkaKitOptions>>().Value.ShareConsumers["mailer"];
        using var bad = Build("\"OnFault\": 9, \"MaxPollInterval\": \"00:00:00\"");
        var error = Assert.Throws<OptionsValidationException>(() => _ = bad.Services.GetRequiredService<IOptions<KafkaKitOptions>>().Value);
        TestContext.Out.WriteLine(string.Join(Environment.NewLine, error!.Failures));

        Assert.Multiple(() =>
        {
            Assert.That((bound.OnFault, bound.MaxPollInterval), Is.EqualTo((ConsumerFaultBehavior.KeepHostRunning, TimeSpan.FromSeconds(2))));
            Assert.That(error.Failures, Has.Some.Contains("'mailer'").And.Contains("OnFault is 9; it must be StopHost or KeepHostRunning"));
            Assert.That(error.Failures, Has.Some.Contains("MaxPollInterval is 00:00:00; it must be between 1 s and 1 h"));
        });
    }

    public interface IJobStore;

    public sealed class JobHandler : IKafkaMessageHandler<string, string>
    {
        public ValueTask HandleAsync(ConsumeResult<string, string> result, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}
