using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using KafkaKit.Samples.Notifications;
using KafkaKit.Samples.Tests.Support;
using KafkaKit.Tests.Support;
using KafkaKit.Testing;

namespace KafkaKit.Samples.Tests.Notifications;

/// <summary>POST /notifications and the read endpoints on a healthy cluster: one app and cluster for the fixture.</summary>
[TestFixture]
[NonParallelizable]
public sealed class NotificationsApiTests
{
    private EmbeddedKafkaCluster _cluster = null!;
    private SampleHost _host = null!;

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        _cluster = EmbeddedKafkaCluster.Start();
        SampleHost.CreateTopic(_cluster);
        _host = await SampleHost.StartAsync(_cluster, timeout.Token);
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }

        _cluster?.Dispose();
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Post_ValidNotification_Returns202WithIdAndLocationAndReachesTheRecipient(CancellationToken cancellationToken)
    {
        // Act
        using var response = await _host.PostAsync("alice", "bob", "Lunch at noon?", cancellationToken);

        // Assert
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), await response.Content.ReadAsStringAsync(cancellationToken));
        Assert.That(response.Headers.Location?.ToString(), Is.EqualTo("/users/bob/notifications"));
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
        var id = body.GetProperty("id").GetGuid();
        Assert.That(id, Is.Not.EqualTo(Guid.Empty));
        Assert.That(body.GetProperty("partition").GetInt32(), Is.InRange(0, 2));
        Assert.That(body.GetProperty("offset").GetInt64(), Is.GreaterThanOrEqualTo(0));
        await Wait.ForAsync(async () => (await _host.RecentAsync("bob", cancellationToken)).Any(n => n.Id == id), TimeSpan.FromSeconds(20), "the worker consumed it into bob's notifications", cancellationToken);
        var delivered = (await _host.RecentAsync("bob", cancellationToken)).Single(n => n.Id == id);
        Assert.That((delivered.SenderId, delivered.RecipientId, delivered.Message), Is.EqualTo(("alice", "bob", "Lunch at noon?")));
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Post_MessageOfExactlyMaxLength_Returns202(CancellationToken cancellationToken)
    {
        using var response = await _host.PostAsync("carol", "dave", new string('x', NotificationRequest.MaxMessageLength), cancellationToken);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), await response.Content.ReadAsStringAsync(cancellationToken));
    }

    [TestCase(null, "bob", "senderId", TestName = "Post_SenderIdMissing_Returns400")]
    [TestCase("", "bob", "senderId", TestName = "Post_SenderIdEmpty_Returns400")]
    [TestCase("Alice", "bob", "senderId", TestName = "Post_SenderIdUpperCase_Returns400")]
    [TestCase("alice!", "bob", "senderId", TestName = "Post_SenderIdWithPunctuation_Returns400")]
    [TestCase("1alice", "bob", "senderId", TestName = "Post_SenderIdStartingWithDigit_Returns400")]
    [TestCase("a234567890123456789012345678901234", "bob", "senderId", TestName = "Post_SenderIdLongerThan32_Returns400")]
    [TestCase("alice", null, "recipientId", TestName = "Post_RecipientIdMissing_Returns400")]
    [TestCase("alice", " bob", "recipientId", TestName = "Post_RecipientIdWithSpace_Returns400")]
    [TestCase("alice", "../bob", "recipientId", TestName = "Post_RecipientIdPath_Returns400")]
    [CancelAfter(30_000)]
    public async Task Post_MalformedId_Returns400NamingTheMember(string? senderId, string? recipientId, string member, CancellationToken cancellationToken)
    {
        using var response = await _host.PostAsync(senderId, recipientId, "hi", cancellationToken);

        await AssertValidationProblemAsync(response, member, cancellationToken);
    }

    [TestCase(null, TestName = "Post_MessageMissing_Returns400")]
    [TestCase("", TestName = "Post_MessageEmpty_Returns400")]
    [TestCase("  \n\t ", TestName = "Post_MessageWhiteSpace_Returns400")]
    [CancelAfter(30_000)]
    public async Task Post_EmptyMessage_Returns400(string? message, CancellationToken cancellationToken)
    {
        using var response = await _host.PostAsync("alice", "bob", message, cancellationToken);

        await AssertValidationProblemAsync(response, "message", cancellationToken);
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Post_MessageOverMaxLength_Returns400(CancellationToken cancellationToken)
    {
        using var response = await _host.PostAsync("alice", "bob", new string('x', NotificationRequest.MaxMessageLength + 1), cancellationToken);

        var problem = await AssertValidationProblemAsync(response, "message", cancellationToken);
        Assert.That(problem.GetProperty("errors").GetProperty("message")[0].GetString(), Does.Contain("1001 characters"));
    }

    [TestCase("{\"senderId\":\"alice\",", TestName = "Post_TruncatedJson_Returns400ProblemDetails")]
    [TestCase("{\"senderId\":42,\"recipientId\":\"bob\",\"message\":\"hi\"}", TestName = "Post_IdOfWrongJsonType_Returns400ProblemDetails")]
    [TestCase("null", TestName = "Post_JsonNull_Returns400ProblemDetails")]
    [CancelAfter(30_000)]
    public async Task Post_UnreadableBody_Returns400ProblemDetails(string json, CancellationToken cancellationToken)
    {
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await _host.Client.PostAsync("/notifications", content, cancellationToken);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
        Assert.That(problem.GetProperty("status").GetInt32(), Is.EqualTo(400));
    }

    [TestCase("zoe", "bob", "sender", TestName = "Post_UnknownSender_Returns404")]
    [TestCase("alice", "zoe", "recipient", TestName = "Post_UnknownRecipient_Returns404")]
    [CancelAfter(30_000)]
    public async Task Post_UnknownUser_Returns404NamingWho(string senderId, string recipientId, string who, CancellationToken cancellationToken)
    {
        using var response = await _host.PostAsync(senderId, recipientId, "hi", cancellationToken);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
        Assert.That(problem.GetProperty("detail").GetString(), Does.Contain($"The {who} 'zoe' does not exist"));
        Assert.That(problem.GetProperty("unknownUsers")[0].GetString(), Is.EqualTo("zoe"));
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task GetUsers_Always_ListsTheSeededUsers(CancellationToken cancellationToken)
    {
        var users = await _host.Client.GetFromJsonAsync<List<User>>("/users", cancellationToken);

        Assert.That(users!.Select(u => u.Id), Is.EqualTo(new[] { "alice", "bob", "carol", "dave" }));
        Assert.That(users!.Select(u => u.Name), Has.All.Not.Empty);
    }

    [TestCase("/users/zoe/notifications", TestName = "GetRecent_UnknownUser_Returns404")]
    [TestCase("/users/zoe/notifications/stream", TestName = "GetStream_UnknownUser_Returns404")]
    [CancelAfter(30_000)]
    public async Task Get_UnknownUser_Returns404(string path, CancellationToken cancellationToken)
    {
        using var response = await _host.Client.GetAsync(path, cancellationToken);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task GetHealth_ClusterUp_Returns200Healthy(CancellationToken cancellationToken)
    {
        // The consumer reports Degraded until it has started: wait for Healthy.
        JsonElement health = default;
        await Wait.ForAsync(
            async () =>
            {
                using var response = await _host.Client.GetAsync("/health", cancellationToken);
                health = await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
                return response.StatusCode == HttpStatusCode.OK && health.GetProperty("status").GetString() == "Healthy";
            },
            TimeSpan.FromSeconds(20),
            "GET /health answers 200 Healthy",
            cancellationToken);

        var clients = health.GetProperty("entries").GetProperty("kafkakit").GetProperty("data").EnumerateObject().Select(p => p.Name).ToList();
        Assert.That(clients, Has.Some.StartsWith("producer 'notifications'"));
        Assert.That(clients, Has.Some.StartsWith("consumer 'notifications-web'"));
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task GetRoot_Always_ServesThePage(CancellationToken cancellationToken)
    {
        using var page = await _host.Client.GetAsync("/", cancellationToken);
        using var script = await _host.Client.GetAsync("/app.js", cancellationToken);

        Assert.That(page.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(page.Content.Headers.ContentType?.MediaType, Is.EqualTo("text/html"));
        Assert.That(await page.Content.ReadAsStringAsync(cancellationToken), Does.Contain("<title>KafkaKit notifications</title>"));
        Assert.That(script.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(await script.Content.ReadAsStringAsync(cancellationToken), Does.Contain("new EventSource("));
    }

    private static async Task<JsonElement> AssertValidationProblemAsync(HttpResponseMessage response, string member, CancellationToken cancellationToken)
    {
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
        Assert.That(problem.GetProperty("errors").TryGetProperty(member, out _), Is.True, problem.ToString());
        return problem;
    }
}
