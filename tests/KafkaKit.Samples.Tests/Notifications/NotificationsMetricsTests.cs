using System.Net;
using System.Text.RegularExpressions;
using KafkaKit.Samples.Tests.Support;
using KafkaKit.Tests.Support;
using KafkaKit.Testing;

namespace KafkaKit.Samples.Tests.Notifications;

/// <summary>GET /metrics: the KafkaKit meter through the OpenTelemetry Prometheus exporter.</summary>
[TestFixture]
[NonParallelizable]
public sealed partial class NotificationsMetricsTests
{
    [Test]
    [CancelAfter(60_000)]
    public async Task Metrics_AfterANotificationFlows_ScrapeHasKafkaKitSentAndConsumedCounts(CancellationToken cancellationToken)
    {
        // Arrange
        await using var cluster = EmbeddedKafkaCluster.Start();
        SampleHost.CreateTopic(cluster);
        await using var host = await SampleHost.StartAsync(cluster, cancellationToken);

        // Act: one notification, produced and consumed.
        using (var response = await host.PostAsync("alice", "bob", "metrics", cancellationToken))
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        }

        await Wait.ForAsync(async () => (await host.RecentAsync("bob", cancellationToken)).Count == 1, TimeSpan.FromSeconds(30), "the notification consumed", cancellationToken);
        var scrape = string.Empty;
        await Wait.ForAsync(
            async () =>
            {
                scrape = await host.Client.GetStringAsync("/metrics", cancellationToken);
                return Count(scrape, "messaging_client_sent_messages_total") >= 1 && Count(scrape, "messaging_client_consumed_messages_total") >= 1;
            },
            TimeSpan.FromSeconds(30),
            "the sent and consumed counters in the scrape of /metrics",
            cancellationToken);

        // Assert: Prometheus text format, the counters of this notification's topic.
        Assert.That(scrape, Does.Contain("# TYPE messaging_client_sent_messages_total counter"));
        Assert.That(Count(scrape, "messaging_client_sent_messages_total"), Is.EqualTo(1));
        Assert.That(Count(scrape, "messaging_client_consumed_messages_total"), Is.EqualTo(1));
        Assert.That(scrape, Does.Match("messaging_client_consumed_messages_total\\{[^}]*messaging_destination_name=\"notifications\""));
        Assert.That(scrape, Does.Match("messaging_process_duration_seconds_bucket\\{[^}]*le=\"0.005\"\\}"), "second-scale buckets for a histogram in seconds");
    }

    /// <summary>Sums the samples of a metric (every label set).</summary>
    private static double Count(string scrape, string metric) =>
        Sample().Matches(scrape).Where(m => m.Groups["name"].Value == metric).Sum(m => double.Parse(m.Groups["value"].Value, System.Globalization.CultureInfo.InvariantCulture));

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (?<value>[0-9.eE+-]+)", RegexOptions.Multiline)]
    private static partial Regex Sample();
}
