using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Confluent.Kafka;

namespace KafkaKit.Cluster.Tool.Tests;

/// <summary>
/// <c>kafkakit-cluster</c> as a process: the first stdout line, the stdin commands, the exit codes and the errors for
/// bad input. Runs the installed tool when <c>KAFKAKIT_CLUSTER_TOOL</c> names one (CI), else the build.
/// </summary>
[TestFixture]
[CancelAfter(90_000)]
public sealed class ClusterToolTests
{
    [Test]
    public async Task Start_BrokersTopicsAndRegistry_FirstLineNamesEndpointsThatServe()
    {
        await using var tool = ToolProcess.Start("--brokers", "2", "--topic", "orders:3", "--topic", "audit", "--schema-registry");

        var endpoints = await tool.ReadEndpointsAsync();

        await TestContext.Out.WriteLineAsync($"{ToolProcess.Description}: {string.Join(" ", endpoints)}");
        Assert.That(endpoints["bootstrap.servers"].Split(','), Has.Length.EqualTo(2).And.All.Match(@"^127\.0\.0\.1:\d+$"));
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = endpoints["bootstrap.servers"] }).Build();
        var metadata = admin.GetMetadata(TimeSpan.FromSeconds(20));
        Assert.That(metadata.Brokers.Select(b => b.BrokerId), Is.EquivalentTo(new[] { 1, 2 }));
        Assert.That(metadata.Topics.ToDictionary(t => t.Topic, t => t.Partitions.Count), Does.Contain(new KeyValuePair<string, int>("orders", 3)).And.Contain(new KeyValuePair<string, int>("audit", 1)));
        using var http = new HttpClient();
        var subjects = await http.GetStringAsync(new Uri(new Uri(endpoints["schema.registry.url"]), "/subjects"));
        Assert.That(subjects, Is.EqualTo("[]"));
        await tool.SendAsync("quit", stream: true, l => l == "ok quitting");
        Assert.That(await tool.WaitForExitAsync(), Is.Zero);
    }

    [Test]
    public async Task Commands_TopicBrokerRtt_AreAppliedAndAnswered()
    {
        await using var tool = ToolProcess.Start("--brokers", "2");
        var servers = (await tool.ReadEndpointsAsync())["bootstrap.servers"];

        await tool.SendAsync("topic late 4", stream: true, l => l == "ok topic late 4 partitions");
        await tool.SendAsync("rtt 2 50", stream: true, l => l == "ok broker 2 rtt 50 ms");
        await tool.SendAsync("broker down 2", stream: true, l => l == "ok broker 2 down");
        await tool.SendAsync("broker up 2", stream: true, l => l == "ok broker 2 up");
        var again = await tool.SendAsync("topic late 4", stream: false, l => l.StartsWith("error:", StringComparison.Ordinal));

        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = servers }).Build();
        Assert.That(admin.GetMetadata("late", TimeSpan.FromSeconds(20)).Topics.Single().Partitions, Has.Count.EqualTo(4));
        Assert.That(again, Does.Contain("late").And.Contain("already exists"));
        var help = await tool.SendAsync("help", stream: true, l => l.Contains("quit", StringComparison.Ordinal));
        Assert.That(tool.Stdout, Has.Some.Contains("broker down <id>"), help);
    }

    [Test]
    public async Task Command_Unknown_ErrorNamesItAndListsTheAllowed_ToolKeepsRunning()
    {
        await using var tool = ToolProcess.Start();
        await tool.ReadEndpointsAsync();

        var error = await tool.SendAsync("brokr down 1", stream: false, l => l.StartsWith("error:", StringComparison.Ordinal));
        var outOfRange = await tool.SendAsync("broker down 7", stream: false, l => l.Contains("'7'", StringComparison.Ordinal));

        Assert.That(error, Is.EqualTo("error: unknown command 'brokr down 1'; allowed: help, broker down <id>, broker up <id>, rtt <id> <ms>, topic <name> <partitions>, quit"));
        Assert.That(outOfRange, Is.EqualTo("error: broker <id>: '7' is not a whole number from 1 to 1."));
        await tool.SendAsync("broker down 1", stream: true, l => l == "ok broker 1 down");
    }

    [Test]
    public async Task Start_BadArguments_ExitsTwoListingEveryProblem()
    {
        await using var tool = ToolProcess.Start("--brokers", "0", "--topic", "bad name:2", "--topic", "t:x", "--port", "9092", "--verbose");

        var exitCode = await tool.WaitForExitAsync();

        Assert.That(exitCode, Is.EqualTo(2));
        Assert.That(tool.Stdout, Is.Empty, "nothing that looks like endpoints");
        Assert.That(tool.Stderr, Has.Some.EqualTo("error: --brokers: '0' is not a whole number from 1 to 32.")
            .And.Some.Contains("invalid topic name 'bad name'")
            .And.Some.Contains("--topic 't:x' partitions: 'x' is not a whole number")
            .And.Some.Contains("--port is not supported").And.Some.Contains("ephemeral")
            .And.Some.Contains("Unknown option '--verbose'; allowed: --brokers, --topic, --schema-registry, --registry-port, --help."));
    }

    [Test]
    public async Task Start_RegistryPortInUse_ExitsOneNamingThePort()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;

        await using var tool = ToolProcess.Start("--registry-port", port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var exitCode = await tool.WaitForExitAsync();

        Assert.That(exitCode, Is.EqualTo(1));
        Assert.That(tool.Stdout, Is.Empty);
        Assert.That(tool.Stderr, Has.Some.Contains($"127.0.0.1:{port}").And.Some.Contains("in use"));
    }

    [TestCase("TERM")]
    [TestCase("INT")]
    public async Task Signal_StopsCleanlyWithExitZero(string signal)
    {
        await using var tool = ToolProcess.Start("--topic", "t");
        await tool.ReadEndpointsAsync();
        tool.CloseStdin(); // as when run in the background with no terminal

        using (var kill = Process.Start("kill", $"-{signal} {tool.Id}"))
        {
            await kill.WaitForExitAsync();
        }

        Assert.That(await tool.WaitForExitAsync(), Is.Zero);
        Assert.That(tool.Stderr, Has.Some.EqualTo("kafkakit-cluster: stopping"));
    }
}
