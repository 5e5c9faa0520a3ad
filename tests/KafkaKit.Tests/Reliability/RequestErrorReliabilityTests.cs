using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Consuming;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Reliability;

/// <summary>Broker request errors on every group and fetch request type while a KafkaKit consumer consumes a steady stream.</summary>
[TestFixture]
[Category(ReliabilityKit.Category)]
[Parallelizable(ParallelScope.Self)] // fixtures overlap (most of their time is spent waiting on the cluster); tests within one run in sequence
public sealed class RequestErrorReliabilityTests
{
    private const string Topic = "req-errors";
    private const string Group = "req-errors-group";
    private const int Partitions = 3;

    /// <summary>
    /// Errors are pushed for FindCoordinator and JoinGroup before the member exists (its first lookup and join fail), then
    /// one request type at a time while the stream flows: Fetch, OffsetCommit, Heartbeat (the last heartbeat error,
    /// REBALANCE_IN_PROGRESS, makes the member rejoin, so JoinGroup errors pushed with it are met mid-stream as well).
    /// Each phase waits for proof that its errors were consumed (pushed errors answer the next requests of that type in
    /// order, so a later success proves it) before the next one starts.
    /// </summary>
    [Test]
    [CancelAfter(150_000)]
    public async Task Consume_RequestErrorsOnFetchCommitJoinHeartbeatFindCoordinator_EveryMessageHandledAndCommittedToTheEnd()
    {
        var clock = Stopwatch.StartNew();
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic(Topic, Partitions);
        cluster.PushRequestErrors(ApiKey.FindCoordinator, ErrorCode.GroupCoordinatorNotAvailable, ErrorCode.GroupCoordinatorNotAvailable);
        cluster.PushRequestErrors(ApiKey.JoinGroup, ErrorCode.GroupCoordinatorNotAvailable, ErrorCode.NotCoordinatorForGroup);

        var ledger = new Ledger();
        var logs = new CapturingLoggerFactory();
        var recorder = new ConsumerRecorder();
        var options = ReliabilityKit.ConsumerOptions(cluster, Group, Topic);
        await using var consumer = recorder.Attach(new KafkaConsumerBuilder<string, string>("req-errors", options), "c")
            .SetLoggerFactory(logs)
            .SetHandler((r, _) =>
            {
                ledger.Record(ReliabilityKit.Seq(r.Message.Key));
                return ValueTask.CompletedTask;
            })
            .Build();
        await using var stream = new NumberedStream(cluster, Topic, Partitions);
        await consumer.StartAsync();
        await Wait.ForAsync(() => consumer.Assignment.Count == Partitions && ledger.Distinct >= 100, TimeSpan.FromSeconds(40), "assigned despite the FindCoordinator and JoinGroup errors, and consuming");
        var phases = new List<string> { $"join after {clock.Elapsed.TotalSeconds:F1} s" };

        // Fetch: the next fetches fail; consumption goes on once a later fetch succeeds.
        var sinceFetch = Stopwatch.StartNew();
        cluster.PushRequestErrors(ApiKey.Fetch, ErrorCode.NotLeaderForPartition, ErrorCode.RequestTimedOut, ErrorCode.NotLeaderForPartition, ErrorCode.RequestTimedOut);
        var mark = stream.Produced + 50;
        await Wait.ForAsync(() => HandledThrough(ledger, mark), TimeSpan.FromSeconds(30), $"messages produced after the Fetch errors are handled (through {mark})");
        phases.Add($"fetch {sinceFetch.Elapsed.TotalSeconds:F1} s");

        // OffsetCommit: the next commits are refused. librdkafka retries these codes itself (re-finding the coordinator),
        // so KafkaKit may never see them; offsets past the end offsets read after the push can only have been committed by
        // a request answered after every pushed error.
        var sinceCommit = Stopwatch.StartNew();
        var failuresBefore = consumer.CommitFailures;
        cluster.PushRequestErrors(ApiKey.OffsetCommit, ErrorCode.RequestTimedOut, ErrorCode.GroupCoordinatorNotAvailable, ErrorCode.NotCoordinatorForGroup);
        var endsAtPush = KafkaProbe.EndOffsets(cluster.BootstrapServers, Topic, Partitions);
        await ConsumerTestKit.WaitForCommittedAsync(cluster, Group, Topic, Partitions, c => endsAtPush.All(e => c[e.Key] > e.Value), TimeSpan.FromSeconds(30), "a commit after the OffsetCommit errors succeeds");
        var commitFailures = consumer.CommitFailures - failuresBefore;
        phases.Add($"commit {sinceCommit.Elapsed.TotalSeconds:F1} s ({commitFailures} failures surfaced to KafkaKit)");

        // Heartbeat: coordinator errors, then REBALANCE_IN_PROGRESS, which makes the member rejoin; its JoinGroup meets two
        // more errors. Proof: a new assignment arrives after the push, and the stream is handled past it.
        var sinceHeartbeat = Stopwatch.StartNew();
        var eventsBefore = recorder.Events.Count;
        cluster.PushRequestErrors(ApiKey.JoinGroup, ErrorCode.GroupCoordinatorNotAvailable, ErrorCode.NotCoordinatorForGroup);
        cluster.PushRequestErrors(ApiKey.Heartbeat, ErrorCode.NotCoordinatorForGroup, ErrorCode.GroupCoordinatorNotAvailable, ErrorCode.RebalanceInProgress);
        await Wait.ForAsync(() => recorder.Events.Skip(eventsBefore).Any(e => e.Kind == "assigned"), TimeSpan.FromSeconds(40), "the member rejoined after the heartbeat errors");
        mark = stream.Produced + 50;
        await Wait.ForAsync(() => HandledThrough(ledger, mark), TimeSpan.FromSeconds(30), $"messages produced after the rejoin are handled (through {mark})");
        phases.Add($"heartbeat+rejoin {sinceHeartbeat.Elapsed.TotalSeconds:F1} s");

        var produced = await stream.StopAsync();
        await Wait.ForAsync(() => ledger.Missing(produced).Count == 0, TimeSpan.FromSeconds(60), $"every one of {produced} messages handled");
        var (committed, ends) = await ReliabilityKit.WaitForCommittedAtEndAsync(cluster, Group, Topic, Partitions, TimeSpan.FromSeconds(30));
        var lost = ledger.Missing(produced).Count;
        var state = consumer.State;
        await consumer.StopAsync();

        TestContext.Out.WriteLine($"phases: {string.Join("; ", phases)}; rebalance events {string.Join(", ", recorder.Events.Select(e => $"{e.Kind}[{string.Join(",", e.Partitions)}]@{e.At.TotalSeconds:F1}"))}; commit failures {consumer.CommitFailures}");
        ReliabilityKit.Row("request errors (Fetch, OffsetCommit, JoinGroup, Heartbeat, FindCoordinator)", produced, ledger.Distinct, ledger.Duplicates, 0, lost, clock.Elapsed);
        Assert.Multiple(() =>
        {
            Assert.That(lost, Is.Zero, "no message lost");
            Assert.That(committed, Is.EqualTo(ends), "committed offsets reach the end offsets");
            Assert.That(state, Is.EqualTo(KafkaConsumerState.Running), "still running after every fault");
            Assert.That(consumer.Fault, Is.Null);
            Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Stopped));
            Assert.That(logs.Count(2004) + logs.Count(2023) + logs.Count(2063), Is.EqualTo(consumer.CommitFailures), "every commit failure that surfaced is logged (2004; 2023 for a retried final commit; 2063 for the final commit of revoked partitions) and counted");
            Assert.That(logs.Count(2006) + logs.Count(2013) + logs.Count(2018), Is.Zero, "no fatal error, callback failure or stop on error");
        });
    }

    /// <summary>Whether message <paramref name="seq"/> and the next ones up to one per partition were handled (each partition is handled in order).</summary>
    private static bool HandledThrough(Ledger ledger, long seq) => Enumerable.Range(0, Partitions).All(i => ledger.Contains(seq + i));
}
