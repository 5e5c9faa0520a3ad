using System.Net;
using System.Net.Http.Json;
using KafkaKit.Samples.Notifications;
using KafkaKit.Samples.Tests.Support;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Samples.Tests.Notifications;

/// <summary>How the sample starts: its embedded cluster by default, and its command line.</summary>
[TestFixture]
[NonParallelizable]
[CancelAfter(10_000)] // the default for the fast tests here; the ones on a cluster set their own
public sealed class NotificationsAppTests
{
    [Test]
    [CancelAfter(90_000)]
    public async Task Start_NoBootstrapServersConfigured_RunsOnItsOwnEmbeddedClusterAndWarnsDataIsInMemoryOnly(CancellationToken cancellationToken)
    {
        // Arrange / Act
        await using var host = await SampleHost.StartAsync(cluster: null, cancellationToken);

        // Assert
        Assert.That(host.App.EmbeddedCluster, Is.Not.Null);
        var warning = host.Logs.Entries.Where(e => e.EventId.Id == 5000).ToList();
        Assert.That(warning, Has.Count.EqualTo(1));
        Assert.That(warning[0].Level, Is.EqualTo(LogLevel.Warning));
        Assert.That(warning[0].Message, Does.Contain("EMBEDDED Kafka cluster").And.Contain("in memory only").And.Contain(host.App.EmbeddedCluster!.BootstrapServers));
        await using var carol = await EventStream.OpenAsync(host.Client, "carol", cancellationToken);
        using var response = await host.PostAsync("bob", "carol", "on the embedded cluster", cancellationToken);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        var (notification, _) = await carol.NextNotificationAsync(TimeSpan.FromSeconds(30), cancellationToken);
        Assert.That(notification.Message, Is.EqualTo("on the embedded cluster"));
    }

    [TestCase(null, "All")]
    [TestCase("all", "All")]
    [TestCase("API", "Api")]
    [TestCase(" worker ", "Worker")]
    public void ParseRole_KnownRole_ReturnsIt(string? role, string expected) =>
        Assert.That(NotificationsApp.ParseRole(role).ToString(), Is.EqualTo(expected));

    [Test]
    public void Create_UnknownRole_ThrowsUsageListingTheRoles()
    {
        var e = Assert.Throws<UsageException>(() => NotificationsApp.Create(["--role", "both"]));

        Assert.That(e!.Message, Does.Contain("'both'").And.Contain("all, api or worker"));
    }

    [Test]
    public void Create_InvalidSampleSettings_ThrowsUsageListingEveryProblem()
    {
        var e = Assert.Throws<UsageException>(() => NotificationsApp.Create(["--Notifications:ProduceTimeout", "00:00:00", "--Notifications:HistorySize", "0"]));

        Assert.That(e!.Message, Does.Contain("ProduceTimeout").And.Contain("HistorySize"));
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Start_ApiRoleAlone_AcceptsWithoutLocationAndServesNoPageNorStreams(CancellationToken cancellationToken)
    {
        await using var cluster = KafkaKit.Testing.EmbeddedKafkaCluster.Start();
        SampleHost.CreateTopic(cluster);
        await using var api = await SampleHost.StartAsync(cluster, cancellationToken, "api");

        using var accepted = await api.PostAsync("alice", "bob", "hi", cancellationToken);
        var root = await api.Client.GetStringAsync("/", cancellationToken);
        using var recent = await api.Client.GetAsync("/users/bob/notifications", cancellationToken);
        var users = await api.Client.GetFromJsonAsync<List<User>>("/users", cancellationToken);

        Assert.That(accepted.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        Assert.That(accepted.Headers.Location, Is.Null, "no Notifications:WorkerUrl: this process has no notifications resource to point at");
        Assert.That(root, Does.Contain("role api"));
        Assert.That(recent.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(users, Has.Count.EqualTo(4));
    }
}
