using System.Collections.Concurrent;
using System.Diagnostics;
using KafkaKit.Consuming;

namespace KafkaKit.Tests.Reliability;

/// <summary>
/// A KafkaKit consumer-group member in a process of its own, so a scenario can crash it for real: killing the process
/// ends its handlers mid-message, commits nothing handled since its last periodic commit and never leaves the group
/// (the group evicts it after session.timeout.ms). In-process, a KafkaKit consumer cannot crash: its stop, also from
/// <c>DisposeAsync</c>, is graceful by design.
/// </summary>
/// <remarks>
/// The process is this test assembly run with <see cref="Verb"/> (see <c>Program.Main</c>); it joins the embedded
/// cluster of the test process over loopback TCP. It writes one line per event to its standard output:
/// <c>handled {key}</c> inside the handler before it returns (so a committed offset implies the line was written),
/// <c>assigned {partitions}</c>, and <c>fault {message}</c> if the consumer stops on an error. It ends when its
/// standard input closes (the test process is gone) or when killed.
/// </remarks>
internal sealed partial class MemberProcess : IAsyncDisposable
{
    /// <summary>The first argument that makes the test assembly run a member instead of returning.</summary>
    public const string Verb = "reliability-member";

    private static readonly TimeSpan FaultCheckInterval = TimeSpan.FromMilliseconds(100);

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _faults = new();
    private readonly ConcurrentQueue<string> _errors = new();
    private readonly TaskCompletionSource<string> _hung = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Action<string, long>? _onCommitted;
    private long _handled;
    private int _assignments;

    private MemberProcess(string name, Process process)
    {
        Name = name;
        _process = process;
    }

    public string Name { get; }

    /// <summary>Gets how many handler calls the member completed.</summary>
    public long Handled => Interlocked.Read(ref _handled);

    /// <summary>Gets how many assignments the member received.</summary>
    public int Assignments => Volatile.Read(ref _assignments);

    /// <summary>Gets the faults the member reported.</summary>
    public IReadOnlyCollection<string> Faults => _faults;

    /// <summary>Gets whether the process was killed (or exited).</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>Starts a member process.</summary>
    /// <param name="name">The member's client id.</param>
    /// <param name="bootstrapServers">The embedded cluster.</param>
    /// <param name="group">The consumer group.</param>
    /// <param name="topic">The topic.</param>
    /// <param name="strategy">The assignment strategy.</param>
    /// <param name="onHandled">Told of every handled message's key, on a thread-pool thread.</param>
    public static MemberProcess Start(string name, string bootstrapServers, string group, string topic, PartitionAssignmentStrategy strategy, Action<string> onHandled) =>
        Start(name, [Verb, name, bootstrapServers, group, topic, strategy.ToString()], onHandled);

    /// <summary>Starts the test assembly as a process with <paramref name="arguments"/> (a verb and its arguments).</summary>
    private static MemberProcess Start(string name, string[] arguments, Action<string> onHandled, Action<string, long>? onCommitted = null)
    {
        var info = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])["exec", typeof(MemberProcess).Assembly.Location, .. arguments])
        {
            info.ArgumentList.Add(argument);
        }

        var process = new Process { StartInfo = info };
        var member = new MemberProcess(name, process) { _onCommitted = onCommitted };
        process.OutputDataReceived += (_, e) => member.OnLine(e.Data, onHandled);
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                member._errors.Enqueue(e.Data);
            }
        };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return member;
    }

    /// <summary>Kills the process (the crash) and waits until it is gone and its output is read to the end.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync();
    }

    /// <summary>Gets the process's error output, for failure messages.</summary>
    public string ErrorOutput => string.Join(Environment.NewLine, _errors);

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process.Dispose();
    }

    /// <summary>The member process's main: runs a KafkaKit consumer until standard input closes.</summary>
    /// <param name="args">name, bootstrap servers, group, topic, assignment strategy.</param>
    /// <returns>The exit code: 0, or 1 when the consumer faulted.</returns>
    internal static async Task<int> RunAsync(string[] args)
    {
        var (name, bootstrapServers, group, topic) = (args[0], args[1], args[2], args[3]);
        var options = Options(bootstrapServers, group, topic, Enum.Parse<PartitionAssignmentStrategy>(args[4]));
        var output = TextWriter.Synchronized(Console.Out);
        await using var consumer = new KafkaConsumerBuilder<string, string>(name, options)
            .SetPartitionsAssignedHandler(partitions =>
            {
                output.WriteLine("assigned " + string.Join(",", partitions.Select(p => p.Partition.Value)));
                return null;
            })
            .SetHandler(async (r, ct) =>
            {
                await SimulatedWorkAsync(ct);
                output.WriteLine("handled " + r.Message.Key);
            })
            .Build();
        await consumer.StartAsync();
        return await RunUntilInputClosesAsync(consumer, output);
    }

    /// <summary>Runs until standard input closes, or reports the consumer's fault and returns 1.</summary>
    private static async Task<int> RunUntilInputClosesAsync(KafkaConsumer<string, string> consumer, TextWriter output)
    {
        var inputClosed = Task.Run(async () =>
        {
            while (await Console.In.ReadLineAsync() is not null)
            {
            }
        });
        using var check = new PeriodicTimer(FaultCheckInterval);
        while (!inputClosed.IsCompleted && await check.WaitForNextTickAsync())
        {
            if (consumer.State == KafkaConsumerState.Faulted)
            {
                output.WriteLine("fault " + consumer.Fault?.Message);
                return 1;
            }
        }

        return 0;
    }

    /// <summary>The options of every member of a churning group, in this process or another.</summary>
    internal static KafkaConsumerOptions Options(string bootstrapServers, string group, string topic, PartitionAssignmentStrategy strategy)
    {
        var options = ReliabilityKit.ConsumerOptions(bootstrapServers, group, topic);
        options.AssignmentStrategy = strategy;
        options.RevokeTimeout = TimeSpan.FromSeconds(2);
        options.ShutdownTimeout = TimeSpan.FromSeconds(15);
        return options;
    }

    /// <summary>A handler's simulated work: 0-2 ms.</summary>
    internal static async ValueTask SimulatedWorkAsync(CancellationToken cancellationToken)
    {
        var delay = Random.Shared.Next(0, 3);
        if (delay > 0)
        {
            await Task.Delay(delay, cancellationToken);
        }
    }

    internal static string DotnetHost()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host))
        {
            return host;
        }

        return Environment.ProcessPath is { } path && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path : "dotnet";
    }

    private void OnLine(string? line, Action<string> onHandled)
    {
        if (line is null)
        {
            return;
        }

        if (line.StartsWith("handled ", StringComparison.Ordinal))
        {
            onHandled(line["handled ".Length..]);
            Interlocked.Increment(ref _handled);
        }
        else if (line.StartsWith("assigned ", StringComparison.Ordinal))
        {
            Interlocked.Increment(ref _assignments);
        }
        else if (line.StartsWith("committed ", StringComparison.Ordinal) && _onCommitted is not null)
        {
            var parts = line.Split(' ');
            _onCommitted(parts[1], long.Parse(parts[2], System.Globalization.CultureInfo.InvariantCulture));
        }
        else if (line.StartsWith("open ", StringComparison.Ordinal))
        {
            _hung.TrySetResult(line["open ".Length..]);
        }
        else if (line.StartsWith("fault ", StringComparison.Ordinal))
        {
            _faults.Enqueue(line);
        }
        else
        {
            _errors.Enqueue(line);
        }
    }
}
