using System.Collections.Concurrent;
using System.Diagnostics;
using KafkaKit.Sharing;
using KafkaKit.Tests.Reliability;

namespace KafkaKit.Tests.Sharing;

/// <summary>
/// A share-group member in a process of its own, so a test can kill it while it holds records: its handler writes
/// <c>locked {value}</c> and then waits forever, so the records it acquired stay locked to it until the kill and then
/// until the broker's record lock expires. It ends when killed or when its standard input closes.
/// </summary>
internal sealed partial class ShareMemberProcess : IAsyncDisposable
{
    /// <summary>The first argument that makes the test assembly run a share member.</summary>
    public const string Verb = "share-member";

    private const int SigStop = 19;

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _locked = new();
    private readonly ConcurrentQueue<string> _other = new();

    private ShareMemberProcess(Process process) => _process = process;

    /// <summary>Gets the values the member's handler received.</summary>
    public IReadOnlyCollection<string> Locked => _locked;

    /// <summary>Gets the process's other output, for failure messages.</summary>
    public string Output => string.Join(Environment.NewLine, _other);

    /// <summary>Starts a member: name, bootstrap servers, share group, topic.</summary>
    public static ShareMemberProcess Start(string name, string bootstrapServers, string group, string topic)
    {
        var info = new ProcessStartInfo(MemberProcess.DotnetHost()) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in (string[])["exec", typeof(ShareMemberProcess).Assembly.Location, Verb, name, bootstrapServers, group, topic])
        {
            info.ArgumentList.Add(argument);
        }

        var member = new ShareMemberProcess(new Process { StartInfo = info });
        member._process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { } line)
            {
                (line.StartsWith("locked ", StringComparison.Ordinal) ? member._locked : member._other).Enqueue(line.StartsWith("locked ", StringComparison.Ordinal) ? line["locked ".Length..] : line);
            }
        };
        member._process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is { } line)
            {
                member._other.Enqueue(line);
            }
        };
        member._process.Start();
        member._process.BeginOutputReadLine();
        member._process.BeginErrorReadLine();
        return member;
    }

    /// <summary>Kills the process (the crash: no release, no close) and waits until it is gone.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync();
    }

    /// <summary>Hangs the process (SIGSTOP): its connections stay open, its handlers and heartbeats stop.</summary>
    public void Freeze() => Assert.That(kill(_process.Id, SigStop), Is.Zero, "SIGSTOP sent");

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process.Dispose();
    }

    /// <summary>The member process's main.</summary>
    internal static async Task<int> RunAsync(string[] args)
    {
        var options = new KafkaShareConsumerOptions { BootstrapServers = args[1], GroupId = args[2], MaxConcurrency = 4 };
        options.Topics.Add(args[3]);
        var output = TextWriter.Synchronized(Console.Out);
        await using var consumer = new KafkaShareConsumerBuilder<string, string>(args[0], options)
            .SetHandler(async (r, ct) =>
            {
                output.WriteLine("locked " + r.Message.Value);
                await Task.Delay(Timeout.Infinite, ct);
            })
            .Build();
        await consumer.StartAsync();
        while (await Console.In.ReadLineAsync() is not null)
        {
        }

        return 0;
    }

    [System.Runtime.InteropServices.LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);
}
