using System.Diagnostics.Metrics;
using Confluent.Kafka;
using KafkaKit.Diagnostics;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Consuming;

/// <summary>
/// Keeps each assigned partition's <c>consumer_lag</c> from librdkafka's statistics (emitted every
/// <c>statistics.interval.ms</c>, off by default) for the <c>kafkakit.consumer.lag</c> gauge.
/// </summary>
/// <remarks>
/// <see cref="OnStatistics"/> runs on the poll thread (librdkafka's statistics callback is served by <c>Consume</c>);
/// the gauge is read by whatever thread collects the metrics.
/// </remarks>
internal sealed class ConsumerStatistics : IDisposable
{
    private readonly string _name;
    private readonly string _groupId;
    private readonly Func<TopicPartition[]> _assignment;
    private readonly ILogger _logger;
    private List<Measurement<long>> _lags = [];
    private string? _joinState;
    private IDisposable? _lagGauge;

    /// <summary>Initializes a new instance of the <see cref="ConsumerStatistics"/> class.</summary>
    /// <param name="name">The consumer's name (the <c>messaging.client.id</c> tag).</param>
    /// <param name="groupId">The consumer group (the <c>messaging.consumer.group.name</c> tag).</param>
    /// <param name="assignment">The owned partitions: lags of others are not reported.</param>
    /// <param name="logger">The consumer's logger.</param>
    public ConsumerStatistics(string name, string groupId, Func<TopicPartition[]> assignment, ILogger logger)
    {
        _name = name;
        _groupId = groupId;
        _assignment = assignment;
        _logger = logger;
    }

    /// <summary>Gets the lags from the last statistics (one measurement per owned partition with a known lag).</summary>
    public IReadOnlyList<Measurement<long>> Lags => Volatile.Read(ref _lags);

    /// <summary>
    /// Gets the sum of <see cref="Lags"/> (messages), or <see langword="null"/> when no statistics arrived or none names
    /// a known lag of an owned partition.
    /// </summary>
    public long? TotalLag => Lags is { Count: > 0 } lags ? lags.Sum(m => m.Value) : null;

    /// <summary>
    /// Gets the group's join state from the last statistics (<c>cgrp.join_state</c>: <c>steady</c> between rebalances,
    /// <c>wait-join</c>, <c>wait-sync</c>, ... during one), or <see langword="null"/> when no statistics arrived.
    /// </summary>
    public string? JoinState => Volatile.Read(ref _joinState);

    /// <summary>Starts reporting the gauge (at the consumer's start).</summary>
    public void Observe() => _lagGauge = KafkaKitMetrics.ObserveLag(() => Volatile.Read(ref _lags));

    /// <summary>Reads one statistics document (poll thread).</summary>
    /// <param name="json">librdkafka's statistics JSON.</param>
    public void OnStatistics(string json)
    {
        try
        {
            using var document = System.Text.Json.JsonDocument.Parse(json);
            var lags = new List<Measurement<long>>();
            var assignment = _assignment();
            if (document.RootElement.TryGetProperty("topics", out var topics))
            {
                foreach (var topic in topics.EnumerateObject())
                {
                    if (!topic.Value.TryGetProperty("partitions", out var partitions))
                    {
                        continue;
                    }

                    foreach (var partition in partitions.EnumerateObject())
                    {
                        if (partition.Name == "-1" || !partition.Value.TryGetProperty("consumer_lag", out var lag) || lag.GetInt64() < 0
                            || !assignment.Contains(new TopicPartition(topic.Name, int.Parse(partition.Name, System.Globalization.CultureInfo.InvariantCulture))))
                        {
                            continue;
                        }

                        lags.Add(new(lag.GetInt64(), [
                            new("messaging.system", "kafka"),
                            new("messaging.client.id", _name),
                            new("messaging.consumer.group.name", _groupId),
                            new("messaging.destination.name", topic.Name),
                            new("messaging.destination.partition.id", partition.Name),
                        ]));
                    }
                }
            }

            Volatile.Write(ref _lags, lags);
            if (document.RootElement.TryGetProperty("cgrp", out var group) && group.TryGetProperty("join_state", out var joinState))
            {
                Volatile.Write(ref _joinState, joinState.GetString());
            }
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or FormatException or InvalidOperationException)
        {
            ConsumerLog.ClientError(_logger, _name, $"unreadable librdkafka statistics: {e.Message}", ErrorCode.Local_Fail);
        }
    }

    /// <summary>Stops reporting the gauge.</summary>
    public void Dispose() => _lagGauge?.Dispose();
}
