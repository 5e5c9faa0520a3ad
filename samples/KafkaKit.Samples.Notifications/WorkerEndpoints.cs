using System.Net.ServerSentEvents;
using System.Net.WebSockets;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace KafkaKit.Samples.Notifications;

/// <summary>
/// The worker role's HTTP side: a user's recent notifications, their live notifications over a WebSocket or an event
/// stream, whether they are online, and the page's settings.
/// </summary>
internal static class WorkerEndpoints
{
    /// <summary>The JSON of event data: the web defaults (camelCase), as the rest of the API.</summary>
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static void MapWorkerEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet("/users/{userId}/notifications", GetRecent).WithName("RecentNotifications");
        app.MapGet("/users/{userId}/notifications/stream", Stream).WithName("NotificationStream");
        app.MapGet("/users/{userId}/notifications/ws", WebSocketAsync).WithName("NotificationSocket");
        app.MapGet("/users/{userId}/connection", Connection).WithName("UserConnection");
        app.MapGet("/page-config", (IOptions<NotificationsOptions> options) => TypedResults.Ok(new
        {
            sendUrl = options.Value.ApiUrl is { } api ? $"{api.TrimEnd('/')}/notifications" : "/notifications",
            maxMessageLength = NotificationRequest.MaxMessageLength,
        }));
    }

    internal static Results<Ok<IReadOnlyList<Notification>>, ProblemHttpResult> GetRecent(string userId, UserDirectory users, NotificationHub hub) =>
        users.Contains(userId) ? TypedResults.Ok(hub.Recent(userId)) : UnknownUser(userId);

    /// <summary>
    /// <c>text/event-stream</c>: a <c>ready</c> event once the connection is registered, then one <c>notification</c>
    /// event per notification (SSE id = notification id; a reconnecting browser's <c>Last-Event-ID</c> replays what it
    /// missed from the history), and a <c>ping</c> event when idle. Ends when the client leaves or the app stops.
    /// </summary>
    internal static Results<ServerSentEventsResult<string>, ProblemHttpResult> Stream(
        string userId,
        UserDirectory users,
        NotificationHub hub,
        IOptions<NotificationsOptions> options,
        IHostApplicationLifetime lifetime,
        TimeProvider time,
        HttpContext http)
    {
        if (!users.Contains(userId))
        {
            return UnknownUser(userId);
        }

        Guid? lastEventId = Guid.TryParse(http.Request.Headers["Last-Event-ID"], out var last) ? last : null;
        http.Response.Headers["X-Accel-Buffering"] = "no"; // tells reverse proxies (nginx) not to buffer the stream
        return TypedResults.ServerSentEvents(EventsAsync(hub, userId, lastEventId, options.Value.HeartbeatInterval, time, http.RequestAborted, lifetime.ApplicationStopping));
    }

    /// <summary>
    /// Whether a user is online: <c>{ userId, online, connections }</c>, counting their open WebSockets and event streams
    /// (every tab). Online users get a notification pushed at once; offline ones find it in the history when they connect.
    /// </summary>
    internal static Results<Ok<UserConnection>, ProblemHttpResult> Connection(string userId, UserDirectory users, NotificationHub hub)
    {
        if (!users.Contains(userId))
        {
            return UnknownUser(userId);
        }

        var connections = hub.Connections(userId);
        return TypedResults.Ok(new UserConnection(userId, connections > 0, connections));
    }

    /// <summary>
    /// A WebSocket (text messages, JSON): <c>{"type":"ready","userId":..,"replayed":n}</c> once the connection is
    /// registered, then the history (everything newer than the <c>lastEventId</c> query parameter when given, else the
    /// whole history: what arrived while the user was offline) and the live notifications, each as
    /// <c>{"type":"notification","replayed":bool,"notification":{..}}</c>. Messages from the client are ignored. Ends with
    /// a close frame when the client leaves (1000), the app stops (1001) or the connection falls
    /// <see cref="NotificationsOptions.StreamBuffer"/> behind (1001: reconnect with <c>lastEventId</c>).
    /// </summary>
    internal static async Task<IResult> WebSocketAsync(
        string userId,
        UserDirectory users,
        NotificationHub hub,
        IHostApplicationLifetime lifetime,
        ILogger<NotificationHub> logger,
        HttpContext http)
    {
        if (!http.WebSockets.IsWebSocketRequest)
        {
            return TypedResults.Problem(
                statusCode: StatusCodes.Status400BadRequest,
                title: "Not a WebSocket request.",
                detail: $"GET /users/{userId}/notifications/ws takes WebSocket requests (Upgrade: websocket); GET /users/{userId}/notifications/stream serves the same notifications as Server-Sent Events.");
        }

        if (!users.Contains(userId))
        {
            return UnknownUser(userId);
        }

        Guid? lastEventId = Guid.TryParse(http.Request.Query["lastEventId"], out var last) ? last : null;
        using var socket = await http.WebSockets.AcceptWebSocketAsync();
        using var subscription = hub.Subscribe(userId, lastEventId, replayHistory: true);
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, lifetime.ApplicationStopping);
        var token = ended.Token;
        Log.WebSocketOpened(logger, userId, subscription.Replay.Count, hub.Connections(userId));

        // The client's close frame (or a broken connection) ends the receive loop, and with it the sending below.
        var receiving = ReceiveUntilClosedAsync(socket, ended);
        string reason;
        try
        {
            await SendAsync(socket, new { type = "ready", userId, replayed = subscription.Replay.Count }, token);
            foreach (var notification in subscription.Replay)
            {
                await SendAsync(socket, new { type = "notification", replayed = true, notification }, token);
            }

            while (await subscription.Reader.WaitToReadAsync(token))
            {
                while (subscription.Reader.TryRead(out var notification))
                {
                    await SendAsync(socket, new { type = "notification", replayed = false, notification }, token);
                }
            }

            reason = "fell behind";
            await CloseAsync(socket, WebSocketCloseStatus.EndpointUnavailable, "fell behind: reconnect with lastEventId");
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            reason = lifetime.ApplicationStopping.IsCancellationRequested ? "the app is stopping" : "the client left";
            await CloseAsync(socket, lifetime.ApplicationStopping.IsCancellationRequested ? WebSocketCloseStatus.EndpointUnavailable : WebSocketCloseStatus.NormalClosure, reason);
        }
        catch (WebSocketException e)
        {
            reason = e.Message;
        }

        await ended.CancelAsync();
        await receiving;
        Log.WebSocketClosed(logger, userId, reason);
        return Results.Empty;
    }

    private static async Task ReceiveUntilClosedAsync(WebSocket socket, CancellationTokenSource ended)
    {
        var buffer = new byte[1024];
        try
        {
            while (!ended.IsCancellationRequested)
            {
                var received = await socket.ReceiveAsync(buffer, ended.Token);
                if (received.MessageType == WebSocketMessageType.Close)
                {
                    break;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException)
        {
            // the connection ended or the sending side is done
        }

        await ended.CancelAsync();
    }

    /// <summary>Sends a close frame (the receive loop reads the client's answer), at most 2 s; a broken connection is left as is.</summary>
    private static async Task CloseAsync(WebSocket socket, WebSocketCloseStatus status, string description)
    {
        if (socket.State is not (WebSocketState.Open or WebSocketState.CloseReceived))
        {
            return;
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await socket.CloseOutputAsync(status, description, timeout.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException)
        {
            // the client is gone: nothing to tell it
        }
    }

    private static Task SendAsync<T>(WebSocket socket, T message, CancellationToken cancellationToken) =>
        socket.SendAsync(JsonSerializer.SerializeToUtf8Bytes(message, Json), WebSocketMessageType.Text, endOfMessage: true, cancellationToken);

    private static async IAsyncEnumerable<SseItem<string>> EventsAsync(
        NotificationHub hub,
        string userId,
        Guid? lastEventId,
        TimeSpan heartbeat,
        TimeProvider time,
        CancellationToken requestAborted,
        CancellationToken stopping,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        // Open streams must not hold up the app's stop: they end when it begins.
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(requestAborted, stopping, cancellationToken);
        var token = ended.Token;
        using var subscription = hub.Subscribe(userId, lastEventId);
        yield return new SseItem<string>(JsonSerializer.Serialize(new { userId }, Json), "ready") { ReconnectionInterval = TimeSpan.FromSeconds(2) };
        foreach (var notification in subscription.Replay)
        {
            yield return Event(notification);
        }

        Task<bool>? readable = null;
        while (!token.IsCancellationRequested)
        {
            readable ??= subscription.Reader.WaitToReadAsync(token).AsTask();
            using var beat = CancellationTokenSource.CreateLinkedTokenSource(token);
            var delay = Task.Delay(heartbeat, time, beat.Token);
            var first = await Task.WhenAny(readable, delay);
            await beat.CancelAsync();
            if (token.IsCancellationRequested)
            {
                yield break;
            }

            if (first != readable)
            {
                yield return new SseItem<string>("{}", "ping");
                continue;
            }

            if (!await readable)
            {
                yield break; // closed for reading too slowly: the browser reconnects with Last-Event-ID
            }

            readable = null;
            while (subscription.Reader.TryRead(out var notification))
            {
                yield return Event(notification);
            }
        }
    }

    private static SseItem<string> Event(Notification notification) =>
        new(JsonSerializer.Serialize(notification, Json), "notification") { EventId = notification.Id.ToString() };

    private static ProblemHttpResult UnknownUser(string userId) => TypedResults.Problem(
        statusCode: StatusCodes.Status404NotFound,
        title: "Unknown user.",
        detail: $"The user '{userId}' does not exist. GET /users lists the users.");
}

/// <summary>Whether a user is online, and on how many connections (WebSockets and event streams).</summary>
/// <param name="UserId">The user.</param>
/// <param name="Online">Whether at least one connection is open.</param>
/// <param name="Connections">The open connections.</param>
internal sealed record UserConnection(string UserId, bool Online, int Connections);
