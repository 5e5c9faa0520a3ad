// KafkaKit quickstart: produce N keyed messages through a KafkaKit producer and consume them with a KafkaKit consumer
// group of two members, then check that every message arrived once and in order. With no arguments it runs on an
// embedded Kafka cluster (in memory); --bootstrap-servers host:port runs it against a real cluster. --format avro
// writes the values as Avro through a schema registry (an embedded one unless --schema-registry-url is given).
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using KafkaKit;
using KafkaKit.Consuming;
using KafkaKit.Samples.Quickstart;
using KafkaKit.SchemaRegistry;
using KafkaKit.SchemaRegistry.Avro;
using KafkaKit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

var settings = QuickstartSettings.Parse(args);
if (settings is null)
{
    return 2;
}

EmbeddedKafkaCluster? cluster = null;
var bootstrapServers = settings.BootstrapServers;
if (bootstrapServers is null)
{
    cluster = EmbeddedKafkaCluster.Start(brokers: 3);
    bootstrapServers = cluster.BootstrapServers;
    Console.WriteLine($"No --bootstrap-servers given: started an embedded Kafka cluster (3 brokers, data in memory only) at {bootstrapServers}.");
}

EmbeddedSchemaRegistry? registry = null;
var registryUrl = settings.SchemaRegistryUrl;
if (settings.Avro && registryUrl is null)
{
    registry = EmbeddedSchemaRegistry.Start();
    registryUrl = registry.Url;
    Console.WriteLine($"--format avro without --schema-registry-url: started an embedded schema registry at {registryUrl}.");
}

var runId = Guid.NewGuid().ToString("N")[..8];
var topic = $"quickstart-{runId}";
var groupId = $"quickstart-group-{runId}";
if (cluster is not null)
{
    cluster.CreateTopic(topic, settings.Partitions, replicationFactor: 3);
}
else
{
    try
    {
        await CreateTopicAsync(bootstrapServers, topic, settings.Partitions);
    }
    catch (KafkaException e)
    {
        Console.Error.WriteLine($"Could not create topic {topic} on {bootstrapServers}: {e.Error.Reason} ({e.Error.Code}). Check --bootstrap-servers (host:port of a reachable broker).");
        return 1;
    }
}

var builder = Host.CreateApplicationBuilder([]);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.Logging.AddFilter("KafkaKit", settings.Verbose ? LogLevel.Information : LogLevel.Warning);
builder.Logging.AddFilter("KafkaKit.Librdkafka", LogLevel.Information); // which librdkafka runs: one line
builder.Services.AddSingleton(settings);
builder.Services.AddSingleton(new QuickstartTally(settings.Messages));
var kafkaKit = builder.Services
    .AddKafkaKit(options =>
    {
        options.BootstrapServers = bootstrapServers;
        options.Producers["quickstart"] = new() { Config = { ["linger.ms"] = "5" } };
        foreach (var member in new[] { "quickstart-worker-1", "quickstart-worker-2" })
        {
            var consumer = new KafkaConsumerOptions { GroupId = groupId, Topics = { topic } };
            if (cluster is not null)
            {
                // The embedded cluster completes a rebalance only after session.timeout.ms - 1 s: keep it short.
                consumer.Config["session.timeout.ms"] = "6000";
                consumer.Config["heartbeat.interval.ms"] = "500";
            }

            options.Consumers[member] = consumer;
        }
    });
if (settings.Avro)
{
    kafkaKit.AddSchemaRegistry(registryOptions => registryOptions.Url = registryUrl);
}

kafkaKit
    .AddProducer<string, string>("quickstart", settings.Avro ? (sp, producer) => producer.UseAvro(sp) : null)
    .AddConsumer<string, string, QuickstartHandler>("quickstart-worker-1", (sp, consumer) => Configure(sp, consumer, "quickstart-worker-1"))
    .AddConsumer<string, string, QuickstartHandler>("quickstart-worker-2", (sp, consumer) => Configure(sp, consumer, "quickstart-worker-2"));
builder.Services.AddSingleton(new QuickstartTopic(topic));
builder.Services.AddHostedService<QuickstartRunner>();

var host = builder.Build();
var tally = host.Services.GetRequiredService<QuickstartTally>();
await host.RunAsync(); // stops when the run is over, then disposes the host

if (registry is not null)
{
    Console.WriteLine($"Schema registry subjects: {string.Join(", ", registry.Subjects)}.");
    if (tally.ExitCode == 0 && !registry.Subjects.Contains($"{topic}-value"))
    {
        Console.WriteLine($"FAILED: the subject '{topic}-value' was not registered.");
        tally.ExitCode = 1;
    }

    await registry.DisposeAsync();
}

if (cluster is not null)
{
    await cluster.DisposeAsync();
}

return tally.ExitCode;

void Configure(IServiceProvider services, KafkaConsumerBuilder<string, string> consumer, string member)
{
    QuickstartTally.Track(services, consumer, member);
    if (settings.Avro)
    {
        consumer.UseAvro(services);
    }
}

static async Task CreateTopicAsync(string bootstrapServers, string topic, int partitions)
{
    using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrapServers }).Build();
    try
    {
        await admin.CreateTopicsAsync([new TopicSpecification { Name = topic, NumPartitions = partitions, ReplicationFactor = -1 }]);
    }
    catch (CreateTopicsException e) when (e.Results.All(r => r.Error.Code == ErrorCode.TopicAlreadyExists))
    {
        // fine
    }
}
