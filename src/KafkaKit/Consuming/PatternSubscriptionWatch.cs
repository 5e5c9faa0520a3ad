using System.Text.RegularExpressions;
using Confluent.Kafka;
using KafkaKit.Diagnostics;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Consuming;

/// <summary>
/// Logs the topics each <c>^</c> pattern of a subscription starts or stops matching (events 2041-2043): once at start,
/// then whenever the assignment changed, which librdkafka causes by rejoining the group each time the topics matching
/// its subscription change (found at a metadata refresh, every <c>topic.metadata.refresh.interval.ms</c>).
/// </summary>
/// <remarks>
/// A check asks the cluster for its topic list (one metadata request through the consumer's own connections) on a
/// short-lived background thread, never on the poll thread; checks requested while one runs are folded into one more.
/// The topics are matched with .NET's <see cref="Regex"/>, which agrees with librdkafka's POSIX extended expressions
/// for the usual patterns (anchors, classes, <c>.*</c>, alternation); <c>topic.blacklist</c> is not applied.
/// </remarks>
internal sealed class PatternSubscriptionWatch
{
    private static readonly TimeSpan MetadataTimeout = TimeSpan.FromSeconds(5);

    private readonly string _name;
    private readonly ILogger _logger;
    private readonly Func<Handle?> _handle;
    private readonly int _refreshIntervalMs;
    private readonly (string Pattern, Regex Regex, SortedSet<string>? Matched)[] _patterns;
    private int _requests;
    private Task _running = Task.CompletedTask; // poll thread

    private PatternSubscriptionWatch(string name, ILogger logger, Func<Handle?> handle, int refreshIntervalMs, IEnumerable<string> patterns)
    {
        _name = name;
        _logger = logger;
        _handle = handle;
        _refreshIntervalMs = refreshIntervalMs;
        _patterns = [.. patterns.Select(p => (p, new Regex(p, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)), (SortedSet<string>?)null))];
    }

    /// <summary>Creates the watch of a subscription, or returns <see langword="null"/> when it has no pattern.</summary>
    /// <param name="name">The consumer's name, for the log lines.</param>
    /// <param name="topics">The subscription (names and <c>^</c> patterns, validated).</param>
    /// <param name="config">The consumer's librdkafka properties (for <c>topic.metadata.refresh.interval.ms</c>).</param>
    /// <param name="logger">The consumer's logger.</param>
    /// <param name="handle">Gives the consumer's handle while it runs, otherwise <see langword="null"/>.</param>
    /// <returns>The watch, or <see langword="null"/>.</returns>
    public static PatternSubscriptionWatch? For(string name, IEnumerable<string> topics, ConsumerConfig config, ILogger logger, Func<Handle?> handle)
    {
        var patterns = topics.Where(t => t.StartsWith('^')).Distinct(StringComparer.Ordinal).ToList();
        return patterns.Count == 0 ? null : new PatternSubscriptionWatch(name, logger, handle, config.TopicMetadataRefreshIntervalMs ?? 300_000, patterns);
    }

    /// <summary>Asks for a check (poll thread; returns at once).</summary>
    public void Signal()
    {
        if (Interlocked.Increment(ref _requests) == 1)
        {
            _running = Task.Factory.StartNew(Run, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }
    }

    /// <summary>
    /// Waits for a check still running (poll thread, at stop): it calls into the client with its native handle, which
    /// must outlive the call. Bounded by the metadata request's timeout; checks requested after the stop began return at
    /// once.
    /// </summary>
    public void WaitForCheck() => ((IAsyncResult)_running).AsyncWaitHandle.WaitOne();

    private void Run()
    {
        while (true)
        {
            var seen = Volatile.Read(ref _requests);
            try
            {
                Check();
            }
            catch (ObjectDisposedException)
            {
                // the consumer was disposed meanwhile
            }
            catch (Exception e)
            {
                // A failed request (the cluster unreachable) or a pattern too slow to match: the next check tries again.
                ConsumerLog.PatternCheckFailed(_logger, e, _name);
            }

            if (Interlocked.CompareExchange(ref _requests, 0, seen) == seen)
            {
                return;
            }
        }
    }

    private void Check()
    {
        if (_handle() is not { } handle)
        {
            return; // stopping or stopped
        }

        // A blocking call on this background thread, bounded by MetadataTimeout.
        List<string> topics;
        using (var admin = new DependentAdminClientBuilder(handle).Build())
        {
            topics = [.. admin.GetMetadata(MetadataTimeout).Topics.Where(t => t.Error.Code == ErrorCode.NoError).Select(t => t.Topic)];
        }

        Update(topics);
    }

    /// <summary>Logs, per pattern, the topics of <paramref name="topics"/> it started or stopped matching since the last call.</summary>
    /// <param name="topics">Every topic in the cluster.</param>
    internal void Update(IReadOnlyCollection<string> topics)
    {
        for (var i = 0; i < _patterns.Length; i++)
        {
            var (pattern, regex, before) = _patterns[i];
            var now = new SortedSet<string>(topics.Where(t => regex.IsMatch(t)), StringComparer.Ordinal);
            if (before is null && now.Count == 0)
            {
                ConsumerLog.PatternMatchesNothing(_logger, _name, pattern, _refreshIntervalMs);
            }

            var started = before is null ? now : new SortedSet<string>(now.Except(before, StringComparer.Ordinal), StringComparer.Ordinal);
            var stopped = before is null ? [] : new SortedSet<string>(before.Except(now, StringComparer.Ordinal), StringComparer.Ordinal);
            if (started.Count > 0)
            {
                ConsumerLog.PatternStartedMatching(_logger, _name, pattern, started.Count, string.Join(", ", started));
            }

            if (stopped.Count > 0)
            {
                ConsumerLog.PatternStoppedMatching(_logger, _name, pattern, stopped.Count, string.Join(", ", stopped));
            }

            _patterns[i].Matched = now;
        }
    }
}
