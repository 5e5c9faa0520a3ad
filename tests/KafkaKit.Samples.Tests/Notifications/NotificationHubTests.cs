using KafkaKit.Samples.Notifications;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KafkaKit.Samples.Tests.Notifications;

/// <summary>The worker's in-memory history and connections, without Kafka.</summary>
[TestFixture]
[CancelAfter(10_000)]
public sealed class NotificationHubTests
{
    private static NotificationHub NewHub(int historySize = 50, int streamBuffer = 100) =>
        new(Options.Create(new NotificationsOptions { HistorySize = historySize, StreamBuffer = streamBuffer }), NullLogger<NotificationHub>.Instance);

    private static Notification NewNotification(string to, string text) => new(Guid.NewGuid(), "alice", to, text, DateTimeOffset.UtcNow);

    [Test]
    public void Publish_MoreThanHistorySize_KeepsTheMostRecentNewestFirst()
    {
        var hub = NewHub(historySize: 50);
        var sent = Enumerable.Range(0, 60).Select(i => NewNotification("bob", $"n{i}")).ToList();

        sent.ForEach(n => hub.Publish(n));

        Assert.That(hub.Recent("bob").Select(n => n.Message), Is.EqualTo(Enumerable.Range(10, 50).Reverse().Select(i => $"n{i}")));
        Assert.That(hub.Recent("carol"), Is.Empty);
    }

    [Test]
    public async Task Publish_SameNotificationTwice_DeliversOnce()
    {
        var hub = NewHub();
        using var subscription = hub.Subscribe("bob", lastEventId: null);
        var notification = NewNotification("bob", "once");

        var first = hub.Publish(notification);
        var second = hub.Publish(notification with { }); // a redelivery after a rebalance: same id

        Assert.That((first, second), Is.EqualTo((1, -1)));
        Assert.That(hub.Recent("bob"), Has.Count.EqualTo(1));
        Assert.That(await subscription.Reader.ReadAsync(), Is.EqualTo(notification));
        Assert.That(subscription.Reader.TryRead(out _), Is.False);
    }

    [Test]
    public async Task Publish_TwoConnectionsOfTheRecipient_BothGetItOthersDoNot()
    {
        var hub = NewHub();
        using var tab1 = hub.Subscribe("bob", null);
        using var tab2 = hub.Subscribe("bob", null);
        using var carol = hub.Subscribe("carol", null);
        var notification = NewNotification("bob", "hi");

        var delivered = hub.Publish(notification);

        Assert.That(delivered, Is.EqualTo(2));
        Assert.That(await tab1.Reader.ReadAsync(), Is.EqualTo(notification));
        Assert.That(await tab2.Reader.ReadAsync(), Is.EqualTo(notification));
        Assert.That(carol.Reader.TryRead(out _), Is.False);
    }

    [Test]
    public void Publish_ConnectionBufferFull_ClosesThatConnectionOnly()
    {
        var hub = NewHub(streamBuffer: 2);
        var slow = hub.Subscribe("bob", null);
        using var fast = hub.Subscribe("bob", null);

        for (var i = 0; i < 3; i++)
        {
            hub.Publish(NewNotification("bob", $"n{i}"));
            while (fast.Reader.TryRead(out _))
            {
            }
        }

        Assert.That(hub.Connections("bob"), Is.EqualTo(1), "the slow connection was dropped");
        var buffered = new List<string>();
        while (slow.Reader.TryRead(out var n))
        {
            buffered.Add(n.Message);
        }

        Assert.That(buffered, Is.EqualTo(new[] { "n0", "n1" }), "the slow connection still gets what was buffered");
        Assert.That(slow.Reader.Completion.IsCompleted, Is.True, "then its stream ends (the browser reconnects with Last-Event-ID)");
        Assert.That(fast.Reader.Completion.IsCompleted, Is.False);
        slow.Dispose();
    }

    [Test]
    public void Subscribe_LastEventIdInHistory_ReplaysOnlyNewerOnes()
    {
        var hub = NewHub();
        var sent = Enumerable.Range(0, 4).Select(i => NewNotification("bob", $"n{i}")).ToList();
        sent.ForEach(n => hub.Publish(n));

        using var known = hub.Subscribe("bob", sent[1].Id);
        using var unknown = hub.Subscribe("bob", Guid.NewGuid());
        using var fresh = hub.Subscribe("bob", null);

        Assert.That(known.Replay, Is.EqualTo(sent.Skip(2)));
        Assert.That(unknown.Replay, Is.EqualTo(sent), "an id no longer in the history replays all of it");
        Assert.That(fresh.Replay, Is.Empty);
    }

    [Test]
    public void Dispose_Subscription_RemovesTheConnection()
    {
        var hub = NewHub();
        var subscription = hub.Subscribe("bob", null);
        Assert.That(hub.Connections("bob"), Is.EqualTo(1));

        subscription.Dispose();
        subscription.Dispose();

        Assert.That(hub.Connections("bob"), Is.Zero);
        Assert.That(hub.Publish(NewNotification("bob", "nobody listening")), Is.Zero);
    }
}
