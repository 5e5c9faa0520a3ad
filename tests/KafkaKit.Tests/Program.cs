using KafkaKit.Tests.Reliability;

namespace KafkaKit.Tests;

/// <summary>
/// The test assembly's entry point (the test runner does not use it): with <see cref="MemberProcess.Verb"/> it runs a
/// consumer-group member in a process of its own, which a reliability scenario can kill; with
/// <see cref="DependencyInjection.HostedConsumerProcess.Verb"/> a host whose consumer faults.
/// </summary>
internal static class Program
{
    public static Task<int> Main(string[] args) => args switch
    {
        [MemberProcess.Verb, .. var rest] => MemberProcess.RunAsync(rest),
        [DependencyInjection.HostedConsumerProcess.Verb, .. var rest] => DependencyInjection.HostedConsumerProcess.RunAsync(rest),
        _ => Task.FromResult(0),
    };
}
