using KafkaKit.Producing;

namespace KafkaKit.Cluster.Tool.Tests;

/// <summary>
/// Lets KafkaKit load librdkafka (the build shipped with Confluent.Kafka) before the tests' raw Confluent.Kafka admin
/// clients: on a machine with Debian's librdkafka1 (kcat's dependency) Confluent.Kafka alone would load that 2.0.2 copy
/// and KafkaKit would then refuse it (docs/packaging.md).
/// </summary>
[SetUpFixture]
public sealed class LibrdkafkaSetup
{
    [OneTimeSetUp]
    public async Task LoadThroughKafkaKit()
    {
        var options = new KafkaProducerOptions { BootstrapServers = "127.0.0.1:9", FlushTimeoutOnDispose = TimeSpan.Zero };
        await new KafkaProducerBuilder<string, string>("librdkafka-loader", options).Build().DisposeAsync();
    }
}
