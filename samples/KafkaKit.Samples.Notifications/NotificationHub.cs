using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Options;

namespace KafkaKit.Samples.Notifications;

/// <summary>
/// The worker's in-memory side: for each user, the most recent notifications (<see cref="NotificationsOptions.HistorySize"/>)
/// and the open event-stream connections, each with a bounded buffer. Thread-safe.
/// </summary>
/// <remarks>
/// The consumer delivers at least once (a notification can come again after a rebalance or a restart), so a notification
/// whose id is still in the user's history is recognised and not delivered twice. A connection whose buffer is full is
/// closed rather than slowing everyone down: its browser reconnects and catches up from the history.
/// </remarks>
internal sealed class NotificationHub(IOptions<NotificationsOptions> options, ILogger<NotificationHub> logger)
{
    private readonly ConcurrentDictionary<string, Inbox> _inboxes = new(StringComparer.Ordinal);
    private readonly int _historySize = options.Value.HistorySize;
    private readonly int _streamBuffer = options.Value.StreamBuffer;

    /// <summary>Records a notification for its recipient and hands it to each of the recipient's open connections.</summary>
    /// <param name="notification">The notification.</param>
    /// <returns>How many connections got it, or -1 when it was a duplicate (already in the history).</returns>
    public int Publish(Notification notification)
    {
        var inbox = _inboxes.GetOrAdd(notification.RecipientId, static _ => new Inbox());
        lock (inbox.Gate)
        {
            if (!inbox.Ids.Add(notification.Id))
            {
                return -1;
            }

            inbox.Recent.AddLast(notification);
            if (inbox.Recent.Count > _historySize)
            {
                inbox.Ids.Remove(inbox.Recent.First!.Value.Id);
                inbox.Recent.RemoveFirst();
            }

            var delivered = 0;
            for (var i = inbox.Subscribers.Count - 1; i >= 0; i--)
            {
                var subscriber = inbox.Subscribers[i];
                if (subscriber.Writer.TryWrite(notification))
                {
                    delivered++;
                }
                else
                {
                    // Full: this connection reads too slowly. Close it (its browser reconnects and replays from history).
                    subscriber.Writer.TryComplete();
                    inbox.Subscribers.RemoveAt(i);
                    Log.SlowStreamClosed(logger, notification.RecipientId, _streamBuffer);
                }
            }

            return delivered;
        }
    }

    /// <summary>Opens a subscription to a user's notifications.</summary>
    /// <param name="userId">The user.</param>
    /// <param name="lastEventId">
    /// The id of the last notification the client has (the SSE <c>Last-Event-ID</c> of a reconnecting browser): the
    /// newer ones in the history are replayed; when it is no longer in the history, the whole history is. None: no replay,
    /// unless <paramref name="replayHistory"/>.
    /// </param>
    /// <param name="replayHistory">
    /// With no <paramref name="lastEventId"/>, replay the whole history (what arrived while the user was offline, as the
    /// WebSocket endpoint does on connect); the event stream leaves that to the page's <c>GET .../notifications</c>.
    /// </param>
    /// <returns>The subscription; dispose it when the connection ends.</returns>
    public Subscription Subscribe(string userId, Guid? lastEventId, bool replayHistory = false)
    {
        var inbox = _inboxes.GetOrAdd(userId, static _ => new Inbox());
        var channel = Channel.CreateBounded<Notification>(new BoundedChannelOptions(_streamBuffer)
        {
            SingleReader = true,
            SingleWriter = false,
            FullMode = BoundedChannelFullMode.Wait, // TryWrite fails when full: Publish then closes the connection
        });
        List<Notification> replay = [];
        lock (inbox.Gate)
        {
            // Snapshot and registration under one lock: nothing published meanwhile is missed or doubled.
            if (lastEventId is { } last)
            {
                var newer = inbox.Ids.Contains(last) ? inbox.Recent.SkipWhile(n => n.Id != last).Skip(1) : inbox.Recent;
                replay.AddRange(newer);
            }
            else if (replayHistory)
            {
                replay.AddRange(inbox.Recent);
            }

            inbox.Subscribers.Add(channel);
        }

        return new Subscription(channel.Reader, replay, () =>
        {
            lock (inbox.Gate)
            {
                inbox.Subscribers.Remove(channel);
            }

            channel.Writer.TryComplete();
        });
    }

    /// <summary>Gets a user's most recent notifications, newest first.</summary>
    /// <param name="userId">The user.</param>
    /// <returns>At most <see cref="NotificationsOptions.HistorySize"/> notifications.</returns>
    public IReadOnlyList<Notification> Recent(string userId)
    {
        if (!_inboxes.TryGetValue(userId, out var inbox))
        {
            return [];
        }

        lock (inbox.Gate)
        {
            return [.. inbox.Recent.Reverse()];
        }
    }

    /// <summary>Gets the number of open connections of a user.</summary>
    /// <param name="userId">The user.</param>
    /// <returns>The count.</returns>
    public int Connections(string userId)
    {
        if (!_inboxes.TryGetValue(userId, out var inbox))
        {
            return 0;
        }

        lock (inbox.Gate)
        {
            return inbox.Subscribers.Count;
        }
    }

    /// <summary>One user's state; every member is guarded by <see cref="Gate"/>.</summary>
    private sealed class Inbox
    {
        public Lock Gate { get; } = new();

        public LinkedList<Notification> Recent { get; } = new();

        public HashSet<Guid> Ids { get; } = [];

        public List<Channel<Notification>> Subscribers { get; } = [];
    }
}

/// <summary>An open subscription: the notifications to replay first, then the live ones.</summary>
internal sealed class Subscription(ChannelReader<Notification> reader, IReadOnlyList<Notification> replay, Action close) : IDisposable
{
    private Action? _close = close;

    /// <summary>Gets the live notifications; the reader completes when the connection is closed for reading too slowly.</summary>
    public ChannelReader<Notification> Reader { get; } = reader;

    /// <summary>Gets the notifications to send before the live ones, oldest first.</summary>
    public IReadOnlyList<Notification> Replay { get; } = replay;

    public void Dispose() => Interlocked.Exchange(ref _close, null)?.Invoke();
}
