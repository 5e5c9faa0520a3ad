using KafkaKit.Consuming;
using KafkaKit.Producing;
using KafkaKit.Topics;

namespace KafkaKit;

/// <summary>
/// The root of KafkaKit's configuration (section <c>"KafkaKit"</c> by convention): shared cluster settings and the named
/// producers and consumers.
/// </summary>
/// <example>
/// <code language="json">
/// "KafkaKit": {
///   "BootstrapServers": "broker1:9092,broker2:9092",
///   "Client": { "security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN" },
///   "Producers": { "notifications": { "Config": { "linger.ms": "5" } } },
///   "Consumers": { "notifications-worker": { "GroupId": "notifications", "Topics": [ "notifications" ] } }
/// }
/// </code>
/// </example>
public sealed class KafkaKitOptions
{
    /// <summary>
    /// Gets or sets the initial brokers shared by every client, <c>"host:port,..."</c> (librdkafka <c>bootstrap.servers</c>).
    /// Default: none. <c>bootstrap.servers</c> in <see cref="Client"/> does the same; setting both to different values
    /// is refused at start.
    /// </summary>
    public string? BootstrapServers { get; set; }

    /// <summary>
    /// Gets the librdkafka properties shared by every client (security, SASL, SSL, client rack, bootstrap servers...).
    /// A client's typed options (<c>BootstrapServers</c>, <c>GroupId</c>...) and its own <c>Config</c> entries override
    /// them; a consumer's dead-letter producer inherits them with the consumer's other connection settings.
    /// </summary>
    public IDictionary<string, string> Client { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Gets the named producers' options.</summary>
    public IDictionary<string, KafkaProducerOptions> Producers { get; } = new Dictionary<string, KafkaProducerOptions>(StringComparer.Ordinal);

    /// <summary>Gets or sets the options of the default JSON serde (section <c>KafkaKit:Json</c>), shared by every producer and consumer without a serializer of its own.</summary>
    public Serialization.KafkaKitJsonOptions Json { get; set; } = new();

    /// <summary>
    /// Gets the topics created at start when missing (section <c>KafkaKit:Topics</c>, keyed by topic name), through the
    /// Admin API with <see cref="BootstrapServers"/> and <see cref="Client"/>. Default: none (KafkaKit creates no topic
    /// and makes no Admin API call). See <see cref="TopicDeclaration"/>.
    /// </summary>
    public IDictionary<string, TopicDeclaration> Topics { get; } = new Dictionary<string, TopicDeclaration>(StringComparer.Ordinal);

    /// <summary>Gets the named consumers' options.</summary>
    public IDictionary<string, KafkaConsumerOptions> Consumers { get; } = new Dictionary<string, KafkaConsumerOptions>(StringComparer.Ordinal);

    /// <summary>Gets the named share consumers' options (section <c>KafkaKit:ShareConsumers</c>; preview, see docs/share-groups.md).</summary>
    [System.Diagnostics.CodeAnalysis.Experimental(Sharing.KafkaShareConsumer.DiagnosticId)]
    public IDictionary<string, Sharing.KafkaShareConsumerOptions> ShareConsumers { get; } = new Dictionary<string, Sharing.KafkaShareConsumerOptions>(StringComparer.Ordinal);
}
