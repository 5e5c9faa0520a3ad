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

    /// <summary>Adds a problem when no bootstrap servers are set anywhere, or when an entry of the list is malformed.</summary>
    /// <remarks>
    /// librdkafka accepts any text for <c>bootstrap.servers</c> when it is configured and fails only when connecting (for
    /// example <c>"not a host:port"</c> becomes host <c>"not a host"</c>, port 0, and is logged as unresolvable forever), so
    /// entries with whitespace inside or a port that is not a number from 1 to 65535 are refused here, at start.
    /// </remarks>
    public static void RequireBootstrapServers(IReadOnlyDictionary<string, string> config, string clientKind, string name, List<string> problems)
    {
        if (!config.TryGetValue("bootstrap.servers", out var servers) || string.IsNullOrWhiteSpace(servers))
        {
            problems.Add($"{clientKind} '{name}' has no bootstrap servers: set KafkaKit:BootstrapServers, its own BootstrapServers, or Config[\"bootstrap.servers\"] (\"host:port,host:port\").");
            return;
        }

        foreach (var entry in servers.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!IsWellFormedBroker(entry))
            {
                problems.Add($"{clientKind} '{name}' has a malformed bootstrap server '{entry}' in '{servers}': each entry must be host:port (or host, or [ipv6]:port) without spaces, the port a number from 1 to 65535.");
            }
        }
    }

    private static bool IsWellFormedBroker(string entry)
    {
        var scheme = entry.IndexOf("://", StringComparison.Ordinal);
        var address = scheme >= 0 ? entry[(scheme + 3)..] : entry;
        if (address.Length == 0 || address.Any(char.IsWhiteSpace))
        {
            return false;
        }

        string? port;
        if (address.StartsWith('['))
        {
            var close = address.IndexOf(']', StringComparison.Ordinal);
            if (close < 2)
            {
                return false;
            }

            port = close == address.Length - 1 ? null : address[(close + 1)..] is [':', .. var rest] ? rest : "";
        }
        else
        {
            var colons = address.Count(c => c == ':');
            if (colons > 1)
            {
                return true; // an unbracketed IPv6 address: librdkafka's own parsing decides
            }

            var colon = address.IndexOf(':', StringComparison.Ordinal);
            if (colon == 0)
            {
                return false;
            }

            port = colon < 0 ? null : address[(colon + 1)..];
        }

        return port is null || (int.TryParse(port, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var number) && number is >= 1 and <= 65535);
    }

    /// <summary>Gets an integer property, or null when absent or not an integer.</summary>
    public static int? Int(IReadOnlyDictionary<string, string> config, string key) =>
        config.TryGetValue(key, out var text) && int.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var value) ? value : null;
}
