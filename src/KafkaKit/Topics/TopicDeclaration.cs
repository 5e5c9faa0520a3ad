using System.Globalization;

namespace KafkaKit.Topics;

/// <summary>
/// A topic KafkaKit creates at start when it is missing (section <c>KafkaKit:Topics:&lt;name&gt;</c>, the key being the
/// topic's name), through the Admin API (CreateTopics) with the shared connection settings (<c>KafkaKit:BootstrapServers</c>,
/// <c>KafkaKit:Client</c>). Any topic can be declared: the topics producers write to, consumers read from, and their
/// dead-letter topics.
/// </summary>
/// <remarks>
/// <para>
/// Nothing is declared unless listed: without <see cref="KafkaKitOptions.Topics"/> entries KafkaKit never calls the
/// Admin API. An existing topic is never altered: one with fewer partitions than <see cref="Partitions"/> is reported (a
/// partition added later moves keys to other partitions, a decision for its owner); its replication factor and
/// configuration are not compared. A <see cref="ReplicationFactor"/> above the cluster's broker count is refused
/// without a request.
/// </para>
/// <para>
/// Every problem is logged with the Kafka error (events 1100-1107) and reported by the health checks (Degraded on
/// <c>kafkakit</c> and <c>kafkakit-ready</c>, never on <c>kafkakit-live</c>). A problem of a <see cref="Required"/>
/// topic (the default) fails the host's start.
/// </para>
/// </remarks>
public sealed class TopicDeclaration
{
    /// <summary>
    /// Gets or sets the number of partitions to create, 1 or more. Default: <see langword="null"/>, the broker's
    /// <c>num.partitions</c> (and an existing topic's count is then not checked).
    /// </summary>
    public int? Partitions { get; set; }

    /// <summary>
    /// Gets or sets the replication factor to create with, 1 to 32767 and at most the cluster's broker count. Default:
    /// <see langword="null"/>, the broker's <c>default.replication.factor</c> (KIP-464, brokers from Apache Kafka 2.4).
    /// </summary>
    public int? ReplicationFactor { get; set; }

    /// <summary>
    /// Gets the topic configuration to create with, by Kafka's names (for example <c>cleanup.policy</c>,
    /// <c>retention.ms</c>, <c>min.insync.replicas</c>). Used only when the topic is created; the broker refuses unknown names.
    /// </summary>
    public IDictionary<string, string> Config { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>
    /// Gets or sets whether the application needs this topic to start. <see langword="true"/> (the default): a problem
    /// (not created, fewer partitions than declared, replication factor too high, cluster unreachable) fails the host's
    /// start with every problem listed. <see langword="false"/>: the problem is logged and reported by health, and the
    /// application starts.
    /// </summary>
    public bool Required { get; set; } = true;

    /// <summary>Lists every problem of this declaration (blank name, invalid characters, out-of-range values).</summary>
    /// <param name="name">The topic's name (the key of the declaration).</param>
    /// <param name="problems">Receives one sentence per problem, naming the topic.</param>
    internal void Validate(string name, List<string> problems)
    {
        var owner = $"KafkaKit:Topics:{name}";
        if (string.IsNullOrWhiteSpace(name) || name is "." or ".." || name.Length > 249 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
        {
            problems.Add($"Topic name '{name}' is not valid: use 1 to 249 characters of a-z, A-Z, 0-9, '.', '_' and '-' (not '.' or '..' alone).");
        }

        if (Partitions is < 1)
        {
            problems.Add($"{owner}: Partitions is {Partitions.Value.ToString(CultureInfo.InvariantCulture)}; it must be 1 or more, or unset for the broker's num.partitions.");
        }

        if (ReplicationFactor is < 1 or > short.MaxValue)
        {
            problems.Add($"{owner}: ReplicationFactor is {ReplicationFactor.Value.ToString(CultureInfo.InvariantCulture)}; it must be between 1 and 32767 (and at most the broker count), or unset for the broker's default.replication.factor.");
        }

        foreach (var (key, value) in Config)
        {
            if (string.IsNullOrWhiteSpace(key) || value is null)
            {
                problems.Add($"{owner}: Config has an entry with a blank name or no value ('{key}'); name a topic configuration and give it a value.");
            }
        }
    }
}
