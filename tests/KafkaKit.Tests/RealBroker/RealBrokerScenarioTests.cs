using KafkaKit.Tests.Scenarios;

namespace KafkaKit.Tests.RealBroker;

/// <summary>
/// The scenarios of <see cref="ClusterScenarios"/> on a real broker (see <see cref="RealBrokerCluster"/>), where
/// idempotence is enforced: duplicates after producer retries must be zero. Without a broker every test is reported
/// skipped with the reason.
/// </summary>
[TestFixture]
[Category("RealBroker")]
[Parallelizable(ParallelScope.Self)] // the tests run one at a time: they share one broker, and the outage scenario pauses it
public sealed class RealBrokerScenarioTests : ClusterScenarios
{
    private protected override Task<ClusterUnderTest> StartClusterAsync() => Task.FromResult<ClusterUnderTest>(RealBrokerCluster.Require());
}
