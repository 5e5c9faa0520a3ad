using System.Runtime.InteropServices;

namespace KafkaKit.Testing.Internal;

/// <summary>
/// P/Invoke declarations for librdkafka's mock cluster API (rdkafka_mock.h), bound to the very librdkafka image
/// Confluent.Kafka loaded (see <see cref="KafkaKit.Internal.Librdkafka"/>): a mock cluster created in a second copy of the
/// library would be invisible to Confluent's clients.
/// </summary>
internal static partial class NativeMethods
{
    private const string Library = KafkaKit.Internal.Librdkafka.LibraryName;

    internal const int ProducerType = 0;
    internal const int ConfOk = 0;

    /// <summary>Loads librdkafka through Confluent.Kafka and binds this assembly's P/Invokes to that same image.</summary>
    internal static void EnsureLoaded() => KafkaKit.Internal.Librdkafka.BindImports(typeof(NativeMethods).Assembly);

    [LibraryImport(Library)]
    internal static partial IntPtr rd_kafka_conf_new();

    [LibraryImport(Library)]
    internal static partial void rd_kafka_conf_destroy(IntPtr conf);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int rd_kafka_conf_set(IntPtr conf, string name, string value, byte[] errstr, UIntPtr errstrSize);

    [LibraryImport(Library)]
    internal static partial IntPtr rd_kafka_new(int type, IntPtr conf, byte[] errstr, UIntPtr errstrSize);

    [LibraryImport(Library)]
    internal static partial void rd_kafka_destroy(IntPtr rk);

    [LibraryImport(Library)]
    internal static partial IntPtr rd_kafka_mock_cluster_new(IntPtr rk, int brokerCount);

    [LibraryImport(Library)]
    internal static partial void rd_kafka_mock_cluster_destroy(IntPtr mcluster);

    [LibraryImport(Library)]
    internal static partial IntPtr rd_kafka_mock_cluster_bootstraps(IntPtr mcluster);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int rd_kafka_mock_topic_create(IntPtr mcluster, string topic, int partitionCount, int replicationFactor);

    [LibraryImport(Library)]
    internal static partial int rd_kafka_mock_broker_set_down(IntPtr mcluster, int brokerId);

    [LibraryImport(Library)]
    internal static partial int rd_kafka_mock_broker_set_up(IntPtr mcluster, int brokerId);

    [LibraryImport(Library)]
    internal static partial int rd_kafka_mock_broker_set_rtt(IntPtr mcluster, int brokerId, int rttMs);

    [LibraryImport(Library)]
    internal static partial void rd_kafka_mock_push_request_errors_array(IntPtr mcluster, short apiKey, UIntPtr count, int[] errors);

    [LibraryImport(Library)]
    internal static partial void rd_kafka_mock_clear_request_errors(IntPtr mcluster, short apiKey);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int rd_kafka_mock_partition_set_leader(IntPtr mcluster, string topic, int partition, int brokerId);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int rd_kafka_mock_coordinator_set(IntPtr mcluster, string keyType, string key, int brokerId);

    [LibraryImport(Library)]
    internal static partial void rd_kafka_mock_group_initial_rebalance_delay_ms(IntPtr mcluster, int delayMs);

    [LibraryImport(Library)]
    internal static partial void rd_kafka_mock_set_group_consumer_session_timeout_ms(IntPtr mcluster, int sessionTimeoutMs);

    [LibraryImport(Library)]
    internal static partial void rd_kafka_mock_set_group_consumer_heartbeat_interval_ms(IntPtr mcluster, int heartbeatIntervalMs);

    [LibraryImport(Library)]
    internal static partial IntPtr rd_kafka_err2str(int err);

    [LibraryImport(Library)]
    internal static partial int rd_kafka_mock_set_apiversion(IntPtr mcluster, short apiKey, short minVersion, short maxVersion);

    [LibraryImport(Library)]
    internal static partial void rd_kafka_mock_sharegroup_set_record_lock_duration(IntPtr mcluster, int lockDurationMs);

    [LibraryImport(Library)]
    internal static partial void rd_kafka_mock_sharegroup_set_max_delivery_attempts(IntPtr mcluster, int maxAttempts);

    [LibraryImport(Library)]
    internal static partial void rd_kafka_mock_sharegroup_set_session_timeout(IntPtr mcluster, int sessionTimeoutMs);

    [LibraryImport(Library)]
    internal static partial void rd_kafka_mock_sharegroup_set_heartbeat_interval(IntPtr mcluster, int heartbeatIntervalMs);

    [LibraryImport(Library)]
    internal static partial void rd_kafka_mock_sharegroup_set_auto_offset_reset(IntPtr mcluster, int autoOffsetReset);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int rd_kafka_mock_sharegroup_get_member_ids(IntPtr mcluster, string groupId, out IntPtr memberIds, out UIntPtr memberCount);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial void rd_kafka_mock_sharegroup_target_assignment(IntPtr mcluster, string groupId, IntPtr[] memberIds, IntPtr[] assignments, UIntPtr memberCount);

    [LibraryImport(Library)]
    internal static partial void rd_kafka_mem_free(IntPtr rk, IntPtr ptr);

    [LibraryImport(Library)]
    internal static partial IntPtr rd_kafka_topic_partition_list_new(int size);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial IntPtr rd_kafka_topic_partition_list_add(IntPtr list, string topic, int partition);

    [LibraryImport(Library)]
    internal static partial void rd_kafka_topic_partition_list_destroy(IntPtr list);
}
