using Confluent.Kafka;
using Confluent.Kafka.Admin;
using KafkaKit.Diagnostics;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Topics;

/// <summary>One problem of a declared topic, as logged and reported by health.</summary>
/// <param name="Topic">The topic.</param>
/// <param name="Required">Whether the application needs it to start.</param>
/// <param name="Message">The problem, naming the topic and the Kafka error where there is one.</param>
internal sealed record TopicProblem(string Topic, bool Required, string Message);

/// <summary>
/// Creates missing declared topics and checks existing ones (see <see cref="TopicDeclaration"/>): one metadata request,
/// then one CreateTopics request for every missing topic. Usable for any set of topics (application, dead-letter, retry).
/// </summary>
internal sealed class TopicDeclarer(ITopicAdmin admin, ILogger logger)
{
    /// <summary>How long the metadata and CreateTopics requests wait for the cluster.</summary>
    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Declares <paramref name="topics"/>; every problem is logged (events 1101-1105) and returned.</summary>
    /// <param name="topics">The declarations by topic name (validated).</param>
    /// <param name="cancellationToken">Stops waiting for the cluster.</param>
    /// <returns>The problems, empty when every topic exists as declared.</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async Task<List<TopicProblem>> DeclareAsync(IReadOnlyCollection<KeyValuePair<string, TopicDeclaration>> topics, CancellationToken cancellationToken)
    {
        var problems = new List<TopicProblem>();
        if (topics.Count == 0)
        {
            return problems;
        }

        Metadata metadata;
        try
        {
            // GetMetadata blocks up to RequestTimeout: not on the caller's (the host's) thread.
            metadata = await Task.Run(() => admin.GetMetadata(RequestTimeout), cancellationToken).ConfigureAwait(false);
        }
        catch (KafkaException e)
        {
            TopicLog.MetadataFailed(logger, RequestTimeout, e.Error.Reason, e.Error.Code);
            problems.AddRange(topics.Select(t => new TopicProblem(t.Key, t.Value.Required, $"Topic '{t.Key}' could not be checked: the cluster did not answer a metadata request ({e.Error.Reason}, Kafka error {e.Error.Code}).")));
            return problems;
        }

        var missing = new List<KeyValuePair<string, TopicDeclaration>>();
        foreach (var (name, declaration) in topics)
        {
            var existing = metadata.Topics.Find(t => t.Topic == name && t.Error.Code == ErrorCode.NoError);
            if (existing is not null)
            {
                Check(name, declaration, existing.Partitions.Count, problems);
            }
            else if (declaration.ReplicationFactor is { } factor && factor > metadata.Brokers.Count)
            {
                TopicLog.ReplicationFactorTooHigh(logger, name, factor, metadata.Brokers.Count, declaration.Required);
                problems.Add(new TopicProblem(name, declaration.Required, $"Topic '{name}' is not created: its ReplicationFactor {factor} is above the {metadata.Brokers.Count} broker(s) of the cluster; declare at most {metadata.Brokers.Count}."));
            }
            else
            {
                missing.Add(new(name, declaration));
            }
        }

        if (missing.Count > 0)
        {
            await CreateAsync(missing, problems, cancellationToken).ConfigureAwait(false);
        }

        return problems;
    }

    private async Task CreateAsync(List<KeyValuePair<string, TopicDeclaration>> missing, List<TopicProblem> problems, CancellationToken cancellationToken)
    {
        var specifications = missing.Select(t => new TopicSpecification
        {
            Name = t.Key,
            NumPartitions = t.Value.Partitions ?? -1,
            ReplicationFactor = (short)(t.Value.ReplicationFactor ?? -1),
            Configs = new Dictionary<string, string>(t.Value.Config, StringComparer.Ordinal),
        }).ToList();
        List<(string Topic, Error Error)> outcomes;
        try
        {
            await admin.CreateTopicsAsync(specifications, new CreateTopicsOptions { RequestTimeout = RequestTimeout, OperationTimeout = RequestTimeout })
                .WaitAsync(cancellationToken).ConfigureAwait(false);
            outcomes = [.. specifications.Select(s => (s.Name, new Error(ErrorCode.NoError)))];
        }
        catch (CreateTopicsException e)
        {
            outcomes = [.. e.Results.Select(r => (r.Topic, r.Error))];
        }
        catch (KafkaException e)
        {
            outcomes = [.. specifications.Select(s => (s.Name, e.Error))];
        }

        foreach (var (topic, error) in outcomes)
        {
            var declaration = missing.First(t => t.Key == topic).Value;
            if (error.Code is ErrorCode.NoError or ErrorCode.TopicAlreadyExists)
            {
                // TopicAlreadyExists: created meanwhile by someone else, which is what was asked.
                TopicLog.Created(logger, topic, declaration.Partitions?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "broker default",
                    declaration.ReplicationFactor?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "broker default",
                    string.Join(", ", declaration.Config.Select(c => $"{c.Key}={c.Value}")));
                continue;
            }

            TopicLog.CreateFailed(logger, topic, error.Reason, error.Code, declaration.Required);
            problems.Add(new TopicProblem(topic, declaration.Required, $"Topic '{topic}' could not be created: {error.Reason} (Kafka error {error.Code})."));
        }
    }

    private void Check(string name, TopicDeclaration declaration, int partitions, List<TopicProblem> problems)
    {
        if (declaration.Partitions is { } declared && partitions < declared)
        {
            TopicLog.FewerPartitions(logger, name, partitions, declared, declaration.Required);
            problems.Add(new TopicProblem(name, declaration.Required, $"Topic '{name}' has {partitions} partition(s), fewer than the {declared} declared; KafkaKit never adds partitions (keys would move to other partitions): add them yourself, or declare {partitions}."));
            return;
        }

        TopicLog.Exists(logger, name, partitions);
    }
}
