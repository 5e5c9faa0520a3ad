using System.Collections.Concurrent;
using System.Text;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaKit.SchemaRegistry.Tests.Support;

/// <summary>Hosts, consumer options and topic probes for the registry tests.</summary>
internal static class Kit
{
    public static HostApplicationBuilder NewHost(string json)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json)));
        builder.Services.AddLogging();
        return builder;
    }

    /// <summary>KafkaKit settings for one producer and one consumer on <paramref name="topic"/>, JSON for appsettings.</summary>
    public static string Settings(EmbeddedKafkaCluster cluster, EmbeddedSchemaRegistry registry, string topic, string group, string extraRegistry = "") => $$"""
        {
          "KafkaKit": {
            "BootstrapServers": "{{cluster.BootstrapServers}}",
            "SchemaRegistry": { "Url": "{{registry.Url}}"{{extraRegistry}} },
            "Consumers": {
              "{{group}}": {
                "GroupId": "{{group}}",
                "Topics": [ "{{topic}}" ],
                "Config": { "session.timeout.ms": "6000", "heartbeat.interval.ms": "500" }
              }
            }
          }
        }
        """;

    public static KafkaConsumerOptions ConsumerOptions(EmbeddedKafkaCluster cluster, string topic, string group)
    {
        var options = new KafkaConsumerOptions { BootstrapServers = cluster.BootstrapServers, GroupId = group };
        options.Topics.Add(topic);
        options.Config["session.timeout.ms"] = "6000";
        options.Config["heartbeat.interval.ms"] = "500";
        return options;
    }

    /// <summary>The high watermark of partition 0 of <paramref name="topic"/> (how many records it holds).</summary>
    public static long EndOffset(EmbeddedKafkaCluster cluster, string topic)
    {
        using var consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig { BootstrapServers = cluster.BootstrapServers, GroupId = "probe" }).Build();
        return consumer.QueryWatermarkOffsets(new TopicPartition(topic, 0), TimeSpan.FromSeconds(10)).High.Value;
    }

    /// <summary>Reads <paramref name="count"/> raw records of partition 0 from the start.</summary>
    public static List<ConsumeResult<byte[]?, byte[]?>> Read(EmbeddedKafkaCluster cluster, string topic, int count)
    {
        using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig { BootstrapServers = cluster.BootstrapServers, GroupId = "reader-" + Guid.NewGuid() }).Build();
        consumer.Assign(new TopicPartitionOffset(topic, 0, Offset.Beginning));
        var results = new List<ConsumeResult<byte[]?, byte[]?>>();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (results.Count < count && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is { } result)
            {
                results.Add(result);
            }
        }

        return results;
    }
}

/// <summary>What handlers saw, shared through DI.</summary>
internal sealed class Received<T>
{
    public ConcurrentQueue<T> Values { get; } = new();
}

internal sealed class CollectingHandler<T>(Received<T> received) : IKafkaMessageHandler<string, T>
{
    public ValueTask HandleAsync(ConsumeResult<string, T> result, CancellationToken cancellationToken)
    {
        received.Values.Enqueue(result.Message.Value);
        return ValueTask.CompletedTask;
    }
}

/// <summary>What keyed handlers saw (key and value), shared through DI.</summary>
internal sealed class ReceivedPairs<TKey, TValue>
{
    public ConcurrentQueue<(TKey Key, TValue Value)> Pairs { get; } = new();
}

internal sealed class PairHandler<TKey, TValue>(ReceivedPairs<TKey, TValue> received) : IKafkaMessageHandler<TKey, TValue>
{
    public ValueTask HandleAsync(ConsumeResult<TKey, TValue> result, CancellationToken cancellationToken)
    {
        received.Pairs.Enqueue((result.Message.Key, result.Message.Value));
        return ValueTask.CompletedTask;
    }
}
