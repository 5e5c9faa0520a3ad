using Confluent.Kafka;
using KafkaKit.DependencyInjection;
using KafkaKit.Diagnostics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KafkaKit.Topics;

/// <summary>Creates an <see cref="ITopicAdmin"/> from librdkafka properties.</summary>
/// <param name="config">The admin client's properties.</param>
/// <param name="logger">Receives librdkafka's log lines.</param>
/// <returns>The admin.</returns>
internal delegate ITopicAdmin TopicAdminFactory(IReadOnlyDictionary<string, string> config, ILogger logger);

/// <summary>
/// Declares <see cref="KafkaKitOptions.Topics"/> when the host starts, before the consumers (it is registered by
/// <c>AddKafkaKit</c>, ahead of every <c>AddConsumer</c>). A problem of a required topic fails the start; the others are
/// logged and reported by health (through <see cref="KafkaKitClients.TopicProblems"/>).
/// </summary>
internal sealed class TopicDeclarationService(IOptions<KafkaKitOptions> options, KafkaKitClients clients, TopicAdminFactory adminFactory, ILoggerFactory loggerFactory) : IHostedService
{
    /// <summary>The default <see cref="TopicAdminFactory"/>: Confluent's admin client, librdkafka's log forwarded.</summary>
    public static readonly TopicAdminFactory ConfluentAdmin = (config, logger) =>
    {
        var summariser = new ClientLogSummariser(logger, "kafkakit-topics", TimeProvider.System);
        return new ConfluentTopicAdmin(new AdminClientBuilder(config).SetLogHandler((_, message) => ClientLog.Forward(summariser, message)).Build());
    };

    /// <exception cref="InvalidOperationException">A required topic could not be declared; the message lists every problem.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var shared = options.Value;
        if (shared.Topics.Count == 0)
        {
            return;
        }

        var logger = loggerFactory.CreateLogger("KafkaKit.Topics");
        var config = new Dictionary<string, string>(shared.Client, StringComparer.Ordinal) { ["client.id"] = "kafkakit-topics" };
        if (!string.IsNullOrWhiteSpace(shared.BootstrapServers))
        {
            config["bootstrap.servers"] = shared.BootstrapServers;
        }

        List<TopicProblem> problems;
        using (var admin = adminFactory(config, logger))
        {
            problems = await new TopicDeclarer(admin, logger).DeclareAsync([.. shared.Topics], cancellationToken).ConfigureAwait(false);
        }

        clients.TopicProblems = [.. problems.Select(p => p.Message)];
        var required = problems.Where(p => p.Required).ToList();
        if (required.Count > 0)
        {
            TopicLog.RequiredFailed(logger, required.Count);
            throw new InvalidOperationException(
                $"KafkaKit could not declare the required topics: {string.Join(" ", required.Select(p => p.Message))} Set Required to false on a topic to start without it.");
        }

        if (problems.Count > 0)
        {
            TopicLog.OptionalFailed(logger, problems.Count);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
