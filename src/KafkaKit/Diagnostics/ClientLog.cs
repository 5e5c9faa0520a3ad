using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Diagnostics;

/// <summary>Forwards librdkafka's own log lines to <see cref="ILogger"/>. Event id 900.</summary>
internal static partial class ClientLog
{
    /// <summary>Maps a librdkafka syslog level to a log level and writes the line.</summary>
    /// <param name="logger">The client's logger.</param>
    /// <param name="message">The librdkafka log line (runs on a librdkafka thread).</param>
    public static void Forward(ILogger logger, LogMessage message)
    {
        var level = message.Level switch
        {
            SyslogLevel.Emergency or SyslogLevel.Alert or SyslogLevel.Critical => LogLevel.Critical,
            SyslogLevel.Error => LogLevel.Error,
            SyslogLevel.Warning => LogLevel.Warning,
            SyslogLevel.Notice or SyslogLevel.Info => LogLevel.Information,
            _ => LogLevel.Debug,
        };
        Librdkafka(logger, level, message.Name, message.Facility, message.Message);
    }

    [LoggerMessage(EventId = 900, Message = "librdkafka {Client} {Facility}: {Text}")]
    private static partial void Librdkafka(ILogger logger, LogLevel level, string client, string facility, string text);
}
