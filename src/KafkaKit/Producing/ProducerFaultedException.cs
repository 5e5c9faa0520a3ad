using Confluent.Kafka;

namespace KafkaKit.Producing;

/// <summary>
/// Thrown by every call on a producer that hit a fatal librdkafka error (<see cref="Error.IsFatal"/>, for example an
/// idempotent producer fenced or out of sequence). The producer cannot recover: dispose it and create a new one.
/// </summary>
/// <remarks><see cref="KafkaException.Error"/> is the fatal error librdkafka reported.</remarks>
public sealed class ProducerFaultedException : KafkaException
{
    /// <summary>Initializes a new instance of the <see cref="ProducerFaultedException"/> class.</summary>
    /// <param name="fatalError">The fatal error the producer hit.</param>
    public ProducerFaultedException(Error fatalError)
        : base(fatalError)
    {
    }
}
