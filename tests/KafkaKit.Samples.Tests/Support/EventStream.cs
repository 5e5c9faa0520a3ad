using System.Net.ServerSentEvents;
using System.Text.Json;
using KafkaKit.Samples.Notifications;

namespace KafkaKit.Samples.Tests.Support;

/// <summary>An open <c>text/event-stream</c> connection, read with the framework's SSE parser.</summary>
internal sealed class EventStream : IAsyncDisposable
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly HttpResponseMessage _response;
    private readonly IAsyncEnumerator<SseItem<string>> _events;

    private EventStream(HttpResponseMessage response, IAsyncEnumerator<SseItem<string>> events)
    {
        _response = response;
        _events = events;
    }

    public HttpResponseMessage Response => _response;

    /// <summary>Opens a user's stream and waits for its <c>ready</c> event (the subscription is registered from then on).</summary>
    public static async Task<EventStream> OpenAsync(HttpClient client, string userId, CancellationToken cancellationToken, string? lastEventId = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/users/{userId}/notifications/stream");
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (lastEventId is not null)
        {
            request.Headers.Add("Last-Event-ID", lastEventId);
        }

        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        var body = await response.Content.ReadAsStreamAsync(cancellationToken);
        var stream = new EventStream(response, SseParser.Create(body).EnumerateAsync(cancellationToken).GetAsyncEnumerator(cancellationToken));
        var ready = await stream.NextAsync(TimeSpan.FromSeconds(30), cancellationToken);
        Assert.That(ready.EventType, Is.EqualTo("ready"), "the first event");
        return stream;
    }

    /// <summary>Reads the next event.</summary>
    public async Task<SseItem<string>> NextAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var more = await _events.MoveNextAsync().AsTask().WaitAsync(timeout, cancellationToken);
        Assert.That(more, Is.True, "the stream ended");
        return _events.Current;
    }

    /// <summary>Reads events until the next <c>notification</c> event (skipping pings).</summary>
    public async Task<(Notification Notification, string? EventId)> NextNotificationAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var item = await NextAsync(deadline - DateTime.UtcNow, cancellationToken);
            if (item.EventType == "notification")
            {
                return (JsonSerializer.Deserialize<Notification>(item.Data, Json)!, item.EventId);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _response.Dispose(); // closes the connection: the server's stream ends
        try
        {
            await _events.DisposeAsync();
        }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException or IOException or OperationCanceledException)
        {
            // a read was still pending (the test failed on a timeout)
        }
    }
}
