using System.Globalization;
using Confluent.Kafka;
using KafkaKit.Consuming;

namespace KafkaKit.Samples.Quickstart;

/// <summary>Handles one quickstart message: the value is "id:sequence-within-key".</summary>
internal sealed class QuickstartHandler(QuickstartTally tally) : IKafkaMessageHandler<string, string>
{
    public ValueTask HandleAsync(ConsumeResult<string, string> result, CancellationToken cancellationToken)
    {
        var value = result.Message.Value;
        var colon = value.IndexOf(':', StringComparison.Ordinal);
        var id = int.Parse(value.AsSpan(0, colon), CultureInfo.InvariantCulture);
        var sequence = int.Parse(value.AsSpan(colon + 1), CultureInfo.InvariantCulture);
        tally.Record(result.Partition.Value, result.Offset.Value, result.Message.Key, id, sequence);
        return ValueTask.CompletedTask;
    }
}
