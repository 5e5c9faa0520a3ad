using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace KafkaKit.Samples.Notifications;

/// <summary>The worker role's HTTP side: a user's recent notifications, their live event stream, and the page's settings.</summary>
internal static class WorkerEndpoints
{
    /// <summary>The JSON of event data: the web defaults (camelCase), as the rest of the API.</summary>
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static void MapWorkerEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet("/users/{userId}/notifications", GetRecent).WithName("RecentNotifications");
        app.MapGet("/users/{userId}/notifications/stream", Stream).WithName("NotificationStream");
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
