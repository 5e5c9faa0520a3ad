using System.Net;
using Confluent.SchemaRegistry;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KafkaKit.SchemaRegistry;

/// <summary>
/// Asks the registry once when the host starts (before any hosted service starts, so before consumers and before the
/// first produce): refused credentials and, with auto-registration off, missing <see cref="SchemaRegistryOptions.RequiredSubjects"/>
/// fail the start (every problem listed, as options validation does); an unreachable registry only logs a warning and
/// turns the <c>kafkakit-schema-registry</c> health check Degraded, because a registry down at deploy time is transient
/// and every serde call retries it within <c>MaxBlock</c> or the consumer's retry.
/// </summary>
internal sealed partial class SchemaRegistryStartCheck(
    ISchemaRegistryClient client,
    IOptions<SchemaRegistryOptions> options,
    ILogger logger,
    TimeProvider timeProvider) : IHostedLifecycleService, IHealthCheck
{
    /// <summary>The longest one start-check request waits (or <see cref="SchemaRegistryOptions.RequestTimeout"/> if shorter).</summary>
    internal static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(10);

    /// <summary>The longest the health check's request waits.</summary>
    internal static readonly TimeSpan HealthWait = TimeSpan.FromSeconds(2);

    private string? _unreachable;

    public async Task StartingAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var url = SchemaRegistryOptions.MaskUrl(settings.Url ?? string.Empty);
        var wait = settings.RequestTimeout < MaxWait ? settings.RequestTimeout : MaxWait;
        var problems = new List<string>();
        try
        {
            await client.GetCompatibilityAsync().WaitAsync(wait, timeProvider, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (Refused(e) is { } status)
        {
            problems.Add($"The schema registry at {url} refused KafkaKit's credentials ({(int)status} {status}): set KafkaKit:SchemaRegistry:BasicAuthUserInfo to 'user:password' of a registry user allowed to read subjects ({(settings.BasicAuthUserInfo is null ? "none is set" : "the user given is '" + settings.BasicAuthUserInfo.Split(':')[0] + "'")}).");
            throw Fail(problems);
        }
        catch (Exception e) when (e is TimeoutException || SchemaRegistrySerdes.IsUnreachable(e))
        {
            _unreachable = Reason(e);
            UnreachableAtStart(logger, url, _unreachable);
            return;
        }

        if (!settings.AutoRegisterSchemas)
        {
            foreach (var subject in settings.RequiredSubjects)
            {
                try
                {
                    var versions = await client.GetSubjectVersionsAsync(subject).WaitAsync(wait, timeProvider, cancellationToken).ConfigureAwait(false);
                    if (versions.Count == 0)
                    {
                        problems.Add(Missing(url, subject));
                    }
                }
                catch (SchemaRegistryException e) when (e.ErrorCode == 40401 || e.Status == HttpStatusCode.NotFound)
                {
                    problems.Add(Missing(url, subject));
                }
                catch (Exception e) when (Refused(e) is { } status)
                {
                    problems.Add($"The schema registry at {url} refused to show subject '{subject}' ({(int)status} {status}): give the user in KafkaKit:SchemaRegistry:BasicAuthUserInfo read access to it.");
                }
                catch (Exception e) when (e is TimeoutException || SchemaRegistrySerdes.IsUnreachable(e))
                {
                    _unreachable = Reason(e);
                    UnreachableAtStart(logger, url, _unreachable);
                    break;
                }
            }
        }

        if (problems.Count > 0)
        {
            throw Fail(problems);
        }

        if (_unreachable is null)
        {
            Reached(logger, url, settings.AutoRegisterSchemas ? 0 : settings.RequiredSubjects.Count);
        }
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Healthy once the registry answered; Degraded while it has not since the start (asked again, 2 s at most).</summary>
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var url = SchemaRegistryOptions.MaskUrl(options.Value.Url ?? string.Empty);
        if (Volatile.Read(ref _unreachable) is null)
        {
            return HealthCheckResult.Healthy($"Schema registry at {url} answered.");
        }

        try
        {
            await client.GetCompatibilityAsync().WaitAsync(HealthWait, timeProvider, cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref _unreachable, null);
            Recovered(logger, url);
            return HealthCheckResult.Healthy($"Schema registry at {url} answered.");
        }
        catch (Exception e) when (e is TimeoutException || SchemaRegistrySerdes.IsUnreachable(e))
        {
            var reason = Reason(e);
            Volatile.Write(ref _unreachable, reason);
            return HealthCheckResult.Degraded($"Schema registry at {url} is unreachable: {reason}. Producers and consumers retry it when they need it.");
        }
    }

    /// <summary>Gets why the registry was unreachable at start (or at the last health check), or null once it answered.</summary>
    internal string? Unreachable => Volatile.Read(ref _unreachable);

    private static HttpStatusCode? Refused(Exception e) => e switch
    {
        SchemaRegistryException { Status: HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden } r => r.Status,
        AggregateException { InnerException: { } inner } => Refused(inner),
        _ => null,
    };

    private static string Missing(string url, string subject) =>
        $"Subject '{subject}' (KafkaKit:SchemaRegistry:RequiredSubjects) does not exist in the schema registry at {url}, and AutoRegisterSchemas is false: register its schema there first (e.g. from the schema pipeline), correct the name, or turn AutoRegisterSchemas on.";

    private static string Reason(Exception e) => e is TimeoutException ? "no answer in time" : (e.InnerException is { } inner && e is not SchemaRegistryException ? inner.Message : e.Message);

    private static OptionsValidationException Fail(List<string> problems) =>
        new(Options.DefaultName, typeof(SchemaRegistryOptions), problems);

    [LoggerMessage(4130, LogLevel.Warning, "Schema registry at {Url} is unreachable at start ({Reason}); the host starts anyway: producers and consumers retry the registry when they need it, and the kafkakit-schema-registry health check is Degraded until it answers")]
    private static partial void UnreachableAtStart(ILogger logger, string url, string reason);

    [LoggerMessage(4131, LogLevel.Information, "Schema registry at {Url} answered at start; required subjects checked: {Subjects}")]
    private static partial void Reached(ILogger logger, string url, int subjects);

    [LoggerMessage(4132, LogLevel.Information, "Schema registry at {Url} answers again")]
    private static partial void Recovered(ILogger logger, string url);
}
