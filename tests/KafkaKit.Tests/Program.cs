using KafkaKit.Tests.DependencyInjection;
using KafkaKit.Tests.Internal;
using KafkaKit.Tests.Reliability;

namespace KafkaKit.Tests;

/// <summary>
/// The test assembly's entry point (the test runner does not use it): with <see cref="MemberProcess.Verb"/> it runs a
/// consumer-group member in a process of its own, which a reliability scenario can kill (with
/// <see cref="MemberProcess.TransactionalVerb"/> an exactly-once one); with
/// <see cref="HostedConsumerProcess.Verb"/> a host whose consumer faults; with <see cref="LibrdkafkaChild.Verb"/> it lets
/// Confluent.Kafka load librdkafka before KafkaKit does; with <see cref="Sharing.ShareMemberProcess.Verb"/> a share-group
/// member that a test kills while it holds records.
/// </summary>
internal static class Program
{
    public static Task<int> Main(string[] args) => args switch
    {
        [MemberProcess.Verb, .. var rest] => MemberProcess.RunAsync(rest),
        [MemberProcess.TransactionalVerb, .. var rest] => MemberProcess.RunTransactionalAsync(rest),
        [HostedConsumerProcess.Verb, .. var rest] => HostedConsumerProcess.RunAsync(rest),
        [LibrdkafkaChild.Verb] => LibrdkafkaChild.RunAsync(),
        [Sharing.ShareMemberProcess.Verb, .. var rest] => Sharing.ShareMemberProcess.RunAsync(rest),
        _ => Task.FromResult(0),
    };
}
