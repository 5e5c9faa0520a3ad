namespace KafkaKit.Serialization;

/// <summary>
/// A serializer or deserializer could not reach a service it depends on, such as a schema registry: a transient
/// failure, not a fault of the data. Throw it (with the cause as the inner exception) from your own serdes to get the
/// same treatment as KafkaKit's schema registry serdes.
/// </summary>
/// <remarks>
/// <para>
/// Consumer: the record is not handed to the error policy (it is never dead-lettered or skipped for this); its
/// deserialization is retried with backoff (200 ms doubling to 10 s) while its partition waits (and is paused once its
/// buffer is full), and the consumer's health is Degraded until a deserialization succeeds again.
/// </para>
/// <para>
/// Producer: an async serializer that throws it is retried with the same backoff within
/// <see cref="Producing.KafkaProducerOptions.MaxBlock"/> (at once with <see cref="Producing.ProducerBackpressure.Fail"/>);
/// then the produce fails with this exception and nothing was enqueued.
/// </para>
/// </remarks>
public sealed class SerializationUnavailableException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="SerializationUnavailableException"/> class.</summary>
    public SerializationUnavailableException()
        : base("A service the serializer depends on could not be reached.")
    {
    }

    /// <summary>Initializes a new instance of the <see cref="SerializationUnavailableException"/> class.</summary>
    /// <param name="message">What could not be reached and for which subject, topic or type; never a secret.</param>
    public SerializationUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="SerializationUnavailableException"/> class.</summary>
    /// <param name="message">What could not be reached and for which subject, topic or type; never a secret.</param>
    /// <param name="innerException">The transport or registry error.</param>
    public SerializationUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
