using KafkaKit.Tests.Reliability;

namespace KafkaKit.Tests;

/// <summary>
/// The test assembly's entry point (the test runner does not use it): with <see cref="MemberProcess.Verb"/> it runs a
/// consumer-group member in a process of its own, which a reliability scenario can kill.
/// </summary>
internal static class Program
{
    public static Task<int> Main(string[] args) =>
        args is [MemberProcess.Verb, .. var rest] ? MemberProcess.RunAsync(rest) : Task.FromResult(0);
}
