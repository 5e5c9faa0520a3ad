using Confluent.Kafka;
using Confluent.Kafka.Admin;
using KafkaKit.Producing;
using Microsoft.Extensions.Options;

namespace KafkaKit.Samples.Notifications;

/// <summary>
/// Creates the topic on a real cluster before the consumer subscribes (an existing topic is left alone; a failure is
/// logged and start goes on). Bounded: at most about 20 s when the cluster does not answer.
/// </summary>
internal sealed class TopicInitializer(IOptions<KafkaKitOptions> kafka, IOptions<NotificationsOptions> options, ILogger<TopicInitializer> logger) : IHostedService
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        var config = new AdminClientConfig(new Dictionary<string, string>(kafka.Value.Client, StringComparer.Ordinal))
        {
            SocketTimeoutMs = (int)Timeout.TotalMilliseconds,
        };
        if (!string.IsNullOrWhiteSpace(kafka.Value.BootstrapServers))
        {
            config.BootstrapServers = kafka.Value.BootstrapServers; // otherwise KafkaKit:Client:bootstrap.servers stays
        }

        using var admin = new AdminClientBuilder(config).SetLogHandler((_, _) => { }).Build();
        try
        {
            // Listing all topics (not asking for this one) never auto-creates it with the broker's defaults.
            var metadata = await Task.Run(() => admin.GetMetadata(Timeout), cancellationToken);
            if (metadata.Topics.Exists(t => t.Topic == o.Topic && t.Error.Code == ErrorCode.NoError))
            {
                Log.TopicExists(logger, o.Topic);
                return;
            }

            await admin.CreateTopicsAsync(
                [new TopicSpecification { Name = o.Topic, NumPartitions = o.Partitions, ReplicationFactor = -1 }],
                new CreateTopicsOptions { RequestTimeout = Timeout, OperationTimeout = Timeout }).WaitAsync(Timeout + TimeSpan.FromSeconds(2), cancellationToken);
            Log.TopicCreated(logger, o.Topic, o.Partitions);
        }
        catch (CreateTopicsException e) when (e.Results.All(r => r.Error.Code == ErrorCode.TopicAlreadyExists))
        {
            Log.TopicExists(logger, o.Topic);
        }
        catch (Exception e) when (e is KafkaException or TimeoutException)
        {
            Log.TopicNotCreated(logger, o.Topic, e.Message);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>Builds the KafkaKit producer when the host starts (after options validation), not at the first request.</summary>
internal sealed class ProducerWarmup(IServiceProvider services) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        _ = services.GetRequiredService<IKafkaProducer<string, Notification>>();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
