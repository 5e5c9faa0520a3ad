using System.Collections.Concurrent;
using System.Diagnostics;
using KafkaKit.Tests.Support;

namespace KafkaKit.Cluster.Tool.Tests;

/// <summary>
/// A running <c>kafkakit-cluster</c>: the installed tool named by <c>KAFKAKIT_CLUSTER_TOOL</c> (CI installs the packed
/// tool with <c>dotnet tool install --tool-path</c>), else the build beside the tests run through <c>dotnet</c>.
/// Every stdout and stderr line is kept for assertions.
/// </summary>
internal sealed class ToolProcess : IAsyncDisposable
{
    internal static readonly TimeSpan LineTimeout = TimeSpan.FromSeconds(30);

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _stdout = new();
    private readonly ConcurrentQueue<string> _stderr = new();

    private ToolProcess(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) => Keep(_stdout, e.Data);
        process.ErrorDataReceived += (_, e) => Keep(_stderr, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    /// <summary>Gets the tool under test: the installed command, or the build beside the tests.</summary>
    internal static string Description => Environment.GetEnvironmentVariable("KAFKAKIT_CLUSTER_TOOL") is { Length: > 0 } installed
        ? $"installed tool {installed}"
        : $"build {BuiltTool}";

    /// <summary>Gets the process id.</summary>
    public int Id => _process.Id;

    /// <summary>Gets the stdout lines so far.</summary>
    public IReadOnlyList<string> Stdout => [.. _stdout];

    /// <summary>Gets the stderr lines so far.</summary>
    public IReadOnlyList<string> Stderr => [.. _stderr];

    private static string BuiltTool => Path.Combine(AppContext.BaseDirectory, "kafkakit-cluster.dll");

    /// <summary>Starts the tool with <paramref name="arguments"/>.</summary>
    /// <param name="arguments">The command line.</param>
    /// <returns>The running tool.</returns>
    public static ToolProcess Start(params string[] arguments)
    {
        var installed = Environment.GetEnvironmentVariable("KAFKAKIT_CLUSTER_TOOL");
        var info = new ProcessStartInfo(string.IsNullOrEmpty(installed) ? "dotnet" : installed)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (string.IsNullOrEmpty(installed))
        {
            info.ArgumentList.Add(BuiltTool);
        }

        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        return new ToolProcess(Process.Start(info)!);
    }

    /// <summary>Waits for the first stdout line and reads <c>key=value</c> pairs from it.</summary>
    /// <returns>The pairs (bootstrap.servers and, with the registry, schema.registry.url).</returns>
    public async Task<IReadOnlyDictionary<string, string>> ReadEndpointsAsync()
    {
        await Wait.ForAsync(() => !_stdout.IsEmpty || _process.HasExited, LineTimeout, () => $"the first stdout line; stderr: {string.Join(" | ", Stderr)}");
        Assert.That(_stdout, Is.Not.Empty, $"the tool exited before its first line; stderr: {string.Join(" | ", Stderr)}");
        return _stdout.First().Split(' ').Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
    }

    /// <summary>Sends a command line on stdin and waits until <paramref name="stream"/> holds a line that <paramref name="expected"/> accepts.</summary>
    /// <param name="command">The command.</param>
    /// <param name="stream">stdout or stderr.</param>
    /// <param name="expected">The awaited line.</param>
    /// <returns>That line.</returns>
    public async Task<string> SendAsync(string command, bool stream, Func<string, bool> expected)
    {
        var lines = stream ? _stdout : _stderr;
        var before = lines.Count;
        await _process.StandardInput.WriteLineAsync(command);
        await _process.StandardInput.FlushAsync();
        await Wait.ForAsync(() => lines.Skip(before).Any(expected), LineTimeout, () => $"the answer to '{command}'; stdout: {string.Join(" | ", Stdout)}; stderr: {string.Join(" | ", Stderr)}");
        return lines.Skip(before).First(expected);
    }

    /// <summary>Closes stdin.</summary>
    public void CloseStdin() => _process.StandardInput.Close();

    /// <summary>Waits for the process to exit.</summary>
    /// <returns>Its exit code.</returns>
    public async Task<int> WaitForExitAsync()
    {
        using var timeout = new CancellationTokenSource(LineTimeout);
        await _process.WaitForExitAsync(timeout.Token);
        return _process.ExitCode;
    }

    /// <summary>Kills the process if it still runs.</summary>
    /// <returns>A task that completes when it has exited.</returns>
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    private static void Keep(ConcurrentQueue<string> lines, string? line)
    {
        if (line is not null)
        {
            lines.Enqueue(line);
        }
    }
}
