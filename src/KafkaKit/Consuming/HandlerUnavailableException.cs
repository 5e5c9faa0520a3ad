namespace KafkaKit.Consuming;

/// <summary>
/// The handler of a message could not be created (for example a service it needs is not registered): a configuration
/// error, not a failure of the message. The consumer stops at once with it: no retry, <see cref="KafkaConsumerOptions.OnError"/>
/// does not apply, and the message's offset is not committed.
/// </summary>
/// <param name="message">Names the consumer, the handler type and why it could not be created.</param>
/// <param name="innerException">The service provider's error.</param>
internal sealed class HandlerUnavailableException(string message, Exception innerException) : InvalidOperationException(message, innerException);
