using System.Globalization;

namespace KafkaKit.Soak;

/// <summary>What a soak run does and the bounds it is held to.</summary>
public sealed class SoakOptions
{
    /// <summary>The command-line usage text.</summary>
    public const string Usage = """
        Usage: KafkaKit.Soak [--minutes N] [--bootstrap-servers host:port[,host:port]] [--rate N] [--partitions N]
                             [--sample-seconds N] [--warmup-seconds N] [--json FILE] [--verbose]
          --minutes            how long the load and the churn run, > 0 (default 10; fractions allowed); runs shorter
                               than about 75 s fail the churn and growth checks (too few membership changes and
                               samples): the shortest passing form is
                               --minutes 1.25 --rate 500 --sample-seconds 2 --warmup-seconds 25
          --bootstrap-servers  a real Kafka cluster; without it an embedded cluster (3 brokers) runs in a child process
          --rate               steady produce rate in messages/s, a whole number >= 1; bursts come on top (default 1000)
          --partitions         partitions of the soak topic, a whole number >= 1 (default 6)
          --sample-seconds     time between two samples, > 0 (default 5)
          --warmup-seconds     samples before this are not compared, > 0 (default 20 % of the run, at least 30 s)
          --json               also write the result (samples, counts, checks) to FILE as JSON
          --verbose            print KafkaKit's warnings as they happen (errors are always printed)
        Exit code 0 when every check passed, 1 when one failed, 2 for bad arguments.
        """;

    /// <summary>Gets or sets how long the load and the membership churn run. Default: 10 minutes.</summary>
    public TimeSpan Duration { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Gets or sets the time between two samples. Default: 5 s.</summary>
    public TimeSpan SampleInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Gets or sets the warm-up: samples taken before it are not compared (JIT, thread-pool growth, librdkafka buffers and
    /// the embedded cluster's log filling up). Default (<see langword="null"/>): 20 % of <see cref="Duration"/>, at least 30 s.
    /// </summary>
    public TimeSpan? Warmup { get; set; }

    /// <summary>Gets the warm-up in effect.</summary>
    public TimeSpan EffectiveWarmup => Warmup ?? TimeSpan.FromTicks(Math.Max(TimeSpan.FromSeconds(30).Ticks, Duration.Ticks / 5));

    /// <summary>Gets or sets a real cluster's bootstrap servers; <see langword="null"/> runs an embedded 3-broker cluster in a child process.</summary>
    public string? BootstrapServers { get; set; }

    /// <summary>Gets or sets the steady produce rate in messages per second. Default: 1000.</summary>
    public int Rate { get; set; } = 1000;

    /// <summary>Gets or sets the partitions of the soak topic. Default: 6.</summary>
    public int Partitions { get; set; } = 6;

    /// <summary>Gets or sets the producer's queue limit (<c>queue.buffering.max.messages</c>), small so bursts fill it. Default: 1000.</summary>
    public int QueueLimit { get; set; } = 1000;

    /// <summary>Gets or sets the time between two bursts; the first comes after half of it. Default: 30 s.</summary>
    public TimeSpan BurstInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Gets the messages of one burst, enqueued back to back: five times the queue limit.</summary>
    public int BurstSize => QueueLimit * 5;

    /// <summary>Gets or sets the size of a message value in bytes (the key is the sequence number). Default: 100.</summary>
    public int ValueBytes { get; set; } = 100;

    /// <summary>
    /// Gets or sets how long a group consumes steadily between two membership changes (after its last rebalance
    /// settled). Default: 10 s: on the embedded cluster each rebalance takes ~5 s (a join often two), during which an eager
    /// group consumes nothing; a shorter pause leaves the eager group a growing backlog.
    /// </summary>
    public TimeSpan ChurnPause { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets or sets whether KafkaKit's warnings are printed as they happen.</summary>
    public bool Verbose { get; set; }

    /// <summary>Gets or sets the file the result is written to as JSON, or <see langword="null"/>.</summary>
    public string? JsonPath { get; set; }

    /// <summary>Gets the growth bounds.</summary>
    public SoakBounds Bounds { get; init; } = new();

    /// <summary>Parses command-line arguments; writes the problem and the usage to <paramref name="error"/> and returns null when they are invalid.</summary>
    /// <param name="args">The arguments.</param>
    /// <param name="error">Where problems go.</param>
    /// <returns>The options, or <see langword="null"/>.</returns>
    public static SoakOptions? Parse(IReadOnlyList<string> args, TextWriter error)
    {
        var options = new SoakOptions();
        for (var i = 0; i < args.Count; i++)
        {
            if (args[i] == "--verbose")
            {
                options.Verbose = true;
                continue;
            }

            var name = args[i];
            var value = i + 1 < args.Count ? args[++i] : null;
            var (ok, allowed) = name switch
            {
                "--minutes" => (Positive(value, m => options.Duration = TimeSpan.FromMinutes(m)), "a number > 0"),
                "--bootstrap-servers" => (Text(value, v => options.BootstrapServers = v), "host:port[,host:port]"),
                "--rate" => (Whole(value, r => options.Rate = r), "a whole number >= 1"),
                "--partitions" => (Whole(value, p => options.Partitions = p), "a whole number >= 1"),
                "--sample-seconds" => (Positive(value, s => options.SampleInterval = TimeSpan.FromSeconds(s)), "a number > 0"),
                "--warmup-seconds" => (Positive(value, s => options.Warmup = TimeSpan.FromSeconds(s)), "a number > 0"),
                "--json" => (Text(value, v => options.JsonPath = v), "a file path"),
                _ => (false, null),
            };
            if (!ok)
            {
                error.WriteLine(allowed is null
                    ? $"Unknown argument '{name}'."
                    : $"Invalid {name} '{value ?? "(missing)"}': it must be {allowed}.");
                error.WriteLine(Usage);
                return null;
            }
        }

        return options;
    }

    private static bool Positive(string? text, Action<double> set)
    {
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || value <= 0)
        {
            return false;
        }

        set(value);
        return true;
    }

    private static bool Whole(string? text, Action<int> set)
    {
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value < 1)
        {
            return false;
        }

        set(value);
        return true;
    }

    private static bool Text(string? text, Action<string> set)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        set(text);
        return true;
    }
}

/// <summary>
/// How much each process metric may grow between the start and the end of the steady state, and how far handles and
/// threads may stay above the pre-start baseline once everything is disposed. See docs/reliability.md ("Soak") for how
/// the defaults were chosen.
/// </summary>
public sealed class SoakBounds
{
    /// <summary>Gets or sets the managed heap growth bound (after a full collection, less the run's ledgers), in bytes. Default: 5 MB.</summary>
    public long ManagedHeapBytes { get; set; } = 5_000_000;

    /// <summary>Gets or sets the working set growth bound, in bytes. Default: 50 MB.</summary>
    public long WorkingSetBytes { get; set; } = 50_000_000;

    /// <summary>Gets or sets the handle (open file descriptor on Linux) growth bound. Default: 50.</summary>
    public int Handles { get; set; } = 50;

    /// <summary>Gets or sets the thread growth bound. Default: 20.</summary>
    public int Threads { get; set; } = 20;

    /// <summary>Gets or sets how many handles may stay open above the pre-start baseline after everything is disposed. Default: 10.</summary>
    public int HandlesAfterTeardown { get; set; } = 10;

    /// <summary>Gets or sets how many threads (outside the .NET thread pool) may stay above the pre-start baseline after everything is disposed. Default: 5.</summary>
    public int ThreadsAfterTeardown { get; set; } = 5;
}
