using KafkaKit.DependencyInjection;
using KafkaKit.Topics;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace KafkaKit.Hosting;

/// <summary>
/// The liveness or readiness check of every KafkaKit producer and consumer (rules in <see cref="ProbeRules"/>). Liveness
/// does no I/O, so a broker outage never restarts the process; readiness also asks a broker for metadata through each
/// client that is otherwise ready or degraded (bounded by <see cref="KafkaKitHealthCheck.ProbeTimeout"/>): no answer is
/// not ready. The worst client decides the result; the data holds one line per client and each consumer's known lag. A
/// problem of a declared topic found at start makes readiness Degraded at least (never liveness).
/// </summary>
internal sealed class KafkaKitProbeHealthCheck(KafkaKitClients clients, bool readiness, long? maxConsumerLag) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var snapshot = clients.Snapshot();
        var (worst, data) = readiness ? TopicHealth.Start(clients) : (HealthStatus.Healthy, new Dictionary<string, object>(StringComparer.Ordinal));
        if (snapshot.Count == 0 && worst == HealthStatus.Healthy)
        {
            return HealthCheckResult.Healthy("no KafkaKit client has been built yet");
        }

        var verdicts = snapshot.Select(client => client.Judge(maxConsumerLag)).ToList();
        var probes = await Task.WhenAll(snapshot.Select((client, i) => KafkaKitHealthCheck.ProbeAsync(client, readiness && verdicts[i].Ready != HealthStatus.Unhealthy, cancellationToken))).ConfigureAwait(false);
        for (var i = 0; i < snapshot.Count; i++)
        {
            var client = snapshot[i];
            var status = readiness ? verdicts[i].Ready : verdicts[i].Live;
            var description = verdicts[i].Description;
            var unreachable = probes[i];
            if (unreachable is not null)
            {
                status = HealthStatus.Unhealthy;
                description = $"{description}; no broker reachable: {unreachable}";
            }

            data[client.Name] = $"{status}: {description}";
            if (client.Lag is { } lag)
            {
                data[$"{client.Name} lag"] = lag;
            }

            worst = status < worst ? status : worst;
        }

        var what = readiness ? "ready" : "live";
        return new HealthCheckResult(worst, worst == HealthStatus.Healthy ? $"all KafkaKit clients {what}" : $"a KafkaKit client or declared topic is not {what}", data: data);
    }
}
