namespace KafkaKit.Internal;

/// <summary>
/// The one merge of a client's librdkafka properties, used alike by the builders and by the start-time validator, so
/// that a setting one accepts the other accepts too. Every value remembers the place it came from, and every problem
/// names that place.
/// </summary>
/// <remarks>
/// Precedence, later wins: the client's name as <c>client.id</c>; KafkaKit's defaults of the options type; the shared
/// <c>KafkaKit:BootstrapServers</c>; the shared <c>KafkaKit:Client</c> properties; the client's typed options that stand
/// for a librdkafka property (<c>BootstrapServers</c>, <c>GroupId</c>, ...); the client's own <c>Config</c>. Two places
/// of one level that set one property to different values are refused, naming both.
/// </remarks>
internal static class ClientProperties
{
    /// <summary>The place of KafkaKit's defaults, in problems.</summary>
    public const string DefaultsPlace = "KafkaKit's defaults";

    /// <summary>The place of the shared properties, in problems.</summary>
    public const string SharedPlace = "KafkaKit:Client";

    /// <summary>The place of the shared bootstrap servers, in problems.</summary>
    public const string SharedBootstrapPlace = "KafkaKit:BootstrapServers";

    /// <summary>Merges and checks the librdkafka properties of one client.</summary>
    /// <param name="kind"><c>"Producer"</c> or <c>"Consumer"</c>.</param>
    /// <param name="name">The client's name (its default <c>client.id</c>).</param>
    /// <param name="shared">The shared options when the client is configured through DI (places are then named by their configuration path), or <see langword="null"/> for a builder used alone.</param>
    /// <param name="defaults">KafkaKit's defaults for this kind of client.</param>
    /// <param name="typed">The typed options that stand for a librdkafka property: option name, property, value (<see langword="null"/> or blank when not set).</param>
    /// <param name="own">The client's own <c>Config</c>.</param>
    /// <param name="problems">Receives one sentence per problem.</param>
    /// <returns>The merged properties and the place of each.</returns>
    public static ClientSettings Resolve(
        string kind,
        string name,
        KafkaKitOptions? shared,
        IEnumerable<KeyValuePair<string, string>> defaults,
        IEnumerable<(string Option, string Key, string? Value)> typed,
        IDictionary<string, string> own,
        List<string> problems)
    {
        var settings = new ClientSettings(kind, name, configured: shared is not null);
        settings.Set("client.id", name, "the client's name");
        foreach (var (key, value) in defaults)
        {
            settings.Set(key, value, DefaultsPlace);
        }

        if (shared is not null)
        {
            if (!string.IsNullOrWhiteSpace(shared.BootstrapServers))
            {
                settings.Set("bootstrap.servers", shared.BootstrapServers, SharedBootstrapPlace);
                if (shared.Client.TryGetValue("bootstrap.servers", out var other) && other != shared.BootstrapServers)
                {
                    problems.Add($"{SharedBootstrapPlace} ('{shared.BootstrapServers}') and 'bootstrap.servers={other}' (from {SharedPlace}) disagree: set only one.");
                }
            }

            foreach (var (key, value) in shared.Client)
            {
                settings.Set(key, value, SharedPlace);
            }

            Librdkafka.Check(shared.Client, SharedPlace, problems);
        }

        var typedKeys = new Dictionary<string, (string Place, string Value)>(StringComparer.Ordinal);
        foreach (var (option, key, value) in typed)
        {
            if (!string.IsNullOrWhiteSpace(value))
            {
                var place = settings.OwnPlace(option);
                settings.Set(key, value, place);
                typedKeys[key] = (place, value);
                Librdkafka.Check([new(key, value)], $"{settings.Owner} ({place})", problems);
            }
        }

        var ownPlace = settings.OwnPlace("Config");
        foreach (var (key, value) in own)
        {
            if (typedKeys.TryGetValue(key, out var typedValue) && typedValue.Value != value)
            {
                problems.Add($"{settings.Owner}: {typedValue.Place} ('{Shown(key, typedValue.Value)}') and '{key}={Shown(key, value)}' (from {ownPlace}) disagree: set only one.");
            }

            settings.Set(key, value, ownPlace);
        }

        Librdkafka.Check(own, $"{settings.Owner} ({ownPlace})", problems);
        RequireBootstrapServers(settings, problems);
        return settings;
    }

    /// <summary>Renders a property's value for a problem: <c>***</c> for a secret.</summary>
    /// <param name="key">The property.</param>
    /// <param name="value">Its value.</param>
    /// <returns>The text to show.</returns>
    public static string Shown(string key, string value) => ConfigText.IsSecret(key) ? "***" : value;

    /// <summary>Adds a problem when no bootstrap servers are set anywhere, or when an entry of the list is malformed.</summary>
    /// <remarks>
    /// librdkafka accepts any text for <c>bootstrap.servers</c> when it is configured and fails only when connecting (for
    /// example <c>"not a host:port"</c> becomes host <c>"not a host"</c>, port 0, and is logged as unresolvable forever), so
    /// entries with whitespace inside or a port that is not a number from 1 to 65535 are refused here, at start.
    /// </remarks>
    private static void RequireBootstrapServers(ClientSettings settings, List<string> problems)
    {
        if (!settings.Values.TryGetValue("bootstrap.servers", out var servers) || string.IsNullOrWhiteSpace(servers))
        {
            var places = settings.Configured
                ? $"{SharedBootstrapPlace}, {SharedPlace}:bootstrap.servers, {settings.OwnPlace("BootstrapServers")} or {settings.OwnPlace("Config")}:bootstrap.servers"
                : "its BootstrapServers or Config[\"bootstrap.servers\"]";
            problems.Add($"{settings.Owner} has no bootstrap servers: set {places} (\"host:port,host:port\").");
            return;
        }

        foreach (var entry in servers.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!IsWellFormedBroker(entry))
            {
                problems.Add($"{settings.Owner} has a malformed bootstrap server '{entry}' in '{servers}' (from {settings.PlaceOf("bootstrap.servers")}): each entry must be host:port (or host, or [ipv6]:port) without spaces, the port a number from 1 to 65535.");
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
