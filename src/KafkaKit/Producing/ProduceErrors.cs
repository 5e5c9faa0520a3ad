using Confluent.Kafka;

namespace KafkaKit.Producing;

/// <summary>Which produce failures KafkaKit retries.</summary>
/// <remarks>
/// <list type="table">
/// <listheader><term>error</term><description>retried because</description></listheader>
/// <item><term><see cref="ErrorCode.Local_MsgTimedOut"/>, <see cref="ErrorCode.Local_TimedOut"/>, <see cref="ErrorCode.RequestTimedOut"/></term><description>the cluster did not answer in time; it may answer next time</description></item>
/// <item><term><see cref="ErrorCode.Local_Transport"/>, <see cref="ErrorCode.Local_AllBrokersDown"/>, <see cref="ErrorCode.NetworkException"/>, <see cref="ErrorCode.BrokerNotAvailable"/></term><description>a connection failed; brokers come back</description></item>
/// <item><term><see cref="ErrorCode.NotLeaderForPartition"/>, <see cref="ErrorCode.LeaderNotAvailable"/></term><description>leadership moved; metadata refreshes</description></item>
/// <item><term><see cref="ErrorCode.NotEnoughReplicas"/>, <see cref="ErrorCode.NotEnoughReplicasAfterAppend"/></term><description>replicas are catching up (<c>acks=all</c>)</description></item>
/// </list>
/// Everything else is not retried: fatal errors (<see cref="Error.IsFatal"/>), message too large, authorization,
/// serialization, invalid configuration or records, unknown topic, purged messages.
/// </remarks>
public static class ProduceErrors
{
    /// <summary>Tells whether a failed produce with <paramref name="error"/> is worth retrying.</summary>
    /// <param name="error">The delivery error.</param>
    /// <returns><see langword="true"/> for the transient errors listed in the remarks.</returns>
    public static bool IsRetriable(Error error)
    {
        ArgumentNullException.ThrowIfNull(error);
        return !error.IsFatal && error.Code switch
        {
            ErrorCode.Local_MsgTimedOut or ErrorCode.Local_TimedOut or ErrorCode.RequestTimedOut
                or ErrorCode.Local_Transport or ErrorCode.Local_AllBrokersDown or ErrorCode.NetworkException
                or ErrorCode.BrokerNotAvailable or ErrorCode.NotLeaderForPartition or ErrorCode.LeaderNotAvailable
                or ErrorCode.NotEnoughReplicas or ErrorCode.NotEnoughReplicasAfterAppend => true,
            _ => false,
        };
    }
}
