using System.Globalization;

namespace KafkaKit.Cluster.Tool;

/// <summary>The tool's command line, parsed and validated: every problem is reported at once.</summary>
internal sealed class ToolOptions
{
    internal const int MaxBrokers = 32;

    internal const string Usage = """
        Usage: kafkakit-cluster [options]

        Starts a local Kafka cluster (librdkafka's mock brokers on 127.0.0.1) and prints, as the first line on stdout:
          bootstrap.servers=127.0.0.1:PORT[,...] [schema.registry.url=http://127.0.0.1:PORT]
        then reads commands from stdin (type 'help') until 'quit', Ctrl+C or SIGTERM.

        Options:
          --brokers N               number of brokers, 1 to 32 (default 1); broker ids are 1 to N
          --topic NAME[:PARTITIONS] create a topic (default 1 partition); repeatable
          --schema-registry         also start the embedded Schema Registry
          --registry-port PORT      the registry's port, 1 to 65535 (implies --schema-registry; default: ephemeral)
          -h, --help                show this help

        Broker ports are always ephemeral: the mock brokers bind a port the kernel chooses (librdkafka offers no way to
        choose it), so read them from the first line.
        """;

    private ToolOptions()
    {
    }

    /// <summary>Gets the number of brokers.</summary>
    public int Brokers { get; private set; } = 1;

    /// <summary>Gets the topics to create, in command-line order.</summary>
    public List<(string Name, int Partitions)> Topics { get; } = [];

    /// <summary>Gets a value indicating whether the schema registry starts.</summary>
    public bool SchemaRegistry { get; private set; }

    /// <summary>Gets the registry's port, 0 for an ephemeral one.</summary>
    public int RegistryPort { get; private set; }

    /// <summary>Gets a value indicating whether help was asked for.</summary>
    public bool Help { get; private set; }

    /// <summary>Gets every problem found in the command line; empty when it is valid.</summary>
    public List<string> Problems { get; } = [];

    /// <summary>Parses the command line.</summary>
    /// <param name="args">The arguments.</param>
    /// <returns>The options, with <see cref="Problems"/> listing what is wrong.</returns>
    public static ToolOptions Parse(IReadOnlyList<string> args)
    {
        var options = new ToolOptions();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            string? Value()
            {
                if (i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
                {
                    return args[++i];
                }

                options.Problems.Add($"{arg} needs a value.");
                return null;
            }

            switch (arg)
            {
                case "-h" or "--help":
                    options.Help = true;
                    break;
                case "--brokers":
                    if (Value() is { } brokers)
                    {
                        options.Brokers = ParseInt(brokers, 1, MaxBrokers, "--brokers", options.Problems) ?? options.Brokers;
                    }

                    break;
                case "--topic":
                    if (Value() is { } topic && ParseTopic(topic, "--topic", options.Problems) is { } parsed)
                    {
                        options.Topics.Add(parsed);
                    }

                    break;
                case "--schema-registry":
                    options.SchemaRegistry = true;
                    break;
                case "--registry-port":
                    if (Value() is { } port)
                    {
                        options.RegistryPort = ParseInt(port, 1, 65535, "--registry-port", options.Problems) ?? 0;
                        options.SchemaRegistry = true;
                    }

                    break;
                case "--port":
                    Value();
                    options.Problems.Add(
                        "--port is not supported: the embedded brokers (librdkafka's mock cluster) always listen on ephemeral ports the kernel chooses; read bootstrap.servers from the first line on stdout.");
                    break;
                default:
                    options.Problems.Add($"Unknown option '{arg}'; allowed: --brokers, --topic, --schema-registry, --registry-port, --help.");
                    break;
            }
        }

        foreach (var duplicate in options.Topics.GroupBy(t => t.Name, StringComparer.Ordinal).Where(g => g.Count() > 1))
        {
            options.Problems.Add($"Topic '{duplicate.Key}' is given more than once.");
        }

        return options;
    }

    /// <summary>Parses <c>NAME[:PARTITIONS]</c>.</summary>
    /// <param name="value">The text.</param>
    /// <param name="what">Where it comes from, for messages.</param>
    /// <param name="problems">Where problems go.</param>
    /// <returns>The topic, or null when invalid.</returns>
    public static (string Name, int Partitions)? ParseTopic(string value, string what, List<string> problems)
    {
        var colon = value.LastIndexOf(':');
        var name = colon < 0 ? value : value[..colon];
        var partitions = colon < 0 ? 1 : ParseInt(value[(colon + 1)..], 1, 10_000, $"{what} '{value}' partitions", problems);
        var nameOk = CheckTopicName(name, what, problems);
        return nameOk && partitions is { } p ? (name, p) : null;
    }

    /// <summary>Checks a topic name against Kafka's rules (1 to 249 of <c>[a-zA-Z0-9._-]</c>, not "." or "..").</summary>
    /// <param name="name">The name.</param>
    /// <param name="what">Where it comes from, for messages.</param>
    /// <param name="problems">Where problems go.</param>
    /// <returns>Whether the name is valid.</returns>
    public static bool CheckTopicName(string name, string what, List<string> problems)
    {
        if (name.Length is 0 or > 249 || name is "." or ".." || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
        {
            problems.Add($"{what}: invalid topic name '{name}'; allowed: 1 to 249 characters of a-z, A-Z, 0-9, '.', '_', '-' (not '.' or '..').");
            return false;
        }

        return true;
    }

    /// <summary>Parses an integer in a range.</summary>
    /// <param name="value">The text.</param>
    /// <param name="min">The smallest allowed value.</param>
    /// <param name="max">The largest allowed value.</param>
    /// <param name="what">What the value is, for messages.</param>
    /// <param name="problems">Where problems go.</param>
    /// <returns>The value, or null when invalid.</returns>
    public static int? ParseInt(string value, int min, int max, string what, List<string> problems)
    {
        if (int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max)
        {
            return n;
        }

        problems.Add(string.Create(CultureInfo.InvariantCulture, $"{what}: '{value}' is not a whole number from {min} to {max}."));
        return null;
    }
}
