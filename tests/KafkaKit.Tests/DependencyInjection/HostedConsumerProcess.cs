using System.Collections.Concurrent;
using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Tests.Consuming;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Tests.DependencyInjection;

/// <summary>
/// A generic host with one KafkaKit consumer, in a process of its own, so a test can see what the process does when the
/// consumer faults: whether the host stops by itself and which exit code the process ends with (an in-process test
/// cannot: the exit code is the test runner's).
/// </summary>
/// <remarks>
/// The process is this test assembly run with <see cref="Verb"/> (see <c>Program.Main</c>). The consumer
/// <c>orders-worker</c> (group <c>billing</c>, <c>OnError = Stop</c>, one retry, commits every minute so that only its stop
/// commits) reads a topic of the test process's embedded cluster; its handler fails on the value <c>poison</c>. The process
/// writes one line per event to its standard output: <c>handled {value}</c>, <c>stopping</c> when
/// <c>ApplicationStopping</c> fires, and <c>log {Level} {EventId} {Message}</c> for every log line. It ends when the host
/// stops, or when its standard input closes (the test process is gone).
/// </remarks>
internal sealed class HostedConsumerProcess : IAsyncDisposable
{
    /// <summary>The first argument that makes the test assembly run this host instead of returning.</summary>
    public const string Verb = "hosted-consumer";

    public const string ConsumerName = "orders-worker";
    public const string Group = "billing";

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();

    private HostedConsumerProcess(Process process) => _process = process;

    /// <summary>Gets the lines the process wrote (standard output and error).</summary>
    public IReadOnlyCollection<string> Lines => _lines;

    /// <summary>Gets the process's exit code (once it has exited).</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>Starts the host process; with <paramref name="share"/> it runs the share consumer of <see cref="Sharing.ShareConsumerFaultTests"/> instead.</summary>
    public static HostedConsumerProcess Start(string bootstrapServers, string topic, bool share = false)
    {
        var info = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])["exec", typeof(HostedConsumerProcess).Assembly.Location, Verb, bootstrapServers, topic, share ? "share" : "consumer"])
        {
            info.ArgumentList.Add(argument);
        }

        var process = new Process { StartInfo = info };
        var host = new HostedConsumerProcess(process);
        process.OutputDataReceived += (_, e) => host.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => host.OnLine(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return host;
    }

    /// <summary>Waits until the process has exited and its output is read to the end, at most <paramref name="timeout"/>.</summary>
    /// <returns>Whether it exited in time.</returns>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync();
        _process.Dispose();
    }

    /// <summary>The process's main: runs the host until it stops.</summary>
    /// <param name="args">bootstrap servers, topic, and <c>share</c> (a share consumer) or <c>consumer</c>.</param>
    /// <returns><see cref="Environment.ExitCode"/> after the host stopped: what a <c>Main</c> returning void or Task exits with.</returns>
    internal static async Task<int> RunAsync(string[] args)
    {
        var (bootstrapServers, topic) = (args[0], args[1]);
        var output = TextWriter.Synchronized(Console.Out);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, EnvironmentName = Environments.Production });
        builder.Logging.ClearProviders().SetMinimumLevel(LogLevel.Information).AddProvider(new LineLoggerProvider(output));
        builder.Services.AddSingleton(output);
        if (args is [_, _, "share"])
        {
            Sharing.ShareConsumerFaultTests.AddFaultingShareConsumer(builder.Services, bootstrapServers, topic);
        }
        else
        {
            AddPoisonConsumer(builder.Services, bootstrapServers, topic);
        }

        using var host = builder.Build();
        var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
        lifetime.ApplicationStopping.Register(() => output.WriteLine("stopping"));
        _ = Task.Run(async () =>
        {
            while (await Console.In.ReadLineAsync() is not null)
            {
            }

            lifetime.StopApplication();
        });
        await host.RunAsync();
        return Environment.ExitCode;
    }

    private static void AddPoisonConsumer(IServiceCollection services, string bootstrapServers, string topic) =>
        services.AddKafkaKit(o =>
            {
                var consumer = ConsumerTestKit.Options(bootstrapServers, Group, topic);
                consumer.CommitInterval = TimeSpan.FromMinutes(1);
                consumer.Retry.MaxRetryAttempts = 1;
                consumer.Retry.BaseDelay = TimeSpan.FromMilliseconds(10);
                o.Consumers[ConsumerName] = consumer;
            })
            .AddConsumer<string, string, PoisonHandler>(ConsumerName);

    private static string DotnetHost()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host))
        {
            return host;
        }

        return Environment.ProcessPath is { } path && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path : "dotnet";
    }

    private void OnLine(string? line)
    {
        if (line is not null)
        {
            _lines.Enqueue(line);
        }
    }

    public sealed class PoisonHandler(TextWriter output) : IKafkaMessageHandler<string, string>
    {
        public ValueTask HandleAsync(ConsumeResult<string, string> result, CancellationToken cancellationToken)
        {
            if (result.Message.Value == "poison")
            {
                throw new InvalidOperationException("cannot handle poison");
            }

            output.WriteLine("handled " + result.Message.Value);
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>Writes each log line as one line: <c>log {Level} {EventId} {Message}</c>.</summary>
    private sealed class LineLoggerProvider(TextWriter output) : ILoggerProvider, ILogger
    {
        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            output.WriteLine($"log {logLevel} {eventId.Id} {formatter(state, exception).ReplaceLineEndings(" ")}");

        public void Dispose()
        {
        }
    }
}
