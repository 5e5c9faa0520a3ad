using System.Diagnostics;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Consuming;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Reliability;

/// <summary>Slow handlers throughout a stream, and one handler call that hangs forever ignoring its token.</summary>
[TestFixture]
[Category(ReliabilityKit.Category)]
[Parallelizable(ParallelScope.Self)] // fixtures overlap (most of their time is spent waiting on the cluster); tests within one run in sequence
public sealed class HangingHandlerReliabilityTests
{
    private const string Topic = "hang";
    private const string Group = "hang-group";
    private const int Partitions = 3;

    /// <summary>The message whose handler call hangs: partition 0 (600 % 3), offset 200 (600 / 3).</summary>
    private const long Hanging = 600;

    private static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Every handler call takes 0-4 ms and every 50th takes 100 ms (honouring the token); the call for message 600 hangs
    /// forever and ignores its token. The other partitions keep flowing and committing, partition 0 stays committed at
    /// the hanging offset, the stop is bounded, and a new member handles the rest, starting with the hanging message.
    /// </summary>
    [Test]
    [CancelAfter(120_000)]
    public async Task Stop_HandlerHangsForeverIgnoringToken_StopBoundedHangingOffsetNotCommittedRestartHandlesAll()
    {
        var clock = Stopwatch.StartNew();
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic(Topic, Partitions);
        var ledger = new Ledger();
        var logs = new CapturingLoggerFactory();
        var hang = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var hangingCalls = 0;
        KafkaConsumer<string, string> Member(string name, bool hangs)
        {
            var options = ReliabilityKit.ConsumerOptions(cluster, Group, Topic);
            options.ShutdownTimeout = ShutdownTimeout;
            options.CloseTimeout = CloseTimeout;
            return new KafkaConsumerBuilder<string, string>(name, options)
                .SetLoggerFactory(logs)
                .SetHandler(async (r, ct) =>
                {
                    var seq = ReliabilityKit.Seq(r.Message.Key);
                    if (hangs && seq == Hanging)
                    {
                        Interlocked.Increment(ref hangingCalls);
                        await hang.Task; // ignores its token: hangs until the test ends
                    }

                    await Task.Delay(seq % 50 == 49 ? 100 : (int)(seq % 5), ct);
                    ledger.Record(seq);
                })
                .Build();
        }

        var a = Member("a", hangs: true);
        try
        {
            await using var stream = new NumberedStream(cluster, Topic, Partitions);
            await a.StartAsync();
            await Wait.ForAsync(() => Volatile.Read(ref hangingCalls) == 1, TimeSpan.FromSeconds(30), "the handler call for message 600 hangs");

            // The other partitions flow on and commit; partition 0 stays committed right at the hanging message.
            var endsAfterHang = KafkaProbe.EndOffsets(cluster.BootstrapServers, Topic, Partitions);
            await ConsumerTestKit.WaitForCommittedAsync(
                cluster, Group, Topic, Partitions, c => c[0] == Hanging / Partitions && c[1] > endsAfterHang[1] && c[2] > endsAfterHang[2], TimeSpan.FromSeconds(30),
                "p1 and p2 commit past the end offsets at the hang; p0 at the hanging offset");

            var stopClock = Stopwatch.StartNew();
            await a.StopAsync();
            var stopTook = stopClock.Elapsed;
            var afterStop = KafkaProbe.Committed(cluster.BootstrapServers, Group, Topic, Partitions);

            await using var b = Member("b", hangs: false);
            await b.StartAsync();
            var produced = await stream.StopAsync();
            await Wait.ForAsync(() => ledger.Missing(produced).Count == 0, TimeSpan.FromSeconds(60), $"every one of {produced} messages handled");
            var (committed, ends) = await ReliabilityKit.WaitForCommittedAtEndAsync(cluster, Group, Topic, Partitions, TimeSpan.FromSeconds(30));
            var lost = ledger.Missing(produced).Count;
            await b.StopAsync();

            var bound = ShutdownTimeout + CloseTimeout + TimeSpan.FromSeconds(1);
            TestContext.Out.WriteLine($"StopAsync with a hanging handler took {stopTook.TotalSeconds:F1} s (ShutdownTimeout {ShutdownTimeout.TotalSeconds:F0} s + CloseTimeout {CloseTimeout.TotalSeconds:F0} s); committed after the stop {ConsumerTestKit.Format(afterStop)}");
            ReliabilityKit.Row("slow handlers and one hanging forever, then stop and restart", produced, ledger.Distinct, ledger.Duplicates, 0, lost, clock.Elapsed);
            Assert.Multiple(() =>
            {
                Assert.That(stopTook, Is.LessThan(bound), "StopAsync returns within ShutdownTimeout + CloseTimeout + 1 s");
                Assert.That(stopTook, Is.GreaterThanOrEqualTo(ShutdownTimeout - TimeSpan.FromMilliseconds(100)), "the handlers were given ShutdownTimeout first");
                Assert.That(a.State, Is.EqualTo(KafkaConsumerState.Stopped));
                Assert.That(afterStop[0], Is.EqualTo(Hanging / Partitions), "the hanging message's offset is not committed");
                Assert.That(lost, Is.Zero, "no message lost");
                Assert.That(committed, Is.EqualTo(ends), "committed offsets reach the end offsets");
                Assert.That(logs.Count(2011), Is.GreaterThanOrEqualTo(1), "the outliving handler was cancelled and logged");
                Assert.That(a.Fault, Is.Null);
                Assert.That(b.Fault, Is.Null);
            });
        }
        finally
        {
            hang.TrySetResult(); // let the abandoned call end with the test
            await a.DisposeAsync();
        }
    }
}
