using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Confluent.Kafka;
using KafkaKit.Testing.Internal;

namespace KafkaKit.Testing;

/// <summary>
/// An in-process Kafka cluster for tests and local runs without Docker: librdkafka's own mock brokers (the cluster
/// librdkafka tests itself with), speaking the Kafka protocol on loopback TCP ports, with fault injection.
/// </summary>
/// <remarks>
/// <para>
/// Any Kafka client in the process (or another process on the machine) can connect to <see cref="BootstrapServers"/>.
/// The cluster supports topics, consumer groups with eager and cooperative rebalances, offset commits and idempotent
/// producers. Broker ids are 1 to the broker count. It also answers ConsumerGroupHeartbeat, so consumers with
/// <c>group.protocol=consumer</c> (KIP-848) work without any setting; it computes their assignments itself, with a
/// session timeout of 30 s and a heartbeat interval of 3 s unless <see cref="SetConsumerGroupSessionTimeout"/> and
/// <see cref="SetConsumerGroupHeartbeatInterval"/> set others.
/// </para>
/// <para>
/// It differs from a real broker in ways tests must allow for: a rebalance of a non-empty group completes only after
/// the joining member's <c>session.timeout.ms</c> minus 1 s (use <c>session.timeout.ms=6000</c> in tests); offset
/// commits are refused with <see cref="ErrorCode.RebalanceInProgress"/> for the whole join phase; idempotence is not
/// enforced for non-transactional producers (a retried batch can be written twice); a broker set down keeps its
/// partition leadership; each partition keeps only its most recent ~5 MB / 100,000 message sets.
/// </para>
/// <para>
/// All members are thread-safe. After <see cref="Dispose"/> every method throws <see cref="ObjectDisposedException"/>.
/// The cluster is for tests, samples and local development only; nothing in KafkaKit starts one implicitly.
/// </para>
/// </remarks>
public sealed class EmbeddedKafkaCluster : IDisposable, IAsyncDisposable
{
    private const int ErrorBufferSize = 512;

    // ShareGroupHeartbeat, ShareFetch, ShareAcknowledge (KIP-932), version 1 as librdkafka's share consumer speaks it.
    private static readonly short[] ShareGroupApis = [76, 78, 79];

    private readonly object _gate = new();
    private IntPtr _owner;
    private IntPtr _cluster;

    private EmbeddedKafkaCluster(IntPtr owner, IntPtr cluster, int brokerCount, string bootstrapServers)
    {
        _owner = owner;
        _cluster = cluster;
        BrokerCount = brokerCount;
        BootstrapServers = bootstrapServers;
    }

    /// <summary>Gets the bootstrap servers of the cluster, <c>"127.0.0.1:port,..."</c>, one entry per broker.</summary>
    public string BootstrapServers { get; }

    /// <summary>Gets the number of brokers; broker ids are 1 to this number.</summary>
    public int BrokerCount { get; }

    /// <summary>Starts a cluster of <paramref name="brokers"/> brokers listening on ephemeral loopback ports.</summary>
    /// <param name="brokers">The number of brokers, 1 to 32. Default 1.</param>
    /// <param name="initialRebalanceDelay">
    /// How long the first member of an empty consumer group waits for others before the first assignment (the broker's
    /// <c>group.initial.rebalance.delay.ms</c>). Default: 100 ms, shorter than the mock's 3 s default so tests start fast.
    /// </param>
    /// <returns>The running cluster; dispose it to stop the brokers.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="brokers"/> is outside 1 to 32, or the delay is negative.</exception>
    /// <exception cref="InvalidOperationException">librdkafka could not create the cluster (the message says why).</exception>
    public static EmbeddedKafkaCluster Start(int brokers = 1, TimeSpan? initialRebalanceDelay = null)
    {
        if (brokers is < 1 or > 32)
        {
            throw new ArgumentOutOfRangeException(nameof(brokers), brokers, "The broker count must be between 1 and 32.");
        }

        var delay = initialRebalanceDelay ?? TimeSpan.FromMilliseconds(100);
        if (delay < TimeSpan.Zero || delay.TotalMilliseconds > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(initialRebalanceDelay), delay, "The initial rebalance delay must be 0 or more ms.");
        }

        NativeMethods.EnsureLoaded();
        var errstr = new byte[ErrorBufferSize];
        var conf = NativeMethods.rd_kafka_conf_new();
        foreach (var (key, value) in new[] { ("client.id", "kafkakit-embedded-cluster"), ("log_level", "3") })
        {
            if (NativeMethods.rd_kafka_conf_set(conf, key, value, errstr, (UIntPtr)errstr.Length) != NativeMethods.ConfOk)
            {
                NativeMethods.rd_kafka_conf_destroy(conf);
                throw new InvalidOperationException($"librdkafka refused '{key}={value}': {ReadError(errstr)}");
            }
        }

        // rd_kafka_new takes ownership of conf only when it succeeds.
        var owner = NativeMethods.rd_kafka_new(NativeMethods.ProducerType, conf, errstr, (UIntPtr)errstr.Length);
        if (owner == IntPtr.Zero)
        {
            NativeMethods.rd_kafka_conf_destroy(conf);
            throw new InvalidOperationException($"librdkafka could not create the cluster's owner handle: {ReadError(errstr)}");
        }

        var cluster = NativeMethods.rd_kafka_mock_cluster_new(owner, brokers);
        if (cluster == IntPtr.Zero)
        {
            NativeMethods.rd_kafka_destroy(owner);
            throw new InvalidOperationException($"librdkafka could not start a mock cluster of {brokers} brokers.");
        }

        NativeMethods.rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, (int)delay.TotalMilliseconds);
        var bootstrap = Marshal.PtrToStringUTF8(NativeMethods.rd_kafka_mock_cluster_bootstraps(cluster)) ?? string.Empty;
        return new EmbeddedKafkaCluster(owner, cluster, brokers, bootstrap);
    }

    /// <summary>Creates a topic.</summary>
    /// <param name="topic">The topic name.</param>
    /// <param name="partitions">The number of partitions, 1 or more. Default 1.</param>
    /// <param name="replicationFactor">The replication factor, 1 to <see cref="BrokerCount"/>. Default 1.</param>
    /// <exception cref="ArgumentException"><paramref name="topic"/> is null or empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A count is out of range.</exception>
    /// <exception cref="KafkaException">The cluster refused the topic (for example, it exists already).</exception>
    /// <exception cref="ObjectDisposedException">The cluster was disposed.</exception>
    public void CreateTopic(string topic, int partitions = 1, int replicationFactor = 1)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        if (partitions < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(partitions), partitions, "The partition count must be 1 or more.");
        }

        if (replicationFactor < 1 || replicationFactor > BrokerCount)
        {
            throw new ArgumentOutOfRangeException(
                nameof(replicationFactor), replicationFactor, $"The replication factor must be between 1 and the broker count ({BrokerCount}).");
        }

        Invoke(c => NativeMethods.rd_kafka_mock_topic_create(c, topic, partitions, replicationFactor), $"create topic '{topic}'");
    }

    /// <summary>
    /// Takes a broker down: its listener closes its connections and refuses new ones until <see cref="SetBrokerUp"/>.
    /// Partition leadership does not move (use <see cref="SetPartitionLeader"/> for that).
    /// </summary>
    /// <param name="brokerId">The broker id, 1 to <see cref="BrokerCount"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="brokerId"/> is out of range.</exception>
    /// <exception cref="ObjectDisposedException">The cluster was disposed.</exception>
    public void SetBrokerDown(int brokerId)
    {
        CheckBroker(brokerId);
        Invoke(c => NativeMethods.rd_kafka_mock_broker_set_down(c, brokerId), $"set broker {brokerId} down");
    }

    /// <summary>Brings a broker taken down by <see cref="SetBrokerDown"/> back up.</summary>
    /// <param name="brokerId">The broker id, 1 to <see cref="BrokerCount"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="brokerId"/> is out of range.</exception>
    /// <exception cref="ObjectDisposedException">The cluster was disposed.</exception>
    public void SetBrokerUp(int brokerId)
    {
        CheckBroker(brokerId);
        Invoke(c => NativeMethods.rd_kafka_mock_broker_set_up(c, brokerId), $"set broker {brokerId} up");
    }

    /// <summary>
    /// Delays every response of a broker by <paramref name="roundTripTime"/>, so requests are in flight when a fault
    /// is injected. <see cref="TimeSpan.Zero"/> restores immediate responses.
    /// </summary>
    /// <param name="brokerId">The broker id, 1 to <see cref="BrokerCount"/>.</param>
    /// <param name="roundTripTime">The added round-trip time, 0 or more, whole milliseconds.</param>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range.</exception>
    /// <exception cref="ObjectDisposedException">The cluster was disposed.</exception>
    public void SetBrokerRoundTripTime(int brokerId, TimeSpan roundTripTime)
    {
        CheckBroker(brokerId);
        if (roundTripTime < TimeSpan.Zero || roundTripTime.TotalMilliseconds > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(roundTripTime), roundTripTime, "The round-trip time must be 0 or more ms.");
        }

        var ms = (int)roundTripTime.TotalMilliseconds;
        Invoke(c => NativeMethods.rd_kafka_mock_broker_set_rtt(c, brokerId, ms), $"set the round-trip time of broker {brokerId}");
    }

    /// <summary>
    /// Makes the next requests of type <paramref name="apiKey"/> (to any broker) fail with <paramref name="errors"/>,
    /// one error per request in order; later requests succeed again.
    /// </summary>
    /// <param name="apiKey">The request type.</param>
    /// <param name="errors">The errors to answer with, in order; <see cref="ErrorCode.NoError"/> lets one request pass.</param>
    /// <exception cref="ArgumentException"><paramref name="errors"/> is null or empty.</exception>
    /// <exception cref="ObjectDisposedException">The cluster was disposed.</exception>
    public void PushRequestErrors(ApiKey apiKey, params ErrorCode[] errors)
    {
        if (errors is null || errors.Length == 0)
        {
            throw new ArgumentException("At least one error code is required.", nameof(errors));
        }

        var codes = Array.ConvertAll(errors, e => (int)e);
        Invoke(c =>
        {
            NativeMethods.rd_kafka_mock_push_request_errors_array(c, (short)apiKey, (UIntPtr)codes.Length, codes);
            return 0;
        }, $"push request errors for {apiKey}");
    }

    /// <summary>Removes the errors pushed for <paramref name="apiKey"/> that were not consumed yet.</summary>
    /// <param name="apiKey">The request type.</param>
    /// <exception cref="ObjectDisposedException">The cluster was disposed.</exception>
    public void ClearRequestErrors(ApiKey apiKey) =>
        Invoke(c =>
        {
            NativeMethods.rd_kafka_mock_clear_request_errors(c, (short)apiKey);
            return 0;
        }, $"clear request errors for {apiKey}");

    /// <summary>
    /// Moves a partition's leadership to a broker; clients learn of it through NOT_LEADER_FOR_PARTITION and a metadata
    /// refresh.
    /// </summary>
    /// <param name="topic">The topic.</param>
    /// <param name="partition">The partition, 0 or more.</param>
    /// <param name="brokerId">The new leader, 1 to <see cref="BrokerCount"/>.</param>
    /// <exception cref="ArgumentException"><paramref name="topic"/> is null or empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range.</exception>
    /// <exception cref="KafkaException">The partition does not exist in an existing topic (<see cref="ErrorCode.UnknownTopicOrPart"/>). Note: for a topic it does not know, the embedded cluster creates the topic with <paramref name="partition"/> + 1 partitions instead of failing.</exception>
    /// <exception cref="ObjectDisposedException">The cluster was disposed.</exception>
    public void SetPartitionLeader(string topic, int partition, int brokerId)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentOutOfRangeException.ThrowIfNegative(partition);
        CheckBroker(brokerId);
        Invoke(c => NativeMethods.rd_kafka_mock_partition_set_leader(c, topic, partition, brokerId),
            $"set the leader of {topic} [{partition}] to broker {brokerId}");
    }

    /// <summary>Makes a broker the coordinator of a consumer group.</summary>
    /// <param name="groupId">The consumer group id.</param>
    /// <param name="brokerId">The coordinator, 1 to <see cref="BrokerCount"/>.</param>
    /// <exception cref="ArgumentException"><paramref name="groupId"/> is null or empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="brokerId"/> is out of range.</exception>
    /// <exception cref="ObjectDisposedException">The cluster was disposed.</exception>
    public void SetGroupCoordinator(string groupId, int brokerId)
    {
        ArgumentException.ThrowIfNullOrEmpty(groupId);
        CheckBroker(brokerId);
        Invoke(c => NativeMethods.rd_kafka_mock_coordinator_set(c, "group", groupId, brokerId),
            $"set the coordinator of group '{groupId}' to broker {brokerId}");
    }

    /// <summary>Makes a broker the transaction coordinator of a <c>transactional.id</c>.</summary>
    /// <param name="transactionalId">The transactional id.</param>
    /// <param name="brokerId">The coordinator, 1 to <see cref="BrokerCount"/>.</param>
    /// <exception cref="ArgumentException"><paramref name="transactionalId"/> is null or empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="brokerId"/> is out of range.</exception>
    /// <exception cref="ObjectDisposedException">The cluster was disposed.</exception>
    public void SetTransactionCoordinator(string transactionalId, int brokerId)
    {
        ArgumentException.ThrowIfNullOrEmpty(transactionalId);
        CheckBroker(brokerId);
        Invoke(c => NativeMethods.rd_kafka_mock_coordinator_set(c, "transaction", transactionalId, brokerId),
            $"set the coordinator of transactional id '{transactionalId}' to broker {brokerId}");
    }

    /// <summary>
    /// Sets the session timeout of consumer groups using the consumer group protocol (KIP-848, <c>group.protocol=consumer</c>;
    /// the broker's <c>group.consumer.session.timeout.ms</c>): a member not heard from for this long is removed and its
    /// partitions reassigned. The embedded cluster's default is 30 s. Classic groups use the client's <c>session.timeout.ms</c>.
    /// </summary>
    /// <param name="timeout">The timeout, 1 ms or more, whole milliseconds.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is less than 1 ms.</exception>
    /// <exception cref="ObjectDisposedException">The cluster was disposed.</exception>
    public void SetConsumerGroupSessionTimeout(TimeSpan timeout)
    {
        var ms = PositiveMilliseconds(timeout, nameof(timeout));
        Invoke(c =>
        {
            NativeMethods.rd_kafka_mock_set_group_consumer_session_timeout_ms(c, ms);
            return 0;
        }, "set the consumer group session timeout");
    }

    /// <summary>
    /// Sets the heartbeat interval the cluster gives members of consumer groups using the consumer group protocol (KIP-848,
    /// the broker's <c>group.consumer.heartbeat.interval.ms</c>). New assignments reach members with their heartbeats, so
    /// this bounds how fast a rebalance completes. The embedded cluster's default is 3 s; applies from the members' next heartbeat.
    /// </summary>
    /// <param name="interval">The interval, 1 ms or more, whole milliseconds.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="interval"/> is less than 1 ms.</exception>
    /// <exception cref="ObjectDisposedException">The cluster was disposed.</exception>
    public void SetConsumerGroupHeartbeatInterval(TimeSpan interval)
    {
        var ms = PositiveMilliseconds(interval, nameof(interval));
        Invoke(c =>
        {
            NativeMethods.rd_kafka_mock_set_group_consumer_heartbeat_interval_ms(c, ms);
            return 0;
        }, "set the consumer group heartbeat interval");
    }

    /// <summary>
    /// Sets the share-group settings of the cluster (KIP-932 queues; the broker's <c>group.share.*</c> settings) and
    /// enables the share-group requests (ShareGroupHeartbeat, ShareFetch, ShareAcknowledge). The settings are cluster-wide,
    /// not per group: librdkafka's mock has no per-group setters. The record lock duration, delivery attempts and offset
    /// reset apply at once to existing share groups too; the session timeout and heartbeat interval only to share groups
    /// created afterwards. A parameter left <see langword="null"/> keeps the current value.
    /// </summary>
    /// <param name="recordLockDuration">
    /// How long a delivered record stays locked to its member before it becomes available again (the broker's
    /// <c>group.share.record.lock.duration.ms</c>); 1 ms or more, whole milliseconds. The embedded cluster's default is 30 s.
    /// </param>
    /// <param name="maxDeliveryAttempts">
    /// How many times a record is delivered at most before it is archived (the broker's
    /// <c>group.share.delivery.count.limit</c>); 1 or more. The embedded cluster's default is 5.
    /// </param>
    /// <param name="sessionTimeout">
    /// How long a silent member stays in a share group (the broker's <c>group.share.session.timeout.ms</c>); 1 ms or more,
    /// whole milliseconds. The embedded cluster's default is 45 s.
    /// </param>
    /// <param name="heartbeatInterval">
    /// The heartbeat interval given to members (the broker's <c>group.share.heartbeat.interval.ms</c>); assignments reach
    /// members with their heartbeats. 1 ms or more, whole milliseconds. The embedded cluster's default is 5 s.
    /// </param>
    /// <param name="readFromEarliest">
    /// Where a share group starts reading a partition it has never read (the group's <c>share.auto.offset.reset</c>):
    /// <see langword="true"/> from the earliest record, <see langword="false"/> from the end (only records produced after
    /// the group first fetched). The embedded cluster's default is the end, as a broker's.
    /// </param>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range (the message names it).</exception>
    /// <exception cref="KafkaException">The cluster refused to enable the share-group requests.</exception>
    /// <exception cref="ObjectDisposedException">The cluster was disposed.</exception>
    public void ConfigureShareGroups(
        TimeSpan? recordLockDuration = null,
        int? maxDeliveryAttempts = null,
        TimeSpan? sessionTimeout = null,
        TimeSpan? heartbeatInterval = null,
        bool? readFromEarliest = null)
    {
        int? lockMs = recordLockDuration is { } l ? PositiveMilliseconds(l, nameof(recordLockDuration)) : null;
        int? sessionMs = sessionTimeout is { } s ? PositiveMilliseconds(s, nameof(sessionTimeout)) : null;
        int? heartbeatMs = heartbeatInterval is { } h ? PositiveMilliseconds(h, nameof(heartbeatInterval)) : null;
        if (maxDeliveryAttempts is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(maxDeliveryAttempts), maxDeliveryAttempts, "The delivery attempts must be 1 or more.");
        }

        foreach (var api in ShareGroupApis)
        {
            Invoke(c => NativeMethods.rd_kafka_mock_set_apiversion(c, api, 1, 1), $"enable API {api}");
        }

        Invoke(c =>
        {
            if (lockMs is { } lockDuration)
            {
                NativeMethods.rd_kafka_mock_sharegroup_set_record_lock_duration(c, lockDuration);
            }

            if (maxDeliveryAttempts is { } attempts)
            {
                NativeMethods.rd_kafka_mock_sharegroup_set_max_delivery_attempts(c, attempts);
            }

            if (sessionMs is { } session)
            {
                NativeMethods.rd_kafka_mock_sharegroup_set_session_timeout(c, session);
            }

            if (heartbeatMs is { } heartbeat)
            {
                NativeMethods.rd_kafka_mock_sharegroup_set_heartbeat_interval(c, heartbeat);
            }

            if (readFromEarliest is { } earliest)
            {
                NativeMethods.rd_kafka_mock_sharegroup_set_auto_offset_reset(c, earliest ? 1 : 0);
            }

            return 0;
        }, "configure share groups");
    }

    /// <summary>Gets the member ids of a share group, as the cluster knows them.</summary>
    /// <param name="groupId">The share group id.</param>
    /// <returns>The member ids; empty when the group has no member or does not exist yet.</returns>
    /// <exception cref="ArgumentException"><paramref name="groupId"/> is null or empty.</exception>
    /// <exception cref="ObjectDisposedException">The cluster was disposed.</exception>
    public IReadOnlyList<string> GetShareGroupMembers(string groupId)
    {
        ArgumentException.ThrowIfNullOrEmpty(groupId);
        var members = new List<string>();
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_cluster == IntPtr.Zero, this);
            if (NativeMethods.rd_kafka_mock_sharegroup_get_member_ids(_cluster, groupId, out var ids, out var count) != 0 || ids == IntPtr.Zero)
            {
                return members;
            }

            for (var i = 0; i < (int)count; i++)
            {
                var id = Marshal.ReadIntPtr(ids, i * IntPtr.Size);
                members.Add(Marshal.PtrToStringUTF8(id) ?? string.Empty);
                NativeMethods.rd_kafka_mem_free(IntPtr.Zero, id);
            }

            NativeMethods.rd_kafka_mem_free(IntPtr.Zero, ids);
        }

        return members;
    }

    /// <summary>
    /// Assigns every partition of <paramref name="topic"/> to every current member of a share group, as a broker's
    /// share-group assignor does when a group has more members than partitions (KIP-932: members then share
    /// partitions). The embedded cluster's own assignment gives each partition to one member only, so without this call
    /// extra members of a share group on a topic with few partitions get nothing. After it the group's assignment is
    /// manual: members that join later get nothing until it is called again. Members learn of it with their next heartbeat.
    /// </summary>
    /// <param name="groupId">The share group id.</param>
    /// <param name="topic">The topic.</param>
    /// <param name="partitions">The topic's partition count, 1 or more.</param>
    /// <returns>The members assigned.</returns>
    /// <exception cref="ArgumentException"><paramref name="groupId"/> or <paramref name="topic"/> is null or empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="partitions"/> is less than 1.</exception>
    /// <exception cref="ObjectDisposedException">The cluster was disposed.</exception>
    public IReadOnlyList<string> ShareAllPartitionsWithEveryMember(string groupId, string topic, int partitions = 1)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        var members = GetShareGroupMembers(groupId);
        var ids = new IntPtr[members.Count];
        var lists = new IntPtr[members.Count];
        try
        {
            for (var i = 0; i < members.Count; i++)
            {
                ids[i] = Marshal.StringToCoTaskMemUTF8(members[i]);
                lists[i] = NativeMethods.rd_kafka_topic_partition_list_new(partitions);
                for (var p = 0; p < partitions; p++)
                {
                    NativeMethods.rd_kafka_topic_partition_list_add(lists[i], topic, p);
                }
            }

            Invoke(c =>
            {
                NativeMethods.rd_kafka_mock_sharegroup_target_assignment(c, groupId, ids, lists, (UIntPtr)members.Count);
                return 0;
            }, $"assign share group '{groupId}'");
        }
        finally
        {
            foreach (var id in ids)
            {
                Marshal.FreeCoTaskMem(id);
            }

            foreach (var list in lists.Where(l => l != IntPtr.Zero))
            {
                NativeMethods.rd_kafka_topic_partition_list_destroy(list);
            }
        }

        return members;
    }

    private static int PositiveMilliseconds(TimeSpan value, string name) =>
        value >= TimeSpan.FromMilliseconds(1) && value.TotalMilliseconds <= int.MaxValue
            ? (int)value.TotalMilliseconds
            : throw new ArgumentOutOfRangeException(name, value, "The value must be between 1 ms and 2147483647 ms.");

    /// <summary>
    /// Sets how long the first member of an empty consumer group waits before the first assignment (the broker's
    /// <c>group.initial.rebalance.delay.ms</c>).
    /// </summary>
    /// <param name="delay">The delay, 0 or more, whole milliseconds.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delay"/> is negative.</exception>
    /// <exception cref="ObjectDisposedException">The cluster was disposed.</exception>
    public void SetInitialRebalanceDelay(TimeSpan delay)
    {
        if (delay < TimeSpan.Zero || delay.TotalMilliseconds > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(delay), delay, "The delay must be 0 or more ms.");
        }

        Invoke(c =>
        {
            NativeMethods.rd_kafka_mock_group_initial_rebalance_delay_ms(c, (int)delay.TotalMilliseconds);
            return 0;
        }, "set the initial rebalance delay");
    }

    /// <summary>Stops the brokers (closing every client connection) and frees the native handles. Idempotent.</summary>
    public void Dispose()
    {
        IntPtr cluster;
        IntPtr owner;
        lock (_gate)
        {
            cluster = _cluster;
            owner = _owner;
            _cluster = IntPtr.Zero;
            _owner = IntPtr.Zero;
        }

        if (cluster != IntPtr.Zero)
        {
            NativeMethods.rd_kafka_mock_cluster_destroy(cluster);
        }

        if (owner != IntPtr.Zero)
        {
            NativeMethods.rd_kafka_destroy(owner);
        }
    }

    /// <summary>Stops the cluster on a thread-pool thread (stopping joins the broker threads).</summary>
    /// <returns>A task that completes when the brokers have stopped.</returns>
    public ValueTask DisposeAsync() => new(Task.Run(Dispose));

    /// <inheritdoc />
    public override string ToString() => $"EmbeddedKafkaCluster({BrokerCount} brokers, {BootstrapServers})";

    private void CheckBroker(int brokerId)
    {
        if (brokerId < 1 || brokerId > BrokerCount)
        {
            throw new ArgumentOutOfRangeException(nameof(brokerId), brokerId, $"The broker id must be between 1 and {BrokerCount}.");
        }
    }

    private void Invoke(Func<IntPtr, int> call, string what)
    {
        int err;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_cluster == IntPtr.Zero, this);
            err = call(_cluster);
        }

        if (err != 0)
        {
            var reason = Marshal.PtrToStringUTF8(NativeMethods.rd_kafka_err2str(err));
            throw new KafkaException(new Error((ErrorCode)err, string.Create(CultureInfo.InvariantCulture, $"Could not {what}: {reason}")));
        }
    }

    private static string ReadError(byte[] errstr)
    {
        var length = Array.IndexOf(errstr, (byte)0);
        return Encoding.UTF8.GetString(errstr, 0, length < 0 ? errstr.Length : length);
    }
}
