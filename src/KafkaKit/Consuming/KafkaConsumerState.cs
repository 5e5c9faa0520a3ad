namespace KafkaKit.Consuming;

/// <summary>The life-cycle state of a KafkaKit consumer.</summary>
public enum KafkaConsumerState
{
    /// <summary>Built, not started.</summary>
    Created = 0,

    /// <summary>Polling: joining the group, waiting for an assignment, or consuming.</summary>
    Running = 1,

    /// <summary>Stopping: draining handlers, committing, leaving the group.</summary>
    Stopping = 2,

    /// <summary>Stopped after a requested stop.</summary>
    Stopped = 3,

    /// <summary>Stopped because of an error: a message failed with <see cref="ConsumerErrorAction.Stop"/>, a dead-letter produce failed, or librdkafka reported a fatal error. <see cref="KafkaConsumer{TKey, TValue}.Fault"/> says which.</summary>
    Faulted = 4,
}
