using Testcontainers.Kafka;

namespace KafkaKit.Tests.RealBroker;

/// <summary>
/// The real-broker tier: a Kafka cluster from <c>KAFKAKIT_TEST_BOOTSTRAP_SERVERS</c>, else a Testcontainers.Kafka
/// container when a Docker engine answers; otherwise every test of the tier is reported skipped with the reason.
/// </summary>
[SetUpFixture]
public sealed class RealBrokerCluster
{
    public const string EnvironmentVariable = "KAFKAKIT_TEST_BOOTSTRAP_SERVERS";

    private static KafkaContainer? _container;

    /// <summary>Gets the bootstrap servers, or null when no real broker is available (see <see cref="SkipReason"/>).</summary>
    public static string? BootstrapServers { get; private set; }

    public static string SkipReason { get; private set; } = "not initialised";

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
        {
            BootstrapServers = fromEnvironment;
            return;
        }

        try
        {
            using var start = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            _container = new KafkaBuilder("confluentinc/cp-kafka:7.6.1").Build();
            await _container.StartAsync(start.Token);
            BootstrapServers = _container.GetBootstrapAddress();
        }
        catch (Exception e)
        {
            _container = null;
            SkipReason = $"No real Kafka broker: {EnvironmentVariable} is not set and Testcontainers could not start a Kafka container ({e.GetType().Name}: {FirstLine(e.Message)}). Set {EnvironmentVariable}=host:port or run a Docker engine to run this tier.";
        }
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_container is not null)
        {
            await _container.DisposeAsync();
        }
    }

    /// <summary>Returns the bootstrap servers, or marks the calling test skipped with the reason.</summary>
    public static string Require()
    {
        if (BootstrapServers is null)
        {
            Assert.Ignore(SkipReason);
        }

        return BootstrapServers!;
    }

    private static string FirstLine(string text) => text.Split('\n')[0].Trim();
}
