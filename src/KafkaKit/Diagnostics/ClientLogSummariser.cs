using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Diagnostics;

/// <summary>
/// Keeps one client's repeated log lines readable: the first line of a kind is written, identical ones within
/// <see cref="Window"/> after it are only counted, and when the window closes one summary line (event 901) gives the
/// count. Thread-safe: librdkafka's threads, the poll thread and the delivery thread report here.
/// </summary>
/// <remarks>
/// Lines are identical when their text is, ignoring librdkafka's varying suffix
/// <c>(after 12ms in state CONNECT, 3 identical error(s) suppressed)</c>. At most <see cref="Capacity"/> kinds are
/// tracked at once; a new kind beyond that closes the oldest window early. A timer of the client's
/// <see cref="TimeProvider"/> writes the summary when a window closes, so it appears even when the failure stopped.
/// </remarks>
internal sealed partial class ClientLogSummariser : IDisposable
{
    /// <summary>The default window: librdkafka's own suppression of identical broker errors is 30 s as well.</summary>
    public static readonly TimeSpan DefaultWindow = TimeSpan.FromSeconds(30);

    /// <summary>The most kinds of line tracked at once (bounded memory).</summary>
    public const int Capacity = 64;

    private readonly ILogger _logger;
    private readonly string _client;
    private readonly TimeProvider _time;
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly object _gate = new();
    private readonly ITimer _timer;
    private long _timerDue = long.MaxValue;
    private bool _disposed;

    /// <summary>Initializes a new instance of the <see cref="ClientLogSummariser"/> class.</summary>
    /// <param name="logger">The client's logger; summaries are written there.</param>
    /// <param name="client">The client's name, for the summary lines.</param>
    /// <param name="timeProvider">The time source of windows and the summary timer.</param>
    /// <param name="window">How long repeats are counted after a line was written; default <see cref="DefaultWindow"/>.</param>
    public ClientLogSummariser(ILogger logger, string client, TimeProvider timeProvider, TimeSpan? window = null)
    {
        _logger = logger;
        _client = client;
        _time = timeProvider;
        Window = window ?? DefaultWindow;
        _timer = timeProvider.CreateTimer(static s => ((ClientLogSummariser)s!).OnTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Gets the window in which repeats of a written line are counted instead of written.</summary>
    public TimeSpan Window { get; }

    /// <summary>Gets the client's logger.</summary>
    public ILogger Logger => _logger;

    /// <summary>
    /// Tells whether a line is to be written now: <see langword="true"/> for the first of its kind in a window,
    /// <see langword="false"/> for a repeat (counted for the summary). Writes the summaries of windows that closed.
    /// </summary>
    /// <param name="level">The line's level (a summary is written at the level of its first line).</param>
    /// <param name="text">The line's text (the part that identifies the event, without the client name).</param>
    /// <returns>Whether to write the line.</returns>
    public bool ShouldLog(LogLevel level, string text)
    {
        var key = KeyOf(text);
        List<Entry>? closed = null;
        bool write;
        lock (_gate)
        {
            if (_disposed)
            {
                return true;
            }

            var now = _time.GetTimestamp();
            CloseExpired(now, ref closed);
            if (_entries.TryGetValue(key, out var entry))
            {
                entry.Count++;
                write = false;
                var end = entry.Start + (long)(Window.TotalSeconds * _time.TimestampFrequency);
                if (end < _timerDue)
                {
                    _timerDue = end;
                    _timer.Change(_time.GetElapsedTime(now, end), Timeout.InfiniteTimeSpan);
                }
            }
            else
            {
                if (_entries.Count >= Capacity)
                {
                    var oldest = _entries.Values.MinBy(e => e.Start)!;
                    _entries.Remove(oldest.Key);
                    (closed ??= []).Add(oldest);
                }

                _entries[key] = new Entry(key, level, now);
                write = true;
            }
        }

        WriteSummaries(closed);
        return write;
    }

    /// <summary>Writes the summaries of every open window (the client is gone) and stops the timer.</summary>
    public void Dispose()
    {
        List<Entry> open;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            open = [.. _entries.Values];
            _entries.Clear();
        }

        _timer.Dispose();
        WriteSummaries(open);
    }

    /// <summary>The text that identifies a line: librdkafka's suffix with the time in the broker state and its own count removed.</summary>
    internal static string KeyOf(string text) => StateSuffix().Replace(text, string.Empty);

    [GeneratedRegex(@" \(after -?[0-9]+ms in state [A-Z_]+(, [0-9]+ identical error\(s\) suppressed)?\)", RegexOptions.CultureInvariant)]
    private static partial Regex StateSuffix();

    private void OnTimer()
    {
        List<Entry>? closed = null;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            var now = _time.GetTimestamp();
            _timerDue = long.MaxValue;
            CloseExpired(now, ref closed);
            var windowTicks = (long)(Window.TotalSeconds * _time.TimestampFrequency);
            foreach (var entry in _entries.Values)
            {
                if (entry.Count > 0 && entry.Start + windowTicks < _timerDue)
                {
                    _timerDue = entry.Start + windowTicks;
                }
            }

            if (_timerDue != long.MaxValue)
            {
                _timer.Change(_time.GetElapsedTime(now, _timerDue), Timeout.InfiniteTimeSpan);
            }
        }

        WriteSummaries(closed);
    }

    /// <summary>Removes the entries whose window closed (caller holds the lock); those with repeats go to <paramref name="closed"/>.</summary>
    private void CloseExpired(long now, ref List<Entry>? closed)
    {
        List<string>? expired = null;
        foreach (var entry in _entries.Values)
        {
            if (_time.GetElapsedTime(entry.Start, now) >= Window)
            {
                (expired ??= []).Add(entry.Key);
                if (entry.Count > 0)
                {
                    (closed ??= []).Add(entry);
                }
            }
        }

        foreach (var key in expired ?? [])
        {
            _entries.Remove(key);
        }
    }

    private void WriteSummaries(List<Entry>? closed)
    {
        if (closed is null)
        {
            return;
        }

        var now = _time.GetTimestamp();
        foreach (var entry in closed)
        {
            if (entry.Count > 0)
            {
                // A window that closed on time spans Window; one closed early (capacity, dispose) spans less.
                var elapsed = _time.GetElapsedTime(entry.Start, now);
                var seconds = (int)Math.Ceiling((elapsed < Window ? elapsed : Window).TotalSeconds);
                ClientLog.Repeated(_logger, entry.Level, _client, entry.Count, Math.Max(1, seconds), entry.Key);
            }
        }
    }

    private sealed class Entry(string key, LogLevel level, long start)
    {
        public string Key { get; } = key;

        public LogLevel Level { get; } = level;

        public long Start { get; } = start;

        public int Count { get; set; }
    }
}
