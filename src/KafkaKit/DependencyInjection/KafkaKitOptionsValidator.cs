using KafkaKit.Consuming;
using KafkaKit.Internal;
using KafkaKit.Producing;
using Microsoft.Extensions.Options;

namespace KafkaKit.DependencyInjection;

/// <summary>
/// Validates <see cref="KafkaKitOptions"/> at host start: every registered and configured client, every problem in one
/// error (options, missing bootstrap servers, and each librdkafka property checked by librdkafka itself). Secrets are
/// never echoed.
/// </summary>
internal sealed class KafkaKitOptionsValidator(KafkaKitRegistry registry) : IValidateOptions<KafkaKitOptions>
{
    public ValidateOptionsResult Validate(string? name, KafkaKitOptions options)
    {
        var problems = new List<string>();
        Librdkafka.Check(options.Client, "KafkaKit:Client", problems);
        foreach (var producer in registry.Producers.Union(options.Producers.Keys))
        {
            var own = options.Producers.TryGetValue(producer, out var o) ? o : new KafkaProducerOptions();
            var owner = $"Producer '{producer}'";
            problems.AddRange(own.Validate().Select(p => $"{owner}: {p}"));
            var merged = ClientProperties.Merge(producer, [], options.BootstrapServers, null, own.BootstrapServers, own.Config);
            ClientProperties.RequireBootstrapServers(merged, "Producer", producer, problems);
            Librdkafka.Check(own.Config, owner, problems);
        }

        foreach (var consumer in registry.Consumers.Union(options.Consumers.Keys))
        {
            var own = options.Consumers.TryGetValue(consumer, out var o) ? o : new KafkaConsumerOptions();
            var owner = $"Consumer '{consumer}'";
            problems.AddRange(own.Validate().Select(p => $"{owner}: {p}"));
            var merged = ClientProperties.Merge(consumer, [], options.BootstrapServers, null, own.BootstrapServers, own.Config);
            ClientProperties.RequireBootstrapServers(merged, "Consumer", consumer, problems);
            Librdkafka.Check(own.Config, owner, problems);
        }

        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
