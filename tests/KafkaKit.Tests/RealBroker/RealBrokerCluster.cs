using Testcontainers.Kafka;

namespace KafkaKit.Tests.RealBroker;

/// <summary>
/// The real-broker tier: a Kafka cluster from <c>KAFKAKIT_TEST_BOOTSTRAP_SERVERS</c>, else a Testcontainers.Kafka
/// container when a Docker engine answers; otherwise every test of the tier is reported skipped with the reason.
/// </summary>
/// <remarks>
/// The container is one single-node broker for the whole tier (Testcontainers sets the offsets and transaction-state
/// topics' replication factor to 1 and the initial rebalance delay to 0 for it); each test creates its own topics and
/// groups with unique names.
/// </remarks>
[SetUpFixture]
public sealed class RealBrokerCluster
{
    public const string EnvironmentVariable = "KAFKAKIT_TEST_BOOTSTRAP_SERVERS";

    /// <summary>The broker image of the Testcontainers run (Apache Kafka 3.6).</summary>
    public const string Image = "confluentinc/cp-kafka:7.6.1";

    private static KafkaContainer? _container;
    private static RealBrokerUnderTest? _cluster;

    public static string SkipReason { get; private set; } = "not initialised";

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
        {
            _cluster = new RealBrokerUnderTest(fromEnvironment.Trim(), container: null);
            return;
        }

        try
        {
            using var start = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            _container = new KafkaBuilder(Image).Build();
            await _container.StartAsync(start.Token);
            _cluster = new RealBrokerUnderTest(_container.GetBootstrapAddress(), _container);
        }
        catch (Exception e)
        {
            if (_container is not null)
            {
                await _container.DisposeAsync();
                _container = null;
            }

            SkipReason = $"No real Kafka broker: {EnvironmentVariable} is not set and Testcontainers could not start a Kafka container ({e.GetType().Name}: {FirstLine(e.Message)}). Set {EnvironmentVariable}=host:port or run a Docker engine to run this tier.";
        }
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync(); // releases nothing: the tests share the broker; the container goes next
            _cluster = null;
        }

        if (_container is not null)
        {
            await _container.DisposeAsync();
        }
    }

    /// <summary>Returns the real broker, or marks the calling test skipped with the reason.</summary>
    internal static RealBrokerUnderTest Require()
    {
        if (_cluster is null)
        {
            Assert.Ignore(SkipReason);
        }

        return _cluster!;
    }

    private static string FirstLine(string text) => text.Split('\n')[0].Trim();
}
