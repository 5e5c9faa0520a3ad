using System.Diagnostics;
using System.Runtime.InteropServices;
using Confluent.Kafka;
using KafkaKit.Internal;
using KafkaKit.Tests.Reliability;

namespace KafkaKit.Tests.Internal;

[TestFixture]
[Category("Integration")]
public sealed class LibrdkafkaImageTests
{
    private static readonly string[] SystemLibrdkafka =
    [
        "/usr/lib/x86_64-linux-gnu/librdkafka.so.1",
        "/usr/lib/aarch64-linux-gnu/librdkafka.so.1",
        "/usr/lib64/librdkafka.so.1",
        "/usr/local/lib/librdkafka.so.1",
    ];

    [Test]
    public void Regression_C16_Image_IsTheBuildShippedWithConfluentKafkaAndConfluentKafkaUsesIt()
    {
        var image = Librdkafka.Image;

        Assert.Multiple(() =>
        {
            Assert.That(image.Version, Is.EqualTo(LibrdkafkaImage.Required.ToString(3)), "the librdkafka.redist build of Confluent.Kafka's version");
            Assert.That(Library.VersionString, Is.EqualTo(image.Version), "Confluent.Kafka runs on the same image");
            Assert.That(LibrdkafkaImage.BundledCandidates().Select(c => c.Path), Does.Contain(image.File), "a file of the librdkafka.redist package");
            Assert.That(image.Variant, Is.Not.Empty);
        });
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task Regression_C16_Quickstart_OlderLibrdkafkaFirstOnLdLibraryPath_RunsOnTheBundledBuildAndSaysSo(CancellationToken cancellationToken)
    {
        using var shadow = ShadowingDirectory();
        var quickstart = QuickstartAssembly();

        var (exitCode, output) = await RunAsync(
            ["exec", quickstart, "--messages", "2000"],
            shadow.Path,
            cancellationToken);

        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.Zero, output);
            Assert.That(output, Does.Contain($"librdkafka {LibrdkafkaImage.Required.ToString(3)} loaded from "), output);
            Assert.That(output, Does.Contain("OK: every message arrived once"), output);
            Assert.That(output, Does.Not.Contain("EntryPointNotFoundException"), output);
        });
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Regression_C16_Build_OlderLibrdkafkaLoadedByConfluentKafkaFirst_IsRefusedNamingFileVersionAndFix(CancellationToken cancellationToken)
    {
        using var shadow = ShadowingDirectory();

        var (exitCode, output) = await RunAsync(
            ["exec", typeof(LibrdkafkaChild).Assembly.Location, LibrdkafkaChild.Verb],
            shadow.Path,
            cancellationToken);

        var lines = output.Split('\n');
        var loaded = lines[0].Replace("Confluent.Kafka loaded librdkafka ", string.Empty, StringComparison.Ordinal).Trim();
        Assert.That(lines[1], Does.StartWith("Mapped: " + shadow.Target), "the child let Confluent.Kafka load the shadowing library first: " + output);
        if (Version.TryParse(loaded, out var version) && version >= LibrdkafkaImage.Required)
        {
            Assert.Ignore($"The system librdkafka is {loaded}, not older than {LibrdkafkaImage.Required.ToString(3)}: nothing to refuse.");
        }

        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.EqualTo(LibrdkafkaChild.Refused), output);
            Assert.That(output, Does.Contain($"librdkafka {loaded} loaded from '"), output);
            Assert.That(output, Does.Contain($"loaded from '{shadow.Target}'"), "names the file");
            Assert.That(output, Does.Contain($"older than {LibrdkafkaImage.Required.ToString(3)}"), output);
            Assert.That(output, Does.Contain("Fix: "), output);
        });
    }

    private static ShadowDirectory ShadowingDirectory()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Ignore("The shadowing system librdkafka is a Linux (Debian/Ubuntu librdkafka-dev) case.");
        }

        var system = Environment.GetEnvironmentVariable("KAFKAKIT_TEST_OLD_LIBRDKAFKA") is { Length: > 0 } chosen
            ? chosen
            : SystemLibrdkafka.FirstOrDefault(File.Exists);
        if (system is null)
        {
            Assert.Ignore(
                "No system librdkafka on this machine (looked for " + string.Join(", ", SystemLibrdkafka)
                + "); install Debian's librdkafka-dev to run this test, as CI does, or set KAFKAKIT_TEST_OLD_LIBRDKAFKA to a librdkafka.so.");
        }

        var shadow = new ShadowDirectory(system!);
        File.CreateSymbolicLink(System.IO.Path.Combine(shadow.Path, "librdkafka.so"), system!);
        return shadow;
    }

    private static string QuickstartAssembly()
    {
        var testBin = AppContext.BaseDirectory; // .../tests/KafkaKit.Tests/bin/<Configuration>/net10.0/
        var configuration = new DirectoryInfo(testBin).Parent!.Name;
        var framework = new DirectoryInfo(testBin).Name;
        var root = new DirectoryInfo(testBin);
        while (root is not null && !File.Exists(System.IO.Path.Combine(root.FullName, "KafkaKit.sln")))
        {
            root = root.Parent;
        }

        Assert.That(root, Is.Not.Null, $"no KafkaKit.sln above {testBin}");
        var path = System.IO.Path.Combine(root!.FullName, "samples", "KafkaKit.Samples.Quickstart", "bin", configuration, framework, "KafkaKit.Samples.Quickstart.dll");
        Assert.That(File.Exists(path), Is.True, $"the quickstart is built with the solution: {path}");
        return path;
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string[] arguments, string libraryPath, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo(MemberProcess.DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        var inherited = Environment.GetEnvironmentVariable("LD_LIBRARY_PATH");
        info.Environment["LD_LIBRARY_PATH"] = string.IsNullOrEmpty(inherited) ? libraryPath : libraryPath + ":" + inherited;
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await process.WaitForExitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (process.ExitCode, await stdout + await stderr);
    }

    private sealed class ShadowDirectory(string target) : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("kafkakit-old-librdkafka-").FullName;

        /// <summary>Gets the file the directory's librdkafka.so links to (resolved: as the loader maps it).</summary>
        public string Target { get; } = new FileInfo(target).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? target;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
