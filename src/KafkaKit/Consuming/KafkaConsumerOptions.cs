using Confluent.Kafka;
using System.Globalization;
using System.Text.RegularExpressions;
using KafkaKit.Internal;

namespace KafkaKit.Consuming;

/// <summary>Options of one KafkaKit consumer. Bindable from configuration; validated when the consumer is built.</summary>
public sealed class KafkaConsumerOptions
{
    /// <summary>librdkafka's default <c>max.poll.interval.ms</c>.</summary>
    internal const int DefaultMaxPollIntervalMs = 300_000;

    /// <summary>
    /// KafkaKit's <c>topic.metadata.refresh.interval.ms</c> for a subscription with a pattern (librdkafka's default is
    /// 300,000 ms): a matching topic created later is found within this interval, and the rebalance that follows (a few
    /// seconds) still fits in 30 s.
    /// </summary>
    internal const int PatternMetadataRefreshIntervalMs = 10_000;

    /// <summary>The default of <see cref="AssignmentStrategy"/>.</summary>
    internal const PartitionAssignmentStrategy DefaultAssignmentStrategy = PartitionAssignmentStrategy.CooperativeSticky;

    /// <summary>The default of <see cref="CommitInterval"/>: 5 s.</summary>
    internal static readonly TimeSpan DefaultCommitInterval = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Gets or sets the initial brokers, <c>"host:port,..."</c> (librdkafka <c>bootstrap.servers</c>). Overrides the shared
    /// value when set; a different <c>bootstrap.servers</c> in <see cref="Config"/> is refused.
    /// </summary>
    public string? BootstrapServers { get; set; }

    /// <summary>
    /// Gets or sets the consumer group id (librdkafka <c>group.id</c>). Required, here or as <c>group.id</c> in
    /// <see cref="Config"/> or the shared <c>KafkaKit:Client</c> (this one wins over the shared one; a different
    /// <c>group.id</c> in <see cref="Config"/> is refused).
    /// </summary>
    public string? GroupId { get; set; }

    /// <summary>
    /// Gets the topics to subscribe to. An entry starting with <c>^</c> is a regular expression matched against every
    /// topic in the cluster (librdkafka semantics). At least one is required.
    /// </summary>
    /// <remarks>
    /// librdkafka finds the topics a pattern matches in the cluster metadata, which it refreshes every
    /// <c>topic.metadata.refresh.interval.ms</c>. With a pattern, KafkaKit sets that to 10,000 ms unless
    /// <see cref="Config"/> or the shared <c>Client</c> properties set it (librdkafka's default is 300,000 ms), so a topic
    /// created later is consumed within about 10 s plus one rebalance. The cost: one metadata request for every topic in
    /// the cluster every 10 s per consumer. The topics a pattern starts or stops matching are logged (events 2041-2043).
    /// </remarks>
    public IList<string> Topics { get; } = new List<string>();

    /// <summary>
    /// Gets the librdkafka consumer properties (for example <c>auto.offset.reset</c>, <c>session.timeout.ms</c>,
    /// <c>max.poll.interval.ms</c>), by their librdkafka names. KafkaKit sets <c>enable.auto.commit=true</c> and
    /// <c>enable.auto.offset.store=false</c> (it stores an offset only after handling) and
    /// <c>auto.offset.reset=earliest</c> unless set here; <c>enable.auto.offset.store=true</c> and
    /// <c>enable.auto.commit=false</c> are refused.
    /// </summary>
    public IDictionary<string, string> Config { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>
    /// Gets or sets the rebalance protocol (librdkafka <c>partition.assignment.strategy</c>). Default:
    /// <see cref="PartitionAssignmentStrategy.CooperativeSticky"/>; left at the default, a <c>partition.assignment.strategy</c>
    /// in <see cref="Config"/> or <c>KafkaKit:Client</c> wins; set to another value, a different one in <see cref="Config"/> is refused.
    /// </summary>
    public PartitionAssignmentStrategy AssignmentStrategy { get; set; } = DefaultAssignmentStrategy;

    /// <summary>
    /// Gets or sets the consumer group protocol (librdkafka <c>group.protocol</c>). Default: <see cref="GroupProtocol.Classic"/>
    /// (JoinGroup/SyncGroup: a member assigns the partitions with <see cref="AssignmentStrategy"/>). Left at the default, a
    /// <c>group.protocol</c> in <see cref="Config"/> or <c>KafkaKit:Client</c> wins; set to <see cref="GroupProtocol.Consumer"/>,
    /// a different one in <see cref="Config"/> is refused.
    /// </summary>
    /// <remarks>
    /// <para>
    /// <see cref="GroupProtocol.Consumer"/> is the consumer group protocol of KIP-848 (ConsumerGroupHeartbeat; brokers from
    /// Apache Kafka 4.0): the broker computes the assignment (its assignor chosen with <c>group.remote.assignor</c>,
    /// <c>uniform</c> or <c>range</c>, or left to the broker) and every rebalance is incremental, so KafkaKit handles it as
    /// a cooperative one: only the partitions that move are revoked, drained and committed. The session timeout and the
    /// heartbeat interval are broker settings (<c>group.consumer.session.timeout.ms</c>,
    /// <c>group.consumer.heartbeat.interval.ms</c>). A <c>^</c> entry of <see cref="Topics"/> is sent to the broker and
    /// evaluated there (RE2/J syntax).
    /// </para>
    /// <para>
    /// With it, <c>session.timeout.ms</c>, <c>heartbeat.interval.ms</c>, <c>partition.assignment.strategy</c> and
    /// <c>group.protocol.type</c> from any place (<see cref="Config"/>, <c>KafkaKit:Client</c>) and an
    /// <see cref="AssignmentStrategy"/> other than the default are refused at start, each named with its place (librdkafka
    /// refuses them too). With <see cref="GroupProtocol.Classic"/>, <c>group.remote.assignor</c> is refused (it would be ignored).
    /// </para>
    /// </remarks>
    public GroupProtocol GroupProtocol { get; set; } = GroupProtocol.Classic;

    /// <summary>
    /// Gets or sets how many handler calls run at the same time over all partitions (with <see cref="ConsumerOrdering.Partition"/>,
    /// how many partitions are handled at the same time; with <see cref="ConsumerOrdering.Key"/> and
    /// <see cref="ConsumerOrdering.Unordered"/> also the most keys or messages in flight per partition). Default: 16. Range 1 to 10,000.
    /// </summary>
    public int MaxConcurrency { get; set; } = 16;

    /// <summary>
    /// Gets or sets which messages of one partition may be handled at the same time: one at a time in offset order
    /// (<see cref="ConsumerOrdering.Partition"/>, the default), one at a time per key (<see cref="ConsumerOrdering.Key"/>;
    /// messages without a key in order among themselves), or any (<see cref="ConsumerOrdering.Unordered"/>). The committed
    /// offset never passes an unfinished message in any mode; see <see cref="ConsumerOrdering"/> for duplicates after a crash.
    /// </summary>
    public ConsumerOrdering Ordering { get; set; } = ConsumerOrdering.Partition;

    /// <summary>
    /// Gets or sets how many fetched messages may wait for a partition's handler; past it the partition is paused
    /// (polling goes on) and it resumes once half have been handled. Default: 100,000 messages (librdkafka's own
    /// prefetch bound, <c>queued.min.messages</c>). Range 1 to 10,000,000.
    /// </summary>
    /// <remarks>
    /// Keep it large: librdkafka drops what it prefetched for a paused partition and fetches again only a few hundred
    /// milliseconds after the resume, so a small buffer makes a fast handler wait on every cycle.
    /// </remarks>
    public int PartitionBufferSize { get; set; } = 100_000;

    /// <summary>
    /// Gets or sets the estimated memory all partitions' waiting messages may hold together (key, value and header bytes
    /// plus ~128 bytes per message); past it the partitions receiving messages are paused until the total has halved.
    /// Default: 64 MiB (67,108,864 bytes, like librdkafka's <c>queued.max.messages.kbytes</c>). Range 1 MiB to 16 GiB.
    /// </summary>
    public long MaxBufferedBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>
    /// Gets or sets how often stored offsets are committed (librdkafka <c>auto.commit.interval.ms</c>). Default: 5 s. Range
    /// 1 ms to 1 day. Left at the default, an <c>auto.commit.interval.ms</c> in <see cref="Config"/> or <c>KafkaKit:Client</c>
    /// wins; set to another value, a different one in <see cref="Config"/> is refused.
    /// </summary>
    public TimeSpan CommitInterval { get; set; } = DefaultCommitInterval;

    /// <summary>Gets or sets the poll slice: the longest a single poll waits for a message. Default: 100 ms. Range 1 ms to 5 s.</summary>
    public TimeSpan PollTimeout { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Gets or sets how long a revoke waits for the revoked partitions' running handlers before it cancels them and
    /// commits. Must be less than <c>max.poll.interval.ms</c>. Default: 10 s.
    /// </summary>
    public TimeSpan RevokeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets or sets how long a stop waits for running handlers before it cancels them. Default: 20 s.</summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Gets or sets the time a stop allows for leaving the group (<c>Close()</c>). <c>StopAsync</c> returns at the latest
    /// <see cref="ShutdownTimeout"/> + <see cref="CloseTimeout"/> + 5 s after it was called; when librdkafka takes longer
    /// (for example a commit or leave request to an unreachable coordinator waits for its request timeout), the poll
    /// thread finishes closing in the background and event 2014 is logged. Default: 10 s.
    /// </summary>
    public TimeSpan CloseTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets the retry policy of failed handler calls.</summary>
    public HandlerRetryOptions Retry { get; } = new();

    /// <summary>Gets how a batch consumer (<see cref="IKafkaBatchHandler{TKey, TValue}"/>) forms its batches; ignored with a per-message handler.</summary>
    public ConsumerBatchOptions Batch { get; } = new();

    /// <summary>Gets or sets what happens to a message whose handling failed after retries, or that could not be deserialized. Default: <see cref="ConsumerErrorAction.Stop"/>.</summary>
    public ConsumerErrorAction OnError { get; set; } = ConsumerErrorAction.Stop;

    /// <summary>
    /// Gets or sets what the application does when this consumer stops on an error (see <see cref="KafkaConsumerState.Faulted"/>).
    /// Applies only to a consumer run by the host (<c>AddConsumer</c>); a consumer you build and start yourself only stops.
    /// Default: <see cref="ConsumerFaultBehavior.StopHost"/> (the application stops with exit code 1).
    /// </summary>
    public ConsumerFaultBehavior OnFault { get; set; } = ConsumerFaultBehavior.StopHost;

    /// <summary>Gets the retry tiers and topic names for <see cref="ConsumerErrorAction.RetryTopics"/> (see <see cref="RetryTopicOptions"/>).</summary>
    public RetryTopicOptions RetryTopics { get; } = new();

    /// <summary>Gets or sets the dead-letter topic for <see cref="ConsumerErrorAction.DeadLetter"/> and <see cref="ConsumerErrorAction.RetryTopics"/>. Default: the source topic + <c>".DLT"</c>.</summary>
    public string? DeadLetterTopic { get; set; }

    /// <summary>
    /// Gets or sets which messages of transactional producers the consumer reads (librdkafka <c>isolation.level</c>):
    /// <see cref="Confluent.Kafka.IsolationLevel.ReadCommitted"/> returns only committed transactions' messages (aborted
    /// ones are skipped, open ones held back until they end); <see cref="Confluent.Kafka.IsolationLevel.ReadUncommitted"/>
    /// returns everything at once. Default: <see langword="null"/>, librdkafka's default, which is <c>read_committed</c>.
    /// Consumers of an exactly-once consumer's output should leave it at read_committed. A transactional consumer
    /// (<see cref="Transactions"/>) requires read_committed.
    /// </summary>
    public IsolationLevel? IsolationLevel { get; set; }

    /// <summary>Gets the exactly-once mode's options; off unless <see cref="ConsumerTransactionOptions.TransactionalIdPrefix"/> is set.</summary>
    public ConsumerTransactionOptions Transactions { get; } = new();

    /// <summary>
    /// Merges this consumer's librdkafka properties (see <see cref="ClientProperties.Resolve"/>) and lists every problem of
    /// them and of these options. The builder and the start-time validator both call it, so they accept the same settings.
    /// </summary>
    /// <param name="name">The consumer's name.</param>
    /// <param name="shared">The shared options under DI, or <see langword="null"/> for a builder used alone.</param>
    /// <param name="problems">Receives one sentence per problem, each naming the consumer and the place of the setting.</param>
    /// <returns>The merged properties.</returns>
    /// <remarks>
    /// The merged properties matter, not <see cref="Config"/> alone: <c>enable.auto.commit=false</c> in the shared
    /// properties would silently turn periodic commits off. <see cref="AssignmentStrategy"/> and
    /// <see cref="CommitInterval"/> left at their defaults count as KafkaKit's defaults (a shared or own property wins);
    /// set to another value they count as the consumer's own setting.
    /// </remarks>
    internal ClientSettings Resolve(string name, KafkaKitOptions? shared, List<string> problems)
    {
        var strategy = AssignmentStrategy switch
        {
            PartitionAssignmentStrategy.Range => "range",
            PartitionAssignmentStrategy.RoundRobin => "roundrobin",
            _ => "cooperative-sticky",
        };
        var commitMs = ((long)CommitInterval.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
        var transactional = Transactions.Enabled;
        KeyValuePair<string, string>[] defaults =
        [
            // Transactional: offsets are committed only inside the producer's transactions (SendOffsetsToTransaction).
            new("enable.auto.commit", transactional ? "false" : "true"),
            .. transactional ? [new KeyValuePair<string, string>("isolation.level", "read_committed")] : Array.Empty<KeyValuePair<string, string>>(),
            new("enable.auto.offset.store", "false"),
            new("auto.offset.reset", "earliest"),
            new("partition.assignment.strategy", strategy),
            new("auto.commit.interval.ms", commitMs),

            // A pattern sees topics created later only at a metadata refresh (librdkafka's default interval: 300 s); a
            // shared or own value wins.
            .. Topics.Any(t => t is not null && t.StartsWith('^'))
                ? [new KeyValuePair<string, string>("topic.metadata.refresh.interval.ms", PatternMetadataRefreshIntervalMs.ToString(CultureInfo.InvariantCulture))]
                : Array.Empty<KeyValuePair<string, string>>(),
        ];
        (string, string, string?)[] typed =
        [
            (nameof(BootstrapServers), "bootstrap.servers", BootstrapServers),
            (nameof(GroupId), "group.id", GroupId),
            (nameof(AssignmentStrategy), "partition.assignment.strategy", AssignmentStrategy == DefaultAssignmentStrategy ? null : strategy),
            (nameof(GroupProtocol), "group.protocol", GroupProtocol == GroupProtocol.Consumer ? "consumer" : null),
            (nameof(CommitInterval), "auto.commit.interval.ms", CommitInterval == DefaultCommitInterval || !IsValidCommitInterval ? null : commitMs),
            (nameof(IsolationLevel), "isolation.level", IsolationLevel switch
            {
                Confluent.Kafka.IsolationLevel.ReadCommitted => "read_committed",
                Confluent.Kafka.IsolationLevel.ReadUncommitted => "read_uncommitted",
                _ => null,
            }),
        ];
        var settings = ClientProperties.Resolve("Consumer", name, shared, defaults, typed, Config, problems);
        GroupProtocolRules.Apply(settings, problems);
        var own = Validate(settings);
        problems.AddRange(own.Select(p => $"{settings.Owner}: {p}"));
        return settings;
    }

    /// <summary>Lists every problem of these options and of the merged properties, empty when valid.</summary>
    private List<string> Validate(ClientSettings settings)
    {
        var properties = settings.Values;
        var problems = new List<string>();
        if (!(properties.TryGetValue("group.id", out var group) && !string.IsNullOrWhiteSpace(group)))
        {
            problems.Add(settings.Configured
                ? $"GroupId is not set; a consumer needs a consumer group id: set {settings.OwnPlace(nameof(GroupId))} (or group.id in {settings.OwnPlace(nameof(Config))} or {ClientProperties.SharedPlace})."
                : "GroupId is not set; a consumer needs a consumer group id.");
        }

        if (Topics.Count == 0)
        {
            problems.Add("Topics is empty; list at least one topic name or '^regex'.");
        }

        foreach (var topic in Topics)
        {
            if (string.IsNullOrWhiteSpace(topic))
            {
                problems.Add("Topics has an empty entry.");
            }
            else if (topic.StartsWith('^'))
            {
                try
                {
                    _ = new Regex(topic, RegexOptions.None, TimeSpan.FromSeconds(1));
                }
                catch (ArgumentException e)
                {
                    problems.Add($"Topics entry '{topic}' is not a valid regular expression: {e.Message}");
                }
            }
        }

        Check(problems, MaxConcurrency is >= 1 and <= 10_000, $"MaxConcurrency is {MaxConcurrency}; it must be between 1 and 10000.");
        Check(problems, PartitionBufferSize is >= 1 and <= 10_000_000, $"PartitionBufferSize is {PartitionBufferSize}; it must be between 1 and 10000000 messages.");
        Check(problems, MaxBufferedBytes is >= 1L << 20 and <= 16L << 30, $"MaxBufferedBytes is {MaxBufferedBytes}; it must be between 1048576 (1 MiB) and 17179869184 (16 GiB) bytes.");
        Check(problems, IsValidCommitInterval, $"CommitInterval is {CommitInterval}; it must be between 1 ms and 1 day (librdkafka's auto.commit.interval.ms range).");
        Check(problems, PollTimeout >= TimeSpan.FromMilliseconds(1) && PollTimeout <= TimeSpan.FromSeconds(5), $"PollTimeout is {PollTimeout}; it must be between 1 ms and 5 s.");
        Check(problems, RevokeTimeout >= TimeSpan.Zero, $"RevokeTimeout is {RevokeTimeout}; it must be 0 or more.");
        Check(problems, ShutdownTimeout >= TimeSpan.Zero, $"ShutdownTimeout is {ShutdownTimeout}; it must be 0 or more.");
        Check(problems, CloseTimeout >= TimeSpan.Zero, $"CloseTimeout is {CloseTimeout}; it must be 0 or more.");
        Check(problems, Enum.IsDefined(OnError), $"OnError is {(int)OnError}; it must be Stop, DeadLetter, Skip or RetryTopics.");
        Check(problems, Enum.IsDefined(OnFault), $"OnFault is {(int)OnFault}; it must be StopHost or KeepHostRunning.");
        Check(problems, Enum.IsDefined(Ordering), $"Ordering is {(int)Ordering}; it must be Partition, Key or Unordered.");
        Check(problems, Enum.IsDefined(GroupProtocol), $"GroupProtocol is {(int)GroupProtocol}; it must be Classic or Consumer.");
        Check(problems, Enum.IsDefined(AssignmentStrategy), $"AssignmentStrategy is {(int)AssignmentStrategy}; it must be CooperativeSticky, Range or RoundRobin.");
        Check(problems, DeadLetterTopic is null || !string.IsNullOrWhiteSpace(DeadLetterTopic), "DeadLetterTopic is blank; leave it unset for '<topic>.DLT' or name a topic.");
        if (settings.Is("enable.auto.offset.store", true))
        {
            problems.Add($"'enable.auto.offset.store={properties["enable.auto.offset.store"]}' (from {settings.PlaceOf("enable.auto.offset.store")}) is not allowed: KafkaKit stores each offset after its message is handled (at-least-once); remove it.");
        }

        Check(problems, IsolationLevel is null || Enum.IsDefined(IsolationLevel.Value), $"IsolationLevel is {(int?)IsolationLevel}; it must be ReadCommitted or ReadUncommitted.");
        if (properties.TryGetValue("isolation.level", out var isolation) && isolation is not ("read_committed" or "read_uncommitted"))
        {
            problems.Add($"'isolation.level={isolation}' (from {settings.PlaceOf("isolation.level")}) is not valid; it must be read_committed or read_uncommitted.");
        }

        Transactions.Validate(problems);
        if (Transactions.Enabled)
        {
            if (settings.Is("enable.auto.commit", true))
            {
                problems.Add($"'enable.auto.commit={properties["enable.auto.commit"]}' (from {settings.PlaceOf("enable.auto.commit")}) is not allowed with Transactions: offsets are committed inside each transaction; remove it.");
            }

            if (isolation == "read_uncommitted")
            {
                problems.Add($"'isolation.level=read_uncommitted' (from {settings.PlaceOf("isolation.level")}) is not allowed with Transactions: the input must be read_committed for exactly-once; remove it.");
            }

            Check(problems, Ordering == ConsumerOrdering.Partition, $"Ordering is {Ordering}; Transactions requires Partition (offsets committed in a transaction must cover exactly the records whose output it holds).");
        }
        else if (settings.Is("enable.auto.commit", false))
        {
            problems.Add($"'enable.auto.commit={properties["enable.auto.commit"]}' (from {settings.PlaceOf("enable.auto.commit")}) is not allowed: KafkaKit commits handled offsets periodically (CommitInterval), on revoke and at stop; remove it.");
        }

        // librdkafka's default max.poll.interval.ms is 300000: a RevokeTimeout of 5 minutes is as wrong without the key.
        var maxPollMs = properties.TryGetValue("max.poll.interval.ms", out var maxPoll)
            && int.TryParse(maxPoll, NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed) ? parsed : DefaultMaxPollIntervalMs;
        if (RevokeTimeout >= TimeSpan.FromMilliseconds(maxPollMs))
        {
            problems.Add($"RevokeTimeout ({RevokeTimeout}) must be less than max.poll.interval.ms ({maxPollMs} ms): the poll thread waits for revoked handlers inside the rebalance.");
        }

        Retry.Validate(problems);
        RetryTopics.Validate(problems, OnError, Topics, DeadLetterTopic);
        Batch.Validate(problems);
        return problems;
    }

    private bool IsValidCommitInterval => CommitInterval >= TimeSpan.FromMilliseconds(1) && CommitInterval <= TimeSpan.FromDays(1);

    private static void Check(List<string> problems, bool ok, string problem)
    {
        if (!ok)
        {
            problems.Add(problem);
        }
    }
}
