using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Confluent.Kafka;
using KafkaKit.Samples.Tests.Support;
using KafkaKit.Tests.Support;
using KafkaKit.Testing;

namespace KafkaKit.Samples.Tests.Notifications;

/// <summary>POST /notifications when producing fails: each test has its own embedded cluster and injects the fault.</summary>
[TestFixture]
[NonParallelizable]
public sealed class NotificationsApiFaultTests
{
    [Test]
    [CancelAfter(60_000)]
    public async Task Post_AllBrokersDown_Returns503WithRetryAfterAndKafkaErrorCodeThenRecovers(CancellationToken cancellationToken)
    {
        // Arrange: a short message.timeout.ms, so librdkafka gives the message up (Local_MsgTimedOut) well within the
        // request's 5 s.
        await using var cluster = EmbeddedKafkaCluster.Start(brokers: 2);
        SampleHost.CreateTopic(cluster);
        await using var host = await SampleHost.StartAsync(cluster, cancellationToken, "all", ("KafkaKit:Producers:notifications:Config:message.timeout.ms", "1000"));
        using (var warmUp = await host.PostAsync("alice", "bob", "before the outage", cancellationToken))
        {
            Assert.That(warmUp.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        }

        // Act
        cluster.SetBrokerDown(1);
        cluster.SetBrokerDown(2);
        var clock = Stopwatch.StartNew();
        using var response = await host.PostAsync("alice", "bob", "during the outage", cancellationToken);
        var answeredAfter = clock.Elapsed;
        using var health = await host.Client.GetAsync("/health", cancellationToken);

        // Assert
        var problem = await AssertUnavailableAsync(response, cancellationToken);
        Assert.That(problem.GetProperty("kafkaErrorCode").GetString(), Is.EqualTo(nameof(ErrorCode.Local_MsgTimedOut)));
        Assert.That(problem.GetProperty("kafkaErrorNumber").GetInt32(), Is.EqualTo((int)ErrorCode.Local_MsgTimedOut));
        Assert.That(answeredAfter, Is.LessThan(TimeSpan.FromSeconds(5)), "answered when librdkafka gave up, within the request timeout");
        Assert.That(health.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable), "/health is unhealthy while no broker answers");

        // And it recovers once the brokers are back.
        cluster.SetBrokerUp(1);
        cluster.SetBrokerUp(2);
        await Wait.ForAsync(
            async () =>
            {
                using var retry = await host.PostAsync("alice", "bob", "after the outage", cancellationToken);
                return retry.StatusCode == HttpStatusCode.Accepted;
            },
            TimeSpan.FromSeconds(30),
            "a POST is accepted again after the brokers came back",
            cancellationToken);
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task Post_NoAcknowledgementWithinProduceTimeout_Returns503AtTheTimeoutAndIsDeliveredLater(CancellationToken cancellationToken)
    {
        // Arrange: librdkafka would wait 60 s for the broker; the request gives up after 1 s.
        await using var cluster = EmbeddedKafkaCluster.Start();
        SampleHost.CreateTopic(cluster);
        await using var host = await SampleHost.StartAsync(
            cluster,
            cancellationToken,
            "all",
            ("Notifications:ProduceTimeout", "00:00:01"),
            ("KafkaKit:Producers:notifications:Config:message.timeout.ms", "60000"));
        using (var warmUp = await host.PostAsync("alice", "bob", "before the outage", cancellationToken))
        {
            Assert.That(warmUp.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
            var warmUpId = (await warmUp.Content.ReadFromJsonAsync<JsonElement>(cancellationToken)).GetProperty("id").GetGuid();

            // The worker's consumer must own its partitions before the outage. A broker that goes down while the
            // consumer's first JoinGroup waits in the group's initial rebalance delay leaves that join behind as a member
            // without a connection; the consumer joins again as a new member, the embedded cluster elects the stale one
            // leader (the first member joined), and the assignment comes only after its session expired and another
            // rebalance (session.timeout.ms - 1 s) ran: 5-10 s after the broker's return instead of about 1.5 s.
            await Wait.ForAsync(
                async () => (await host.RecentAsync("bob", cancellationToken)).Any(n => n.Id == warmUpId),
                TimeSpan.FromSeconds(30),
                "the worker consumed the warm-up notification (its consumer owns the partitions)",
                cancellationToken);
        }

        cluster.SetBrokerDown(1);

        // Act
        var clock = Stopwatch.StartNew();
        using var response = await host.PostAsync("alice", "carol", "no ack in time", cancellationToken);
        var answeredAfter = clock.Elapsed;

        // Assert
        var problem = await AssertUnavailableAsync(response, cancellationToken);
        Assert.That(problem.GetProperty("detail").GetString(), Does.Contain("within 1 s").And.Contain("may still be delivered"));
        Assert.That(problem.TryGetProperty("kafkaErrorCode", out _), Is.False, "no Kafka error yet: the request stopped waiting");
        Assert.That(answeredAfter, Is.InRange(TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(4)));

        // The message stayed in librdkafka's queue: it is delivered when the broker is back (the 503 says it may be).
        var id = problem.GetProperty("notificationId").GetGuid();
        cluster.SetBrokerUp(1);
        await Wait.ForAsync(
            async () => (await host.RecentAsync("carol", cancellationToken)).Any(n => n.Id == id),
            TimeSpan.FromSeconds(60), // reconnect backoff + the consumer's rejoin on a loaded 2-core CI machine
            "the timed-out notification reaches carol once the broker is back",
            cancellationToken);
        await Wait.ForAsync(() => host.Logs.Entries.Any(e => e.EventId.Id == 5005), TimeSpan.FromSeconds(10), "the late delivery is logged", cancellationToken);
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Post_ProducerQueueFull_Returns503WithLocalQueueFull(CancellationToken cancellationToken)
    {
        // Arrange: room for one message in librdkafka's queue, MaxBlock 200 ms, and no broker to take it away.
        await using var cluster = EmbeddedKafkaCluster.Start();
        SampleHost.CreateTopic(cluster);
        await using var host = await SampleHost.StartAsync(
            cluster,
            cancellationToken,
            "all",
            ("Notifications:ProduceTimeout", "00:00:03"),
            ("KafkaKit:Producers:notifications:MaxBlock", "00:00:00.200"),
            ("KafkaKit:Producers:notifications:Config:queue.buffering.max.messages", "1"),
            ("KafkaKit:Producers:notifications:Config:message.timeout.ms", "30000"));
        cluster.SetBrokerDown(1);

        // Act: two at once: one takes the only slot (and times out at 3 s), the other finds the queue full.
        var first = host.PostAsync("alice", "bob", "one", cancellationToken);
        var second = host.PostAsync("alice", "bob", "two", cancellationToken);
        using var a = await first;
        using var b = await second;

        // Assert
        var problems = new[] { await AssertUnavailableAsync(a, cancellationToken), await AssertUnavailableAsync(b, cancellationToken) };
        var codes = problems.Select(p => p.TryGetProperty("kafkaErrorCode", out var code) ? code.GetString() : null).ToList();
        Assert.That(codes, Has.One.EqualTo(nameof(ErrorCode.Local_QueueFull)), string.Join(" | ", problems));
        cluster.SetBrokerUp(1);
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Post_BrokerRefusesWithPermanentError_Returns500WithKafkaErrorCode(CancellationToken cancellationToken)
    {
        // Arrange
        await using var cluster = EmbeddedKafkaCluster.Start();
        SampleHost.CreateTopic(cluster);
        await using var host = await SampleHost.StartAsync(cluster, cancellationToken);
        using (var warmUp = await host.PostAsync("alice", "bob", "before", cancellationToken))
        {
            Assert.That(warmUp.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        }

        cluster.PushRequestErrors(ApiKey.Produce, ErrorCode.TopicAuthorizationFailed);

        // Act
        using var response = await host.PostAsync("alice", "bob", "refused", cancellationToken);

        // Assert
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.InternalServerError), await response.Content.ReadAsStringAsync(cancellationToken));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
        Assert.That(response.Headers.RetryAfter, Is.Null, "retrying a permanent error does not help");
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
        Assert.That(problem.GetProperty("kafkaErrorCode").GetString(), Is.EqualTo(nameof(ErrorCode.TopicAuthorizationFailed)));
        Assert.That(problem.GetProperty("notificationId").GetGuid(), Is.Not.EqualTo(Guid.Empty));
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Post_NotificationLargerThanMessageMaxBytes_Returns500WithMsgSizeTooLarge(CancellationToken cancellationToken)
    {
        // Arrange: a producer configured below the API's own limit (1,000 characters of text plus the JSON envelope).
        await using var cluster = EmbeddedKafkaCluster.Start();
        SampleHost.CreateTopic(cluster);
        await using var host = await SampleHost.StartAsync(cluster, cancellationToken, "all", ("KafkaKit:Producers:notifications:Config:message.max.bytes", "1000"));

        // Act
        using var response = await host.PostAsync("alice", "bob", new string('x', 990), cancellationToken);

        // Assert
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.InternalServerError), await response.Content.ReadAsStringAsync(cancellationToken));
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
        Assert.That(problem.GetProperty("kafkaErrorCode").GetString(), Is.EqualTo(nameof(ErrorCode.MsgSizeTooLarge)));
    }

    private static async Task<JsonElement> AssertUnavailableAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable), text);
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
        Assert.That(response.Headers.RetryAfter?.Delta, Is.EqualTo(TimeSpan.FromSeconds(5)));
        var problem = JsonSerializer.Deserialize<JsonElement>(text);
        Assert.That(problem.GetProperty("status").GetInt32(), Is.EqualTo(503));
        Assert.That(problem.GetProperty("notificationId").GetGuid(), Is.Not.EqualTo(Guid.Empty));
        return problem;
    }
}
