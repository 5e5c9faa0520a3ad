using Confluent.Kafka;

namespace KafkaKit.Producing;

/// <summary>Options of one KafkaKit producer. Bindable from configuration; validated when the producer is built.</summary>
public sealed class KafkaProducerOptions
{
    /// <summary>The default of <see cref="MaxBlock"/>: 60 s (the Java client's <c>max.block.ms</c>).</summary>
    public static readonly TimeSpan DefaultMaxBlock = TimeSpan.FromSeconds(60);

    /// <summary>The default of <see cref="FlushTimeoutOnDispose"/>: 30 s.</summary>
    public static readonly TimeSpan DefaultFlushTimeoutOnDispose = TimeSpan.FromSeconds(30);

    /// <summary>The longest <see cref="MaxBlock"/> and <see cref="FlushTimeoutOnDispose"/>: <see cref="int.MaxValue"/> ms (about 24.8 days), the most a timer takes.</summary>
    internal static readonly TimeSpan MaxTimeout = TimeSpan.FromMilliseconds(int.MaxValue);

    /// <summary>
    /// Gets or sets the initial brokers, <c>"host:port,host:port"</c> (librdkafka <c>bootstrap.servers</c>). Overrides the
    /// shared value when set. Default: none (then it must come from the shared options or <see cref="Config"/>).
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

    /// <summary>Lists every problem of these options, empty when they are valid.</summary>
    /// <returns>One sentence per problem, naming the value and what is allowed.</returns>
    internal IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (MaxBlock < TimeSpan.Zero || MaxBlock > MaxTimeout)
        {
            problems.Add($"MaxBlock is {MaxBlock}; it must be between 0 and {MaxTimeout}.");
        }

        if (FlushTimeoutOnDispose < TimeSpan.Zero || FlushTimeoutOnDispose > MaxTimeout)
        {
            problems.Add($"FlushTimeoutOnDispose is {FlushTimeoutOnDispose}; it must be between 0 and {MaxTimeout}.");
        }

        if (!Enum.IsDefined(Backpressure))
        {
            problems.Add($"Backpressure is {(int)Backpressure}; it must be Wait or Fail.");
        }

        RequireDeliveryReports(Config, nameof(Config), problems);
        Retry.Validate(problems);
        return problems;
    }

    /// <summary>
    /// Refuses the Confluent.Kafka properties that would take away delivery reports: KafkaKit frees queue room and gives
    /// every message its outcome from them.
    /// </summary>
    /// <param name="config">The properties, or <see langword="null"/>.</param>
    /// <param name="where">Where they come from, for the problem text.</param>
    /// <param name="problems">Receives one sentence per refused property.</param>
    internal static void RequireDeliveryReports(IDictionary<string, string>? config, string where, List<string> problems)
    {
        foreach (var key in (string[])[ConfigPropertyNames.Producer.EnableDeliveryReports, ConfigPropertyNames.Producer.EnableBackgroundPoll])
        {
            if (config is not null && config.TryGetValue(key, out var text) && !(bool.TryParse(text, out var on) && on))
            {
                problems.Add($"{where} has {key}={text}; KafkaKit needs delivery reports (they free queue room and give every message its outcome; KafkaKit serves them on its own thread): remove the property.");
            }
        }
    }
}
