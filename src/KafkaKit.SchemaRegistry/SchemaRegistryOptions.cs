using System.Globalization;
using Confluent.SchemaRegistry;

namespace KafkaKit.SchemaRegistry;

/// <summary>
/// Schema Registry settings, bound from <c>KafkaKit:SchemaRegistry</c> by
/// <see cref="SchemaRegistryKafkaKitBuilderExtensions.AddSchemaRegistry"/> and validated at start.
/// </summary>
public sealed class SchemaRegistryOptions
{
    /// <summary>The default of <see cref="RequestTimeout"/>: 30 s (Confluent's client default).</summary>
    public static readonly TimeSpan DefaultRequestTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Gets or sets the registry URL(s), comma-separated, each absolute <c>http://</c> or <c>https://</c>
    /// (<c>schema.registry.url</c>). Required.
    /// </summary>
    public string? Url { get; set; }

    /// <summary>
    /// Gets or sets the HTTP basic credentials, <c>user:password</c> (<c>basic.auth.user.info</c>). A secret: never
    /// logged or shown in error messages (rendered <c>user:***</c>). Default: none.
    /// </summary>
    public string? BasicAuthUserInfo { get; set; }

    /// <summary>
    /// Gets or sets how the subject of a record is named: <see cref="SubjectNameStrategy.Topic"/> (default,
    /// <c>&lt;topic&gt;-value</c> / <c>&lt;topic&gt;-key</c>), <see cref="SubjectNameStrategy.Record"/> (the record's
    /// full name) or <see cref="SubjectNameStrategy.TopicRecord"/> (<c>&lt;topic&gt;-&lt;record full name&gt;</c>).
    /// </summary>
    public SubjectNameStrategy SubjectNameStrategy { get; set; } = SubjectNameStrategy.Topic;

    /// <summary>
    /// Gets or sets whether a producer registers the schema of its type when the subject does not have it yet
    /// (<c>auto.register.schemas</c>). Default <see langword="true"/>. Turn it off in production where schemas are
    /// registered by a pipeline; a producer then fails (naming the subject) for a schema that is not registered.
    /// </summary>
    public bool AutoRegisterSchemas { get; set; } = true;

    /// <summary>
    /// Gets or sets whether serializers write with the latest registered version of the subject instead of their type's
    /// schema (<c>use.latest.version</c>); requires <see cref="AutoRegisterSchemas"/> off. Default <see langword="false"/>.
    /// </summary>
    public bool UseLatestVersion { get; set; }

    /// <summary>
    /// Gets the subjects that must exist in the registry when the host starts while <see cref="AutoRegisterSchemas"/> is
    /// off (e.g. <c>orders-value</c>, <c>orders-key</c>): a missing one fails the start, naming it. Producers declare no
    /// topics, so list here the subjects they write (with the default strategy <c>&lt;topic&gt;-value</c> and, for
    /// <c>UseAvroKey</c>/<c>UseJsonSchemaKey</c>, <c>&lt;topic&gt;-key</c>). Not checked with auto-registration on (the
    /// first produce registers them). Default: none.
    /// </summary>
    public IList<string> RequiredSubjects { get; } = new List<string>();

    /// <summary>Gets or sets the timeout of one registry request (<c>schema.registry.request.timeout.ms</c>), 1 ms to 5 min. Default 30 s.</summary>
    public TimeSpan RequestTimeout { get; set; } = DefaultRequestTimeout;

    /// <summary>
    /// Gets more Confluent registry client properties (e.g. <c>schema.registry.ssl.ca.location</c>); they override the
    /// ones above. Keys holding secrets are masked in every message.
    /// </summary>
    public IDictionary<string, string> Config { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Lists every problem of these options (empty when valid).</summary>
    /// <returns>One sentence per problem, each naming the setting, the bad value (secrets masked) and what is allowed.</returns>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (string.IsNullOrWhiteSpace(Url))
        {
            problems.Add("KafkaKit:SchemaRegistry:Url is not set: give the registry's URL, e.g. http://localhost:8081 (several, comma-separated).");
        }
        else
        {
            foreach (var url in Url.Split(',', StringSplitOptions.TrimEntries))
            {
                if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps) || !string.IsNullOrEmpty(uri.UserInfo))
                {
                    problems.Add($"KafkaKit:SchemaRegistry:Url has '{MaskUrl(url)}', which is not an absolute http:// or https:// URL without credentials (put credentials in BasicAuthUserInfo).");
                }
            }
        }

        if (BasicAuthUserInfo is { } info && (info.IndexOf(':', StringComparison.Ordinal) is <= 0))
        {
            problems.Add("KafkaKit:SchemaRegistry:BasicAuthUserInfo must be of the form 'user:password' (value not shown).");
        }

        if (!Enum.IsDefined(SubjectNameStrategy) || SubjectNameStrategy is SubjectNameStrategy.None or SubjectNameStrategy.Associated)
        {
            problems.Add($"KafkaKit:SchemaRegistry:SubjectNameStrategy is '{SubjectNameStrategy}'; allowed: Topic, Record, TopicRecord.");
        }

        if (UseLatestVersion && AutoRegisterSchemas)
        {
            problems.Add("KafkaKit:SchemaRegistry:UseLatestVersion is true while AutoRegisterSchemas is true (its default): set AutoRegisterSchemas to false to write with the latest registered version.");
        }

        foreach (var subject in RequiredSubjects.Where(string.IsNullOrWhiteSpace))
        {
            problems.Add($"KafkaKit:SchemaRegistry:RequiredSubjects has an empty entry ('{subject}'); give subject names such as orders-value.");
        }

        if (RequestTimeout <= TimeSpan.Zero || RequestTimeout > TimeSpan.FromMinutes(5))
        {
            problems.Add($"KafkaKit:SchemaRegistry:RequestTimeout is {RequestTimeout}; allowed: 1 ms to 5 min.");
        }

        foreach (var key in Config.Keys)
        {
            if (!key.StartsWith("schema.registry.", StringComparison.Ordinal))
            {
                problems.Add($"KafkaKit:SchemaRegistry:Config has '{key}', which is not a registry client property (they start with 'schema.registry.').");
            }
        }

        return problems;
    }

    /// <summary>Renders the settings for logs: secrets masked (<c>user:***</c> for the basic credentials).</summary>
    /// <returns>The text.</returns>
    public override string ToString()
    {
        var parts = new List<string>
        {
            $"Url={Url}",
            $"BasicAuthUserInfo={(BasicAuthUserInfo is null ? "(none)" : Mask(BasicAuthUserInfo))}",
            $"SubjectNameStrategy={SubjectNameStrategy}",
            $"AutoRegisterSchemas={AutoRegisterSchemas}",
            $"UseLatestVersion={UseLatestVersion}",
            $"RequestTimeout={RequestTimeout.TotalMilliseconds.ToString(CultureInfo.InvariantCulture)} ms",
        };
        if (RequiredSubjects.Count > 0)
        {
            parts.Add($"RequiredSubjects=[{string.Join(" ", RequiredSubjects)}]");
        }

        parts.AddRange(Config.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}={(IsSecret(p.Key) ? "***" : p.Value)}"));
        return string.Join(", ", parts);
    }

    /// <summary>Builds the Confluent registry client configuration.</summary>
    internal SchemaRegistryConfig ToClientConfig()
    {
        var config = new SchemaRegistryConfig
        {
            Url = Url,
            RequestTimeoutMs = (int)RequestTimeout.TotalMilliseconds,
        };
        if (BasicAuthUserInfo is not null)
        {
            config.BasicAuthCredentialsSource = AuthCredentialsSource.UserInfo;
            config.BasicAuthUserInfo = BasicAuthUserInfo;
        }

        foreach (var (key, value) in Config)
        {
            config.Set(key, value);
        }

        return config;
    }

    /// <summary>Tells whether a registry client property holds a secret (user info, passwords, secrets, tokens).</summary>
    internal static bool IsSecret(string key) =>
        key.Contains("user.info", StringComparison.OrdinalIgnoreCase)
        || key.Contains("password", StringComparison.OrdinalIgnoreCase)
        || key.Contains("secret", StringComparison.OrdinalIgnoreCase)
        || key.Contains("token", StringComparison.OrdinalIgnoreCase);

    /// <summary>Masks the password of <c>user:password</c>.</summary>
    internal static string Mask(string userInfo)
    {
        var colon = userInfo.IndexOf(':', StringComparison.Ordinal);
        return colon > 0 ? userInfo[..colon] + ":***" : "***";
    }

    /// <summary>Masks the user info of a URL (<c>http://user:***@host</c>).</summary>
    internal static string MaskUrl(string url)
    {
        var at = url.IndexOf('@', StringComparison.Ordinal);
        var scheme = url.IndexOf("//", StringComparison.Ordinal);
        return at > 0 && scheme >= 0 && at > scheme ? url[..(scheme + 2)] + Mask(url[(scheme + 2)..at]) + url[at..] : url;
    }
}
