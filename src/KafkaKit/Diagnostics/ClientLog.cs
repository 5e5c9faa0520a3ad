using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Diagnostics;

/// <summary>Forwards librdkafka's own log lines to <see cref="ILogger"/>. Event ids 900-999 are stable.</summary>
internal static partial class ClientLog
{
    /// <summary>Maps a librdkafka syslog level to a log level and writes the line, unless it repeats a recent one.</summary>
    /// <param name="summariser">The client's summariser of repeated lines (it holds the client's logger).</param>
    /// <param name="message">The librdkafka log line (runs on a librdkafka thread).</param>
    /// <remarks>
    /// librdkafka reports a broker failure of level error or worse twice: as a log line of facility <c>FAIL</c> and, with
    /// the same text, as an error event (<c>rd_kafka_broker_set_error</c>). The error event is the line KafkaKit writes
    /// (events 1004 and 2005, with the error code); the <c>FAIL</c> log line of it is written at Debug.
    /// </remarks>
    public static void Forward(ClientLogSummariser summariser, LogMessage message)
    {
        var level = message.Level switch
        {
            SyslogLevel.Emergency or SyslogLevel.Alert or SyslogLevel.Critical => LogLevel.Critical,
            SyslogLevel.Error => LogLevel.Error,
            SyslogLevel.Warning => LogLevel.Warning,
            SyslogLevel.Notice or SyslogLevel.Info => LogLevel.Information,
            _ => LogLevel.Debug,
        };
        if (message.Level <= SyslogLevel.Error && string.Equals(message.Facility, "FAIL", StringComparison.Ordinal))
        {
            level = LogLevel.Debug;
        }

        var logger = summariser.Logger;
        if (!logger.IsEnabled(level) || (level >= LogLevel.Information && !summariser.ShouldLog(level, message.Message)))
        {
            return;
        }

        Librdkafka(logger, level, message.Name, message.Facility, message.Message);
    }

    [LoggerMessage(EventId = 900, Message = "librdkafka {Client} {Facility}: {Text}")]
    private static partial void Librdkafka(ILogger logger, LogLevel level, string client, string facility, string text);

    /// <summary>The summary of lines that repeated a written one within the window; at the level of that line.</summary>
    [LoggerMessage(EventId = 901, Message = "{Client}: repeats in the last {Seconds} s: {Count}, of: {Text}")]
    public static partial void Repeated(ILogger logger, LogLevel level, string client, int count, int seconds, string text);
}
