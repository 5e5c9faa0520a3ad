using Confluent.Kafka;
using KafkaKit.Producing;

namespace KafkaKit.Tests.Internal;

/// <summary>
/// A child process that lets Confluent.Kafka load librdkafka before any KafkaKit client is built (as an application that
/// uses Confluent.Kafka directly first would), then builds a KafkaKit producer and prints what happened.
/// </summary>
internal static class LibrdkafkaChild
{
    /// <summary>The first argument that runs this child instead of the test runner.</summary>
    public const string Verb = "librdkafka-confluent-first";

    /// <summary>Exit code: the KafkaKit producer was refused with <see cref="InvalidOperationException"/>.</summary>
    public const int Refused = 3;

    public static async Task<int> RunAsync()
    {
        Console.WriteLine($"Confluent.Kafka loaded librdkafka {Library.VersionString}");
        try
        {
            await using var producer = new KafkaProducerBuilder<string, string>(
                "child",
                new KafkaProducerOptions { BootstrapServers = "127.0.0.1:9" }).Build();
            Console.WriteLine("KafkaKit producer built");
            return 0;
        }
        catch (InvalidOperationException e)
        {
            Console.WriteLine(e.Message);
            return Refused;
        }
    }
}
