using KafkaKit.Consuming;
using KafkaKit.Internal;
using KafkaKit.Producing;
using Microsoft.Extensions.Options;

namespace KafkaKit.DependencyInjection;

/// <summary>
/// Validates <see cref="KafkaKitOptions"/> at host start: every registered and configured client, every problem in one
/// error. Each client is checked by the very code its builder runs (<see cref="KafkaProducerOptions.Resolve"/>,
/// <see cref="KafkaConsumerOptions.Resolve"/>), so a setting accepted here is accepted when the client is built and
/// the other way round. Secrets are never echoed.
/// </summary>
internal sealed class KafkaKitOptionsValidator(KafkaKitRegistry registry) : IValidateOptions<KafkaKitOptions>
{
    public ValidateOptionsResult Validate(string? name, KafkaKitOptions options)
    {
        var problems = new List<string>();
        Librdkafka.Check(options.Client, ClientProperties.SharedPlace, problems); // also when no client is registered
        foreach (var producer in registry.Producers.Union(options.Producers.Keys))
        {
            var left = new List<string>();
            var own = registry.OptionsOf(options.Producers, nameof(KafkaKitOptions.Producers), producer, left);
            Checked(left, problems, p => own.Resolve(producer, options, p));
        }

        var consumerGroups = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var consumer in registry.Consumers.Union(options.Consumers.Keys))
        {
            var left = new List<string>();
            var own = registry.OptionsOf(options.Consumers, nameof(KafkaKitOptions.Consumers), consumer, left);
            Checked(left, problems, p => own.Resolve(consumer, options, p));
            if (GroupIdOf(own.GroupId, own.Config, options) is { } group)
            {
                consumerGroups.TryAdd(group, consumer);
            }
        }

        foreach (var shareConsumer in registry.ShareConsumers.Union(options.ShareConsumers.Keys))
        {
            var left = new List<string>();
            var own = registry.OptionsOf(options.ShareConsumers, nameof(KafkaKitOptions.ShareConsumers), shareConsumer, left);
            Checked(left, problems, p => own.Resolve(shareConsumer, options, p));
            if (GroupIdOf(own.GroupId, own.Config, options) is { } group && consumerGroups.TryGetValue(group, out var consumer))
            {
                // A group id names one group of one type on a broker: a member of the other type is refused; the
                // embedded cluster keeps the two apart and would not show it.
                problems.Add($"Share consumer '{shareConsumer}' and consumer '{consumer}' both use group id '{group}': a group is either a share group or a consumer group; give the share consumer a group id of its own.");
            }
        }

        foreach (var (topic, declaration) in options.Topics)
        {
            declaration.Validate(topic, problems);
        }

        if (options.Topics.Count > 0 && string.IsNullOrWhiteSpace(options.BootstrapServers) && !options.Client.ContainsKey("bootstrap.servers"))
        {
            problems.Add($"KafkaKit:Topics declares {options.Topics.Count} topic(s) but KafkaKit has no shared bootstrap servers to create them with: set {ClientProperties.SharedBootstrapPlace} or {ClientProperties.SharedPlace}:bootstrap.servers.");
        }

        // A problem of a shared setting is named by its place, not by a client: report it once.
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems.Distinct());
    }

    /// <summary>
    /// Runs a client's checks into <paramref name="problems"/>, leaving out what they say of options left at their defaults
    /// because their configured values did not convert (named by <see cref="ConfigurationBindingValidator"/>; a check of
    /// the default, such as "OnError is Stop", would contradict what the user wrote).
    /// </summary>
    private static void Checked(List<string> left, List<string> problems, Action<List<string>> check)
    {
        var found = new List<string>();
        check(found);
        problems.AddRange(found.Where(p => !left.Exists(option => p.Contains(option + " is ", StringComparison.Ordinal))));
    }

    /// <summary>The group id a client uses: its GroupId, else group.id in its Config, else in the shared Client settings.</summary>
    private static string? GroupIdOf(string? groupId, IDictionary<string, string> config, KafkaKitOptions shared) =>
        !string.IsNullOrWhiteSpace(groupId) ? groupId
        : config.TryGetValue("group.id", out var own) ? own
        : shared.Client.TryGetValue("group.id", out var common) ? common
        : null;
}
