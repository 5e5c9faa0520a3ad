using System.Collections.Concurrent;
using System.Reflection;
using Confluent.Kafka;

namespace KafkaKit.Tests.Consuming.Engine;

/// <summary>
/// A stand-in for the librdkafka client in broker-free engine tests: records Pause, Resume, StoreOffset and Commit, and
/// lets a test make StoreOffset or Commit throw. Any other member throws <see cref="NotSupportedException"/>.
/// </summary>
public class FakeConsumerClient : DispatchProxy
{
    public ConcurrentQueue<string> Calls { get; } = new();

    /// <summary>Gets or sets what StoreOffset throws, if anything.</summary>
    public Exception? StoreFailure { get; set; }

    /// <summary>Gets or sets what Commit throws, if anything (otherwise it returns no offsets).</summary>
    public Exception? CommitFailure { get; set; }

    public List<TopicPartitionOffset> Stored { get; } = [];

    internal static (IConsumer<byte[]?, byte[]?> Client, FakeConsumerClient Fake) Create()
    {
        var client = Create<IConsumer<byte[]?, byte[]?>, FakeConsumerClient>();
        return (client, (FakeConsumerClient)(object)client);
    }

    public string[] CallsOf(string method) => [.. Calls.Where(c => c.StartsWith(method + " ", StringComparison.Ordinal))];

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        switch (targetMethod?.Name)
        {
            case "Pause":
            case "Resume":
                Calls.Enqueue($"{targetMethod.Name} {string.Join(",", (IEnumerable<TopicPartition>)args![0]!)}");
                return null;
            case "StoreOffset" when args![0] is TopicPartitionOffset offset:
                if (StoreFailure is { } storeFailure)
                {
                    throw storeFailure;
                }

                Calls.Enqueue($"StoreOffset {offset}");
                Stored.Add(offset);
                return null;
            case "Commit" when args!.Length == 0:
                Calls.Enqueue("Commit ");
                return CommitFailure is { } commitFailure ? throw commitFailure : new List<TopicPartitionOffset>();
            default:
                throw new NotSupportedException($"{targetMethod?.Name} is not part of the fake client.");
        }
    }
}
