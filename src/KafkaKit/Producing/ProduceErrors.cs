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
/// <para>
/// KafkaKit's own retries (<see cref="KafkaProducerOptions.Retry"/>) make one exception: a message that failed with
/// <see cref="ErrorCode.Local_MsgTimedOut"/> is not sent again. That error means librdkafka already spent the message's
/// whole delivery window (<c>message.timeout.ms</c>) on it, retrying internally (<c>retries</c>,
/// <c>retry.backoff.ms</c>) without duplicates or reordering under <c>enable.idempotence</c>; one more attempt would make
/// the caller wait another full <c>message.timeout.ms</c> to learn of an outage, and could write a duplicate. To wait
/// longer for the cluster, raise <c>message.timeout.ms</c>. The error stays transient here (a later call may succeed),
/// so a pipeline of your own may still retry it.
/// </para>
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

    /// <summary>
    /// Tells whether KafkaKit's own retry pipeline sends a message that failed with <paramref name="error"/> again:
    /// <see cref="IsRetriable"/>, except <see cref="ErrorCode.Local_MsgTimedOut"/> (see the remarks).
    /// </summary>
    internal static bool IsWorthAnotherAttempt(Error error) =>
        error.Code != ErrorCode.Local_MsgTimedOut && IsRetriable(error);
}
