namespace KafkaKit.Internal;

/// <summary>Merges shared and per-client librdkafka properties into one Confluent.Kafka config.</summary>
internal static class ClientProperties
{
    /// <summary>
    /// Builds the properties of one client: KafkaKit's defaults, then the shared properties and bootstrap servers, then the
    /// client's own (later entries win).
    /// </summary>
    public static Dictionary<string, string> Merge(
        string clientId,
        IEnumerable<KeyValuePair<string, string>> defaults,
        string? sharedBootstrapServers,
        IEnumerable<KeyValuePair<string, string>>? shared,
        string? bootstrapServers,
        IEnumerable<KeyValuePair<string, string>> own)
    {
        var merged = new Dictionary<string, string>(StringComparer.Ordinal) { ["client.id"] = clientId };
        foreach (var (key, value) in defaults)
        {
            merged[key] = value;
        }

        if (!string.IsNullOrWhiteSpace(sharedBootstrapServers))
        {
            merged["bootstrap.servers"] = sharedBootstrapServers;
        }

        foreach (var (key, value) in shared ?? [])
        {
            merged[key] = value;
        }

        if (!string.IsNullOrWhiteSpace(bootstrapServers))
        {
            merged["bootstrap.servers"] = bootstrapServers;
        }

        foreach (var (key, value) in own)
        {
            merged[key] = value;
        }

        return merged;
    }

    /// <summary>Throws when no bootstrap servers are set anywhere.</summary>
    public static void RequireBootstrapServers(IReadOnlyDictionary<string, string> config, string clientKind, string name, List<string> problems)
    {
        if (!config.TryGetValue("bootstrap.servers", out var servers) || string.IsNullOrWhiteSpace(servers))
        {
            problems.Add($"{clientKind} '{name}' has no bootstrap servers: set KafkaKit:BootstrapServers, its own BootstrapServers, or Config[\"bootstrap.servers\"] (\"host:port,host:port\").");
        }
    }

    /// <summary>Gets an integer property, or null when absent or not an integer.</summary>
    public static int? Int(IReadOnlyDictionary<string, string> config, string key) =>
        config.TryGetValue(key, out var text) && int.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var value) ? value : null;
}
