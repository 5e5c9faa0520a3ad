using KafkaKit.Samples.Notifications;

namespace KafkaKit.Samples.Tests.Notifications;

/// <summary>The request rules, without HTTP.</summary>
[TestFixture]
[CancelAfter(10_000)]
public sealed class NotificationRequestTests
{
    [Test]
    public void Validate_ValidRequest_NoErrors() =>
        Assert.That(new NotificationRequest("alice", "bob", "hi").Validate(), Is.Empty);

    [Test]
    public void Validate_EverythingWrong_ListsEveryMember()
    {
        var errors = new NotificationRequest("Alice", null, new string('x', 1_001)).Validate();

        Assert.That(errors.Keys, Is.EquivalentTo(new[] { "senderId", "recipientId", "message" }));
    }

    [TestCase("a", true)]
    [TestCase("bob-2_x", true)]
    [TestCase("a2345678901234567890123456789012", true)]
    [TestCase("a23456789012345678901234567890123", false)]
    [TestCase("Bob", false)]
    [TestCase("_bob", false)]
    [TestCase("bob smith", false)]
    [TestCase("böb", false)]
    [TestCase("", false)]
    public void IsWellFormedId_Candidate_MatchesTheRule(string id, bool expected) =>
        Assert.That(UserDirectory.IsWellFormedId(id), Is.EqualTo(expected));
}
