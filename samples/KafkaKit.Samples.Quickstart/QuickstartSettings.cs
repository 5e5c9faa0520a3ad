using System.Globalization;

namespace KafkaKit.Samples.Quickstart;

/// <summary>Command-line settings.</summary>
internal sealed record QuickstartSettings(string? BootstrapServers, int Messages, int Partitions, bool Verbose, bool Avro = false, string? SchemaRegistryUrl = null)
{
    private const string Usage = """
        Usage: KafkaKit.Samples.Quickstart [--bootstrap-servers host:port[,host:port]] [--messages N] [--partitions N] [--format json|avro] [--schema-registry-url URL] [--verbose]
          --bootstrap-servers  a real Kafka cluster; without it an embedded cluster runs in this process
          --messages           how many messages to produce and consume (default 100000)
          --partitions         partitions of the quickstart topic (default 6)
          --format             value format: json (default: UTF-8 text values) or avro (Confluent Schema Registry framing)
          --schema-registry-url  a real schema registry for --format avro; without it an embedded registry runs in this process
          --verbose            show KafkaKit's information logs (assignments, commits, stop steps)
        """;

    public static QuickstartSettings? Parse(string[] args)
    {
        string? servers = null;
        var messages = 100_000;
        var partitions = 6;
        var verbose = false;
        var avro = false;
        string? registryUrl = null;
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
                case "--format" when i + 1 < args.Length && args[i + 1] is "json" or "avro":
                    avro = args[++i] == "avro";
                    break;
                case "--schema-registry-url" when i + 1 < args.Length:
                    registryUrl = args[++i];
                    break;
                case "--verbose":
                    verbose = true;
                    break;
                default:
                    Console.Error.WriteLine(Problem(args, i));
                    Console.Error.WriteLine(Usage);
                    return null;
            }
        }

        return new QuickstartSettings(servers, messages, partitions, verbose, avro, registryUrl);
    }

    /// <summary>What is wrong with <c>args[i]</c>: a known option's value (named, with what is allowed), a missing value, or an unknown argument.</summary>
    private static string Problem(string[] args, int i)
    {
        var allowed = args[i] switch
        {
            "--messages" or "--partitions" => "a whole number from 1 to 2147483647",
            "--format" => "json or avro",
            "--bootstrap-servers" => "host:port[,host:port]",
            "--schema-registry-url" => "a URL",
            _ => null,
        };
        return allowed is null ? $"Unknown argument '{args[i]}'."
            : i + 1 < args.Length ? $"'{args[i + 1]}' is not a valid value for {args[i]}: use {allowed}."
            : $"{args[i]} needs a value: {allowed}.";
    }
}
