using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;

namespace KafkaKit.Testing.Internal;

/// <summary>
/// P/Invoke declarations for librdkafka's mock cluster API (rdkafka_mock.h).
/// </summary>
/// <remarks>
/// Every call must reach the very librdkafka image that Confluent.Kafka loaded: a mock cluster created in a second copy
/// of the library would be invisible to Confluent's clients. On Debian the default linux-x64 librdkafka.so cannot load
/// (it links libsasl2.so.3) and Confluent.Kafka falls back to another variant, so the resolver below asks the process
/// which librdkafka image is mapped instead of guessing a file name.
/// </remarks>
internal static partial class NativeMethods
{
    private const string Library = "librdkafka";

    private static readonly object Gate = new();
    private static IntPtr _handle;

    internal const int ProducerType = 0;
    internal const int ConfOk = 0;

    /// <summary>Loads librdkafka through Confluent.Kafka and binds this assembly's P/Invokes to that same image.</summary>
    internal static void EnsureLoaded()
    {
        lock (Gate)
        {
            if (_handle != IntPtr.Zero)
            {
                return;
            }

            // Forces Confluent.Kafka to pick and load its librdkafka variant.
            _ = Confluent.Kafka.Library.Version;
            var path = FindLoadedLibrdkafka()
                ?? throw new InvalidOperationException(
                    "Confluent.Kafka reported librdkafka as loaded, but no librdkafka image is mapped in this process.");
            _handle = NativeLibrary.Load(path);
            NativeLibrary.SetDllImportResolver(typeof(NativeMethods).Assembly, Resolve);
        }
    }

    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) =>
        libraryName == Library ? _handle : IntPtr.Zero;

    private static string? FindLoadedLibrdkafka()
    {
        using var process = Process.GetCurrentProcess();
        foreach (ProcessModule module in process.Modules)
        {
            var name = module.ModuleName ?? string.Empty;
            if (name.Contains("librdkafka", StringComparison.OrdinalIgnoreCase)
                && !name.Contains("librdkafkacpp", StringComparison.OrdinalIgnoreCase))
            {
                return module.FileName;
            }
        }

        return null;
    }

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
    internal static partial IntPtr rd_kafka_err2str(int err);
}
