using System.Runtime.CompilerServices;
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

    public static Task<int> RunAsync()
    {
        // Separate methods, so that no KafkaKit type is loaded (which would run KafkaKit's module initializer) before
        // Confluent.Kafka has loaded librdkafka.
        Console.WriteLine($"Confluent.Kafka loaded librdkafka {LoadThroughConfluent()}");
        Console.WriteLine($"Mapped: {string.Join(" ", File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).Last()).Where(f => f.Contains("rdkafka", StringComparison.Ordinal)).Distinct())}");
        return BuildKafkaKitProducerAsync();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static string LoadThroughConfluent() => Library.VersionString;

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static async Task<int> BuildKafkaKitProducerAsync()
    {
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
