using KafkaKit.Hosting;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds KafkaKit's health check.</summary>
public static class KafkaKitHealthChecksBuilderExtensions
{
    /// <summary>
    /// Adds a health check over every KafkaKit producer and consumer of the application. Producer: unhealthy when
    /// faulted by a fatal error or when no broker answers a metadata request through it (2 s). Consumer: unhealthy when
    /// stopped, faulted (for example a message failed with <c>OnError=Stop</c>), not polling within
    /// <c>max.poll.interval.ms</c>, or when no broker answers; degraded before it starts.
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="name">The check's name. Default: <c>"kafkakit"</c>.</param>
    /// <param name="tags">Tags for filtering (for example "ready").</param>
    /// <returns>The builder.</returns>
    public static IHealthChecksBuilder AddKafkaKit(this IHealthChecksBuilder builder, string name = "kafkakit", IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Add(new HealthCheckRegistration(
            name,
            sp => ActivatorUtilities.CreateInstance<KafkaKitHealthCheck>(sp),
            failureStatus: null,
            tags));
    }
}
