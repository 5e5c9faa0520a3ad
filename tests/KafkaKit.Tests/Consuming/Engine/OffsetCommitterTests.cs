using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Consuming.Engine;

public sealed class OffsetCommitterTests
{
    private static readonly TopicPartition Partition = new("orders", 0);

    [TestCase(ErrorCode.RebalanceInProgress)]
    [TestCase(ErrorCode.IllegalGeneration)]
    [TestCase(ErrorCode.NotCoordinatorForGroup)]
    [TestCase(ErrorCode.GroupLoadInProgress)]
    [TestCase(ErrorCode.GroupCoordinatorNotAvailable)]
    [TestCase(ErrorCode.Local_WaitCoord)]
    [TestCase(ErrorCode.Local_Transport)]
    [TestCase(ErrorCode.RequestTimedOut)]
    [TestCase(ErrorCode.Local_TimedOut)]
    public void IsRetriableCommitError_GroupMovingOrRebalancing_True(ErrorCode code) =>
        Assert.That(OffsetCommitter.IsRetriableCommitError(code), Is.True);

    [TestCase(ErrorCode.UnknownMemberId)]
    [TestCase(ErrorCode.GroupAuthorizationFailed)]
    [TestCase(ErrorCode.TopicAuthorizationFailed)]
    [TestCase(ErrorCode.OffsetMetadataTooLarge)]
    [TestCase(ErrorCode.Local_Partial)]
    [TestCase(ErrorCode.Local_Fail)]
    public void IsRetriableCommitError_PermanentOrUnclassified_False(ErrorCode code) =>
        Assert.That(OffsetCommitter.IsRetriableCommitError(code), Is.False);

    [Test]
    public void ErrorCodeOf_PerPartitionFailure_FirstPartitionError()
    {
        var partial = new TopicPartitionOffsetException(
        [
            new TopicPartitionOffsetError(new TopicPartitionOffset(Partition, 5), new Error(ErrorCode.NoError)),
            new TopicPartitionOffsetError(new TopicPartitionOffset("orders", 1, 9), new Error(ErrorCode.RebalanceInProgress)),
        ]);

        Assert.That(partial.Error.Code, Is.EqualTo(ErrorCode.Local_Partial));
        Assert.That(OffsetCommitter.ErrorCodeOf(partial), Is.EqualTo(ErrorCode.RebalanceInProgress));
        Assert.That(OffsetCommitter.ErrorCodeOf(new KafkaException(ErrorCode.Local_State)), Is.EqualTo(ErrorCode.Local_State));
    }

    [Test]
    public void Commit_RefusedPerPartitionWhileStopping_ReturnsTheRetriableErrorCountedAndLoggedAsRetry()
    {
        var (client, fake) = FakeConsumerClient.Create();
        fake.CommitFailure = new TopicPartitionOffsetException(
            [new TopicPartitionOffsetError(new TopicPartitionOffset(Partition, 5), new Error(ErrorCode.RebalanceInProgress))]);
        var logs = new CapturingLoggerFactory();
        var committer = new OffsetCommitter("test", "group", logs.CreateLogger("KafkaKit.Consumer"));

        var stopping = committer.Commit(client, stopping: true);
        var running = committer.Commit(client);

        Assert.That(stopping?.Code, Is.EqualTo(ErrorCode.RebalanceInProgress));
        Assert.That(running?.Code, Is.EqualTo(ErrorCode.RebalanceInProgress));
        Assert.That(committer.Failures, Is.EqualTo(2));
        Assert.That(logs.Count(2023), Is.EqualTo(1), "the stop's commit will retry: information");
        Assert.That(logs.Count(2004), Is.EqualTo(1), "any other failed commit: warning");
    }

    [Test]
    public void OnCommitted_FailedFinalCommitOfRevokedPartition_LoggedAsNotCarriedAndCounted()
    {
        var logs = new CapturingLoggerFactory();
        var committer = new OffsetCommitter("test", "group", logs.CreateLogger("KafkaKit.Consumer"));
        var refused = new Error(ErrorCode.RebalanceInProgress);

        committer.OnCommitted(new CommittedOffsets([new TopicPartitionOffsetError(new TopicPartitionOffset(Partition, 3), refused)], refused), owned: []);
        committer.OnCommitted(new CommittedOffsets([new TopicPartitionOffsetError(new TopicPartitionOffset(Partition, 4), refused)], refused), owned: [Partition]);

        Assert.That(committer.Failures, Is.EqualTo(2));
        Assert.That(logs.Lines.Single(l => l.EventId.Id == 2063).Message, Does.EndWith("receive the messages after them again: orders [0] @3"), "revoked: nothing carries it again");
        Assert.That(logs.Count(2004), Is.EqualTo(1), "still owned: the next commit carries it");
    }

    [Test]
    public void Commit_NothingStored_NoErrorNotCounted()
    {
        var (client, fake) = FakeConsumerClient.Create();
        fake.CommitFailure = new KafkaException(ErrorCode.Local_NoOffset);
        var committer = new OffsetCommitter("test", "group", new CapturingLoggerFactory().CreateLogger("c"));

        Assert.That(committer.Commit(client, stopping: true), Is.Null);
        Assert.That(committer.Failures, Is.Zero);
    }

    [Test]
    public void Store_NewCompletedOffset_StoredOnce()
    {
        var (client, fake) = FakeConsumerClient.Create();
        var committer = new OffsetCommitter("test", "group", new CapturingLoggerFactory().CreateLogger("c"));
        var tracker = new OffsetTracker(Partition);
        tracker.Track(7);
        tracker.Complete(7);

        committer.Store(client, tracker);
        committer.Store(client, tracker);

        Assert.That(fake.Stored, Is.EqualTo(new[] { new TopicPartitionOffset(Partition, 8) }));
        Assert.That(tracker.Stored, Is.EqualTo(8));
    }

    [Test]
    public void Store_PartitionNoLongerAssigned_SilentAndRetriedLater()
    {
        var (client, fake) = FakeConsumerClient.Create();
        var logs = new CapturingLoggerFactory();
        var committer = new OffsetCommitter("test", "group", logs.CreateLogger("KafkaKit.Consumer"));
        var tracker = new OffsetTracker(Partition);
        tracker.Track(7);
        tracker.Complete(7);
        fake.StoreFailure = new TopicPartitionOffsetException(
            [new TopicPartitionOffsetError(new TopicPartitionOffset(Partition, 8), new Error(ErrorCode.Local_State))]);

        committer.Store(client, tracker);
        Assert.That(tracker.Stored, Is.EqualTo(Offset.Unset.Value));
        Assert.That(logs.Lines, Is.Empty, "Local_State is handled, not logged");

        fake.StoreFailure = new KafkaException(ErrorCode.Local_Fail);
        committer.Store(client, tracker);
        Assert.That(logs.Count(2021), Is.EqualTo(1));

        fake.StoreFailure = null;
        committer.Store(client, tracker);
        Assert.That(fake.Stored, Is.EqualTo(new[] { new TopicPartitionOffset(Partition, 8) }));
    }
}
