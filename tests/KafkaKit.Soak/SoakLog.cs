using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Soak;

/// <summary>
/// The soak's logger factory: counts KafkaKit's log events by id (it keeps no lines, so it does not grow) and prints
/// errors, and warnings when verbose, to the run's output.
/// </summary>
internal sealed class SoakLog(TextWriter output, bool verbose, Func<TimeSpan> clock) : ILoggerFactory
{
    private readonly ConcurrentDictionary<int, long> _byEvent = new();
    private readonly ConcurrentDictionary<LogLevel, long> _byLevel = new();
    private readonly TextWriter _output = output;
    private readonly bool _verbose = verbose;
    private readonly Func<TimeSpan> _clock = clock;

    /// <summary>Gets how many events of <paramref name="eventId"/> were logged.</summary>
    public long Count(int eventId) => _byEvent.GetValueOrDefault(eventId);

    /// <summary>Gets how many events of <paramref name="level"/> were logged.</summary>
    public long Count(LogLevel level) => _byLevel.GetValueOrDefault(level);

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    private sealed class Logger(SoakLog owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            owner._byEvent.AddOrUpdate(eventId.Id, 1, static (_, n) => n + 1);
            owner._byLevel.AddOrUpdate(logLevel, 1, static (_, n) => n + 1);
            if (logLevel >= LogLevel.Error || (owner._verbose && logLevel == LogLevel.Warning))
            {
                owner._output.WriteLine($"{owner._clock().TotalSeconds,7:F1}s log {logLevel} {eventId.Id}: {formatter(state, exception)}{(exception is null ? "" : " " + exception.GetType().Name)}");
            }
        }
    }
}
