namespace KafkaKit.Tests.Scenarios;

/// <summary>
/// The scenarios of <see cref="ClusterScenarios"/> on the embedded cluster: always run, in CI too. This proves the
/// scenario code that the real-broker tier runs against a broker.
/// </summary>
[TestFixture]
[Category("Scenarios")]
[Parallelizable(ParallelScope.All)] // each scenario starts its own embedded cluster, and most of its time is spent waiting on it
public sealed class EmbeddedClusterScenarioTests : ClusterScenarios
{
    private protected override Task<ClusterUnderTest> StartClusterAsync() => Task.FromResult<ClusterUnderTest>(EmbeddedClusterUnderTest.Start());
}
