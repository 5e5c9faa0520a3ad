using System.Runtime.InteropServices;
using System.Threading.Channels;
using Confluent.Kafka;
using KafkaKit.Cluster.Tool;
using KafkaKit.Testing;

// kafkakit-cluster: the embedded cluster (and registry) for any language's clients; see docs/testing.md.
// Exit codes: 0 stopped by quit, Ctrl+C or SIGTERM (or --help); 1 could not start; 2 bad command line.
var options = ToolOptions.Parse(args);
if (options.Help)
{
    Console.Out.WriteLine(ToolOptions.Usage);
    return 0;
}

if (options.Problems.Count > 0)
{
    foreach (var problem in options.Problems)
    {
        Console.Error.WriteLine($"error: {problem}");
    }

    Console.Error.WriteLine("Run 'kafkakit-cluster --help' for the options.");
    return 2;
}

EmbeddedKafkaCluster cluster;
try
{
    cluster = EmbeddedKafkaCluster.Start(options.Brokers);
}
catch (InvalidOperationException e)
{
    Console.Error.WriteLine($"error: could not start the cluster: {e.Message}");
    return 1;
}

await using (cluster)
{
    EmbeddedSchemaRegistry? registry = null;
    try
    {
        foreach (var (name, partitions) in options.Topics)
        {
            cluster.CreateTopic(name, partitions);
        }

        if (options.SchemaRegistry)
        {
            registry = EmbeddedSchemaRegistry.Start(port: options.RegistryPort);
        }
    }
    catch (Exception e) when (e is KafkaException or InvalidOperationException)
    {
        Console.Error.WriteLine($"error: {e.Message}");
        return 1;
    }

    await using (registry)
    {
        Console.Out.WriteLine($"bootstrap.servers={cluster.BootstrapServers}" + (registry is null ? string.Empty : $" schema.registry.url={registry.Url}"));
        Console.Error.WriteLine(
            $"kafkakit-cluster: {cluster.BrokerCount} broker(s), {options.Topics.Count} topic(s){(registry is null ? string.Empty : ", schema registry")}; type 'help' for commands, 'quit' or Ctrl+C to stop.");

        using var stop = new CancellationTokenSource();
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        var lines = ReadStdin();
        var commands = new Commands(cluster);
        var quit = false;
        try
        {
            // At the end of stdin (a script that closes it, or `< /dev/null` in the background) the cluster keeps running
            // until a signal.
            await foreach (var line in lines.ReadAllAsync(stop.Token))
            {
                var result = commands.Execute(line);
                if (result.Reply is not null)
                {
                    Console.Out.WriteLine(result.Reply);
                }

                if (result.Error is not null)
                {
                    Console.Error.WriteLine(result.Error);
                }

                if (result.Quit)
                {
                    quit = true;
                    break;
                }
            }

            if (!quit)
            {
                await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }

        Console.Error.WriteLine("kafkakit-cluster: stopping");

        void Stop(PosixSignalContext context)
        {
            context.Cancel = true; // stop cleanly below instead of the runtime's default termination
            stop.Cancel();
        }
    }
}

return 0;

// Console reads block (even ReadLineAsync): one background thread reads stdin and hands the lines over.
static ChannelReader<string> ReadStdin()
{
    var channel = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    var thread = new Thread(() =>
    {
        while (Console.In.ReadLine() is { } line)
        {
            channel.Writer.TryWrite(line);
        }

        channel.Writer.TryComplete();
    })
    { IsBackground = true, Name = "kafkakit-cluster stdin" };
    thread.Start();
    return channel.Reader;
}
