using KafkaKit.Consuming;
using KafkaKit.Diagnostics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Hosting;

/// <summary>What the application does when a hosted consumer (regular or share) stops on an error by itself.</summary>
internal static class HostedFault
{
    /// <summary>
    /// Waits until a hosted consumer has stopped (its own stop sequence is over), then, if it stopped on an error while the
    /// host was not stopping it, applies its <c>OnFault</c> (see <see cref="Apply"/>).
    /// </summary>
    /// <param name="name">The consumer's name.</param>
    /// <param name="stopped">Completes when the consumer has stopped; never faults.</param>
    /// <param name="faulted">Whether the consumer ended faulted.</param>
    /// <param name="hostStopping">Whether the host asked it to stop.</param>
    /// <param name="behavior">The consumer's <c>OnFault</c>.</param>
    /// <param name="lifetime">The application to stop; <see langword="null"/> outside a host.</param>
    /// <param name="logger">The hosting logger.</param>
    /// <returns>A task that completes once the fault, if any, is acted on.</returns>
    public static async Task WatchAsync(string name, Task stopped, Func<bool> faulted, Func<bool> hostStopping, ConsumerFaultBehavior behavior, IHostApplicationLifetime? lifetime, ILogger logger)
    {
#pragma warning disable VSTHRD003 // the task of the consumer's own completion source (continuations run asynchronously)
        await stopped.ConfigureAwait(false);
#pragma warning restore VSTHRD003
        if (faulted() && !hostStopping())
        {
            Apply(name, behavior, lifetime, logger);
        }
    }

    /// <summary>
    /// Applies <paramref name="behavior"/> once the consumer has stopped on an error (after its own stop sequence):
    /// keep the application running, or stop it with exit code 1 (an exit code the application chose already is kept).
    /// </summary>
    /// <param name="name">The consumer's name.</param>
    /// <param name="behavior">The consumer's <c>OnFault</c>.</param>
    /// <param name="lifetime">The application to stop; <see langword="null"/> outside a host.</param>
    /// <param name="logger">The hosting logger.</param>
    private static void Apply(string name, ConsumerFaultBehavior behavior, IHostApplicationLifetime? lifetime, ILogger logger)
    {
        if (behavior == ConsumerFaultBehavior.KeepHostRunning)
        {
            HostingLog.KeepingApplication(logger, name);
            return;
        }

        if (lifetime is null)
        {
            HostingLog.NoApplicationToStop(logger, name);
            return;
        }

        // The host leaves the exit code at 0 when it stops for a failed BackgroundService; a supervisor would read that as
        // a clean exit and not restart. An exit code the application chose already is kept.
        if (Environment.ExitCode == 0)
        {
            Environment.ExitCode = 1;
        }

        HostingLog.StoppingApplication(logger, name, Environment.ExitCode);
        lifetime.StopApplication();
    }
}
