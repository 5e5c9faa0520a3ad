using KafkaKit.Internal;

namespace KafkaKit.Consuming;

/// <summary>
/// What each consumer group protocol refuses (KIP-848; librdkafka's <c>rd_kafka_conf_finalize</c> fails on the same
/// properties without naming their place): applied to the merged properties, so a setting from any place is found.
/// </summary>
internal static class GroupProtocolRules
{
    /// <summary>The properties <c>group.protocol=consumer</c> refuses, each with why.</summary>
    private static readonly (string Key, string Reason)[] NotWithConsumerProtocol =
    [
        ("session.timeout.ms", "the broker sets the session timeout (group.consumer.session.timeout.ms)"),
        ("heartbeat.interval.ms", "the broker sets the heartbeat interval (group.consumer.heartbeat.interval.ms)"),
        ("partition.assignment.strategy", "the broker assigns the partitions; choose its assignor with group.remote.assignor (uniform or range) or leave it to the broker"),
        ("group.protocol.type", "it belongs to the classic protocol"),
    ];

    /// <summary>Tells whether the merged properties select the consumer group protocol of KIP-848.</summary>
    /// <param name="properties">The merged properties.</param>
    /// <returns><see langword="true"/> for <c>group.protocol=consumer</c>.</returns>
    public static bool IsConsumerProtocol(IReadOnlyDictionary<string, string> properties) =>
        properties.TryGetValue("group.protocol", out var protocol) && protocol.Trim().Equals("consumer", StringComparison.OrdinalIgnoreCase);

    /// <summary>Describes how the group assigns partitions, for the start line (event 2000).</summary>
    /// <param name="properties">The consumer's librdkafka properties.</param>
    /// <returns>For example <c>cooperative-sticky</c>, or <c>broker-assigned (group.protocol=consumer, group.remote.assignor=uniform)</c>.</returns>
    public static string Describe(IReadOnlyDictionary<string, string> properties)
    {
        if (IsConsumerProtocol(properties))
        {
            return properties.TryGetValue("group.remote.assignor", out var assignor)
                ? $"broker-assigned (group.protocol=consumer, group.remote.assignor={assignor})"
                : "broker-assigned (group.protocol=consumer)";
        }

        return properties.TryGetValue("partition.assignment.strategy", out var strategy) ? strategy : "range,roundrobin";
    }

    /// <summary>
    /// Drops KafkaKit's default <c>partition.assignment.strategy</c> under the consumer protocol and reports every
    /// property the chosen protocol refuses, naming its place.
    /// </summary>
    /// <param name="settings">The merged properties.</param>
    /// <param name="problems">Receives one sentence per problem.</param>
    public static void Apply(ClientSettings settings, List<string> problems)
    {
        var properties = settings.Values;
        if (IsConsumerProtocol(properties))
        {
            settings.RemoveDefault("partition.assignment.strategy");
            foreach (var (key, reason) in NotWithConsumerProtocol)
            {
                if (properties.TryGetValue(key, out var value))
                {
                    problems.Add($"{settings.Owner}: '{key}={value}' (from {settings.PlaceOf(key)}) is not supported with the consumer group protocol (group.protocol=consumer, KIP-848, from {settings.PlaceOf("group.protocol")}): {reason}; remove it, or use GroupProtocol Classic.");
                }
            }

            if (properties.TryGetValue("group.remote.assignor", out var assignor) && assignor.Trim() is not ("uniform" or "range"))
            {
                problems.Add($"{settings.Owner}: 'group.remote.assignor={assignor}' (from {settings.PlaceOf("group.remote.assignor")}) is not a broker-side assignor: use uniform or range, or remove it to let the broker choose.");
            }
        }
        else if (properties.TryGetValue("group.remote.assignor", out var assignor))
        {
            problems.Add($"{settings.Owner}: 'group.remote.assignor={assignor}' (from {settings.PlaceOf("group.remote.assignor")}) applies only to the consumer group protocol (KIP-848) and would be ignored with the classic one: set GroupProtocol to Consumer, or remove it.");
        }
    }
}
