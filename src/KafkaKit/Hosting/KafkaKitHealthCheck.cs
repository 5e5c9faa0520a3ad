using Confluent.Kafka;
using KafkaKit.DependencyInjection;
using KafkaKit.Topics;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace KafkaKit.Hosting;

/// <summary>
/// Reports every KafkaKit producer and consumer built in the service provider: its own state (faulted, stopped, polling
/// within <c>max.poll.interval.ms</c>, assigned) and whether a broker answers a metadata request through its
/// connection (bounded by <see cref="ProbeTimeout"/>). The worst client decides the result; a problem of a declared
/// topic found at start (<see cref="KafkaKitOptions.Topics"/>) makes it Degraded at least.
/// </summary>
internal sealed class KafkaKitHealthCheck(KafkaKitClients clients) : IHealthCheck
{
    /// <summary>How long the broker probe waits for a metadata answer.</summary>
    public static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(2);

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var snapshot = clients.Snapshot();
        var (worst, data) = TopicHealth.Start(clients);
        if (snapshot.Count == 0 && worst == HealthStatus.Healthy)
        {
            return HealthCheckResult.Healthy("no KafkaKit client has been built yet");
        }

        var evaluations = snapshot.Select(client => client.Evaluate()).ToList();
        var probes = await Task.WhenAll(snapshot.Select((client, i) => ProbeAsync(client, evaluations[i].Status != HealthStatus.Unhealthy, cancellationToken))).ConfigureAwait(false);
        for (var i = 0; i < snapshot.Count; i++)
        {
            var client = snapshot[i];
            var (status, description) = evaluations[i];
            var reachable = probes[i];
            if (reachable is not null)
            {
                status = HealthStatus.Unhealthy;
                description = $"{description}; no broker reachable: {reachable}";
            }

            data[client.Name] = $"{status}: {description}";
            worst = status < worst ? status : worst;
        }

        return new HealthCheckResult(worst, worst == HealthStatus.Healthy ? "all KafkaKit clients healthy" : "a KafkaKit client or declared topic is not healthy", data: data);
    }

    /// <summary>
    /// Asks a broker for metadata through the client's handle, off the caller's thread (the call blocks up to
    /// <see cref="ProbeTimeout"/>); the clients of one check are probed at the same time, so the check takes one bound,
    /// not one per client. The result is null when the client is not to be probed, has no handle, or a broker answered.
    /// </summary>
    internal static async Task<string?> ProbeAsync(KafkaClientHealth client, bool probe, CancellationToken cancellationToken) =>
        probe && client.Handle is { } handle ? await Task.Run(() => Probe(handle), cancellationToken).ConfigureAwait(false) : null;

    /// <returns>null when a broker answered; otherwise why not.</returns>
    internal static string? Probe(Handle handle)
    {
        try
        {
            using var admin = new DependentAdminClientBuilder(handle).Build();
            var metadata = admin.GetMetadata(ProbeTimeout);
            return metadata.Brokers.Count > 0 ? null : "the cluster returned no brokers";
        }
        catch (KafkaException e)
        {
            return $"{e.Error.Reason} ({e.Error.Code})";
        }
        catch (ObjectDisposedException)
        {
            return null; // the client was disposed meanwhile: its state says so at the next check
        }
    }
}
