using System.Diagnostics;
using System.Text;
using System.Text.Json;
using KafkaKit.Soak;

namespace KafkaKit.Tests.Reliability;

/// <summary>
/// The soak's CI-size short form: the soak console app (tests/KafkaKit.Soak) for 75 s at half the default rate, with
/// the same checks as a full run.
/// </summary>
/// <remarks>
/// It runs in a child process: the soak samples process-wide metrics (managed heap, working set, handles, threads), and
/// in this process the other fixtures run alongside it, starting clusters and clients and holding their own data.
/// </remarks>
[TestFixture]
[Category(ReliabilityKit.Category)]
[Parallelizable(ParallelScope.Self)] // fixtures overlap (most of their time is spent waiting on the cluster); tests within one run in sequence
public sealed class SoakRunTests
{
    /// <summary>
    /// 75 s of load: three bursts (at 15, 45 and 75 s) and, per group, a membership change about every 15 s (a ~5 s
    /// rebalance on the embedded cluster, then 10 s of steady consumption): 4-5 per group. Samples every 2 s after a
    /// 25 s warm-up give 25 steady samples, so each comparison window spans 12 s.
    /// </summary>
    private static readonly string[] ShortForm = ["--minutes", "1.25", "--rate", "500", "--sample-seconds", "2", "--warmup-seconds", "25"];

    [Test]
    [CancelAfter(300_000)]
    public async Task Soak_ShortFormWithChurnAndBursts_NothingLostEndOffsetsCommittedNoGrowthBeyondBounds()
    {
        var cancellationToken = TestContext.CurrentContext.CancellationToken;
        var clock = Stopwatch.StartNew();
        var json = Path.Combine(Path.GetTempPath(), $"kafkakit-soak-{Guid.NewGuid():N}.json");
        try
        {
            var (exitCode, output) = await RunSoakAsync([.. ShortForm, "--json", json], cancellationToken);
            await TestContext.Out.WriteLineAsync(output);
            Assert.That(File.Exists(json), Is.True, $"the soak wrote no result (exit code {exitCode})");
            var result = JsonSerializer.Deserialize<SoakResult>(await File.ReadAllTextAsync(json, cancellationToken))!;
            foreach (var group in result.Groups)
            {
                ReliabilityKit.Row($"soak short form, {group.Name} group ({group.MembershipChanges} membership changes)", result.Produced, group.Handled, group.Duplicates, 0, group.Lost, clock.Elapsed);
            }

            Assert.Multiple(() =>
            {
                Assert.That(result.Checks.Where(c => !c.Passed).Select(c => $"{c.Name}: {c.Detail}"), Is.Empty, "failed soak checks");
                Assert.That(exitCode, Is.Zero, "the soak's exit code");
                Assert.That(result.FailedDeliveries, Is.Zero);
                Assert.That(result.Delivered, Is.EqualTo(result.Produced).And.GreaterThan(30_000), "every message delivered");
                Assert.That(result.BackpressureWaits, Is.GreaterThan(0), "a burst filled the queue and enqueues waited for room");
                Assert.That(result.Groups.Select(g => g.Lost), Is.All.Zero, "no group lost a message");
                Assert.That(result.Groups.Select(g => g.MembershipChanges), Is.All.GreaterThanOrEqualTo(2), "every group's membership changed");
                Assert.That(result.Groups.Select(g => g.Leaves + g.Aborts), Is.All.GreaterThanOrEqualTo(1), "a member left every group");
                foreach (var group in result.Groups)
                {
                    Assert.That(group.Committed, Is.EqualTo(group.EndOffsets), $"{group.Name}: committed offsets are the end offsets");
                }

                Assert.That(result.Growth.Select(g => g.Metric), Is.SupersetOf(new[] { "managed heap", "working set", "handles", "threads" }), "every bounded metric was compared");
            });
        }
        finally
        {
            File.Delete(json);
        }
    }

    /// <summary>Runs the soak console app; kills it (and its cluster process) when cancelled.</summary>
    private static async Task<(int ExitCode, string Output)> RunSoakAsync(string[] args, CancellationToken cancellationToken)
    {
        var output = new StringBuilder();
        using var process = new Process { StartInfo = SoakProcess.StartInfo(args) };
        process.OutputDataReceived += (_, e) => Append(output, e.Data);
        process.ErrorDataReceived += (_, e) => Append(output, e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await process.WaitForExitAsync(cancellationToken); // includes the end of the redirected output
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await TestContext.Out.WriteLineAsync(output.ToString());
            throw;
        }

        lock (output)
        {
            return (process.ExitCode, output.ToString());
        }
    }

    private static void Append(StringBuilder output, string? line)
    {
        if (line is not null)
        {
            lock (output)
            {
                output.AppendLine(line);
            }
        }
    }
}
