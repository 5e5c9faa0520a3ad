namespace KafkaKit.Consuming;

/// <summary>
/// What the application does when a consumer run by the host (registered with <c>AddConsumer</c>) stops on an error: a
/// message failed with <see cref="ConsumerErrorAction.Stop"/>, a dead-letter produce failed, its handler could not be
/// created, or librdkafka reported a fatal error. The values follow the host's
/// <c>HostOptions.BackgroundServiceExceptionBehavior</c> for a failed <c>BackgroundService</c>; that host option itself
/// does not apply to KafkaKit consumers.
/// </summary>
public enum ConsumerFaultBehavior
{
    /// <summary>
    /// Stop the application (<c>IHostApplicationLifetime.StopApplication</c>) once the consumer has committed what it
    /// handled and left its group, and set <see cref="Environment.ExitCode"/> to 1 when it is 0, so the process exits
    /// non-zero and a supervisor (Kubernetes, systemd, a Windows service manager) sees a failure and can restart it. A
    /// <c>Main</c> that returns an <see langword="int"/> decides the exit code itself. The default, like the host's default
    /// for a failed <c>BackgroundService</c> (which, unlike this, leaves the exit code at 0).
    /// </summary>
    StopHost = 0,

    /// <summary>
    /// Keep the application running with this consumer stopped: it consumes nothing until the application restarts;
    /// the health check reports it Unhealthy and the fault is logged. Choose it when something else (a health probe, an
    /// operator) decides about restarts, or when the application has other work that must go on.
    /// </summary>
    KeepHostRunning = 1,
}
