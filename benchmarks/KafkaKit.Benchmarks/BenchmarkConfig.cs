using System.Globalization;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Filters;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace KafkaKit.Benchmarks;

/// <summary>The BenchmarkDotNet configuration of the short (CI) and full jobs.</summary>
internal static class BenchmarkConfig
{
    /// <summary>
    /// The category of benchmarks whose cases take minutes (handlers that wait, delayed retries): the short job leaves
    /// them out unless <c>--filter</c> names them.
    /// </summary>
    public const string Long = "Long";

    /// <summary>Creates the configuration.</summary>
    /// <param name="shortRun">
    /// <see langword="true"/> for the CI smoke job: 1 warm-up and 3 measured iterations, in process (no generated project
    /// to build; librdkafka's native library loads in the host like in any app). <see langword="false"/> for the full job:
    /// 3 warm-ups and 15 iterations in a separate process per benchmark case (BenchmarkDotNet's default toolchain).
    /// </param>
    /// <param name="skipLong">Leaves out the benchmarks of the <see cref="Long"/> category (the CI job without a filter).</param>
    /// <returns>The configuration.</returns>
    public static IConfig Create(bool shortRun, bool skipLong = false)
    {
        // Every invocation is a whole batch (OperationsPerInvoke = messages per batch) with its own flush or wait, so one
        // invocation per iteration; no pilot stage, no unrolling. Iteration setups run outside the measurement.
        var job = (shortRun ? Job.Default.WithId("Short").WithWarmupCount(1).WithIterationCount(3)
                            : Job.Default.WithId("Full").WithWarmupCount(3).WithIterationCount(15))
            .WithLaunchCount(1)
            .WithInvocationCount(1)
            .WithUnrollFactor(1);
        if (shortRun)
        {
            // BenchmarkDotNet's in-process default stops a case after 5 minutes; OrderingBenchmarks' Partition case runs
            // 6 invocations of 10,000 records at ~2.5-6 ms each (about 1 minute per invocation on a loaded machine).
            job = job.WithToolchain(new InProcessEmitToolchain(TimeSpan.FromMinutes(20), logOutput: true));
        }

        var config = ManualConfig.Create(DefaultConfig.Instance);
        if (skipLong)
        {
            config.AddFilter(new SimpleFilter(c => !c.Descriptor.Categories.Contains(Long, StringComparer.OrdinalIgnoreCase)));
        }

        return config
            .AddJob(job)
            .AddDiagnoser(MemoryDiagnoser.Default)
            .AddDiagnoser(new ExceptionDiagnoser(new ExceptionDiagnoserConfig(displayExceptionsIfZeroValue: true)))
            .AddColumn(new ThroughputColumn())
            .HideColumns(Column.Error, Column.Gen1, Column.Gen2)
            .WithSummaryStyle(SummaryStyle.Default.WithCultureInfo(CultureInfo.InvariantCulture));
    }

    /// <summary>Messages per second, from the mean time per message (each benchmark's operation is one message).</summary>
    private sealed class ThroughputColumn : IColumn
    {
        public string Id => nameof(ThroughputColumn);

        public string ColumnName => "Msg/s";

        public bool AlwaysShow => true;

        public ColumnCategory Category => ColumnCategory.Custom;

        public int PriorityInCategory => 0;

        public bool IsNumeric => true;

        public UnitType UnitType => UnitType.Dimensionless;

        public string Legend => "Messages per second: 1 s / Mean (one operation is one message)";

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase)
        {
            var mean = summary[benchmarkCase]?.ResultStatistics?.Mean;
            return mean is > 0 ? (1e9 / mean.Value).ToString("N0", CultureInfo.InvariantCulture) : "NA";
        }

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) => GetValue(summary, benchmarkCase);

        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

        public bool IsAvailable(Summary summary) => true;
    }
}
