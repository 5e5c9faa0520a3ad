using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Tests.Support;

/// <summary>An ILoggerFactory that keeps every log line, for assertions on logged events.</summary>
internal sealed class CapturingLoggerFactory : ILoggerFactory
{
    public ConcurrentQueue<LogLine> Lines { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    public int Count(int eventId) => Lines.Count(l => l.EventId.Id == eventId);

    /// <summary>Adds a line of the test's own (category "test", event 0), to read among the library's lines.</summary>
    public void Note(string message) => Lines.Enqueue(new LogLine("test", LogLevel.Information, default, message, null));

    internal sealed record LogLine(string Category, LogLevel Level, EventId EventId, string Message, Exception? Exception)
    {
        /// <summary>Gets when the line was written (UTC).</summary>
        public DateTime At { get; } = DateTime.UtcNow;
    }

    private sealed class Logger(CapturingLoggerFactory owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Lines.Enqueue(new LogLine(category, logLevel, eventId, formatter(state, exception), exception));
    }
}
