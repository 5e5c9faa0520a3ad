using Microsoft.Extensions.Logging;

namespace KafkaKit.Diagnostics;

/// <summary>The librdkafka image the process runs on. Event ids 950-959 are stable.</summary>
internal static partial class LibrdkafkaLog
{
    [LoggerMessage(950, LogLevel.Information, "librdkafka {Version} loaded from {File}: variant {Variant}, features this build lacks: {MissingFeatures}")]
    public static partial void Loaded(ILogger logger, string version, string file, string variant, string missingFeatures);
}
