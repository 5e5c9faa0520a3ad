using System.Runtime.InteropServices;
using KafkaKit.Internal;

namespace KafkaKit.Sharing;

/// <summary>
/// librdkafka's preview share-consumer C API (KIP-932, rdkafka.h "Share consumer"), bound to the image Confluent.Kafka
/// loaded. Every function here was checked against the exports of the librdkafka 2.16.0 build that ships with
/// Confluent.Kafka 2.16. The share handle is not thread-safe: all calls on one handle come from its poll thread.
/// </summary>
internal static unsafe partial class ShareNative
{
    internal const int AcknowledgeAccept = 1;
    internal const int AcknowledgeRelease = 2;
    internal const int AcknowledgeReject = 3;

    internal const int ConfUnknown = -2;

    /// <summary>Binds this assembly's P/Invokes to the image Confluent.Kafka loaded.</summary>
    internal static void EnsureLoaded() => Librdkafka.BindImports(typeof(ShareNative).Assembly);

    /// <summary>Reads a native NUL-terminated UTF-8 string.</summary>
    internal static string? Utf8(IntPtr text) => Marshal.PtrToStringUTF8(text);

    /// <summary>Reads, then destroys, an rd_kafka_error_t (NULL means no error).</summary>
    /// <returns>The code, reason and whether the error is fatal; code 0 when <paramref name="error"/> is NULL.</returns>
    internal static (int Code, string Reason, bool Fatal) TakeError(IntPtr error)
    {
        if (error == IntPtr.Zero)
        {
            return (0, string.Empty, false);
        }

        try
        {
            return (rd_kafka_error_code(error), Utf8(rd_kafka_error_string(error)) ?? string.Empty, rd_kafka_error_is_fatal(error) != 0);
        }
        finally
        {
            rd_kafka_error_destroy(error);
        }
    }

    internal static string ErrorText(int code) => Utf8(rd_kafka_err2str(code)) ?? code.ToString(System.Globalization.CultureInfo.InvariantCulture);

    // rd_kafka_message_t (rdkafka.h); Sequential layout follows the C alignment rules.
    [StructLayout(LayoutKind.Sequential)]
    internal struct Message
    {
        public int Err;
        public IntPtr Rkt;
        public int Partition;
        public IntPtr Payload;
        public UIntPtr Len;
        public IntPtr Key;
        public UIntPtr KeyLen;
        public long Offset;
        public IntPtr Private;
    }

    // rd_kafka_topic_partition_list_t and rd_kafka_topic_partition_t (rdkafka.h).
    [StructLayout(LayoutKind.Sequential)]
    internal struct PartitionList
    {
        public int Cnt;
        public int Size;
        public TopicPartition* Elems;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct TopicPartition
    {
        public IntPtr Topic;
        public int Partition;
        public long Offset;
        public IntPtr Metadata;
        public UIntPtr MetadataSize;
        public IntPtr Opaque;
        public int Err;
        public IntPtr Private;
    }

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial IntPtr rd_kafka_conf_new();

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial void rd_kafka_conf_destroy(IntPtr conf);

    [LibraryImport(Librdkafka.LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int rd_kafka_conf_set(IntPtr conf, string name, string value, byte[] errstr, UIntPtr errstrSize);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial void rd_kafka_conf_set_log_cb(IntPtr conf, delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr, IntPtr, void> logCb);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial void rd_kafka_conf_set_error_cb(IntPtr conf, delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr, IntPtr, void> errorCb);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial void rd_kafka_conf_set_opaque(IntPtr conf, IntPtr opaque);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial IntPtr rd_kafka_opaque(IntPtr rk);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial IntPtr rd_kafka_share_consumer_new(IntPtr conf, byte[] errstr, UIntPtr errstrSize);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial IntPtr rd_kafka_share_set_acknowledgement_commit_cb(
        IntPtr rkshare, delegate* unmanaged[Cdecl]<IntPtr, IntPtr, int, IntPtr, void> callback, IntPtr opaque);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial IntPtr rd_kafka_share_set_log_queue(IntPtr rkshare, IntPtr rkqu);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial int rd_kafka_share_subscribe(IntPtr rkshare, IntPtr topics);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial IntPtr rd_kafka_share_poll(IntPtr rkshare, int timeoutMs, IntPtr* rkmessages);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial UIntPtr rd_kafka_messages_count(IntPtr messages);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial Message* rd_kafka_messages_get(IntPtr messages, UIntPtr index);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial void rd_kafka_messages_destroy(IntPtr messages);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial short rd_kafka_message_delivery_count(Message* rkmessage);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial long rd_kafka_message_timestamp(Message* rkmessage, int* tstype);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial int rd_kafka_message_headers(Message* rkmessage, IntPtr* headers);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial int rd_kafka_header_get_all(IntPtr headers, UIntPtr index, IntPtr* name, IntPtr* value, UIntPtr* size);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial IntPtr rd_kafka_topic_name(IntPtr rkt);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial int rd_kafka_share_acknowledge_type(IntPtr rkshare, Message* rkmessage, int type);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial IntPtr rd_kafka_share_commit_async(IntPtr rkshare);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial IntPtr rd_kafka_share_commit_sync(IntPtr rkshare, int timeoutMs, PartitionList** partitions);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial IntPtr rd_kafka_share_consumer_close(IntPtr rkshare);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial IntPtr rd_kafka_share_destroy(IntPtr rkshare);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial UIntPtr rd_kafka_share_partition_offsets_list_count(IntPtr list);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial IntPtr rd_kafka_share_partition_offsets_list_get(IntPtr list, UIntPtr index);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial TopicPartition* rd_kafka_share_partition_offsets_partition(IntPtr partitionOffsets);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial UIntPtr rd_kafka_share_partition_offsets_offsets_cnt(IntPtr partitionOffsets);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial PartitionList* rd_kafka_topic_partition_list_new(int size);

    [LibraryImport(Librdkafka.LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial IntPtr rd_kafka_topic_partition_list_add(PartitionList* list, string topic, int partition);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial void rd_kafka_topic_partition_list_destroy(PartitionList* list);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial int rd_kafka_error_code(IntPtr error);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial IntPtr rd_kafka_error_string(IntPtr error);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial int rd_kafka_error_is_fatal(IntPtr error);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial void rd_kafka_error_destroy(IntPtr error);

    [LibraryImport(Librdkafka.LibraryName)]
    internal static partial IntPtr rd_kafka_err2str(int err);
}
