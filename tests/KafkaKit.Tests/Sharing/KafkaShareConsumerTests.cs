using System.Collections.Concurrent;
using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Sharing;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;
using Microsoft.Extensions.Options;

namespace KafkaKit.Tests.Sharing;

[TestFixture]
[Parallelizable(ParallelScope.Self)]
public sealed class KafkaShareConsumerTests
{
    /// <summary>
    /// Three members on one partition share its records (the embedded cluster is told to share the partition, as a
    /// broker does), each record accepted exactly once. Throughput with 1, 2 and 3 members is measured and printed, not
    /// asserted (it depends on the machine's load); the assertion on sharing is that each of the three handled at least a
    /// fifth of the records. One producer stays open for the whole test: on the embedded cluster any connection closing
    /// releases every record lock of the broker (see <see cref="ShareTestKit.Producer"/>).
    /// </summary>
    [Test]
    [CancelAfter(180_000)]
    public async Task ThreeMembersOnOnePartition_EveryRecordAcceptedOnce_AllMembersWork()
    {
        const int Records = 10_000;
        await using var cluster = ShareTestKit.Cluster();
        using var producer = ShareTestKit.Producer(cluster);
        var rates = new Dictionary<int, double>();
        ShareLedger? three = null;
        foreach (var members in new[] { 1, 2, 3 })
        {
            var (ledger, elapsed, logs) = await RunAsync(cluster, producer, members, Records); // returns once the members stopped
            var refused = RefusedAcknowledgements(logs);
            rates[members] = Records / elapsed.TotalSeconds;
            var twice = ledger.Accepted.Values.Count(n => n > 1);
            TestContext.Out.WriteLine($"{members} member(s): {Records} records in {elapsed.TotalMilliseconds:F0} ms = {rates[members]:F0} records/s; per member: {string.Join(", ", ledger.ByMember.OrderBy(m => m.Key).Select(m => $"{m.Key}={m.Value}"))}; accepted twice: {twice}; acknowledgements refused by the cluster: {refused}");
            Assert.That(ledger.Total, Is.EqualTo(Records), $"{members} member(s): every record accepted");
            Assert.That(ledger.Accepted.Values, Has.All.EqualTo(1), $"{members} member(s): every record accepted exactly once");
            three = ledger;
        }

        TestContext.Out.WriteLine($"throughput ratio: 2 members {rates[2] / rates[1]:F2}x, 3 members {rates[3] / rates[1]:F2}x one member");
        Assert.That(three!.ByMember.Values, Has.Count.EqualTo(3).And.All.GreaterThan(Records / 5), "each of the three members handled at least a fifth of the records");
    }

    /// <summary>Starts <paramref name="members"/> share consumers (MaxConcurrency 4, 2 ms handler) and measures how long they take for <paramref name="records"/> records.</summary>
    private static async Task<(ShareLedger Ledger, TimeSpan Elapsed, CapturingLoggerFactory Logs)> RunAsync(EmbeddedKafkaCluster cluster, IProducer<string, string> producer, int members, int records)
    {
        var topic = $"tp{members}";
        cluster.CreateTopic(topic);
        var ledger = new ShareLedger();
        var logs = new CapturingLoggerFactory();
        var consumers = new List<KafkaShareConsumer<string, string>>();
        try
        {
            for (var i = 0; i < members; i++)
            {
                var member = $"m{i}";
                var consumer = new KafkaShareConsumerBuilder<string, string>(member, ShareTestKit.Options(cluster, $"g{members}", topic, maxConcurrency: 4))
                    .SetHandler(async (r, ct) =>
                    {
                        await Task.Delay(2, ct);
                        if (!r.Message.Value.StartsWith("warm", StringComparison.Ordinal))
                        {
                            ledger.Record(member, r.Message.Value);
                        }
                    })
                    .SetLoggerFactory(logs)
                    .Build();
                consumers.Add(consumer);
                await consumer.StartAsync();
            }

            // The embedded cluster gives a partition to one member only; a broker shares it among all members.
            await Wait.ForAsync(() => cluster.GetShareGroupMembers($"g{members}").Count == members, TimeSpan.FromSeconds(30), "every member joined");
            cluster.ShareAllPartitionsWithEveryMember($"g{members}", topic);

            // Every member fetches (warm-up records) before the measured records exist.
            var warm = 0;
            await Wait.ForAsync(() =>
            {
                ShareTestKit.Produce(producer, topic, members, "warm", warm);
                warm += members;
                return consumers.All(c => c.Accepted > 0);
            }, TimeSpan.FromSeconds(30), "every member accepted a warm-up record");

            var clock = Stopwatch.StartNew();
            ShareTestKit.Produce(producer, topic, records);
            await Wait.ForAsync(() => ledger.Total >= records, TimeSpan.FromSeconds(60), () => $"{records} records handled; {ledger.Total} so far");
            return (ledger, clock.Elapsed, logs);
        }
        finally
        {
            foreach (var consumer in consumers)
            {
                await consumer.DisposeAsync();
            }

            foreach (var line in logs.Lines.Where(l => l.Level >= Microsoft.Extensions.Logging.LogLevel.Warning).Take(20))
            {
                TestContext.Out.WriteLine($"{line.Level} {line.EventId.Id} {line.Message}");
            }
        }
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task PoisonRecord_DeliveredUpToTheLimitThenRejectedOrDeadLettered_OthersFlowMeanwhile([Values] bool deadLetter)
    {
        await using var cluster = ShareTestKit.Cluster(maxDeliveryAttempts: 3);
        cluster.CreateTopic("poison");
        using var producer = ShareTestKit.Producer(cluster);
        ShareTestKit.Produce(producer, "poison", 1, "poison");
        ShareTestKit.Produce(producer, "poison", 500, from: 1);
        var options = ShareTestKit.Options(cluster, "poison-group", "poison", maxConcurrency: 8);
        options.MaxDeliveryAttempts = 3;
        options.Config["max.poll.records"] = "50";
        if (deadLetter)
        {
            options.DeadLetterTopic = "poison.DLT";
            cluster.CreateTopic("poison.DLT");
        }

        var logs = new CapturingLoggerFactory();
        var outcomes = new ConcurrentDictionary<string, long>();
        var deliveryCounts = new ConcurrentQueue<long>();
        using var meter = new System.Diagnostics.Metrics.MeterListener();
        meter.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == "KafkaKit" && instrument.Name.StartsWith("kafkakit.share_consumer.", StringComparison.Ordinal))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        meter.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            var group = tags.ToArray().FirstOrDefault(t => t.Key == "messaging.consumer.group.name").Value as string;
            if (group != "poison-group")
            {
                return;
            }

            if (instrument.Name == "kafkakit.share_consumer.records")
            {
                outcomes.AddOrUpdate((string)tags.ToArray().First(t => t.Key == "outcome").Value!, value, (_, n) => n + value);
            }
            else
            {
                deliveryCounts.Enqueue(value);
            }
        });
        meter.Start();
        var attempts = new ConcurrentQueue<(int Count, long At)>();
        var completed = new ConcurrentDictionary<string, long>();
        var handled = new ConcurrentDictionary<string, int>(); // completions per value: a repeat counts
        var seen = new ConcurrentQueue<string>();
        await using var consumer = new KafkaShareConsumerBuilder<string, string>("poison", options)
            .SetHandler(async (r, ct) =>
            {
                seen.Enqueue(r.Message.Value);
                if (r.Message.Value == "poison0")
                {
                    attempts.Enqueue((attempts.Count + 1, Stopwatch.GetTimestamp()));
                    throw new InvalidOperationException("poison");
                }

                await Task.Delay(2, ct);
                completed.TryAdd(r.Message.Value, Stopwatch.GetTimestamp());
                handled.AddOrUpdate(r.Message.Value, 1, (_, n) => n + 1);
            })
            .SetLoggerFactory(logs)
            .Build();
        await consumer.StartAsync();

        await Wait.ForAsync(() => completed.Count == 500 && consumer.Rejected + consumer.DeadLettered == 1, TimeSpan.FromSeconds(60),
            () => $"500 records completed ({completed.Count}) and the poison record settled (attempts {attempts.Count}, rejected {consumer.Rejected}, dead-lettered {consumer.DeadLettered})");
        var lastAttempt = attempts.Last().At;
        var beforeLast = completed.Values.Count(t => t < lastAttempt);
        TestContext.Out.WriteLine($"other records delivered again: {seen.Count(v => v != "poison0") - 500}, handled twice or more: {handled.Values.Count(n => n > 1)}, acknowledgements refused by the cluster: {RefusedAcknowledgements(logs)}");
        TestContext.Out.WriteLine($"poison attempts: {attempts.Count}; records completed before its last attempt: {beforeLast} of 500; released {consumer.Released}, rejected {consumer.Rejected}, dead-lettered {consumer.DeadLettered}");
        Assert.Multiple(() =>
        {
            Assert.That(attempts, Has.Count.EqualTo(3), "delivered exactly up to the limit of 3");
            Assert.That(consumer.Released, Is.EqualTo(2), "the first two failures released it");
            Assert.That(deadLetter ? consumer.DeadLettered : consumer.Rejected, Is.EqualTo(1));
            Assert.That(outcomes.GetValueOrDefault(deadLetter ? "dead_lettered" : "rejected"), Is.EqualTo(1), "kafkakit.share_consumer.records{outcome}");
            Assert.That(outcomes.GetValueOrDefault("released"), Is.EqualTo(2), "kafkakit.share_consumer.records{outcome=released}");
            Assert.That(outcomes.GetValueOrDefault("accepted"), Is.EqualTo(consumer.Accepted - consumer.DeadLettered), "kafkakit.share_consumer.records{outcome=accepted}");
            Assert.That(deliveryCounts.Max(), Is.EqualTo(3), "kafkakit.share_consumer.delivery_attempts saw the third delivery");
            Assert.That(beforeLast, Is.GreaterThanOrEqualTo(50), "other records flowed while the poison record was retried");
            Assert.That(seen.Count(v => v != "poison0") - 500, Is.LessThanOrEqualTo(RefusedAcknowledgements(logs)), "another record was delivered again only when the cluster refused its acknowledgement (see ThreeMembersOnOnePartition)");
            Assert.That(handled.Values.Sum() - 500, Is.LessThanOrEqualTo(RefusedAcknowledgements(logs)), "a record was handled again only when the cluster refused its acknowledgement");
        });
        if (deadLetter)
        {
            await consumer.StopAsync(); // the final commit: a refused ACCEPT of the dead letter would bring the record back first
            var dead = KafkaProbe.ReadAll(cluster.BootstrapServers, "poison.DLT", 1, 1, TimeSpan.FromSeconds(15));
            Assert.Multiple(() =>
            {
                Assert.That(dead.Select(d => System.Text.Encoding.UTF8.GetString(d.Message.Value!)), Is.EqualTo(new[] { "poison0" }));
                Assert.That(ShareTestKit.EndOffset(cluster, "poison.DLT"), Is.EqualTo(1), "one dead letter written (the topic's end offset)");
            });
        }
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task UndeserializableRecord_RejectedOnItsFirstDelivery_OthersHandled()
    {
        await using var cluster = ShareTestKit.Cluster(maxDeliveryAttempts: 5);
        cluster.CreateTopic("bytes");
        using var producer = ShareTestKit.Producer(cluster);
        ShareTestKit.Produce(producer, "bytes", 20);
        ShareTestKit.Produce(producer, "bytes", 1, "bad", from: 20);
        var handled = new ConcurrentQueue<string>();
        await using var consumer = new KafkaShareConsumerBuilder<string, string>("bytes", ShareTestKit.Options(cluster, "bytes-group", "bytes"))
            .SetValueDeserializer(new RefusingDeserializer())
            .SetHandler((r, _) =>
            {
                handled.Enqueue(r.Message.Value);
                return ValueTask.CompletedTask;
            })
            .Build();
        await consumer.StartAsync();
        await Wait.ForAsync(() => handled.Count == 20 && consumer.Rejected == 1, TimeSpan.FromSeconds(30), () => $"20 handled ({handled.Count}) and 1 rejected ({consumer.Rejected})");
        Assert.Multiple(() =>
        {
            Assert.That(handled, Does.Not.Contain("bad20"));
            Assert.That(consumer.Released, Is.Zero, "a record that cannot be deserialized is not retried");
            Assert.That(consumer.Accepted, Is.EqualTo(20));
        });
    }

    private sealed class RefusingDeserializer : IDeserializer<string>
    {
        public string Deserialize(ReadOnlySpan<byte> data, bool isNull, SerializationContext context)
        {
            var text = System.Text.Encoding.UTF8.GetString(data);
            return text.StartsWith("bad", StringComparison.Ordinal) ? throw new FormatException("not a value") : text;
        }
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task Stop_WithRecordsInHand_ReleasesThemAndAnotherMemberGetsThemPromptly()
    {
        var lockDuration = TimeSpan.FromSeconds(30);
        await using var cluster = ShareTestKit.Cluster(lockDuration);
        cluster.CreateTopic("stop");
        using var producer = ShareTestKit.Producer(cluster);
        ShareTestKit.Produce(producer, "stop", 20);
        var optionsA = ShareTestKit.Options(cluster, "stop-group", "stop", maxConcurrency: 4);
        optionsA.ShutdownTimeout = TimeSpan.FromMilliseconds(500);
        var running = 0;
        var a = new KafkaShareConsumerBuilder<string, string>("a", optionsA)
            .SetHandler(async (_, ct) =>
            {
                Interlocked.Increment(ref running);
                await Task.Delay(Timeout.Infinite, ct); // holds its record until the stop cancels it
            })
            .Build();
        await a.StartAsync();
        await Wait.ForAsync(() => Volatile.Read(ref running) == 4, TimeSpan.FromSeconds(30), "a holds 4 records in its handlers");

        var ledger = new ShareLedger();
        await using var b = new KafkaShareConsumerBuilder<string, string>("b", ShareTestKit.Options(cluster, "stop-group", "stop"))
            .SetHandler((r, _) =>
            {
                ledger.Record("b", r.Message.Value);
                return ValueTask.CompletedTask;
            })
            .Build();
        await b.StartAsync();
        await Wait.ForAsync(() => b.SinceLastPoll is not null, TimeSpan.FromSeconds(10), "b polls");

        var clock = Stopwatch.StartNew();
        await a.StopAsync();
        var stopTook = clock.Elapsed;
        await Wait.ForAsync(() => ledger.Total == 20, lockDuration, () => $"b handled all 20 records; {ledger.Total} so far");
        var takeover = clock.Elapsed;
        TestContext.Out.WriteLine($"stop took {stopTook.TotalMilliseconds:F0} ms (ShutdownTimeout 500 ms); b had all 20 records {takeover.TotalMilliseconds:F0} ms after the stop began (lock duration {lockDuration.TotalSeconds} s); a released {a.Released}");
        Assert.Multiple(() =>
        {
            Assert.That(a.State, Is.EqualTo(KafkaConsumerState.Stopped));
            Assert.That(a.Released, Is.EqualTo(20), "a released the 4 records in its handlers and the 16 it had not started");
            Assert.That(a.Accepted, Is.Zero);
            Assert.That(ledger.Accepted.Values, Has.All.EqualTo(1));
            Assert.That(takeover, Is.LessThan(lockDuration / 3), "redelivered well before the lock would have expired");
        });
        await a.DisposeAsync();
    }

    /// <summary>
    /// A member process dies (killed) or hangs (SIGSTOP: its connections stay open) while it holds records. Hung: its
    /// records come back to the survivor when their locks expire (the record lock duration). Killed: the embedded cluster
    /// closes the share sessions of a broker when a connection to it closes and releases their records at once, so they
    /// come back promptly. Nothing is lost either way.
    /// </summary>
    [Test]
    [CancelAfter(120_000)]
    public async Task MemberProcessKilledOrHung_ItsLockedRecordsAreRedeliveredToTheSurvivor([Values] bool hung)
    {
        var lockDuration = TimeSpan.FromSeconds(5);
        await using var cluster = ShareTestKit.Cluster(lockDuration);
        cluster.CreateTopic("kill");
        using var producer = ShareTestKit.Producer(cluster);
        var clock = Stopwatch.StartNew();
        var handledAt = new ConcurrentDictionary<string, TimeSpan>();
        var options = ShareTestKit.Options(cluster, "kill-group", "kill", maxConcurrency: 2);
        options.Config["max.poll.records"] = "10"; // leaves records for the other member
        await using var survivor = new KafkaShareConsumerBuilder<string, string>("survivor", options)
            .SetHandler(async (r, ct) =>
            {
                await Task.Delay(5, ct);
                handledAt.TryAdd(r.Message.Value, clock.Elapsed);
            })
            .Build();
        await survivor.StartAsync();

        // Every client is connected before records are locked: a connection closing on the embedded cluster releases every lock.
        await using var doomed = ShareMemberProcess.Start("doomed", cluster.BootstrapServers, "kill-group", "kill");
        await Wait.ForAsync(() => cluster.GetShareGroupMembers("kill-group").Count == 2, TimeSpan.FromSeconds(60), () => $"both members joined; output of the member process: {doomed.Output}");
        cluster.ShareAllPartitionsWithEveryMember("kill-group", "kill");
        var records = 0;
        await Wait.ForAsync(() =>
        {
            // Until the member process has the shared assignment (with its next heartbeat) the survivor takes them all.
            ShareTestKit.Produce(producer, "kill", 50, from: records);
            records += 50;
            return doomed.Locked.Count >= 1;
        }, TimeSpan.FromSeconds(30), () => $"the member process holds records; its output: {doomed.Output}");
        var failedAt = clock.Elapsed;
        if (hung)
        {
            doomed.Freeze();
        }
        else
        {
            await doomed.KillAsync();
        }

        await Wait.ForAsync(() => handledAt.Count == records, TimeSpan.FromSeconds(60), () => $"the survivor handled all {records} records; {handledAt.Count} so far");
        var held = doomed.Locked.ToList();
        var back = held.Select(v => handledAt[v] - failedAt).ToList();
        TestContext.Out.WriteLine($"{(hung ? "hung" : "killed")} member held {held.Count} records in its handlers; the survivor handled them {back.Min().TotalMilliseconds:F0}-{back.Max().TotalMilliseconds:F0} ms after the member {(hung ? "hung" : "was killed")} (record lock duration {lockDuration.TotalSeconds} s)");
        Assert.Multiple(() =>
        {
            Assert.That(handledAt.Keys, Is.EquivalentTo(Enumerable.Range(0, records).Select(i => "v" + i)), "nothing lost");
            if (hung)
            {
                Assert.That(back.Min(), Is.GreaterThan(lockDuration - TimeSpan.FromSeconds(1)), "the hung member's records came back only when their locks expired");
                Assert.That(back.Max(), Is.LessThan(lockDuration + TimeSpan.FromSeconds(5)), "and promptly then");
            }
            else
            {
                Assert.That(back.Max(), Is.LessThan(lockDuration), "the killed member's records came back before their locks expired (its connection closed)");
            }
        });
    }

    [Test]
    public void Build_InvalidOptions_ListsEveryProblem()
    {
        var options = new KafkaShareConsumerOptions { MaxConcurrency = 0, MaxDeliveryAttempts = 0, ShutdownTimeout = TimeSpan.FromSeconds(-1), PollTimeout = TimeSpan.Zero, DeadLetterTopic = " " };
        options.Topics.Add("^orders.*");
        options.Topics.Add(string.Empty);
        options.Config["share.acknowledgement.mode"] = "implicit";
        options.Config["fetch.wait.maxx.ms"] = "5";
        var error = Assert.Throws<OptionsValidationException>(() => new KafkaShareConsumerBuilder<string, string>("s", options).Build());
        TestContext.Out.WriteLine(string.Join(Environment.NewLine, error!.Failures));
        Assert.That(error.Failures, Has.Some.Contains("GroupId is not set")
            .And.Some.Contains("'^orders.*' is a regular expression")
            .And.Some.Contains("Topics has an empty entry")
            .And.Some.Contains("share.acknowledgement.mode=implicit")
            .And.Some.Contains("no property 'fetch.wait.maxx.ms'")
            .And.Some.Contains("MaxConcurrency is 0")
            .And.Some.Contains("MaxDeliveryAttempts is 0")
            .And.Some.Contains("ShutdownTimeout is -00:00:01")
            .And.Some.Contains("PollTimeout is 00:00:00")
            .And.Some.Contains("DeadLetterTopic is blank")
            .And.Some.Contains("has no handler")
            .And.Some.Contains("has no bootstrap servers"));
        Assert.That(error.Failures.Count(), Is.EqualTo(12));
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task StartAsync_PropertyAShareConsumerDoesNotTake_FailsNamingIt()
    {
        await using var cluster = ShareTestKit.Cluster();
        var options = ShareTestKit.Options(cluster, "bad", "bad");
        options.Config["enable.auto.commit"] = "false";
        await using var consumer = new KafkaShareConsumerBuilder<string, string>("bad", options).SetHandler((_, _) => ValueTask.CompletedTask).Build();
        var error = Assert.ThrowsAsync<InvalidOperationException>(() => consumer.StartAsync());
        TestContext.Out.WriteLine(error!.Message);
        Assert.Multiple(() =>
        {
            Assert.That(error.Message, Does.Contain("enable.auto.commit").And.Contain("Share consumer 'bad'"));
            Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Faulted));
        });
    }

    /// <summary>How many records' acknowledgements the cluster refused (event 6009 lines).</summary>
    private static int RefusedAcknowledgements(CapturingLoggerFactory logs) => logs.Lines.Where(l => l.EventId.Id == 6009)
        .Sum(l => int.Parse(System.Text.RegularExpressions.Regex.Match(l.Message, "of ([0-9]+) records").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
}
