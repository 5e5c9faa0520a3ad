using System.Diagnostics.CodeAnalysis;
using KafkaKit.Internal;

namespace KafkaKit.Sharing;

/// <summary>
/// Options of one KafkaKit share consumer (a member of a KIP-932 share group). Bindable from configuration
/// (<c>KafkaKit:ShareConsumers:&lt;name&gt;</c>); validated when the consumer is built, every problem listed at once.
/// </summary>
/// <remarks>
/// Preview: librdkafka's share consumer is a preview API (signatures and behaviour may change before it is generally
/// available); these options may change with it. See docs/share-groups.md.
/// </remarks>
[Experimental(KafkaShareConsumer.DiagnosticId)]
public sealed class KafkaShareConsumerOptions
{
    /// <summary>The default of <see cref="MaxConcurrency"/>: 16, as the consumer's.</summary>
    internal const int DefaultMaxConcurrency = 16;

    /// <summary>The default of <see cref="MaxDeliveryAttempts"/>: 5, the broker's default <c>group.share.delivery.count.limit</c>.</summary>
    internal const int DefaultMaxDeliveryAttempts = 5;

    /// <summary>
    /// Gets or sets the initial brokers, <c>"host:port,..."</c> (librdkafka <c>bootstrap.servers</c>). Overrides the shared
    /// value when set; a different <c>bootstrap.servers</c> in <see cref="Config"/> is refused.
    /// </summary>
    public string? BootstrapServers { get; set; }

    /// <summary>
    /// Gets or sets the share group id (librdkafka <c>group.id</c>). Required, here or as <c>group.id</c> in
    /// <see cref="Config"/> or the shared <c>KafkaKit:Client</c>. A share group id must not be used by a consumer group.
    /// </summary>
    public string? GroupId { get; set; }

    /// <summary>
    /// Gets the topics to subscribe to: exact names, at least one (librdkafka's share consumer takes no regular
    /// expressions). The broker assigns partitions to the members; several members may read one partition.
    /// </summary>
    public IList<string> Topics { get; } = new List<string>();

    /// <summary>
    /// Gets the librdkafka share-consumer properties by their librdkafka names (for example <c>max.poll.records</c>, the
    /// soft bound of records per poll, default 500). KafkaKit sets <c>share.acknowledgement.mode=explicit</c> (it
    /// acknowledges each record after its handler) and refuses <c>implicit</c>. Unknown names and bad values are refused
    /// when the consumer is built; properties a share consumer does not take (<c>enable.auto.commit</c>,
    /// <c>group.protocol</c>, <c>isolation.level</c>, ...) are refused by librdkafka when the consumer starts, and
    /// <see cref="KafkaShareConsumer{TKey, TValue}.StartAsync"/> throws with librdkafka's message naming the property.
    /// The record lock duration, delivery-count limit and session timeout are broker (group) settings, not client ones.
    /// </summary>
    public IDictionary<string, string> Config { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>
    /// Gets or sets how many handler calls run at once, 1 to 10,000. Default: 16, as the consumer's. Records are handled in
    /// no particular order. A poll returns a batch (up to <c>max.poll.records</c>) and the next poll waits until every
    /// record of the batch has its outcome, so a batch larger than this value is handled in waves.
    /// </summary>
    public int MaxConcurrency { get; set; } = DefaultMaxConcurrency;

    /// <summary>
    /// Gets or sets the delivery attempt on which a handler failure is final, 1 to 100, default 5: a failure on this
    /// delivery (the record's delivery count, counted by the broker) rejects the record (or dead-letters it, see
    /// <see cref="DeadLetterTopic"/>) instead of releasing it. A failure on an earlier attempt releases the record for
    /// redelivery (possibly to another member). A lower value makes failures final earlier.
    /// </summary>
    /// <remarks>
    /// It must not exceed the broker's delivery-count limit for the group: the broker setting
    /// <c>group.share.delivery.count.limit</c> (KIP-932, default 5), or the group's own <c>share.delivery.count.limit</c>
    /// (a group configuration since Apache Kafka 4.3, KIP-1240). Above that limit the broker archives a record released
    /// on its last delivery by itself: it is neither rejected nor dead-lettered by this consumer and nothing says so
    /// (the share API does not give the limit, and the acknowledgement's answer does not say the record was archived);
    /// the only trace is the release log line (event 6004, "failed on delivery N of M") with N below M.
    /// </remarks>
    public int MaxDeliveryAttempts { get; set; } = DefaultMaxDeliveryAttempts;

    /// <summary>
    /// Gets or sets the dead-letter topic, or <see langword="null"/> (the default) for none. With a topic, a record that
    /// cannot be deserialized, or whose handler fails on the last delivery attempt, is produced there (original key,
    /// value and headers plus <c>kafkakit-dlt-*</c> headers, as the consumer's dead letters) and then accepted; if that
    /// produce fails the record is released. Without one, such a record is rejected (the broker archives it).
    /// </summary>
    public string? DeadLetterTopic { get; set; }

    /// <summary>
    /// Gets or sets how long a stop waits for running handlers before cancelling their token, 0 or more. Default: 20 s.
    /// Records whose handler did not finish by then, and records of the batch not yet handed to a handler, are released
    /// so another member gets them at once.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Gets or sets how long one poll waits for records, 1 ms to 5 s. Default: 100 ms. The preview share consumer has no
    /// wake-up call, so this also bounds how long a stop waits for the poll in progress.
    /// </summary>
    public TimeSpan PollTimeout { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Gets or sets what the application does when this share consumer stops on an error by itself (state
    /// <see cref="KafkaKit.Consuming.KafkaConsumerState.Faulted"/>): a fatal librdkafka error, a handler the service provider
    /// cannot create, a dead-letter produce that failed. As the consumer's <c>OnFault</c>, and applies only to a share
    /// consumer run by the host (<c>AddShareConsumer</c>); one you build and start yourself only stops. Default:
    /// <see cref="KafkaKit.Consuming.ConsumerFaultBehavior.StopHost"/> (the application stops with exit code 1).
    /// </summary>
    public KafkaKit.Consuming.ConsumerFaultBehavior OnFault { get; set; } = KafkaKit.Consuming.ConsumerFaultBehavior.StopHost;

    /// <summary>
    /// Gets or sets how long the poll thread may go without running before the health check reports the share consumer
    /// Unhealthy (not live), 1 s to 1 h. Default: 5 min, the consumer's <c>max.poll.interval.ms</c> default. The poll
    /// thread also runs while it waits for the outcomes of a batch (it acknowledges them as they arrive), so slow handlers
    /// do not count as a stall: a batch waited for longer than this makes the share consumer Degraded (live, not ready)
    /// instead. See docs/share-groups.md.
    /// </summary>
    public TimeSpan MaxPollInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Merges this share consumer's librdkafka properties and lists every problem of them and of these options.</summary>
    /// <param name="name">The share consumer's name.</param>
    /// <param name="shared">The shared options under DI, or <see langword="null"/> for a builder used alone.</param>
    /// <param name="problems">Receives one sentence per problem, each naming the share consumer.</param>
    /// <returns>The merged properties.</returns>
    internal ClientSettings Resolve(string name, KafkaKitOptions? shared, List<string> problems)
    {
        KeyValuePair<string, string>[] defaults = [new("share.acknowledgement.mode", "explicit")];
        (string, string, string?)[] typed =
        [
            (nameof(BootstrapServers), "bootstrap.servers", BootstrapServers),
            (nameof(GroupId), "group.id", GroupId),
        ];
        var settings = ClientProperties.Resolve("ShareConsumer", name, shared, defaults, typed, Config, problems);
        var own = new List<string>();
        var properties = settings.Values;
        if (!(properties.TryGetValue("group.id", out var group) && !string.IsNullOrWhiteSpace(group)))
        {
            own.Add(settings.Configured
                ? $"GroupId is not set; a share consumer needs a share group id: set {settings.OwnPlace(nameof(GroupId))} (or group.id in {settings.OwnPlace(nameof(Config))} or {ClientProperties.SharedPlace})."
                : "GroupId is not set; a share consumer needs a share group id.");
        }

        if (Topics.Count == 0)
        {
            own.Add("Topics is empty; list at least one topic name.");
        }

        foreach (var topic in Topics)
        {
            if (string.IsNullOrWhiteSpace(topic))
            {
                own.Add("Topics has an empty entry.");
            }
            else if (topic.StartsWith('^'))
            {
                own.Add($"Topics entry '{topic}' is a regular expression; a share consumer subscribes to exact topic names only.");
            }
        }

        if (Topics.Where(t => !string.IsNullOrWhiteSpace(t)).GroupBy(t => t, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } duplicate)
        {
            own.Add($"Topics lists '{duplicate.Key}' more than once.");
        }

        if (properties.TryGetValue("share.acknowledgement.mode", out var mode) && !string.Equals(mode, "explicit", StringComparison.Ordinal))
        {
            own.Add($"'share.acknowledgement.mode={mode}' (from {settings.PlaceOf("share.acknowledgement.mode")}) is not allowed: KafkaKit acknowledges each record after its handler (explicit); remove it.");
        }

        Check(own, MaxConcurrency is >= 1 and <= 10_000, $"MaxConcurrency is {MaxConcurrency}; it must be between 1 and 10000.");
        Check(own, MaxDeliveryAttempts is >= 1 and <= 100, $"MaxDeliveryAttempts is {MaxDeliveryAttempts}; it must be between 1 and 100 (set it to the broker's group.share.delivery.count.limit).");
        Check(own, DeadLetterTopic is null || !string.IsNullOrWhiteSpace(DeadLetterTopic), "DeadLetterTopic is blank; leave it unset to reject failed records or name a topic.");
        Check(own, ShutdownTimeout >= TimeSpan.Zero, $"ShutdownTimeout is {ShutdownTimeout}; it must be 0 or more.");
        Check(own, PollTimeout >= TimeSpan.FromMilliseconds(1) && PollTimeout <= TimeSpan.FromSeconds(5), $"PollTimeout is {PollTimeout}; it must be between 1 ms and 5 s.");
        Check(own, Enum.IsDefined(OnFault), $"OnFault is {(int)OnFault}; it must be StopHost or KeepHostRunning.");
        Check(own, MaxPollInterval >= TimeSpan.FromSeconds(1) && MaxPollInterval <= TimeSpan.FromHours(1), $"MaxPollInterval is {MaxPollInterval}; it must be between 1 s and 1 h.");
        Check(own, MaxPollInterval > PollTimeout, $"MaxPollInterval ({MaxPollInterval}) must be longer than PollTimeout ({PollTimeout}): a poll in progress is not a stall.");
        problems.AddRange(own.Select(p => $"{settings.Owner}: {p}"));
        return settings;
    }

    private static void Check(List<string> problems, bool ok, string problem)
    {
        if (!ok)
        {
            problems.Add(problem);
        }
    }
}
