using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using KafkaKit.Samples.Tests.Support;
using KafkaKit.Tests.Support;
using KafkaKit.Testing;

namespace KafkaKit.Samples.Tests.Notifications;

/// <summary>End to end: POST -> KafkaKit producer -> topic -> KafkaKit consumer -> the recipient's event stream.</summary>
[TestFixture]
[NonParallelizable]
public sealed class NotificationStreamTests
{
    private static readonly TimeSpan Delivery = TimeSpan.FromSeconds(30);

    [Test]
    [CancelAfter(60_000)]
    public async Task Post_RecipientHasAnOpenStream_NotificationArrivesOnItAndOnlyForTheRecipient(CancellationToken cancellationToken)
    {
        // Arrange
        await using var cluster = EmbeddedKafkaCluster.Start();
        SampleHost.CreateTopic(cluster);
        await using var host = await SampleHost.StartAsync(cluster, cancellationToken);
        await using var bob = await EventStream.OpenAsync(host.Client, "bob", cancellationToken);
        Assert.That(bob.Response.Content.Headers.ContentType?.MediaType, Is.EqualTo("text/event-stream"));

        // Act
        using var response = await host.PostAsync("alice", "bob", "Coffee? ☕", cancellationToken);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken)).GetProperty("id").GetGuid();
        var (notification, eventId) = await bob.NextNotificationAsync(Delivery, cancellationToken);

        // Assert
        Assert.That(notification.Id, Is.EqualTo(id));
        Assert.That(eventId, Is.EqualTo(id.ToString()), "the SSE id is the notification id (for Last-Event-ID)");
        Assert.That((notification.SenderId, notification.RecipientId, notification.Message), Is.EqualTo(("alice", "bob", "Coffee? ☕")));
        Assert.That((await host.RecentAsync("bob", cancellationToken)).Select(n => n.Id), Does.Contain(id), "kept in bob's recent notifications");
        Assert.That((await host.RecentAsync("carol", cancellationToken)).Select(n => n.Id), Does.Not.Contain(id), "not delivered to anyone else");
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Stream_ReconnectWithLastEventId_ReplaysOnlyTheMissedNotificationsInOrder(CancellationToken cancellationToken)
    {
        // Arrange: three notifications for dave while he has no connection.
        await using var cluster = EmbeddedKafkaCluster.Start();
        SampleHost.CreateTopic(cluster);
        await using var host = await SampleHost.StartAsync(cluster, cancellationToken);
        var ids = new List<Guid>();
        foreach (var text in new[] { "one", "two", "three" })
        {
            using var response = await host.PostAsync("carol", "dave", text, cancellationToken);
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
            ids.Add((await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken)).GetProperty("id").GetGuid());
        }

        await Wait.ForAsync(async () => (await host.RecentAsync("dave", cancellationToken)).Count == 3, Delivery, "dave's three notifications consumed", cancellationToken);

        // Act: reconnect as a browser does, having seen the first one.
        await using var dave = await EventStream.OpenAsync(host.Client, "dave", cancellationToken, lastEventId: ids[0].ToString());
        var replayed = new[] { await dave.NextNotificationAsync(Delivery, cancellationToken), await dave.NextNotificationAsync(Delivery, cancellationToken) };

        // Assert
        Assert.That(replayed.Select(r => r.Notification.Id), Is.EqualTo(ids.Skip(1)));
        Assert.That((await host.RecentAsync("dave", cancellationToken)).Select(n => n.Id), Is.EqualTo(ids.AsEnumerable().Reverse()), "recent is newest first");
    }

    [Test]
    [CancelAfter(90_000)]
    public async Task SeparateApiAndWorkerProcesses_PostToApi_ArrivesOnTheWorkersStream(CancellationToken cancellationToken)
    {
        // Arrange: --role api and --role worker as two apps on one cluster (as two processes would run).
        await using var cluster = EmbeddedKafkaCluster.Start();
        SampleHost.CreateTopic(cluster);
        await using var worker = await SampleHost.StartAsync(cluster, cancellationToken, "worker");
        var workerOrigin = worker.BaseAddress.GetLeftPart(UriPartial.Authority);
        await using var api = await SampleHost.StartAsync(cluster, cancellationToken, "api", ("Notifications:AllowedOrigins:0", workerOrigin), ("Notifications:WorkerUrl", workerOrigin));
        await using var bob = await EventStream.OpenAsync(worker.Client, "bob", cancellationToken);

        // Act
        using var response = await api.PostAsync("alice", "bob", "across processes", cancellationToken);
        var (notification, _) = await bob.NextNotificationAsync(Delivery, cancellationToken);

        // Assert
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        Assert.That(response.Headers.Location, Is.EqualTo(new Uri(worker.BaseAddress, "/users/bob/notifications")), "the notifications are on the worker");
        Assert.That(notification.Message, Is.EqualTo("across processes"));
        using var postToWorker = await worker.PostAsync("alice", "bob", "no producer here", cancellationToken);
        Assert.That(postToWorker.StatusCode, Is.AnyOf(HttpStatusCode.NotFound, HttpStatusCode.MethodNotAllowed), "the worker has no POST /notifications");
        using var streamOnApi = await api.Client.GetAsync("/users/bob/notifications/stream", cancellationToken);
        Assert.That(streamOnApi.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), "the api has no streams");

        // The page served by the worker sends to the API, which allows the worker's origin (CORS preflight).
        var config = await worker.Client.GetFromJsonAsync<JsonElement>("/page-config", cancellationToken);
        Assert.That(config.GetProperty("sendUrl").GetString(), Is.EqualTo("/notifications"), "no Notifications:ApiUrl configured here");
        using var preflight = new HttpRequestMessage(HttpMethod.Options, "/notifications");
        preflight.Headers.Add("Origin", workerOrigin);
        preflight.Headers.Add("Access-Control-Request-Method", "POST");
        preflight.Headers.Add("Access-Control-Request-Headers", "content-type");
        using var allowed = await api.Client.SendAsync(preflight, cancellationToken);
        Assert.That(allowed.Headers.TryGetValues("Access-Control-Allow-Origin", out var origins) ? origins.Single() : null, Is.EqualTo(workerOrigin));
    }
}
