using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace KafkaKit.Sharing;

/// <summary>What a share consumer receives from librdkafka's callbacks.</summary>
internal interface IShareCallbackSink
{
    /// <summary>A librdkafka log line.</summary>
    void OnLog(int level, string facility, string text);

    /// <summary>A client error event.</summary>
    void OnError(int code, string reason);

    /// <summary>The broker's answer to acknowledgements of one partition: <paramref name="code"/> 0 when taken.</summary>
    void OnAcknowledgementCommit(string topic, int partition, int count, int code);
}

/// <summary>
/// The native callbacks of share consumers (generic types cannot hold <see cref="UnmanagedCallersOnlyAttribute"/>
/// methods). The opaque pointer is a <see cref="GCHandle"/> of the consumer's <see cref="IShareCallbackSink"/>. librdkafka
/// serves them from the share consumer's reply queue inside rd_kafka_share_poll / commit calls (log lines once
/// <c>log.queue=true</c> and rd_kafka_share_set_log_queue forward them there): on the poll thread. An exception never
/// leaves a callback.
/// </summary>
internal static unsafe class ShareCallbacks
{
    internal static delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr, IntPtr, void> Log => &OnLog;

    internal static delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr, IntPtr, void> Error => &OnError;

    internal static delegate* unmanaged[Cdecl]<IntPtr, IntPtr, int, IntPtr, void> AcknowledgementCommit => &OnAcknowledgementCommit;

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnLog(IntPtr rk, int level, IntPtr facility, IntPtr text)
    {
        try
        {
            Sink(ShareNative.rd_kafka_opaque(rk))?.OnLog(level, ShareNative.Utf8(facility) ?? string.Empty, ShareNative.Utf8(text) ?? string.Empty);
        }
        catch (Exception)
        {
            // A log line that cannot be written is dropped; nothing may unwind into librdkafka.
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnError(IntPtr rk, int code, IntPtr reason, IntPtr opaque)
    {
        try
        {
            Sink(opaque)?.OnError(code, ShareNative.Utf8(reason) ?? string.Empty);
        }
        catch (Exception)
        {
            // As above.
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnAcknowledgementCommit(IntPtr rkshare, IntPtr partitions, int code, IntPtr opaque)
    {
        try
        {
            var sink = Sink(opaque);
            if (sink is null || partitions == IntPtr.Zero)
            {
                return;
            }

            var count = (int)ShareNative.rd_kafka_share_partition_offsets_list_count(partitions);
            for (var i = 0; i < count; i++)
            {
                var entry = ShareNative.rd_kafka_share_partition_offsets_list_get(partitions, (UIntPtr)i);
                var partition = ShareNative.rd_kafka_share_partition_offsets_partition(entry);
                var offsets = (int)ShareNative.rd_kafka_share_partition_offsets_offsets_cnt(entry);
                sink.OnAcknowledgementCommit(ShareNative.Utf8(partition->Topic) ?? "?", partition->Partition, offsets, partition->Err != 0 ? partition->Err : code);
            }
        }
        catch (Exception)
        {
            // As above.
        }
    }

    private static IShareCallbackSink? Sink(IntPtr opaque) =>
        opaque == IntPtr.Zero ? null : GCHandle.FromIntPtr(opaque).Target as IShareCallbackSink;
}
