using Confluent.Kafka;
using KafkaKit.Producing;

namespace KafkaKit.Tests.Producing;

/// <summary>Which produce failures KafkaKit's retry pipeline retries.</summary>
public sealed class ProduceErrorsTests
{
    [TestCase(ErrorCode.Local_MsgTimedOut)]
    [TestCase(ErrorCode.RequestTimedOut)]
    [TestCase(ErrorCode.Local_Transport)]
    [TestCase(ErrorCode.NetworkException)]
    [TestCase(ErrorCode.NotLeaderForPartition)]
    [TestCase(ErrorCode.LeaderNotAvailable)]
    [TestCase(ErrorCode.NotEnoughReplicas)]
    [TestCase(ErrorCode.NotEnoughReplicasAfterAppend)]
    public void IsRetriable_TransientError_ReturnsTrue(ErrorCode code) =>
        Assert.That(ProduceErrors.IsRetriable(new Error(code)), Is.True);

    [TestCase(ErrorCode.MsgSizeTooLarge)]
    [TestCase(ErrorCode.TopicAuthorizationFailed)]
    [TestCase(ErrorCode.Local_ValueSerialization)]
    [TestCase(ErrorCode.Local_KeySerialization)]
    [TestCase(ErrorCode.InvalidRecord)]
    [TestCase(ErrorCode.Local_PurgeQueue)]
    [TestCase(ErrorCode.Local_PurgeInflight)]
    [TestCase(ErrorCode.Local_UnknownTopic)]
    public void IsRetriable_PermanentError_ReturnsFalse(ErrorCode code) =>
        Assert.That(ProduceErrors.IsRetriable(new Error(code)), Is.False);

    [Test]
    public void IsRetriable_FatalError_ReturnsFalseEvenForATransientCode() =>
        Assert.That(ProduceErrors.IsRetriable(new Error(ErrorCode.RequestTimedOut, "fatal", isFatal: true)), Is.False);
}
