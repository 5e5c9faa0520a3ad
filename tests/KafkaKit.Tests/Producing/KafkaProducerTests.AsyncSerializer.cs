using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Producing;
using KafkaKit.Serialization;
using KafkaKit.Testing;
using static KafkaKit.Tests.Producing.ProducerTestKit;

namespace KafkaKit.Tests.Producing;

/// <summary>An asynchronous serializer that does not complete: the call is bounded by MaxBlock, with or without a caller's token.</summary>
public sealed partial class KafkaProducerTests
{
    [TestCase(false)]
    [TestCase(true)]
    [CancelAfter(30_000)]
    public async Task ProduceAndEnqueue_AsyncSerializerNeverCompletes_FailUnavailableAfterMaxBlockNothingEnqueued(bool withCallerToken)
    {
        // Arrange: without a token the bound is a deadline shared by the calls ending in the same 100 ms; with one, a timer of the call's own
        await using var cluster = EmbeddedKafkaCluster.Start();
        var options = Options(cluster.BootstrapServers);
        options.MaxBlock = TimeSpan.FromMilliseconds(500);
        await using var producer = new KafkaProducerBuilder<Null, string>("hung-serializer", options)
            .SetValueSerializer(new NeverCompletingSerializer())
            .Build();
        using var caller = new CancellationTokenSource();
        var token = withCallerToken ? caller.Token : CancellationToken.None;
        var message = new Message<Null, string> { Value = "v" };
        var clock = Stopwatch.StartNew();

        // Act
        var calls = Enumerable.Range(0, 20)
            .Select(i => i % 2 == 0 ? producer.ProduceAsync("t", message, token).AsTask() : producer.EnqueueAsync("t", message, cancellationToken: token).AsTask())
            .Select(async call =>
            {
                try
                {
                    await call;
                    return null;
                }
                catch (Exception e)
                {
                    return e;
                }
            })
            .ToList();
        var outcomes = await Task.WhenAll(calls);
        var took = clock.Elapsed;

        // Assert
        Assert.Multiple(() =>
        {
            Assert.That(outcomes, Has.All.InstanceOf<SerializationUnavailableException>(), "each call fails as unavailable (not cancelled, not a serialization error)");
            Assert.That(outcomes[0]!.Message, Does.Contain("MaxBlock"));
            Assert.That(took, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(450)), "not before MaxBlock");
            Assert.That(took, Is.LessThan(TimeSpan.FromSeconds(5)), "MaxBlock (0.5 s), at most a 100 ms step later, plus scheduling");
            Assert.That(producer.QueuedMessages, Is.Zero, "nothing was enqueued");
        });
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task ProduceAsync_AsyncSerializerNeverCompletesCallerCancels_OperationCanceledNotUnavailable()
    {
        // Arrange
        await using var cluster = EmbeddedKafkaCluster.Start();
        var options = Options(cluster.BootstrapServers);
        options.MaxBlock = TimeSpan.FromSeconds(20);
        await using var producer = new KafkaProducerBuilder<Null, string>("hung-serializer", options)
            .SetValueSerializer(new NeverCompletingSerializer())
            .Build();
        using var caller = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));

        // Act / Assert
        Assert.That(
            Assert.CatchAsync<OperationCanceledException>(async () => await producer.ProduceAsync("t", new Message<Null, string> { Value = "v" }, caller.Token)),
            Is.Not.InstanceOf<SerializationUnavailableException>());
        Assert.That(producer.QueuedMessages, Is.Zero);
    }

    private sealed class NeverCompletingSerializer : IAsyncSerializer<string>
    {
        public Task<byte[]> SerializeAsync(string data, SerializationContext context) => new TaskCompletionSource<byte[]>().Task;
    }
}
