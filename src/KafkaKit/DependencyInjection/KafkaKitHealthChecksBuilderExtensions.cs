using KafkaKit.DependencyInjection;
using KafkaKit.Hosting;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds KafkaKit's health checks.</summary>
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

    /// <summary>
    /// Adds two checks over every KafkaKit producer and consumer for Kubernetes probes: <c>"kafkakit-live"</c> tagged
    /// <c>"live"</c> and <c>"kafkakit-ready"</c> tagged <c>"ready"</c>; map them with
    /// <c>MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = r =&gt; r.Tags.Contains("live") })</c> and
    /// the same for <c>"ready"</c>. The worst client decides each result.
    /// </summary>
    /// <remarks>
    /// <para>Live: Unhealthy when a producer is faulted by a fatal error, or a consumer is faulted, stopped, or has not
    /// polled within <c>max.poll.interval.ms</c>; otherwise Healthy. Liveness does no I/O: a broker outage never fails it.</para>
    /// <para>Ready: Unhealthy when not live, when a consumer is not started or stopping, when a producer's circuit is
    /// open (half-open, isolated), or when no broker answers a metadata request through the client within 2 s.
    /// Degraded when a consumer has no partition assigned (joining, rebalancing, or more members than partitions), its
    /// group is rebalancing (<c>cgrp.join_state</c> other than <c>steady</c>, known with statistics on), its total lag is
    /// above <see cref="KafkaKitHealthCheckOptions.MaxConsumerLag"/>, or a (de)serializer's service is unreachable.
    /// ASP.NET Core answers Degraded with HTTP 200 unless <c>HealthCheckOptions.ResultStatusCodes</c> maps it to 503.</para>
    /// <para>The data of each result holds one line per client and, per consumer with statistics on
    /// (<c>statistics.interval.ms</c>), its total lag in messages under <c>"&lt;client&gt; lag"</c>.</para>
    /// </remarks>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="configure">Sets the options (the lag threshold); optional.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="builder"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="KafkaKitHealthCheckOptions.MaxConsumerLag"/> is zero or negative.</exception>
    public static IHealthChecksBuilder AddKafkaKitProbes(this IHealthChecksBuilder builder, Action<KafkaKitHealthCheckOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = new KafkaKitHealthCheckOptions();
        configure?.Invoke(options);
        if (options.MaxConsumerLag is <= 0)
        {
            throw new ArgumentOutOfRangeException(
                nameof(configure),
                options.MaxConsumerLag,
                $"KafkaKitHealthCheckOptions.MaxConsumerLag is {options.MaxConsumerLag}; allowed: a positive number of messages, or null for no threshold.");
        }

        var maxLag = options.MaxConsumerLag;
        builder.Add(new HealthCheckRegistration(
            "kafkakit-live",
            sp => new KafkaKitProbeHealthCheck(sp.GetRequiredService<KafkaKitClients>(), readiness: false, maxLag),
            failureStatus: null,
            ["live"]));
        return builder.Add(new HealthCheckRegistration(
            "kafkakit-ready",
            sp => new KafkaKitProbeHealthCheck(sp.GetRequiredService<KafkaKitClients>(), readiness: true, maxLag),
            failureStatus: null,
            ["ready"]));
    }
}
