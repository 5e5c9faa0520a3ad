using System.Globalization;
using Confluent.Kafka;
using KafkaKit.Testing;

namespace KafkaKit.Cluster.Tool;

/// <summary>The outcome of one stdin command: a reply for stdout, or an error for stderr, and whether to stop.</summary>
/// <param name="Reply">The reply line, or null.</param>
/// <param name="Error">The error line, or null.</param>
/// <param name="Quit">Whether the tool stops.</param>
internal readonly record struct CommandResult(string? Reply, string? Error, bool Quit = false);

/// <summary>Runs the commands read on stdin against the cluster.</summary>
/// <param name="cluster">The running cluster.</param>
internal sealed class Commands(EmbeddedKafkaCluster cluster)
{
    internal const string Allowed = "help, broker down <id>, broker up <id>, rtt <id> <ms>, topic <name> <partitions>, quit";

    internal const string Help = """
        ok commands:
          broker down <id>              take broker <id> down: it closes its connections and refuses new ones
          broker up <id>                bring broker <id> back up
          rtt <id> <ms>                 delay every response of broker <id> by <ms> ms (0 restores immediate responses)
          topic <name> <partitions>     create a topic
          help                          this list
          quit                          stop the cluster and exit (also Ctrl+C or SIGTERM)
        """;

    /// <summary>Runs one line.</summary>
    /// <param name="line">The line as typed.</param>
    /// <returns>What to print and whether to stop.</returns>
    public CommandResult Execute(string line)
    {
        var words = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        var problems = new List<string>();
        switch (words)
        {
            case []:
                return default;
            case ["help"]:
                return new(Help.TrimEnd(), null);
            case ["quit"]:
                return new("ok quitting", null, Quit: true);
            case ["broker", var state, var id] when state is "down" or "up":
                if (ParseBroker(id, problems) is { } broker)
                {
                    if (state == "down")
                    {
                        cluster.SetBrokerDown(broker);
                    }
                    else
                    {
                        cluster.SetBrokerUp(broker);
                    }

                    return new(string.Create(CultureInfo.InvariantCulture, $"ok broker {broker} {state}"), null);
                }

                break;
            case ["rtt", var id, var ms]:
                var rttBroker = ParseBroker(id, problems);
                var rtt = ToolOptions.ParseInt(ms, 0, 600_000, "rtt <ms>", problems);
                if (rttBroker is { } b && rtt is { } r)
                {
                    cluster.SetBrokerRoundTripTime(b, TimeSpan.FromMilliseconds(r));
                    return new(string.Create(CultureInfo.InvariantCulture, $"ok broker {b} rtt {r} ms"), null);
                }

                break;
            case ["topic", var name, var count]:
                if (ToolOptions.ParseTopic($"{name}:{count}", "topic", problems) is { } topic)
                {
                    try
                    {
                        cluster.CreateTopic(topic.Name, topic.Partitions);
                    }
                    catch (KafkaException e)
                    {
                        return new(null, $"error: {e.Message}");
                    }

                    return new(string.Create(CultureInfo.InvariantCulture, $"ok topic {topic.Name} {topic.Partitions} partitions"), null);
                }

                break;
            default:
                return new(null, $"error: unknown command '{line.Trim()}'; allowed: {Allowed}");
        }

        return new(null, "error: " + string.Join(" ", problems));
    }

    private int? ParseBroker(string id, List<string> problems) =>
        ToolOptions.ParseInt(id, 1, cluster.BrokerCount, "broker <id>", problems);
}
