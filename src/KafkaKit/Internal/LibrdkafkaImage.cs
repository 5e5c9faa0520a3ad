using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Confluent.Kafka;

namespace KafkaKit.Internal;

/// <summary>
/// Chooses and loads the librdkafka image every KafkaKit client, Confluent.Kafka itself and the embedded cluster run on:
/// the build shipped with the Confluent.Kafka version KafkaKit references (package librdkafka.redist), in the first of
/// its variants that loads on this machine, whatever other librdkafka the system search path holds.
/// </summary>
/// <remarks>
/// Confluent.Kafka binds its P/Invokes to the name <c>librdkafka</c>. On Debian and Ubuntu the default linux-x64 build
/// cannot load (it links libsasl2.so.3), so the runtime's search goes on to the system path, where Debian's
/// librdkafka-dev puts librdkafka 2.0.2, before Confluent.Kafka tries its centos8 build; Confluent.Kafka accepts any
/// librdkafka from 1.5.2 and later calls fail with <see cref="EntryPointNotFoundException"/>. KafkaKit therefore loads
/// the bundled variant by its full path and resolves Confluent.Kafka's <c>librdkafka</c> imports to it, registered when
/// the KafkaKit assembly initializes, before Confluent.Kafka loads anything (Confluent's own <c>Library.Load(path)</c> calls dlopen through <c>libdl</c>, which a
/// Debian 12 machine without libc6-dev does not have). A library the application loaded first (through
/// <see cref="Library.Load(string)"/>, its own import resolver, or a Confluent.Kafka client built before any KafkaKit
/// one) is kept, unless it is older than the one Confluent.Kafka ships with.
/// </remarks>
internal sealed record LibrdkafkaImage(IntPtr Handle, string File, string Variant, string Version, IReadOnlyList<string> MissingFeatures)
{
    private const string ImportName = "librdkafka";

    // builtin.features of the full linux-x64, osx and win builds of librdkafka.redist; a variant may lack some.
    private static readonly string[] FullFeatures =
        ["gzip", "snappy", "ssl", "sasl", "regex", "lz4", "sasl_gssapi", "sasl_plain", "sasl_scram", "plugins", "zstd", "sasl_oauthbearer", "http", "oidc"];

    /// <summary>Gets the librdkafka version Confluent.Kafka was built against: its own assembly version.</summary>
    internal static Version Required { get; } = RequiredVersion();

    private static readonly Lazy<(IntPtr Handle, string File, string Variant)?> Bundled = new(LoadBundled);
    private static readonly object Gate = new();
    private static bool _resolverSet;
    private static bool _confluentLoadedFirst;
    private static bool _ownResolver;
    private static volatile bool _resolvedToBundled;

    /// <summary>
    /// Makes Confluent.Kafka's <c>librdkafka</c> imports resolve to the bundled build, unless Confluent.Kafka has loaded
    /// a librdkafka already or the application set its own resolver. Cheap: the file is loaded when Confluent.Kafka
    /// first needs it. Runs when the KafkaKit assembly initializes, so that any use of KafkaKit (AddKafkaKit, a builder)
    /// before Confluent.Kafka's first native call is enough.
    /// </summary>
    [ModuleInitializer]
    [SuppressMessage("Usage", "CA2255:The 'ModuleInitializer' attribute should not be used in libraries", Justification = "Confluent.Kafka must resolve librdkafka before its first native call, which can come from any of its types (e.g. new Error(code)); registering a resolver loads nothing.")]
    internal static void ResolveConfluentImportsToBundled()
    {
        lock (Gate)
        {
            if (_resolverSet)
            {
                return;
            }

            _resolverSet = true;
            if (Library.IsLoaded)
            {
                _confluentLoadedFirst = true;
                return;
            }

            try
            {
                NativeLibrary.SetDllImportResolver(typeof(Library).Assembly, static (name, _, _) =>
                {
                    if (name != ImportName || Bundled.Value is not { } bundled)
                    {
                        return IntPtr.Zero; // the runtime's own search, as without KafkaKit
                    }

                    _resolvedToBundled = true;
                    return bundled.Handle;
                });
            }
            catch (InvalidOperationException)
            {
                _ownResolver = true; // the application set its own resolver on Confluent.Kafka: that is its choice
            }
        }
    }

    /// <summary>
    /// Makes Confluent.Kafka load librdkafka (the bundled build, or the one the application loaded first) and describes
    /// the image it runs on.
    /// </summary>
    /// <param name="conf">Reads a property of a fresh rd_kafka_conf_t of the loaded image (for <c>builtin.features</c>).</param>
    /// <returns>The loaded image.</returns>
    /// <exception cref="InvalidOperationException">
    /// The image the application loaded first is older than <see cref="Required"/>, or no librdkafka image can be found.
    /// </exception>
    internal static LibrdkafkaImage Load(Func<IntPtr, string, string?> conf)
    {
        ResolveConfluentImportsToBundled();
        _ = Library.Version; // Confluent.Kafka binds its imports now, if nothing has yet
        IntPtr handle;
        string? file;
        string variant;
        if (_resolvedToBundled && Bundled.Value is { } bundled)
        {
            (handle, file, variant) = bundled;
        }
        else
        {
            // Not Bundled.Value here: loading the bundled file now would map a second image into the process.
            variant = _confluentLoadedFirst ? "loaded by the application before KafkaKit"
                : _ownResolver ? "resolved by the application's DllImport resolver"
                : "chosen by Confluent.Kafka (no bundled build loads here)";
            file = MappedImage();
            handle = file is null ? IntPtr.Zero : NativeLibrary.Load(file);
        }

        if (handle == IntPtr.Zero)
        {
            throw new InvalidOperationException(
                "Confluent.Kafka reported librdkafka as loaded, but no librdkafka image is mapped in this process.");
        }

        var version = VersionOf(Library.Version);
        if (version < Required)
        {
            throw new InvalidOperationException(
                $"librdkafka {Library.VersionString} loaded from '{file ?? "an unknown file"}' ({variant}) is older than {Required.ToString(3)}, "
                + $"the version Confluent.Kafka {Required.ToString(3)} is built for; its calls would fail with EntryPointNotFoundException. "
                + "Fix: let KafkaKit load the build shipped in the librdkafka.redist package (use KafkaKit, e.g. AddKafkaKit or a builder, "
                + "before any Confluent.Kafka call, and do not call Library.Load or set a DllImport resolver on Confluent.Kafka), "
                + $"or load librdkafka {Required.ToString(3)} or later yourself.");
        }

        var features = (conf(handle, "builtin.features") ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var missing = FullFeatures.Where(f => !features.Contains(f, StringComparer.Ordinal)).ToArray();
        return new LibrdkafkaImage(handle, file ?? "unknown", variant, Library.VersionString, missing);
    }

    /// <summary>The full paths of librdkafka.redist's variants for this platform, in the order to try them.</summary>
    internal static IEnumerable<(string Path, string Variant)> BundledCandidates()
    {
        var files = BundledFileNames();
        var rid = $"{RidOs()}-{RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant()}";
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var directory in ProbeDirectories())
        {
            foreach (var (fileName, variant) in files)
            {
                foreach (var path in new[] { Path.Combine(directory, "runtimes", rid, "native", fileName), Path.Combine(directory, fileName) })
                {
                    if (seen.Add(path) && System.IO.File.Exists(path))
                    {
                        yield return (path, variant);
                    }
                }
            }
        }
    }

    private static (IntPtr Handle, string File, string Variant)? LoadBundled()
    {
        foreach (var (path, variant) in BundledCandidates())
        {
            if (NativeLibrary.TryLoad(path, out var handle))
            {
                return (handle, path, variant);
            }
        }

        return null;
    }

    private static (string FileName, string Variant)[] BundledFileNames()
    {
        if (OperatingSystem.IsWindows())
        {
            return [("librdkafka.dll", "win")];
        }

        if (OperatingSystem.IsMacOS())
        {
            return [("librdkafka.dylib", "osx")];
        }

        // Confluent.Kafka's own order: the build with GSSAPI first, then the one without (centos8); alpine on musl.
        return IsMusl()
            ? [("alpine-librdkafka.so", "alpine")]
            : [("librdkafka.so", "linux with GSSAPI"), ("centos8-librdkafka.so", "centos8 without GSSAPI")];
    }

    private static string RidOs() => OperatingSystem.IsWindows() ? "win" : OperatingSystem.IsMacOS() ? "osx" : "linux";

    private static bool IsMusl() =>
        RuntimeInformation.RuntimeIdentifier.Contains("musl", StringComparison.OrdinalIgnoreCase)
        || System.IO.File.Exists("/etc/alpine-release");

    private static IEnumerable<string> ProbeDirectories()
    {
        // The host's native search directories (the app folder, or the NuGet package folders when the app runs from
        // them), then the app and Confluent.Kafka's own folder.
        var searched = AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") as string ?? string.Empty;
        foreach (var directory in searched.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            yield return directory;
        }

        yield return AppContext.BaseDirectory;
        if (Path.GetDirectoryName(typeof(Library).Assembly.Location) is { Length: > 0 } confluent)
        {
            yield return confluent;
        }
    }

    private static string? MappedImage()
    {
        using var process = Process.GetCurrentProcess();
        foreach (ProcessModule module in process.Modules)
        {
            var name = module.ModuleName ?? string.Empty;
            if (name.Contains(ImportName, StringComparison.OrdinalIgnoreCase)
                && !name.Contains("librdkafkacpp", StringComparison.OrdinalIgnoreCase))
            {
                return module.FileName;
            }
        }

        return null;
    }

    // librdkafka's version integer is 0xMMmmrrpp.
    private static Version VersionOf(int hex) => new((hex >> 24) & 0xff, (hex >> 16) & 0xff, (hex >> 8) & 0xff);

    private static Version RequiredVersion()
    {
        var version = typeof(Library).Assembly.GetName().Version ?? new Version(0, 0, 0);
        return new Version(version.Major, version.Minor, Math.Max(version.Build, 0));
    }
}
