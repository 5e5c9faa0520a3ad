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
            if (options.Producers.TryGetValue(producer, out var own))
            {
                own.Resolve(producer, options, problems);
            }
            else if (!registry.IsDroppedByBinder(nameof(KafkaKitOptions.Producers), producer))
            {
                new KafkaProducerOptions().Resolve(producer, options, problems);
            }
        }

        foreach (var consumer in registry.Consumers.Union(options.Consumers.Keys))
        {
            if (options.Consumers.TryGetValue(consumer, out var own))
            {
                own.Resolve(consumer, options, problems);
            }
            else if (!registry.IsDroppedByBinder(nameof(KafkaKitOptions.Consumers), consumer))
            {
                new KafkaConsumerOptions().Resolve(consumer, options, problems);
            }
        }

        foreach (var shareConsumer in registry.ShareConsumers.Union(options.ShareConsumers.Keys))
        {
            if (options.ShareConsumers.TryGetValue(shareConsumer, out var own))
            {
                own.Resolve(shareConsumer, options, problems);
            }
            else if (!registry.IsDroppedByBinder(nameof(KafkaKitOptions.ShareConsumers), shareConsumer))
            {
                new Sharing.KafkaShareConsumerOptions().Resolve(shareConsumer, options, problems);
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
}
