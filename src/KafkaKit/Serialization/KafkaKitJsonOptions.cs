using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace KafkaKit.Serialization;

/// <summary>How property names are written and matched by the default JSON serde.</summary>
public enum JsonNaming
{
    /// <summary><c>orderId</c> (System.Text.Json's web defaults; the default).</summary>
    CamelCase = 0,

    /// <summary><c>order_id</c> (<see cref="JsonNamingPolicy.SnakeCaseLower"/>).</summary>
    SnakeCase = 1,

    /// <summary>The .NET property name as it is (<c>OrderId</c>).</summary>
    AsIs = 2,
}

/// <summary>What the default JSON deserializer does with a JSON property the type has no member for.</summary>
public enum JsonUnmappedMembers
{
    /// <summary>Skip it (the default; a newer writer may add fields).</summary>
    Ignore = 0,

    /// <summary>Fail the record (a <see cref="JsonException"/> naming the property; the consumer's error policy applies).</summary>
    Fail = 1,
}

/// <summary>
/// Options of the default JSON serde (System.Text.Json) used for non-primitive keys and values without a serializer of
/// their own; section <c>KafkaKit:Json</c>. The defaults are System.Text.Json's web defaults, as before these options
/// existed: camelCase names, case-insensitive matching, numbers accepted from strings, unknown properties ignored,
/// non-ASCII text written as <c>\uXXXX</c> escapes.
/// </summary>
public sealed class KafkaKitJsonOptions
{
    /// <summary>Gets or sets the naming of properties. Default <see cref="JsonNaming.CamelCase"/>. Reading matches names case-insensitively whatever the policy.</summary>
    public JsonNaming Naming { get; set; } = JsonNaming.CamelCase;

    /// <summary>Gets or sets what reading does with unknown properties. Default <see cref="JsonUnmappedMembers.Ignore"/>.</summary>
    public JsonUnmappedMembers UnmappedMembers { get; set; } = JsonUnmappedMembers.Ignore;

    /// <summary>
    /// Gets or sets whether non-ASCII text (and HTML-sensitive characters such as <c>&lt;</c>, <c>&amp;</c>, <c>'</c>) is
    /// written as is (UTF-8) instead of as <c>\uXXXX</c> escapes (<see cref="JavaScriptEncoder.UnsafeRelaxedJsonEscaping"/>).
    /// Default <see langword="false"/>. Every JSON reader reads both forms; do not embed such values in HTML unescaped.
    /// </summary>
    public bool UnescapedText { get; set; }

    /// <summary>Builds the System.Text.Json options these settings describe.</summary>
    /// <returns>New options (web defaults plus these settings).</returns>
    public JsonSerializerOptions ToSerializerOptions()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            PropertyNamingPolicy = Naming switch
            {
                JsonNaming.SnakeCase => JsonNamingPolicy.SnakeCaseLower,
                JsonNaming.AsIs => null,
                _ => JsonNamingPolicy.CamelCase,
            },
            UnmappedMemberHandling = UnmappedMembers == JsonUnmappedMembers.Fail ? JsonUnmappedMemberHandling.Disallow : JsonUnmappedMemberHandling.Skip,
        };
        if (UnescapedText)
        {
            options.Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping;
        }

        return options;
    }
}
