using System.Diagnostics;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using KafkaKit.Benchmarks;

// dotnet run -c Release --project benchmarks/KafkaKit.Benchmarks -- [--short] [BenchmarkDotNet arguments]
//   --short    the CI job (in process, 1 warm-up + 3 iterations); without it the full job.
//   anything else goes to BenchmarkSwitcher, e.g. --filter *Produce*, --list flat. Without --filter every benchmark runs,
//   except, in the short job, those of the Long category (minutes per case): name them with --filter to run them.
// Exit code: 0 when every selected benchmark produced results; 1 when one failed or had critical validation errors;
// 2 when the filter selected nothing.
var shortRun = args.Contains("--short", StringComparer.OrdinalIgnoreCase);
var switcherArgs = args.Where(a => !string.Equals(a, "--short", StringComparison.OrdinalIgnoreCase)).ToList();
string[] informational = ["--list", "--help", "-h", "-?", "--info", "--version"];
var informationalOnly = switcherArgs.Any(a => informational.Contains(a, StringComparer.OrdinalIgnoreCase));
var allByDefault = !switcherArgs.Any(a => a is "--filter" or "-f" || a.StartsWith("--filter=", StringComparison.Ordinal));
if (!informationalOnly && allByDefault)
{
    switcherArgs.AddRange(["--filter", "*"]); // never prompt: CI has no standard input
}

var stopwatch = Stopwatch.StartNew();
var summaries = BenchmarkSwitcher.FromAssembly(typeof(BenchmarkConfig).Assembly)
    .Run([.. switcherArgs], BenchmarkConfig.Create(shortRun, skipLong: shortRun && allByDefault))
    .ToArray();
stopwatch.Stop();
if (informationalOnly)
{
    return 0;
}

var logger = ConsoleLogger.Default;
logger.WriteLine();
logger.WriteLineHeader($"// * KafkaKit vs Confluent.Kafka ({(shortRun ? "short" : "full")} job): {summaries.Length} summaries, total time {stopwatch.Elapsed:hh\\:mm\\:ss} *");
foreach (var summary in summaries)
{
    logger.WriteLine();
    logger.WriteLineHeader($"// {summary.Title}");
    MarkdownExporter.Console.ExportToLog(summary, logger);
}

var failures = summaries.SelectMany(Failures).ToList();
if (summaries.Length == 0 || summaries.All(s => s.BenchmarksCases.Length == 0))
{
    logger.WriteLineError("No benchmark ran: check --filter.");
    return 2;
}

foreach (var failure in failures)
{
    logger.WriteLineError("FAILED: " + failure);
}

return failures.Count == 0 ? 0 : 1;

static IEnumerable<string> Failures(Summary summary)
{
    if (summary.HasCriticalValidationErrors)
    {
        foreach (var error in summary.ValidationErrors.Where(e => e.IsCritical))
        {
            yield return $"{summary.Title}: validation: {error.Message}";
        }
    }

    foreach (var benchmarkCase in summary.BenchmarksCases)
    {
        var report = summary[benchmarkCase];
        if (report is null || !report.Success || report.ResultStatistics is null)
        {
            yield return $"{benchmarkCase.DisplayInfo}: no result (it threw or did not run; see its log above)";
        }
    }
}
