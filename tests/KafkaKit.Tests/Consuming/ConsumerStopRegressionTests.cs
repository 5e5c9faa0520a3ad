using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Consuming;

/// <summary>Field cases C6 (stop without a proper close) and C10 (stop is not prompt).</summary>
[TestFixture]
[Parallelizable(ParallelScope.Self)] // fixtures overlap (most of their time is spent waiting on the cluster); tests within one run in sequence
public sealed class ConsumerStopRegressionTests
{
    private const int SessionTimeoutMs = 6000;

    /// <summary>
    /// The takeover bound after a graceful stop. Classic protocol: on the embedded cluster one rebalance takes
    /// session.timeout.ms - 1 s (5 s); a crashed member is only noticed after session.timeout.ms and then the group still
    /// rebalances (measured: ~5.1 s versus ~11.8 s). Consumer protocol (KIP-848): the cluster reassigns at the next
    /// heartbeat (measured: ~0.5 s after a leave, ~6.0 s after a crash, the session timeout). The crash-baseline test
    /// proves this bound separates the two.
    /// </summary>
    private static TimeSpan GracefulTakeoverBound(GroupProtocol protocol) =>
        protocol == GroupProtocol.Consumer ? TimeSpan.FromMilliseconds(SessionTimeoutMs / 2) : TimeSpan.FromMilliseconds(SessionTimeoutMs + 2000);

    [Test]
    [CancelAfter(60_000)]
    public async Task Regression_C6_StopInsideCommitInterval_LeavesGroupAndCommitsLastHandledPlusOne([Values] GroupProtocol protocol)
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("c6a", partitions: 2);
        var recorder = new ConsumerRecorder();
        KafkaConsumer<string, string> Build(string name)
        {
            var options = ConsumerTestKit.Options(cluster, "c6a-group", protocol, "c6a");
            options.CommitInterval = TimeSpan.FromMinutes(1); // no auto-commit can happen: only the stop's commit counts
            return recorder.Attach(new KafkaConsumerBuilder<string, string>(name, options), name)
                .SetHandler((r, _) =>
                {
                    recorder.Record(name, r);
                    return ValueTask.CompletedTask;
                })
                .Build();
        }

        var a = Build("a");
        await using var b = Build("b");
        await a.StartAsync();
        await b.StartAsync(); // usually both join within the cluster's initial rebalance delay: one quick first rebalance
        await Wait.ForAsync(() => a.Assignment.Count == 1 && b.Assignment.Count == 1, TimeSpan.FromSeconds(30), "a and b own one partition each");
        var partitionOfA = a.Assignment[0].Partition.Value;

        KafkaProbe.Produce(cluster.BootstrapServers, "c6a", ConsumerTestKit.Messages("m", 10), partitionOfA);
        await Wait.ForAsync(() => recorder.HandledBy("a").Count == 10, TimeSpan.FromSeconds(15), "a handled 10 messages");
        var lastHandled = recorder.HandledBy("a").Max(h => h.Offset);

        var clock = Stopwatch.StartNew();
        await a.StopAsync();
        var stopTook = clock.Elapsed;
        await Wait.ForAsync(() => b.Assignment.Count == 2, TimeSpan.FromSeconds(SessionTimeoutMs * 3 / 1000), "b owns both partitions");
        var takeover = clock.Elapsed;

        var committed = KafkaProbe.Committed(cluster.BootstrapServers, "c6a-group", "c6a", 2);
        KafkaProbe.Produce(cluster.BootstrapServers, "c6a", ConsumerTestKit.Messages("after", 1), partitionOfA);
        await Wait.ForAsync(() => recorder.HandledBy("b").Any(h => h.Partition == partitionOfA), TimeSpan.FromSeconds(15), "b handles a's partition");
        var firstOfB = recorder.HandledBy("b").First(h => h.Partition == partitionOfA);

        TestContext.Out.WriteLine($"C6a: stop took {stopTook.TotalMilliseconds:F0} ms; b owned both partitions {takeover.TotalMilliseconds:F0} ms after the stop request (session.timeout.ms={SessionTimeoutMs}); revokes of b: {recorder.EventsOf("b", "revoked").Count}, assigns of b: {recorder.EventsOf("b", "assigned").Count}");
        Assert.Multiple(() =>
        {
            Assert.That(a.State, Is.EqualTo(KafkaConsumerState.Stopped));
            Assert.That(a.Fault, Is.Null);
            Assert.That(committed[partitionOfA], Is.EqualTo(lastHandled + 1), "the stop commits the offset after the last handled message");
            Assert.That(firstOfB.Offset, Is.EqualTo(lastHandled + 1), "b starts right after a's last handled message: no re-delivery");

            Assert.That(takeover, Is.LessThan(GracefulTakeoverBound(protocol)), "takeover after a graceful stop is well under the crash bound (session timeout + rebalance)");
            Assert.That(recorder.EventsOf("b", "lost"), Is.Empty);
        });
        await a.DisposeAsync();
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Regression_C6_CrashBaselineMemberDisposedWithoutClose_TakeoverWaitsSessionTimeoutPlusRebalance([Values] GroupProtocol protocol)
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("c6base", partitions: 2);
        var recorder = new ConsumerRecorder();
        var options = ConsumerTestKit.Options(cluster, "c6base-group", protocol, "c6base");
        await using var b = recorder.Attach(new KafkaConsumerBuilder<string, string>("b", options), "b")
            .SetHandler((r, _) => ValueTask.CompletedTask)
            .Build();
        var config = new ConsumerConfig(new Dictionary<string, string>(options.Config))
        {
            BootstrapServers = cluster.BootstrapServers,
            GroupId = "c6base-group",
        };
        if (protocol == GroupProtocol.Consumer)
        {
            config.GroupProtocol = Confluent.Kafka.GroupProtocol.Consumer;
        }
        else
        {
            config.PartitionAssignmentStrategy = Confluent.Kafka.PartitionAssignmentStrategy.CooperativeSticky;
        }
        var crashed = new ConsumerBuilder<string, string>(config).Build();
        crashed.Subscribe("c6base");
        var polling = true;
        var pollThread = new Thread(() =>
        {
            while (Volatile.Read(ref polling))
            {
                crashed.Consume(50);
            }
        });
        pollThread.Start();
        await b.StartAsync();
        await Wait.ForAsync(() => b.Assignment.Count == 1, TimeSpan.FromSeconds(30), "b owns one partition");
        Volatile.Write(ref polling, false);
        pollThread.Join();
        var clock = Stopwatch.StartNew();
        crashed.Dispose();
        await Wait.ForAsync(() => b.Assignment.Count == 2, TimeSpan.FromSeconds(40), "b owns both partitions");
        var takeover = clock.Elapsed;
        TestContext.Out.WriteLine($"C6 crash baseline: b owned both partitions {takeover.TotalMilliseconds:F0} ms after a member was disposed without Close()");
        Assert.That(takeover, Is.GreaterThan(GracefulTakeoverBound(protocol)), "a crash costs session.timeout.ms plus a rebalance: more than the graceful bound");
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Regression_C6_PoisonWithRetryThenStop_FaultsWithOffsetOneAndNextMemberGetsPoisonFirst([Values] GroupProtocol protocol)
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("c6b", partitions: 1);
        KafkaProbe.Produce(cluster.BootstrapServers, "c6b", [
            new Message<string, string> { Key = "k", Value = "m0" },
            new Message<string, string> { Key = "k", Value = "poison" },
            new Message<string, string> { Key = "k", Value = "m2" },
        ]);
        var recorder = new ConsumerRecorder();
        var options = ConsumerTestKit.Options(cluster, "c6b-group", protocol, "c6b");
        options.OnError = ConsumerErrorAction.Stop;
        options.Retry.MaxRetryAttempts = 2;
        options.Retry.BaseDelay = TimeSpan.FromMilliseconds(50);
        var logs = new CapturingLoggerFactory();
        var poisonCalls = 0;
        await using var a = new KafkaConsumerBuilder<string, string>("a", options)
            .SetLoggerFactory(logs)
            .SetHandler((r, _) =>
            {
                recorder.Record("a", r);
                if (r.Message.Value == "poison")
                {
                    Interlocked.Increment(ref poisonCalls);
                    throw new InvalidOperationException("cannot handle poison");
                }

                return ValueTask.CompletedTask;
            })
            .Build();

        await a.StartAsync();
        await Wait.ForAsync(() => a.State == KafkaConsumerState.Faulted, TimeSpan.FromSeconds(20), "a faulted on the poison message");
        var committed = KafkaProbe.Committed(cluster.BootstrapServers, "c6b-group", "c6b", 1);

        await using var next = new KafkaConsumerBuilder<string, string>("next", ConsumerTestKit.Options(cluster, "c6b-group", protocol, "c6b"))
            .SetHandler((r, _) =>
            {
                recorder.Record("next", r);
                return ValueTask.CompletedTask;
            })
            .Build();
        await next.StartAsync();
        await Wait.ForAsync(() => recorder.HandledBy("next").Count >= 2, TimeSpan.FromSeconds(20), "the next member handles the rest");

        Assert.Multiple(() =>
        {
            Assert.That(a.Fault, Is.Not.Null);
            Assert.That(a.Fault!.InnerException, Is.TypeOf<InvalidOperationException>().With.Message.EqualTo("cannot handle poison"));
            Assert.That(poisonCalls, Is.EqualTo(3), "one call and two retries");
            Assert.That(recorder.HandledBy("a").Select(h => h.Value), Is.EqualTo(new[] { "m0", "poison", "poison", "poison" }), "m2 is never handed to the handler after the stop");
            Assert.That(committed[0], Is.EqualTo(1), "the poison message's offset is not committed");
            Assert.That(recorder.HandledBy("next").Select(h => h.Value), Is.EqualTo(new[] { "poison", "m2" }), "the next member starts with the poison message");
            Assert.That(logs.Count(2018), Is.EqualTo(1), "one critical 'stopped on error' line");
            Assert.That(logs.Lines.Count(l => l.Exception is not null), Is.EqualTo(1), "the stack trace is written once: on the stop line, not on each retry and the failure line too");
        });
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Regression_C10_StopWhileIdleOnEmptyTopic_ReturnsPromptlyAndLeavesGroup([Values] GroupProtocol protocol)
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("c10", partitions: 2);
        var recorder = new ConsumerRecorder();
        var logs = new CapturingLoggerFactory();
        var options = ConsumerTestKit.Options(cluster, "c10-group", protocol, "c10");
        var a = recorder.Attach(new KafkaConsumerBuilder<string, string>("a", options), "a")
            .SetLoggerFactory(logs)
            .SetHandler((_, _) => ValueTask.CompletedTask)
            .Build();
        var sinceStart = Stopwatch.StartNew();
        await a.StartAsync();
        await Wait.ForAsync(() => a.Assignment.Count == 2, TimeSpan.FromSeconds(15), "a is assigned the empty topic");
        await Wait.ForAsync(() => sinceStart.Elapsed >= TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(5), "t = 2 s");

        var clock = Stopwatch.StartNew();
        await a.StopAsync();
        var stopTook = clock.Elapsed;
        Assert.That(a.State, Is.EqualTo(KafkaConsumerState.Stopped));

        // The embedded cluster has no DescribeGroups, so membership is read from the group's behaviour. Quirk (see
        // DESIGN.md): when the last member leaves, the mock keeps the group "joining" for session.timeout.ms - 1 s from
        // that LeaveGroup, so a member that joins right after is assigned ~5 s after a's stop. Had a not left, the group
        // would wait for a's session to expire and for its sync to time out first (the crash baseline, ~12 s).
        await using var b = recorder.Attach(new KafkaConsumerBuilder<string, string>("b", ConsumerTestKit.Options(cluster, "c10-group", protocol, "c10")), "b")
            .SetHandler((_, _) => ValueTask.CompletedTask)
            .Build();
        await b.StartAsync();
        await Wait.ForAsync(() => b.Assignment.Count == 2, TimeSpan.FromSeconds(20), "b owns both partitions");
        var bAssigned = clock.Elapsed;

        TestContext.Out.WriteLine($"C10: StopAsync took {stopTook.TotalMilliseconds:F0} ms; a second member was assigned {bAssigned.TotalMilliseconds:F0} ms after the stop request");
        Assert.Multiple(() =>
        {
            Assert.That(stopTook, Is.LessThan(TimeSpan.FromSeconds(2)), "stop ends within a poll slice plus leaving the group");
            Assert.That(a.Fault, Is.Null);
            Assert.That(logs.Lines.Where(l => l.Exception is not null || l.Level >= Microsoft.Extensions.Logging.LogLevel.Error), Is.Empty, "no exception or error logged at stop");
            Assert.That(bAssigned, Is.LessThan(GracefulTakeoverBound(protocol)), "a left the group at stop: b did not wait for a's session to expire");
        });
        await a.DisposeAsync();
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task StopAsync_HandlerIgnoresItsToken_StopIsBoundedAndTheLateCompletionIsHarmless([Values] GroupProtocol protocol)
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("stubborn", partitions: 1);
        KafkaProbe.Produce(cluster.BootstrapServers, "stubborn", ConsumerTestKit.Messages("m", 1));
        var options = ConsumerTestKit.Options(cluster, "stubborn-group", protocol, "stubborn");
        options.ShutdownTimeout = TimeSpan.FromMilliseconds(500);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var finished = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var unobserved = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        void OnUnobserved(object? sender, UnobservedTaskExceptionEventArgs e) => unobserved.Enqueue(e.Exception);
        TaskScheduler.UnobservedTaskException += OnUnobserved;
        try
        {
            var consumer = new KafkaConsumerBuilder<string, string>("stubborn", options)
                .SetHandler(async (_, _) =>
                {
                    started.TrySetResult();
                    await release.Task; // ignores its token on purpose
                    finished.TrySetResult();
                })
                .Build();
            await consumer.StartAsync();
            await started.Task.WaitAsync(TimeSpan.FromSeconds(15));

            var clock = Stopwatch.StartNew();
            await consumer.DisposeAsync();
            var took = clock.Elapsed;
            TestContext.Out.WriteLine($"stop with a handler that ignores its token took {took.TotalMilliseconds:F0} ms (ShutdownTimeout {options.ShutdownTimeout.TotalMilliseconds:F0} ms)");
            release.SetResult();
            await finished.Task.WaitAsync(TimeSpan.FromSeconds(5));
            await Wait.UntilAsync(
                () =>
                {
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                    return !unobserved.IsEmpty;
                },
                TimeSpan.FromSeconds(1));

            Assert.Multiple(() =>
            {
                Assert.That(took, Is.LessThan(TimeSpan.FromSeconds(4)), "ShutdownTimeout + a 1 s grace + close, not the handler's whole run");
                Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Stopped));
                Assert.That(unobserved.Where(e => e.InnerException is ObjectDisposedException), Is.Empty, "the late handler completion threw nothing on the thread pool");
                Assert.That(KafkaProbe.Committed(cluster.BootstrapServers, "stubborn-group", "stubborn", 1)[0], Is.EqualTo(Offset.Unset.Value), "the abandoned message is not committed");
            });
        }
        finally
        {
            TaskScheduler.UnobservedTaskException -= OnUnobserved;
        }
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Regression_C10_StopWithHostTokenAlreadyCancelled_ReturnsAtOnceWithoutThrowingAndCancelsHandlers([Values] GroupProtocol protocol)
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("c10h", partitions: 1);
        KafkaProbe.Produce(cluster.BootstrapServers, "c10h", ConsumerTestKit.Messages("m", 3));
        var options = ConsumerTestKit.Options(cluster, "c10h-group", protocol, "c10h");
        options.CommitInterval = TimeSpan.FromMilliseconds(200);
        var logs = new CapturingLoggerFactory();
        var handled = 0;
        var blockedCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var consumer = new KafkaConsumerBuilder<string, string>("c10h", options)
            .SetLoggerFactory(logs)
            .SetHandler(async (r, ct) =>
            {
                if (r.Message.Value == "m1")
                {
                    try
                    {
                        await Task.Delay(Timeout.Infinite, ct);
                    }
                    catch (OperationCanceledException)
                    {
                        blockedCancelled.TrySetResult();
                        throw;
                    }
                }

                Interlocked.Increment(ref handled);
            })
            .Build();
        await consumer.StartAsync();
        await ConsumerTestKit.WaitForCommittedAsync(cluster, "c10h-group", "c10h", 1, c => c[0] == 1, TimeSpan.FromSeconds(15), "m0 committed, m1 in the handler");

        using var hostShutdown = new CancellationTokenSource();
        await hostShutdown.CancelAsync();
        var clock = Stopwatch.StartNew();
        Assert.DoesNotThrowAsync(() => consumer.StopAsync(hostShutdown.Token));
        var returnedAfter = clock.Elapsed;
        await blockedCancelled.Task.WaitAsync(TimeSpan.FromSeconds(5));
        await Wait.ForAsync(() => consumer.State == KafkaConsumerState.Stopped, TimeSpan.FromSeconds(15), "the poll thread finishes the stop on its own");

        Assert.Multiple(() =>
        {
            Assert.That(returnedAfter, Is.LessThan(TimeSpan.FromMilliseconds(500)), "the host's bound is honoured at once");
            Assert.That(handled, Is.EqualTo(1));
            Assert.That(KafkaProbe.Committed(cluster.BootstrapServers, "c10h-group", "c10h", 1)[0], Is.EqualTo(1), "the cancelled message is not committed");
            Assert.That(logs.Count(2022), Is.EqualTo(1), "the abandoned wait is logged");
            Assert.That(consumer.Fault, Is.Null);
        });
    }
}
