namespace KafkaKit.Hosting;

/// <summary>Options of the liveness and readiness checks added by <c>AddKafkaKitProbes</c>.</summary>
public sealed class KafkaKitHealthCheckOptions
{
    /// <summary>
    /// Gets or sets the total lag of one consumer (messages, summed over its assigned partitions) above which its
    /// readiness is <c>Degraded</c> ("catching up"). The lag comes from librdkafka's statistics (<c>consumer_lag</c>,
    /// emitted every <c>statistics.interval.ms</c>, off by default): without statistics the lag is unknown and this
    /// threshold never applies.
    /// </summary>
    /// <value>A positive number of messages, or <see langword="null"/> for no threshold. Default: <see langword="null"/>.</value>
    public long? MaxConsumerLag { get; set; }
}
