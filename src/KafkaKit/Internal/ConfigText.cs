using System.Text;

namespace KafkaKit.Internal;

/// <summary>Renders librdkafka properties for logs and messages with every secret replaced by <c>***</c>.</summary>
internal static class ConfigText
{
    /// <summary>Tells whether a librdkafka property holds a secret (passwords, keys, tokens, secrets, JAAS configs).</summary>
    /// <param name="key">The property name.</param>
    /// <returns><see langword="true"/> when its value must never be logged.</returns>
    public static bool IsSecret(string key) =>
        key.Contains("password", StringComparison.OrdinalIgnoreCase)
        || key.Contains("secret", StringComparison.OrdinalIgnoreCase)
        || key.Contains("token", StringComparison.OrdinalIgnoreCase)
        || key.Contains("jaas", StringComparison.OrdinalIgnoreCase)
        || key.Contains("user.info", StringComparison.OrdinalIgnoreCase) // basic.auth.user.info: "user:password"
        || key.EndsWith(".key.pem", StringComparison.OrdinalIgnoreCase)
        || key.Equals("ssl.key.pem", StringComparison.OrdinalIgnoreCase)
        || key.Contains("sasl.oauthbearer.config", StringComparison.OrdinalIgnoreCase);

    /// <summary>Renders <c>key=value, ...</c> sorted by key, secrets redacted.</summary>
    /// <param name="config">The properties.</param>
    /// <returns>The text.</returns>
    public static string Redacted(IEnumerable<KeyValuePair<string, string>> config)
    {
        var text = new StringBuilder();
        foreach (var (key, value) in config.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            if (text.Length > 0)
            {
                text.Append(", ");
            }

            text.Append(key).Append('=').Append(IsSecret(key) ? "***" : value);
        }

        return text.ToString();
    }
}
