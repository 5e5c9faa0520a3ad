namespace KafkaKit.Internal;

/// <summary>The merged librdkafka properties of one client and the place each came from (see <see cref="ClientProperties.Resolve"/>).</summary>
internal sealed class ClientSettings
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _places = new(StringComparer.Ordinal);
    private readonly string _section;

    /// <summary>Initializes a new instance of the <see cref="ClientSettings"/> class.</summary>
    /// <param name="kind"><c>"Producer"</c> or <c>"Consumer"</c>.</param>
    /// <param name="name">The client's name.</param>
    /// <param name="configured">Whether the client is configured through DI (its places are then configuration paths).</param>
    public ClientSettings(string kind, string name, bool configured)
    {
        Owner = $"{kind} '{name}'";
        Configured = configured;
        _section = $"KafkaKit:{kind}s:{name}";
    }

    /// <summary>Gets how problems name the client, e.g. <c>Producer 'orders'</c>.</summary>
    public string Owner { get; }

    /// <summary>Gets a value indicating whether the client is configured through DI.</summary>
    public bool Configured { get; }

    /// <summary>Gets the merged properties.</summary>
    public IReadOnlyDictionary<string, string> Values => _values;

    /// <summary>Names the place of one of the client's own options: its configuration path, or the option's name for a builder used alone.</summary>
    /// <param name="option">The option, e.g. <c>BootstrapServers</c> or <c>Config</c>.</param>
    /// <returns>The place, e.g. <c>KafkaKit:Producers:orders:Config</c> or <c>Config</c>.</returns>
    public string OwnPlace(string option) => Configured ? $"{_section}:{option}" : option;

    /// <summary>Names where the value of a property came from.</summary>
    /// <param name="key">The property.</param>
    /// <returns>The place, or <c>"nowhere"</c> when the property is not set.</returns>
    public string PlaceOf(string key) => _places.TryGetValue(key, out var place) ? place : "nowhere";

    /// <summary>Sets a property, replacing the value of an earlier place.</summary>
    /// <param name="key">The property.</param>
    /// <param name="value">Its value.</param>
    /// <param name="place">Where the value comes from.</param>
    public void Set(string key, string value, string place)
    {
        _values[key] = value;
        _places[key] = place;
    }

    /// <summary>Removes a property set by KafkaKit's defaults that does not apply (for example the default assignment strategy under the consumer group protocol).</summary>
    /// <param name="key">The property.</param>
    public void RemoveDefault(string key)
    {
        if (_places.TryGetValue(key, out var place) && place == ClientProperties.DefaultsPlace)
        {
            _values.Remove(key);
            _places.Remove(key);
        }
    }

    /// <summary>Tells whether a boolean property is set to the given value, spelled any way librdkafka reads it (<c>true</c>/<c>t</c>/<c>1</c>, <c>false</c>/<c>f</c>/<c>0</c>, any case).</summary>
    /// <param name="key">The property.</param>
    /// <param name="value">The value to look for.</param>
    /// <returns><see langword="true"/> when the property is set to it.</returns>
    public bool Is(string key, bool value)
    {
        if (!_values.TryGetValue(key, out var text))
        {
            return false;
        }

        text = text.Trim();
        return value
            ? text.Equals("true", StringComparison.OrdinalIgnoreCase) || text.Equals("t", StringComparison.OrdinalIgnoreCase) || text == "1"
            : text.Equals("false", StringComparison.OrdinalIgnoreCase) || text.Equals("f", StringComparison.OrdinalIgnoreCase) || text == "0";
    }
}
