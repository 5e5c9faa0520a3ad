using System.Net.Http.Json;
using KafkaKit.Samples.Notifications;
using KafkaKit.Testing;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Samples.Tests.Support;

/// <summary>
/// The notifications sample running in the test process on a free loopback port, on the test's own embedded cluster
/// (or, with no cluster given, on the embedded cluster the sample starts itself), with an HTTP client for it.
/// </summary>
internal sealed class SampleHost : IAsyncDisposable
{
    private SampleHost(NotificationsApp app, CapturingLoggerProvider logs)
    {
        App = app;
        Logs = logs;
        Client = new HttpClient { BaseAddress = app.BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    public NotificationsApp App { get; }

    public HttpClient Client { get; }

    public CapturingLoggerProvider Logs { get; }

    public Uri BaseAddress => App.BaseAddress;

    /// <summary>Creates the topic the sample uses on a test cluster (the sample creates it itself only on its own embedded cluster).</summary>
    public static void CreateTopic(EmbeddedKafkaCluster cluster) => cluster.CreateTopic("notifications", partitions: 3);

    /// <summary>Starts the sample.</summary>
    /// <param name="cluster">The test's cluster; null: the sample starts its own embedded cluster (its default).</param>
    /// <param name="role">all, api or worker.</param>
    /// <param name="settings">More configuration, as key/value pairs (for example <c>("Notifications:ProduceTimeout", "00:00:01")</c>).</param>
    public static async Task<SampleHost> StartAsync(EmbeddedKafkaCluster? cluster, CancellationToken cancellationToken, string role = "all", params (string Key, string Value)[] settings)
    {
        var args = new List<string> { "--urls", "http://127.0.0.1:0", "--role", role, "--Logging:LogLevel:Default", "Warning", "--Logging:LogLevel:KafkaKit", "Warning" };
        if (cluster is not null)
        {
            // As the sample does on its own embedded cluster: the mock completes a rebalance only after
            // session.timeout.ms - 1 s, so keep it short (a consumer that lost its coordinator rejoins in ~5 s).
            args.AddRange([
                "--KafkaKit:BootstrapServers", cluster.BootstrapServers,
                "--Notifications:CreateTopic", "false",
                "--KafkaKit:Consumers:notifications-web:Config:session.timeout.ms", "6000",
                "--KafkaKit:Consumers:notifications-web:Config:heartbeat.interval.ms", "500",
            ]);
        }

        foreach (var (key, value) in settings)
        {
            args.AddRange([$"--{key}", value]);
        }

        var logs = new CapturingLoggerProvider();
        var app = NotificationsApp.Create([.. args], builder =>
        {
            // The console shows warnings and up; the capture sees everything, for assertions on log events.
            builder.Logging.AddProvider(logs);
            builder.Logging.AddFilter<CapturingLoggerProvider>(null, LogLevel.Trace);
        });
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }

        return new SampleHost(app, logs);
    }

    /// <summary>Posts a notification.</summary>
    public Task<HttpResponseMessage> PostAsync(string? senderId, string? recipientId, string? message, CancellationToken cancellationToken) =>
        Client.PostAsJsonAsync("/notifications", new { senderId, recipientId, message }, cancellationToken);

    /// <summary>Gets a user's recent notifications (newest first).</summary>
    public async Task<IReadOnlyList<Notification>> RecentAsync(string userId, CancellationToken cancellationToken) =>
        (await Client.GetFromJsonAsync<List<Notification>>($"/users/{userId}/notifications", cancellationToken))!;

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await App.DisposeAsync();
    }
}
