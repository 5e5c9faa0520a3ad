using System.Diagnostics;
using System.Text;
using Confluent.Kafka;

namespace KafkaKit.Diagnostics;

/// <summary>
/// The "KafkaKit" ActivitySource: a producer span per produced message whose W3C trace context (<c>traceparent</c>,
/// <c>tracestate</c>) is written into the message headers, and a consumer span per handled message that continues it.
/// Costs nothing when no listener samples the source.
/// </summary>
internal static class KafkaKitTracing
{
    public const string SourceName = "KafkaKit";

    public static readonly ActivitySource Source = new(SourceName, typeof(KafkaKitTracing).Assembly.GetName().Version?.ToString());

    /// <summary>Starts a "send" span and injects its context into <paramref name="message"/>'s headers; null when nobody listens.</summary>
    public static Activity? StartProduce<TKey, TValue>(string clientId, string topic, Message<TKey, TValue> message)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        var activity = Source.StartActivity($"send {topic}", ActivityKind.Producer);
        if (activity is null)
        {
            return null;
        }

        activity.SetTag("messaging.system", "kafka");
        activity.SetTag("messaging.operation.type", "send");
        activity.SetTag("messaging.destination.name", topic);
        activity.SetTag("messaging.client.id", clientId);
        var headers = message.Headers ??= [];
        DistributedContextPropagator.Current.Inject(activity, headers, static (carrier, name, value) =>
        {
            if (carrier is Headers h && value is not null)
            {
                h.Remove(name);
                h.Add(name, Encoding.UTF8.GetBytes(value));
            }
        });
        return activity;
    }

    /// <summary>
    /// Wraps a delivery handler so the "send" span ends with the delivery report (partition, offset, error). Restores
    /// the caller's current activity: the span belongs to the message, not to the caller's flow.
    /// </summary>
    public static Action<DeliveryReport<TKey, TValue>> EndOnDelivery<TKey, TValue>(Activity activity, Action<DeliveryReport<TKey, TValue>> handler)
    {
        Activity.Current = activity.Parent;
        return report =>
        {
            Delivered(activity, report.Partition.Value, report.Offset.Value, report.Error);
            handler(report);
        };
    }

    /// <summary>Ends a "send" span with its delivery outcome.</summary>
    public static void Delivered(Activity activity, int partition, long offset, Error error)
    {
        activity.SetTag("messaging.destination.partition.id", partition.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (error.IsError)
        {
            activity.SetStatus(ActivityStatusCode.Error, error.Reason);
            activity.SetTag("error.type", error.Code.ToString());
        }
        else
        {
            activity.SetTag("messaging.kafka.offset", offset);
        }

        activity.Stop();
    }

    /// <summary>Starts a "process" span continuing the trace context found in the message headers; null when nobody listens.</summary>
    public static Activity? StartProcess(string clientId, string groupId, ConsumeResult<byte[]?, byte[]?> result)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        var activity = Source.StartActivity($"process {result.Topic}", ActivityKind.Consumer, SendContext(result));
        if (activity is null)
        {
            return null;
        }

        ProcessTags(activity, clientId, groupId, result);
        activity.SetTag("messaging.kafka.offset", result.Offset.Value);
        return activity;
    }

    /// <summary>
    /// Starts one "process" span for a batch (of one partition), linked to each message's propagated send context (the
    /// OpenTelemetry messaging convention for batch receivers); null when nobody listens.
    /// </summary>
    public static Activity? StartProcessBatch(string clientId, string groupId, IReadOnlyList<ConsumeResult<byte[]?, byte[]?>> batch)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        var links = new List<ActivityLink>(batch.Count);
        foreach (var result in batch)
        {
            if (SendContext(result) is { TraceId: var traceId } context && traceId != default)
            {
                links.Add(new ActivityLink(context));
            }
        }

        var first = batch[0];
        var activity = Source.StartActivity($"process {first.Topic}", ActivityKind.Consumer, default(ActivityContext), links: links);
        if (activity is null)
        {
            return null;
        }

        ProcessTags(activity, clientId, groupId, first);
        activity.SetTag("messaging.batch.message_count", batch.Count);
        return activity;
    }

    /// <summary>The W3C trace context a producer wrote into the message headers, or default when there is none.</summary>
    private static ActivityContext SendContext(ConsumeResult<byte[]?, byte[]?> result)
    {
        DistributedContextPropagator.Current.ExtractTraceIdAndState(result.Message.Headers, static (object? carrier, string name, out string? value, out IEnumerable<string>? values) =>
        {
            values = null;
            value = carrier is Headers h && h.TryGetLastBytes(name, out var bytes) ? Encoding.UTF8.GetString(bytes) : null;
        }, out var traceParent, out var traceState);
        ActivityContext.TryParse(traceParent, traceState, out var context);
        return context;
    }

    private static void ProcessTags(Activity activity, string clientId, string groupId, ConsumeResult<byte[]?, byte[]?> result)
    {
        activity.SetTag("messaging.system", "kafka");
        activity.SetTag("messaging.operation.type", "process");
        activity.SetTag("messaging.destination.name", result.Topic);
        activity.SetTag("messaging.destination.partition.id", result.Partition.Value.ToString(System.Globalization.CultureInfo.InvariantCulture));
        activity.SetTag("messaging.consumer.group.name", groupId);
        activity.SetTag("messaging.client.id", clientId);
    }

    /// <summary>Marks a span failed with the exception's type.</summary>
    public static void Fail(Activity? activity, Exception error)
    {
        if (activity is null)
        {
            return;
        }

        activity.SetStatus(ActivityStatusCode.Error, error.Message);
        activity.SetTag("error.type", error.GetType().FullName);
    }
}
