using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using KafkaKit.Consuming;
using KafkaKit.Tests.Support;
using PartitionAssignmentStrategy = KafkaKit.Consuming.PartitionAssignmentStrategy;

namespace KafkaKit.Soak;

/// <summary>
/// A soak run: a KafkaKit producer (steady rate plus bursts that fill its queue) and two KafkaKit consumer groups whose
/// membership churns (one eager, one cooperative) run for <see cref="SoakOptions.Duration"/> while the process is
/// sampled; then the run drains, tears everything down and checks that nothing was lost, that the groups committed the
/// end offsets, and that no metric grew beyond its bound.
/// </summary>
public static class SoakRun
{
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(120);
    private static readonly TimeSpan CommitTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan ProbeInterval = TimeSpan.FromMilliseconds(500);

    /// <summary>Runs a soak and returns its result; progress and the summary go to <paramref name="output"/>.</summary>
    /// <param name="options">What to run.</param>
    /// <param name="output">One line per sample and per membership change, then the summary.</param>
    /// <param name="cancellationToken">Ends the run early (the checks then fail).</param>
    /// <returns>The samples, counts and checks.</returns>
    public static async Task<SoakResult> RunAsync(SoakOptions options, TextWriter output, CancellationToken cancellationToken = default)
    {
        output = TextWriter.Synchronized(output);
        var clock = Stopwatch.StartNew();
        var log = new SoakLog(output, options.Verbose, () => clock.Elapsed);
        var runId = Guid.NewGuid().ToString("N")[..8];
        var topic = "soak-" + runId;
        await using var cluster = options.BootstrapServers is null ? await ClusterProcess.StartAsync(topic, options.Partitions, output, cancellationToken) : null;
        var servers = cluster?.BootstrapServers ?? options.BootstrapServers!;
        if (cluster is null)
        {
            await CreateTopicAsync(servers, topic, options.Partitions);
        }

        await output.WriteLineAsync(string.Create(
            CultureInfo.InvariantCulture,
            $"Soak: {options.Duration.TotalMinutes:0.##} min on {(cluster is null ? servers : $"an embedded 3-broker cluster in a child process ({servers})")}, topic {topic} ({options.Partitions} partitions), " +
            $"{options.Rate} msg/s + a burst of {options.BurstSize} every {options.BurstInterval.TotalSeconds:0} s (queue limit {options.QueueLimit}), " +
            $"samples every {options.SampleInterval.TotalSeconds:0.#} s, warm-up {options.EffectiveWarmup.TotalSeconds:0} s."));

        var samples = new List<SoakSample>();
        SoakGroup[] groups =
        [
            new("eager", PartitionAssignmentStrategy.Range, $"soak-eager-{runId}", servers, topic, options.Partitions, log),
            new("cooperative", PartitionAssignmentStrategy.CooperativeSticky, $"soak-cooperative-{runId}", servers, topic, options.Partitions, log),
        ];
        var load = new SoakLoad(options, servers, topic, log);
        var before = Record(samples, Sample("before", clock.Elapsed, null, groups), output);
        var ends = new Dictionary<int, long>();
        var committed = new Dictionary<string, Dictionary<int, long>>();
        try
        {
            foreach (var group in groups)
            {
                await group.StartAsync();
            }

            using (var loadPhase = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                var sampler = SampleAsync(samples, options.SampleInterval, clock, load, groups, output, loadPhase.Token);
                var churn = groups.Select(g => g.ChurnAsync(output, () => clock.Elapsed, options.ChurnPause, loadPhase.Token)).ToArray();
                try
                {
                    await load.RunAsync(options.Duration, cancellationToken);
                }
                finally
                {
                    await loadPhase.CancelAsync();
                    await Task.WhenAll(churn);
                    await sampler;
                }
            }

            // Drain: every outcome known, every message handled by both groups, the end offsets committed.
            await load.FlushAsync(cancellationToken);
            ends = KafkaProbe.EndOffsets(servers, topic, options.Partitions);
            foreach (var group in groups)
            {
                await group.WaitSettledAsync(cancellationToken);
                await UntilAsync(() => group.Ledger.Distinct >= load.Produced, DrainTimeout, cancellationToken);
                var groupEnds = ends;
                committed[group.Name] = KafkaProbe.Committed(servers, group.GroupId, topic, options.Partitions);
                await UntilAsync(
                    () => (committed[group.Name] = KafkaProbe.Committed(servers, group.GroupId, topic, options.Partitions)).All(c => c.Value == groupEnds[c.Key]),
                    CommitTimeout,
                    cancellationToken);
            }

            Record(samples, Sample("drained", clock.Elapsed, load, groups), output);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await output.WriteLineAsync($"{clock.Elapsed.TotalSeconds,7:F1}s interrupted: stopping, then checking what was done so far");
        }
        finally
        {
            await Task.WhenAll(groups.Select(g => g.StopAllAsync()));
            await load.DisposeAsync();
        }

        var after = Record(samples, Sample("after", clock.Elapsed, null, groups), output);
        foreach (var group in groups)
        {
            // After the stops: the final commits must not have moved anything back.
            committed[group.Name] = KafkaProbe.Committed(servers, group.GroupId, topic, options.Partitions);
        }

        using var self = Process.GetCurrentProcess();
        var result = Evaluate(options, clock.Elapsed, load, groups, samples, before, after, ends, committed) with
        {
            ProcessorTime = self.TotalProcessorTime,
            ClusterProcessorTime = cluster?.ProcessorTime,
        };
        Report(result, output);
        return result;
    }

    private static SoakResult Evaluate(
        SoakOptions options,
        TimeSpan elapsed,
        SoakLoad load,
        SoakGroup[] groups,
        List<SoakSample> samples,
        SoakSample before,
        SoakSample after,
        Dictionary<int, long> ends,
        Dictionary<string, Dictionary<int, long>> committed)
    {
        var produced = load.Produced;
        var checks = new List<SoakCheck>
        {
            new(
                "deliveries",
                load.Delivered == produced && load.Failed == 0 && load.Refused == 0 && load.FatalError is null,
                $"{produced:N0} enqueued, {load.Delivered:N0} delivered, {load.Failed} failed, {load.Refused} refused{Problems(load.Problems)}"),
            new(
                "backpressure",
                load.BackpressureWaits > 0,
                $"{load.Bursts} bursts of {options.BurstSize:N0}, {load.BackpressureWaits:N0} enqueues waited for room, queue depth up to {load.MaxQueued:N0} (limit {options.QueueLimit:N0})"),
        };

        var groupResults = new List<SoakGroupResult>();
        foreach (var group in groups)
        {
            var firstMissing = new List<long>();
            var lost = group.Ledger.CountMissing(produced, firstMissing);
            var groupCommitted = committed.GetValueOrDefault(group.Name) ?? [];
            var result = new SoakGroupResult(
                group.Name, group.Strategy.ToString(), group.Ledger.Distinct, group.Ledger.Calls, group.Ledger.Duplicates, lost, firstMissing,
                group.Joins, group.Leaves, group.Aborts, group.AssignedCallbacks, group.RevokedCallbacks, group.LostCallbacks, group.CommitFailures,
                group.SettleTimeouts, [.. group.Faults], groupCommitted, ends);
            groupResults.Add(result);
            checks.Add(new($"{group.Name}: lost", lost == 0, $"{lost} of {produced:N0} never handled{(firstMissing.Count > 0 ? $" (first: {string.Join(", ", firstMissing)})" : "")}; {group.Ledger.Duplicates:N0} handled again"));
            checks.Add(new(
                $"{group.Name}: committed at end",
                ends.Count == options.Partitions && ends.All(e => groupCommitted.GetValueOrDefault(e.Key, -1) == e.Value),
                $"committed {Format(groupCommitted)}; end offsets {Format(ends)}"));
            checks.Add(new($"{group.Name}: members", group.Faults.Count == 0, group.Faults.Count == 0 ? "every member stopped without a fault" : string.Join("; ", group.Faults)));
            checks.Add(new(
                $"{group.Name}: churn",
                result.MembershipChanges >= 2,
                $"{result.MembershipChanges} membership changes ({group.Joins} joins, {group.Leaves} leaves, {group.Aborts} aborts), {group.SettleTimeouts} unsettled after 60 s"));
        }

        var steady = samples.Where(s => s.Phase == "load" && s.At >= options.EffectiveWarmup).ToList();
        var bounds = options.Bounds;
        var growth = new List<SoakGrowth>();
        if (steady.Count >= 2)
        {
            growth.Add(Growth("managed heap", "MB", steady, s => s.ManagedBytes / 1e6, bounds.ManagedHeapBytes / 1e6));
            growth.Add(Growth("working set", "MB", steady, s => s.WorkingSetBytes / 1e6, bounds.WorkingSetBytes / 1e6));
            growth.Add(Growth("private bytes", "MB", steady, s => s.PrivateBytes / 1e6, null));
            growth.Add(Growth("handles", "", steady, s => s.Handles, bounds.Handles));
            growth.Add(Growth("threads", "", steady, s => s.Threads, bounds.Threads));
            checks.AddRange(growth.Where(g => g.Bound is not null).Select(g => new SoakCheck(
                $"growth: {g.Metric}",
                g.Passed,
                string.Create(CultureInfo.InvariantCulture, $"{g.Start:0.#} -> {g.End:0.#}{g.Suffix}: {g.Growth:+0.#;-0.#;0}{g.Suffix} (bound +{g.Bound:0.#}{g.Suffix})"))));
        }
        else
        {
            checks.Add(new("growth", false, $"only {steady.Count} steady-state samples after the {options.EffectiveWarmup.TotalSeconds:0} s warm-up: run longer, or sample more often"));
        }

        var handlesLeft = after.Handles - before.Handles;
        var threadsLeft = (after.Threads - after.PoolThreads) - (before.Threads - before.PoolThreads);
        checks.Add(new("teardown: handles", handlesLeft <= bounds.HandlesAfterTeardown, $"{before.Handles} before any client, {after.Handles} after everything was disposed ({handlesLeft:+0;-0;0}, bound +{bounds.HandlesAfterTeardown})"));
        checks.Add(new(
            "teardown: threads",
            threadsLeft <= bounds.ThreadsAfterTeardown,
            $"{before.Threads - before.PoolThreads} outside the thread pool before any client, {after.Threads - after.PoolThreads} after everything was disposed ({threadsLeft:+0;-0;0}, bound +{bounds.ThreadsAfterTeardown})"));

        return new SoakResult
        {
            Duration = options.Duration,
            Warmup = options.EffectiveWarmup,
            Rate = options.Rate,
            Partitions = options.Partitions,
            Elapsed = elapsed,
            Produced = produced,
            Delivered = load.Delivered,
            FailedDeliveries = load.Failed,
            Refused = load.Refused,
            Records = ends.Values.Sum(),
            Bursts = load.Bursts,
            BackpressureWaits = load.BackpressureWaits,
            MaxQueued = load.MaxQueued,
            MaxBacklog = samples.Where(s => s.Phase == "load").Select(s => s.Produced - s.Handled.Min()).DefaultIfEmpty().Max(),
            Groups = groupResults,
            Samples = samples,
            Growth = growth,
            Checks = checks,
        };
    }

    private static SoakGrowth Growth(string metric, string unit, List<SoakSample> steady, Func<SoakSample, double> value, double? bound)
    {
        var window = Math.Max(1, steady.Count / 4);
        var start = steady.Take(window).Min(value);
        var end = steady.TakeLast(window).Min(value);
        return new SoakGrowth(metric, unit, start, end, end - start, bound, value(steady[0]), value(steady[^1]), steady.Max(value));
    }

    private static async Task SampleAsync(
        List<SoakSample> samples, TimeSpan interval, Stopwatch clock, SoakLoad load, SoakGroup[] groups, TextWriter output, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                Record(samples, Sample("load", clock.Elapsed, load, groups), output);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // the load phase is over
        }
    }

    private static SoakSample Sample(string phase, TimeSpan at, SoakLoad? load, SoakGroup[] groups)
    {
        // The managed heap as the full blocking collection just forced left it (GC.GetTotalMemory is an estimate that other
        // threads' allocations can skew, even below zero), less the run's own ledgers, which grow with the messages by design.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var collected = GC.GetGCMemoryInfo(GCKind.FullBlocking);
        var managed = collected.HeapSizeBytes - collected.FragmentedBytes - groups.Sum(g => g.Ledger.AllocatedBytes);
        using var process = Process.GetCurrentProcess();
        return new SoakSample(
            at,
            phase,
            managed,
            process.WorkingSet64,
            process.PrivateMemorySize64,
            process.HandleCount,
            process.Threads.Count,
            ThreadPool.ThreadCount,
            load?.Queued ?? 0,
            load?.Produced ?? 0,
            [.. groups.Select(g => g.Ledger.Distinct)],
            [.. groups.Select(g => g.Members)]);
    }

    private static SoakSample Record(List<SoakSample> samples, SoakSample sample, TextWriter output)
    {
        lock (samples)
        {
            samples.Add(sample);
        }

        output.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"{sample.At.TotalSeconds,7:F1}s {sample.Phase,-7} heap {sample.ManagedBytes / 1e6,6:F1} MB  ws {sample.WorkingSetBytes / 1e6,6:F1} MB  " +
            $"private {sample.PrivateBytes / 1e6,7:F1} MB  handles {sample.Handles,4}  threads {sample.Threads,3} (pool {sample.PoolThreads,2})  " +
            $"queue {sample.Queued,5}  produced {sample.Produced,9:N0}  handled {string.Join(" / ", sample.Handled.Select(h => h.ToString("N0", CultureInfo.InvariantCulture)))}  " +
            $"members {string.Join("/", sample.Members)}"));
        return sample;
    }

    private static void Report(SoakResult result, TextWriter output)
    {
        output.WriteLine();
        output.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"Produced {result.Produced:N0} ({result.Delivered:N0} delivered, {result.FailedDeliveries} failed, {result.Records - result.Delivered:N0} records written twice by the cluster), " +
            $"{result.Bursts} bursts, {result.BackpressureWaits:N0} backpressure waits, largest backlog {result.MaxBacklog:N0} messages; run took {result.Elapsed.TotalSeconds:F0} s, " +
            $"processor time {result.ProcessorTime.TotalSeconds:F0} s{(result.ClusterProcessorTime is { } c ? $" (+ {c.TotalSeconds:F0} s in the cluster's process)" : "")}."));
        foreach (var g in result.Groups)
        {
            output.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"Group {g.Name} ({g.Strategy}): handled {g.Handled:N0}, duplicates {g.Duplicates:N0}, lost {g.Lost}; {g.MembershipChanges} membership changes " +
                $"({g.Joins} joins, {g.Leaves} leaves, {g.Aborts} aborts); callbacks: {g.AssignedCallbacks} assigned, {g.RevokedCallbacks} revoked, {g.LostCallbacks} lost; " +
                $"{g.CommitFailures} refused commits."));
        }

        output.WriteLine("Growth over the steady state (floor of the last quarter minus floor of the first quarter):");
        foreach (var g in result.Growth)
        {
            output.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"  {g.Metric,-14} {g.Start,8:0.#} -> {g.End,8:0.#}{g.Suffix,-3} growth {g.Growth,7:+0.#;-0.#;0} (bound {(g.Bound is { } b ? "+" + b.ToString("0.#", CultureInfo.InvariantCulture) : "none")}); " +
                $"first steady sample {g.FirstSteady:0.#}, last {g.LastSteady:0.#}, max {g.Max:0.#}"));
        }

        foreach (var check in result.Checks)
        {
            output.WriteLine($"{(check.Passed ? "PASS" : "FAIL")}  {check.Name}: {check.Detail}");
        }

        output.WriteLine(result.Passed ? "SOAK PASSED" : $"SOAK FAILED: {string.Join(", ", result.Checks.Where(c => !c.Passed).Select(c => c.Name))}");
    }

    private static async Task UntilAsync(Func<bool> condition, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        using var poll = new PeriodicTimer(ProbeInterval);
        while (!condition() && deadline.Elapsed < timeout)
        {
            await poll.WaitForNextTickAsync(cancellationToken);
        }
    }

    private static async Task CreateTopicAsync(string bootstrapServers, string topic, int partitions)
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrapServers }).Build();
        await admin.CreateTopicsAsync([new TopicSpecification { Name = topic, NumPartitions = partitions, ReplicationFactor = -1 }]);
    }

    private static string Format(IReadOnlyDictionary<int, long> byPartition) =>
        string.Join(", ", byPartition.OrderBy(p => p.Key).Select(p => $"p{p.Key}={p.Value}"));

    private static string Problems(IReadOnlyCollection<string> problems) => problems.Count == 0 ? "" : "; " + string.Join("; ", problems);
}
