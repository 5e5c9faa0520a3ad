using System.Globalization;
using System.Text;
using Confluent.Kafka;
using KafkaKit.Consuming;

namespace KafkaKit.Tests.Consuming.Engine;

/// <summary>Where a failed record goes next with OnError = RetryTopics (no broker).</summary>
[TestFixture]
public sealed class RetryTopicRouterTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 7, 5, 0, 0, TimeSpan.Zero);

    [Test]
    public void Next_SourceRecord_FirstTierWithOriginAndDueHeaders()
    {
        var router = Router();
        var source = Record("orders", offset: 41, new Headers { { "trace", Encoding.UTF8.GetBytes("t-1") } });

        var next = router.Next(source, new TimeoutException("slow"))!.Value;

        Assert.Multiple(() =>
        {
            Assert.That(next.Topic, Is.EqualTo("orders.retry.1"));
            Assert.That(next.Tier, Is.EqualTo(1));
            Assert.That(Text(next.Message.Headers, "trace"), Is.EqualTo("t-1"));
            Assert.That(Text(next.Message.Headers, RetryTopicHeaders.OriginalOffset), Is.EqualTo("41"));
            Assert.That(Text(next.Message.Headers, RetryTopicHeaders.Due), Is.EqualTo((Now.ToUnixTimeMilliseconds() + 1000).ToString(CultureInfo.InvariantCulture)));
            Assert.That(RetryTopicHeaders.AttemptOf(next.Message.Headers), Is.EqualTo(1));
        });
    }

    [Test]
    public void Next_RecordFromFirstTier_SecondTierKeepsOriginAndReplacesRetryHeaders()
    {
        var router = Router();
        var first = router.Next(Record("orders", offset: 41), new TimeoutException("slow"))!.Value;
        var fromTier1 = Record("orders.retry.1", offset: 7, first.Message.Headers);

        var second = router.Next(fromTier1, new InvalidOperationException("again"))!.Value;

        Assert.Multiple(() =>
        {
            Assert.That(second.Topic, Is.EqualTo("orders.retry.2"));
            Assert.That(second.Message.Headers.Count(h => h.Key == RetryTopicHeaders.Attempt), Is.EqualTo(1), "replaced, not added");
            Assert.That(RetryTopicHeaders.AttemptOf(second.Message.Headers), Is.EqualTo(2));
            Assert.That(RetryTopicHeaders.OriginalTopicOf(second.Message.Headers), Is.EqualTo("orders"));
            Assert.That(Text(second.Message.Headers, RetryTopicHeaders.OriginalOffset), Is.EqualTo("41"), "the source offset, not the tier's");
            Assert.That(Text(second.Message.Headers, RetryTopicHeaders.Due), Is.EqualTo((Now.ToUnixTimeMilliseconds() + 5000).ToString(CultureInfo.InvariantCulture)));
            Assert.That(router.OriginOf(fromTier1), Is.EqualTo(new RecordOrigin("orders", 0, 41)));
        });
    }

    [Test]
    public void Next_LastTierOrDeadLetterRecord_NullSoItGoesToTheDeadLetterTopic()
    {
        var router = Router();
        var lastTier = Record("orders.retry.2", offset: 3, new Headers { { RetryTopicHeaders.Attempt, Encoding.UTF8.GetBytes("2") } });
        var deadLetter = Record("orders", offset: 5, new Headers { { DeadLetterPublisher.OriginalTopicHeader, Encoding.UTF8.GetBytes("orders") } });

        Assert.Multiple(() =>
        {
            Assert.That(router.Next(lastTier, new TimeoutException()), Is.Null);
            Assert.That(router.Next(deadLetter, new TimeoutException()), Is.Null, "a dead letter is never retried");
            Assert.That(router.DeadLetterTopics, Is.EqualTo(new[] { "orders.DLT" }));
            Assert.That(router.Topics, Is.EquivalentTo(new[] { "orders.retry.1", "orders.retry.2" }));
        });
    }

    [Test]
    public void DueOf_OnlyRetryTopicRecordsWithDueHeader()
    {
        var router = Router();
        var due = new Headers { { RetryTopicHeaders.Due, Encoding.UTF8.GetBytes("123") } };

        Assert.Multiple(() =>
        {
            Assert.That(router.DueOf(Record("orders.retry.1", 0, due)), Is.EqualTo(123));
            Assert.That(router.DueOf(Record("orders", 0, due)), Is.Null, "a source record is never held");
            Assert.That(router.DueOf(Record("orders.retry.1", 0)), Is.Null, "no due header: due now");
        });
    }

    private static RetryTopicRouter Router()
    {
        var options = new KafkaConsumerOptions { OnError = ConsumerErrorAction.RetryTopics };
        options.Topics.Add("orders");
        options.RetryTopics.Delays.Add(TimeSpan.FromSeconds(1));
        options.RetryTopics.Delays.Add(TimeSpan.FromSeconds(5));
        return new RetryTopicRouter(options, new FixedTime(Now));
    }

    private static ConsumeResult<byte[]?, byte[]?> Record(string topic, long offset, Headers? headers = null) => new()
    {
        TopicPartitionOffset = new TopicPartitionOffset(topic, 0, offset),
        Message = new Message<byte[]?, byte[]?>
        {
            Key = Encoding.UTF8.GetBytes("k"),
            Value = Encoding.UTF8.GetBytes("v"),
            Headers = headers ?? [],
            Timestamp = new Timestamp(Now.AddMinutes(-1)),
        },
    };

    private static string? Text(Headers headers, string key) => RetryTopicHeaders.Text(headers, key);

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
