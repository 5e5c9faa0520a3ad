using System.Reflection;
using System.Runtime.InteropServices;
using Confluent.Kafka;
using KafkaKit.Diagnostics;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Internal;

/// <summary>
/// The librdkafka image Confluent.Kafka loaded, for the few C calls Confluent.Kafka does not expose.
/// </summary>
/// <remarks>
/// P/Invoke must reach the very image Confluent.Kafka loaded, not a second copy: <see cref="LibrdkafkaImage"/> chooses
/// that image (the build shipped with Confluent.Kafka) and makes Confluent.Kafka use it.
/// </remarks>
internal static unsafe partial class Librdkafka
{
    internal const string LibraryName = "librdkafka";

    internal const int PurgeQueue = 0x1;
    internal const int PurgeInFlight = 0x2;
    internal const int PurgeNonBlocking = 0x4;

    private static readonly Lazy<LibrdkafkaImage> LoadedImage = new(
        static () => LibrdkafkaImage.Load(ReadDefaultConf), LazyThreadSafetyMode.ExecutionAndPublication);

    private static readonly HashSet<Assembly> BoundAssemblies = [];
    private static int _described;

    /// <summary>Gets the loaded librdkafka image, loading it (and making Confluent.Kafka use it) first.</summary>
    /// <exception cref="InvalidOperationException">
    /// The image the application loaded before KafkaKit is older than the one Confluent.Kafka ships with, or no librdkafka
    /// image could be found in the process.
    /// </exception>
    internal static LibrdkafkaImage Image => LoadedImage.Value;

    /// <summary>Gets the handle of the loaded librdkafka image, loading it first.</summary>
    /// <exception cref="InvalidOperationException">See <see cref="Image"/>.</exception>
    internal static IntPtr Handle => Image.Handle;

    /// <summary>Binds <paramref name="assembly"/>'s <c>librdkafka</c> P/Invokes to the image Confluent.Kafka loaded.</summary>
    /// <param name="assembly">The assembly whose DllImports name <see cref="LibraryName"/>.</param>
    /// <exception cref="InvalidOperationException">See <see cref="Image"/>.</exception>
    internal static void BindImports(Assembly assembly)
    {
        _ = Handle;
        lock (BoundAssemblies)
        {
            if (BoundAssemblies.Add(assembly))
            {
                NativeLibrary.SetDllImportResolver(assembly, static (name, _, _) => name == LibraryName ? Handle : IntPtr.Zero);
            }
        }
    }

    /// <summary>
    /// Logs, once per process, which librdkafka the clients run on: version, file, variant and the features that build
    /// lacks. Called by the first client built.
    /// </summary>
    /// <param name="logger">The first client's logger.</param>
    internal static void DescribeOnce(ILogger logger)
    {
        var image = Image;
        if (Interlocked.Exchange(ref _described, 1) == 0)
        {
            LibrdkafkaLog.Loaded(
                logger,
                image.Version,
                image.File,
                image.Variant,
                image.MissingFeatures.Count == 0 ? "none" : string.Join(", ", image.MissingFeatures));
        }
    }

    /// <summary>
    /// Purges a producer's queued and, with <paramref name="inFlight"/>, in-flight messages (rd_kafka_purge, non-blocking);
    /// each gets a delivery report with <see cref="ErrorCode.Local_PurgeQueue"/> or
    /// <see cref="ErrorCode.Local_PurgeInflight"/>, served by the producer's poll thread.
    /// </summary>
    /// <param name="handle">The producer's handle.</param>
    /// <param name="inFlight">Whether requests in flight are purged too (their answers are then ignored).</param>
    /// <returns><see langword="true"/> when the purge ran; <see langword="false"/> when the native handle could not be reached.</returns>
    internal static bool TryPurge(Handle handle, bool inFlight) => inFlight
        ? WithClient(handle, static rk => rd_kafka_purge(rk, PurgeQueue | PurgeInFlight | PurgeNonBlocking) == 0, unreachable: false)
        : WithClient(handle, static rk => rd_kafka_purge(rk, PurgeQueue | PurgeNonBlocking) == 0, unreachable: false);

    /// <summary>
    /// Reads the fatal error raised in a client (rd_kafka_fatal_error), if any. librdkafka sets it at once, while the
    /// error event reaches the error handler only when a poll serves it; Confluent.Kafka's produce call reports a
    /// refusal for that reason with the fatal error's code but without <see cref="Error.IsFatal"/>.
    /// </summary>
    /// <param name="handle">The client's handle.</param>
    /// <returns>The fatal error (<see cref="Error.IsFatal"/> set), or <see langword="null"/> when none was raised or the handle could not be reached.</returns>
    internal static Error? FatalError(Handle handle) => WithClient(
        handle,
        static rk =>
        {
            var reason = new byte[512];
            var code = rd_kafka_fatal_error(rk, reason, (UIntPtr)reason.Length);
            if (code == 0)
            {
                return null;
            }

            var length = Array.IndexOf(reason, (byte)0);
            return new Error((ErrorCode)code, System.Text.Encoding.UTF8.GetString(reason, 0, length < 0 ? reason.Length : length), isFatal: true);
        },
        unreachable: null);

    /// <summary>Calls librdkafka with a client's rd_kafka_t, which is kept alive for the call.</summary>
    /// <returns>What <paramref name="call"/> returned, or <paramref name="unreachable"/> when the native handle could not be reached or was released.</returns>
    private static T WithClient<T>(Handle handle, Func<IntPtr, T> call, T unreachable)
    {
        var safeHandle = NativeHandleOf(handle);
        if (safeHandle is null)
        {
            return unreachable;
        }

        BindImports(typeof(Librdkafka).Assembly);
        var added = false;
        try
        {
            safeHandle.DangerousAddRef(ref added);
            return call(safeHandle.DangerousGetHandle());
        }
        catch (ObjectDisposedException) when (!added)
        {
            return unreachable;
        }
        finally
        {
            if (added)
            {
                safeHandle.DangerousRelease();
            }
        }
    }

    // Confluent.Kafka keeps the rd_kafka_t in an internal SafeHandle; no public purge exists (librdkafka has one).
    private static SafeHandle? NativeHandleOf(Handle handle) =>
        typeof(Handle).GetProperty("LibrdkafkaHandle", BindingFlags.Instance | BindingFlags.NonPublic)?.GetValue(handle) as SafeHandle;

    // Reads a property of a default rd_kafka_conf_t, through the image's exports directly: the LibraryImports of this
    // class resolve through Handle, which is still being set when this runs.
    private static string? ReadDefaultConf(IntPtr image, string name)
    {
        var confNew = (delegate* unmanaged[Cdecl]<IntPtr>)NativeLibrary.GetExport(image, "rd_kafka_conf_new");
        var confGet = (delegate* unmanaged[Cdecl]<IntPtr, byte*, byte*, UIntPtr*, int>)NativeLibrary.GetExport(image, "rd_kafka_conf_get");
        var confDestroy = (delegate* unmanaged[Cdecl]<IntPtr, void>)NativeLibrary.GetExport(image, "rd_kafka_conf_destroy");
        var conf = confNew();
        try
        {
            var nameBytes = System.Text.Encoding.UTF8.GetBytes(name + "\0");
            var value = new byte[1024];
            var size = (UIntPtr)value.Length;
            fixed (byte* namePointer = nameBytes)
            fixed (byte* valuePointer = value)
            {
                if (confGet(conf, namePointer, valuePointer, &size) != 0)
                {
                    return null;
                }
            }

            var length = Array.IndexOf(value, (byte)0);
            return System.Text.Encoding.UTF8.GetString(value, 0, length < 0 ? value.Length : length);
        }
        finally
        {
            confDestroy(conf);
        }
    }

    /// <summary>
    /// Checks librdkafka properties the way librdkafka will when the client is built (rd_kafka_conf_set): unknown names
    /// and bad values. Confluent.Kafka's own <c>dotnet.*</c> properties are skipped. Secrets never appear in the result.
    /// </summary>
    /// <param name="config">The properties.</param>
    /// <param name="owner">How to name the client in problems, e.g. <c>"Consumer 'billing'"</c>.</param>
    /// <param name="problems">Receives one sentence per refused property.</param>
    internal static void Check(IEnumerable<KeyValuePair<string, string>> config, string owner, List<string> problems)
    {
        BindImports(typeof(Librdkafka).Assembly);
        var conf = rd_kafka_conf_new();
        try
        {
            var error = new byte[512];
            foreach (var (key, value) in config)
            {
                if (key.StartsWith("dotnet.", StringComparison.Ordinal))
                {
                    continue;
                }

                if (rd_kafka_conf_set(conf, key, value ?? string.Empty, error, (UIntPtr)error.Length) != 0)
                {
                    var length = Array.IndexOf(error, (byte)0);
                    var reason = System.Text.Encoding.UTF8.GetString(error, 0, length < 0 ? error.Length : length);
                    var shown = ConfigText.IsSecret(key) ? "***" : value;
                    problems.Add($"{owner}: librdkafka refuses '{key}={shown}': {(ConfigText.IsSecret(key) ? "invalid value" : reason)}.");
                }
            }
        }
        finally
        {
            rd_kafka_conf_destroy(conf);
        }
    }

    [LibraryImport(LibraryName)]
    private static partial int rd_kafka_purge(IntPtr rk, int flags);

    [LibraryImport(LibraryName)]
    private static partial int rd_kafka_fatal_error(IntPtr rk, byte[] errstr, UIntPtr errstrSize);

    [LibraryImport(LibraryName)]
    private static partial IntPtr rd_kafka_conf_new();

    [LibraryImport(LibraryName)]
    private static partial void rd_kafka_conf_destroy(IntPtr conf);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int rd_kafka_conf_set(IntPtr conf, string name, string value, byte[] errstr, UIntPtr errstrSize);
}
