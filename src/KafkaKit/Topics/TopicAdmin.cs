using Confluent.Kafka;
using Confluent.Kafka.Admin;

namespace KafkaKit.Topics;

/// <summary>The two Admin API calls topic declaration makes; a seam so tests can stand in for a cluster without CreateTopics.</summary>
internal interface ITopicAdmin : IDisposable
{
    /// <summary>Reads the cluster's brokers and topics (blocks up to <paramref name="timeout"/>).</summary>
    /// <param name="timeout">How long to wait for an answer.</param>
    /// <returns>The metadata.</returns>
    /// <exception cref="KafkaException">No broker answered.</exception>
    Metadata GetMetadata(TimeSpan timeout);

    /// <summary>Creates topics (CreateTopics).</summary>
    /// <param name="topics">The topics.</param>
    /// <param name="options">Request options (timeouts).</param>
    /// <returns>A task that completes when the broker answered.</returns>
    /// <exception cref="CreateTopicsException">One or more topics were not created; each result holds its error.</exception>
    /// <exception cref="KafkaException">The request failed as a whole.</exception>
    Task CreateTopicsAsync(IEnumerable<TopicSpecification> topics, CreateTopicsOptions options);
}

/// <summary>The <see cref="ITopicAdmin"/> over Confluent's admin client.</summary>
internal sealed class ConfluentTopicAdmin(IAdminClient admin) : ITopicAdmin
{
    public Metadata GetMetadata(TimeSpan timeout) => admin.GetMetadata(timeout);

    public Task CreateTopicsAsync(IEnumerable<TopicSpecification> topics, CreateTopicsOptions options) => admin.CreateTopicsAsync(topics, options);

    public void Dispose() => admin.Dispose();
}
