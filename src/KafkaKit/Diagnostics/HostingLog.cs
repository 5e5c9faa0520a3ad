using Microsoft.Extensions.Logging;

namespace KafkaKit.Diagnostics;

/// <summary>Log events of consumers run by the host. Event ids 3100-3199 are stable.</summary>
internal static partial class HostingLog
{
    [LoggerMessage(3100, LogLevel.Error, "Consumer {Name} stopped on error, so the application stops with exit code {ExitCode} (its OnFault is StopHost; set OnFault to KeepHostRunning to keep the application running without this consumer).")]
    public static partial void StoppingApplication(ILogger logger, string name, int exitCode);

    [LoggerMessage(3101, LogLevel.Error, "Consumer {Name} stopped on error; the application keeps running because its OnFault is KeepHostRunning: the consumer consumes nothing until the application restarts, and its health is Unhealthy.")]
    public static partial void KeepingApplication(ILogger logger, string name);

    [LoggerMessage(3102, LogLevel.Error, "Consumer {Name} stopped on error, and its OnFault is StopHost, but the service provider has no IHostApplicationLifetime to stop: the consumer stays stopped.")]
    public static partial void NoApplicationToStop(ILogger logger, string name);

    [LoggerMessage(3103, LogLevel.Debug, "Consumer {Name}: its handler {Handler} was created once from a new scope to check its dependencies, and disposed.")]
    public static partial void HandlerChecked(ILogger logger, string name, string handler);
}
