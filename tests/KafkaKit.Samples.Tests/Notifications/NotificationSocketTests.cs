using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text.Json;
using KafkaKit.Samples.Notifications;
using KafkaKit.Samples.Tests.Support;
using KafkaKit.Tests.Support;
using KafkaKit.Testing;

namespace KafkaKit.Samples.Tests.Notifications;

/// <summary>
/// End to end over the WebSocket endpoint: a recipient online (any connection) gets a notification pushed at once; one
/// offline finds it replayed when connecting.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class NotificationSocketTests
{
    private static readonly TimeSpan Delivery = TimeSpan.FromSeconds(30);
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    [Test]
    [CancelAfter(60_000)]
    public async Task Socket_NotificationSentWhileRecipientOffline_ReplayedOnConnect(CancellationToken cancellationToken)
    {
        // Arrange: dave has no connection.
        await using var cluster = EmbeddedKafkaCluster.Start();
        SampleHost.CreateTopic(cluster);
        await using var host = await SampleHost.StartAsync(cluster, cancellationToken);
        Assert.That(await ConnectionAsync(host, "dave", cancellationToken), Is.EqualTo(new UserConnection("dave", false, 0)));

        // Act: a notification while he is offline, consumed; then he connects.
        var id = await PostAsync(host, "alice", "dave", "While you were out", cancellationToken);
        await Wait.ForAsync(async () => (await host.RecentAsync("dave", cancellationToken)).Any(n => n.Id == id), Delivery, "the notification consumed", cancellationToken);
        using var socket = await ConnectAsync(host, "dave", cancellationToken);
        var ready = await ReceiveAsync(socket, cancellationToken);
        var replayed = await ReceiveAsync(socket, cancellationToken);

        // Assert
        Assert.That(ready.GetProperty("type").GetString(), Is.EqualTo("ready"));
        Assert.That(ready.GetProperty("replayed").GetInt32(), Is.EqualTo(1));
        Assert.That(replayed.GetProperty("type").GetString(), Is.EqualTo("notification"));
        Assert.That(replayed.GetProperty("replayed").GetBoolean(), Is.True);
        var notification = replayed.GetProperty("notification").Deserialize<Notification>(Json)!;
        Assert.That((notification.Id, notification.SenderId, notification.Message), Is.EqualTo((id, "alice", "While you were out")));
        Assert.That(await ConnectionAsync(host, "dave", cancellationToken), Is.EqualTo(new UserConnection("dave", true, 1)));
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Socket_RecipientOnlineOnTwoTabs_PushedLiveToBoth_LastEventIdReplaysOnlyNewer(CancellationToken cancellationToken)
    {
        // Arrange: bob on two tabs, one of them a WebSocket and the other an event stream.
        await using var cluster = EmbeddedKafkaCluster.Start();
        SampleHost.CreateTopic(cluster);
        await using var host = await SampleHost.StartAsync(cluster, cancellationToken);
        using var tab1 = await ConnectAsync(host, "bob", cancellationToken);
        Assert.That((await ReceiveAsync(tab1, cancellationToken)).GetProperty("replayed").GetInt32(), Is.Zero);
        await using var tab2 = await EventStream.OpenAsync(host.Client, "bob", cancellationToken);
        Assert.That(await ConnectionAsync(host, "bob", cancellationToken), Is.EqualTo(new UserConnection("bob", true, 2)));

        // Act
        var first = await PostAsync(host, "carol", "bob", "first", cancellationToken);
        var pushed = await ReceiveAsync(tab1, cancellationToken);
        var onStream = await tab2.NextNotificationAsync(Delivery, cancellationToken);
        var second = await PostAsync(host, "carol", "bob", "second", cancellationToken);
        Assert.That((await ReceiveAsync(tab1, cancellationToken)).GetProperty("notification").GetProperty("id").GetGuid(), Is.EqualTo(second));
        using var reconnected = await ConnectAsync(host, "bob", cancellationToken, lastEventId: first);

        // Assert
        Assert.That(pushed.GetProperty("replayed").GetBoolean(), Is.False);
        Assert.That(pushed.GetProperty("notification").GetProperty("id").GetGuid(), Is.EqualTo(first));
        Assert.That(onStream.Notification.Id, Is.EqualTo(first));
        Assert.That((await ReceiveAsync(reconnected, cancellationToken)).GetProperty("replayed").GetInt32(), Is.EqualTo(1), "only what came after lastEventId");
        Assert.That((await ReceiveAsync(reconnected, cancellationToken)).GetProperty("notification").GetProperty("id").GetGuid(), Is.EqualTo(second));
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Socket_PlainGetOrUnknownUser_AnsweredWithProblem(CancellationToken cancellationToken)
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        SampleHost.CreateTopic(cluster);
        await using var host = await SampleHost.StartAsync(cluster, cancellationToken);

        using var plain = await host.Client.GetAsync("/users/bob/notifications/ws", cancellationToken);
        var unknown = Assert.ThrowsAsync<WebSocketException>(async () => (await ConnectAsync(host, "mallory", cancellationToken)).Dispose());

        Assert.That(plain.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await plain.Content.ReadAsStringAsync(cancellationToken), Does.Contain("Upgrade: websocket").And.Contain("/users/bob/notifications/stream"));
        Assert.That(unknown!.Message, Does.Contain("404"));
    }

    private static async Task<Guid> PostAsync(SampleHost host, string from, string to, string text, CancellationToken cancellationToken)
    {
        using var response = await host.PostAsync(from, to, text, cancellationToken);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        return (await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken)).GetProperty("id").GetGuid();
    }

    private static async Task<UserConnection> ConnectionAsync(SampleHost host, string userId, CancellationToken cancellationToken) =>
        (await host.Client.GetFromJsonAsync<UserConnection>($"/users/{userId}/connection", Json, cancellationToken))!;

    private static async Task<ClientWebSocket> ConnectAsync(SampleHost host, string userId, CancellationToken cancellationToken, Guid? lastEventId = null)
    {
        var uri = new UriBuilder(new Uri(host.BaseAddress, $"/users/{userId}/notifications/ws")) { Scheme = "ws" };
        if (lastEventId is { } last)
        {
            uri.Query = $"lastEventId={last}";
        }

        var socket = new ClientWebSocket();
        try
        {
            await socket.ConnectAsync(uri.Uri, cancellationToken);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return socket;
    }

    /// <summary>Reads one text message, at most <see cref="Delivery"/>.</summary>
    private static async Task<JsonElement> ReceiveAsync(ClientWebSocket socket, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Delivery);
        using var message = new MemoryStream();
        var buffer = new byte[4096];
        WebSocketReceiveResult result;
        do
        {
            result = await socket.ReceiveAsync(buffer, timeout.Token);
            Assert.That(result.MessageType, Is.EqualTo(WebSocketMessageType.Text), $"closed: {result.CloseStatus} {result.CloseStatusDescription}");
            await message.WriteAsync(buffer.AsMemory(0, result.Count), timeout.Token);
        }
        while (!result.EndOfMessage);

        using var document = JsonDocument.Parse(message.ToArray());
        return document.RootElement.Clone();
    }
}
