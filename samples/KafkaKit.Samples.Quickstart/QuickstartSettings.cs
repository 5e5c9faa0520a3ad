using System.Globalization;

namespace KafkaKit.Samples.Quickstart;

/// <summary>Command-line settings.</summary>
internal sealed record QuickstartSettings(string? BootstrapServers, int Messages, int Partitions, bool Verbose)
{
    private const string Usage = """
        Usage: KafkaKit.Samples.Quickstart [--bootstrap-servers host:port[,host:port]] [--messages N] [--partitions N] [--verbose]
          --bootstrap-servers  a real Kafka cluster; without it an embedded cluster runs in this process
          --messages           how many messages to produce and consume (default 100000)
          --partitions         partitions of the quickstart topic (default 6)
          --verbose            show KafkaKit's information logs (assignments, commits, stop steps)
        """;

    public static QuickstartSettings? Parse(string[] args)
    {
        string? servers = null;
        var messages = 100_000;
        var partitions = 6;
        var verbose = false;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--bootstrap-servers" when i + 1 < args.Length:
                    servers = args[++i];
                    break;
                case "--messages" when i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0:
                    messages = n;
                    i++;
                    break;
                case "--partitions" when i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var p) && p > 0:
                    partitions = p;
                    i++;
                    break;
                case "--verbose":
                    verbose = true;
                    break;
                default:
                    Console.Error.WriteLine($"Unknown or incomplete argument '{args[i]}'.");
                    Console.Error.WriteLine(Usage);
                    return null;
            }
        }

        return new QuickstartSettings(servers, messages, partitions, verbose);
    }
}
