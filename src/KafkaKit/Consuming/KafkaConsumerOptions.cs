namespace KafkaKit.Consuming;

/// <summary>Placeholder replaced below.</summary>
public sealed class KafkaConsumerOptions
{
}
