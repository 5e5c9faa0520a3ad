using Confluent.Kafka;
using KafkaKit.Internal;

namespace KafkaKit.Producing;

/// <summary>Options of one KafkaKit producer. Bindable from configuration; validated when the producer is built.</summary>
public sealed class KafkaProducerOptions
{
    /// <summary>The default of <see cref="MaxBlock"/>: 60 s (the Java client's <c>max.block.ms</c>).</summary>
    public static readonly TimeSpan DefaultMaxBlock = TimeSpan.FromSeconds(60);

    /// <summary>The default of <see cref="FlushTimeoutOnDispose"/>: 30 s.</summary>
    public static readonly TimeSpan DefaultFlushTimeoutOnDispose = TimeSpan.FromSeconds(30);

    /// <summary>KafkaKit's librdkafka defaults for producers: <c>enable.idempotence=true</c>, <c>acks=all</c>; every other property keeps librdkafka's default.</summary>
    internal static readonly KeyValuePair<string, string>[] DefaultConfig =
    [
        new("enable.idempotence", "true"),
        new("acks", "all"),
    ];

    /// <summary>The longest <see cref="MaxBlock"/> and <see cref="FlushTimeoutOnDispose"/>: <see cref="int.MaxValue"/> ms (about 24.8 days), the most a timer takes.</summary>
    internal static readonly TimeSpan MaxTimeout = TimeSpan.FromMilliseconds(int.MaxValue);

    /// <summary>
    /// Gets or sets the initial brokers, <c>"host:port,host:port"</c> (librdkafka <c>bootstrap.servers</c>). Overrides the
    /// shared value when set; a different <c>bootstrap.servers</c> in <see cref="Config"/> is refused. Default: none (then
    /// it must come from the shared options or <see cref="Config"/>).
    /// </summary>
    public string? BootstrapServers { get; set; }

    /// <summary>
    /// Gets the librdkafka producer properties (for example <c>linger.ms</c>, <c>compression.type</c>,
    /// <c>queue.buffering.max.messages</c>), by their librdkafka names. KafkaKit defaults <c>enable.idempotence=true</c>
    /// and <c>acks=all</c>; every other property keeps librdkafka's default unless set here.
    /// </summary>
    public IDictionary<string, string> Config { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Gets or sets what an enqueue does when the local queue is full. Default: <see cref="ProducerBackpressure.Wait"/>.</summary>
    public ProducerBackpressure Backpressure { get; set; } = ProducerBackpressure.Wait;

    /// <summary>
    /// Gets or sets the longest time an enqueue waits for room with <see cref="ProducerBackpressure.Wait"/> before it
    /// throws <see cref="ProducerQueueFullException"/>. Default: 60 s. Must be 0 (fail at once when full) to 24.8 days.
    /// </summary>
    public TimeSpan MaxBlock { get; set; } = DefaultMaxBlock;

    /// <summary>
    /// Gets or sets how long disposal waits for outstanding deliveries before it purges the rest (each purged message is
    /// reported failed with <c>Local_PurgeQueue</c> or <c>Local_PurgeInflight</c>). Default: 30 s. Must be 0 to 24.8 days.
    /// </summary>
    public TimeSpan FlushTimeoutOnDispose { get; set; } = DefaultFlushTimeoutOnDispose;

    /// <summary>Gets the retry policy of <see cref="IKafkaProducer{TKey, TValue}.ProduceAsync"/>.</summary>
    public ProducerRetryOptions Retry { get; } = new();

    /// <summary>
    /// Merges this producer's librdkafka properties (see <see cref="ClientProperties.Resolve"/>) and lists every problem of
    /// them and of these options. The builder and the start-time validator both call it, so they accept the same settings.
    /// </summary>
    /// <param name="name">The producer's name.</param>
    /// <param name="shared">The shared options under DI, or <see langword="null"/> for a builder used alone.</param>
    /// <param name="problems">Receives one sentence per problem, each naming the producer and the place of the setting.</param>
    /// <returns>The merged properties.</returns>
    internal ClientSettings Resolve(string name, KafkaKitOptions? shared, List<string> problems)
    {
        var settings = ClientProperties.Resolve("Producer", name, shared, DefaultConfig, [(nameof(BootstrapServers), "bootstrap.servers", BootstrapServers)], Config, problems);
        var own = new List<string>();
        if (MaxBlock < TimeSpan.Zero || MaxBlock > MaxTimeout)
        {
            own.Add($"MaxBlock is {MaxBlock}; it must be between 0 and {MaxTimeout}.");
        }

        if (FlushTimeoutOnDispose < TimeSpan.Zero || FlushTimeoutOnDispose > MaxTimeout)
        {
            own.Add($"FlushTimeoutOnDispose is {FlushTimeoutOnDispose}; it must be between 0 and {MaxTimeout}.");
        }

        if (!Enum.IsDefined(Backpressure))
        {
            own.Add($"Backpressure is {(int)Backpressure}; it must be Wait or Fail.");
        }

        // Delivery reports free queue room and give every message its outcome: taking them away is refused wherever it is set.
        foreach (var key in (string[])[ConfigPropertyNames.Producer.EnableDeliveryReports, ConfigPropertyNames.Producer.EnableBackgroundPoll])
        {
            if (settings.Values.TryGetValue(key, out var text) && !(bool.TryParse(text, out var on) && on))
            {
                own.Add($"'{key}={text}' (from {settings.PlaceOf(key)}) is not allowed: KafkaKit needs delivery reports (they free queue room and give every message its outcome; KafkaKit serves them on its own thread); remove it.");
            }
        }

        Retry.Validate(own);
        problems.AddRange(own.Select(p => $"{settings.Owner}: {p}"));
        return settings;
    }
}
