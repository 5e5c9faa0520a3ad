using System.Diagnostics;
using System.Globalization;
using KafkaKit.Testing;

namespace KafkaKit.Soak;

/// <summary>
/// The soak's embedded cluster (3 brokers) in a child process of its own, so that the soak's samples measure KafkaKit and
/// its librdkafka clients the way they would run against a real cluster, without the brokers' threads, sockets and
/// retained log (~5 MB per partition) in the same process. The child stops when its standard input closes, also when
/// the soak process dies.
/// </summary>
internal sealed class ClusterProcess : IAsyncDisposable
{
    /// <summary>The argument that makes the soak program serve a cluster: <c>--serve-embedded-cluster TOPIC PARTITIONS</c>.</summary>
    public const string ServeArgument = "--serve-embedded-cluster";

    private const string ReadyPrefix = "bootstrap.servers=";
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(30);
    private readonly Process _process;

    private ClusterProcess(Process process, string bootstrapServers)
    {
        _process = process;
        BootstrapServers = bootstrapServers;
    }

    public string BootstrapServers { get; }

    /// <summary>Gets the processor time the cluster's process used so far.</summary>
    public TimeSpan ProcessorTime
    {
        get
        {
            _process.Refresh();
            return _process.TotalProcessorTime;
        }
    }

    /// <summary>Starts the child and waits until its cluster is up with <paramref name="topic"/> created.</summary>
    /// <param name="topic">The topic to create.</param>
    /// <param name="partitions">Its partitions.</param>
    /// <param name="errors">Where the child's standard error goes.</param>
    /// <param name="cancellationToken">Ends the wait (the child is killed).</param>
    /// <returns>The running cluster.</returns>
    /// <exception cref="InvalidOperationException">The child exited before its cluster was up.</exception>
    public static async Task<ClusterProcess> StartAsync(string topic, int partitions, TextWriter errors, CancellationToken cancellationToken)
    {
        var start = SoakProcess.StartInfo([ServeArgument, topic, partitions.ToString(CultureInfo.InvariantCulture)]);
        start.RedirectStandardInput = true;
        var process = new Process { StartInfo = start };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                errors.WriteLine("cluster: " + e.Data);
            }
        };
        process.Start();
        try
        {
            process.BeginErrorReadLine();
            var line = await process.StandardOutput.ReadLineAsync(cancellationToken);
            if (line is null || !line.StartsWith(ReadyPrefix, StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"The embedded cluster's process did not report its bootstrap servers (it wrote '{line}').");
            }

            return new ClusterProcess(process, line[ReadyPrefix.Length..]);
        }
        catch
        {
            process.Kill(entireProcessTree: true);
            process.Dispose();
            throw;
        }
    }

    /// <summary>The child's side: runs the cluster until standard input closes.</summary>
    /// <param name="args">The topic and its partition count.</param>
    /// <returns>The exit code.</returns>
    public static async Task<int> ServeAsync(IReadOnlyList<string> args)
    {
        if (args.Count != 2 || !int.TryParse(args[1], NumberStyles.None, CultureInfo.InvariantCulture, out var partitions) || partitions < 1)
        {
            await Console.Error.WriteLineAsync($"Usage: {ServeArgument} TOPIC PARTITIONS");
            return 2;
        }

        await using var cluster = EmbeddedKafkaCluster.Start(brokers: 3);
        cluster.CreateTopic(args[0], partitions, replicationFactor: 3);
        await Console.Out.WriteLineAsync(ReadyPrefix + cluster.BootstrapServers);
        await Console.Out.FlushAsync();
        await Console.In.ReadToEndAsync(); // until the soak closes the pipe, or dies
        return 0;
    }

    /// <summary>Closes the child's standard input and waits for it to stop its cluster and exit (killing it after 30 s); the wait includes the end of its forwarded standard error.</summary>
    public async ValueTask DisposeAsync()
    {
        _process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(StopTimeout);
        try
        {
            await _process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
        }

        _process.Dispose();
    }
}
