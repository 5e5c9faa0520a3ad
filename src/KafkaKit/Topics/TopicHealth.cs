using KafkaKit.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace KafkaKit.Topics;

/// <summary>The part of the health checks' result that comes from the declared topics.</summary>
internal static class TopicHealth
{
    /// <summary>Starts a result: Degraded with a <c>topics</c> entry when declaring topics found problems, else Healthy and empty.</summary>
    /// <param name="clients">The clients and the topic problems found at start.</param>
    /// <returns>The status so far and the data.</returns>
    public static (HealthStatus Status, Dictionary<string, object> Data) Start(KafkaKitClients clients)
    {
        var data = new Dictionary<string, object>(StringComparer.Ordinal);
        var problems = clients.TopicProblems;
        if (problems.Count == 0)
        {
            return (HealthStatus.Healthy, data);
        }

        data["topics"] = $"{HealthStatus.Degraded}: {string.Join(" ", problems)}";
        return (HealthStatus.Degraded, data);
    }
}
