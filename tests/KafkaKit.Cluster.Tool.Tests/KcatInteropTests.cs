using System.Collections.Concurrent;
using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Producing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Cluster.Tool.Tests;

/// <summary>
/// Another language's client on the tool's cluster: kcat (Debian's <c>kcat</c>, C over the system librdkafka) reads
/// what KafkaKit produced and KafkaKit reads what kcat produced. Reported skipped, with the reason, without kcat.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class KcatInteropTests
{
    private const int Count = 20;

    [Test]
    public async Task Kcat_ReadsWhatKafkaKitProduced_KafkaKitReadsWhatKcatProduced()
    {
        var kcat = FindOnPath("kcat");
        if (kcat is null)
        {
            Assert.Ignore("kcat test skipped: no kcat on PATH (install Debian's kcat package; .ci/run installs it with apt-get when it can).");
        }

        await using var tool = ToolProcess.Start("--topic", "from-kafkakit:2", "--topic", "from-kcat:2");
        var servers = (await tool.ReadEndpointsAsync())["bootstrap.servers"];
        await TestContext.Out.WriteLineAsync($"{ToolProcess.Description}, {kcat}, bootstrap.servers={servers}");

        // KafkaKit -> kcat.
        var sent = Enumerable.Range(0, Count).Select(i => $"k{i}=v{i}").ToList();
        await using (var producer = new KafkaProducerBuilder<string, string>("to-kcat", new KafkaProducerOptions { BootstrapServers = servers }).Build())
        {
            foreach (var pair in sent)
            {
                var (key, value) = (pair.Split('=')[0], pair.Split('=')[1]);
                await producer.ProduceAsync("from-kafkakit", new Message<string, string> { Key = key, Value = value });
            }
        }

        var (exit, read, errors) = await RunAsync(kcat, null, "-C", "-b", servers, "-t", "from-kafkakit", "-o", "beginning", "-c", $"{Count}", "-q", "-f", "%k=%s\\n");
        Assert.That(exit, Is.Zero, errors);
        Assert.That(read.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EquivalentTo(sent), errors);

        // kcat -> KafkaKit.
        var fromKcat = Enumerable.Range(0, Count).Select(i => $"c{i}:w{i}").ToList();
        (exit, _, errors) = await RunAsync(kcat, string.Join('\n', fromKcat) + "\n", "-P", "-b", servers, "-t", "from-kcat", "-K", ":");
        Assert.That(exit, Is.Zero, errors);

        var received = new ConcurrentBag<string>();
        var options = new KafkaConsumerOptions
        {
            BootstrapServers = servers,
            GroupId = "from-kcat-readers",
            Topics = { "from-kcat" },
            Config = { ["session.timeout.ms"] = "6000", ["heartbeat.interval.ms"] = "500" },
        };
        await using var consumer = new KafkaConsumerBuilder<string, string>("from-kcat", options)
            .SetHandler((r, _) =>
            {
                received.Add($"{r.Message.Key}:{r.Message.Value}");
                return ValueTask.CompletedTask;
            })
            .Build();
        await consumer.StartAsync();
        await Wait.ForAsync(() => received.Count >= Count, TimeSpan.FromSeconds(60), () => $"KafkaKit reads kcat's {Count} messages (has {received.Count})");
        Assert.That(received, Is.EquivalentTo(fromKcat));
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, name))
            .FirstOrDefault(File.Exists);

    private static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string file, string? stdin, params string[] arguments)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
        }

        process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{file} {string.Join(' ', arguments)} did not finish in 60 s; stderr: {await stderr}");
        }

        return (process.ExitCode, await stdout, await stderr);
    }
}
