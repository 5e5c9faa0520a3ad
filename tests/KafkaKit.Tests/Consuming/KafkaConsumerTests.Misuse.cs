using KafkaKit.Consuming;
using static KafkaKit.Tests.Consuming.ConsumerTestKit;

namespace KafkaKit.Tests.Consuming;

/// <summary>Starting and disposing a consumer the wrong way: a clear exception, or a no-op where that is safe.</summary>
public sealed partial class KafkaConsumerTests
{
    [Test]
    public void ConsumerStart_TokenAlreadyCancelled_ThrowsOperationCanceledAndStaysCreated()
    {
        var consumer = BuildIdleConsumer();
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();

        var e = Assert.Throws<OperationCanceledException>(() => _ = consumer.StartAsync(cancelled.Token));

        Assert.Multiple(() =>
        {
            Assert.That(e!.CancellationToken, Is.EqualTo(cancelled.Token));
            Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Created), "nothing was started");
        });
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Consumer_DisposedTwice_SecondDisposeIsANoOp()
    {
        var consumer = BuildIdleConsumer();
        await consumer.StartAsync();
        await consumer.DisposeAsync();

        Assert.DoesNotThrowAsync(async () => await consumer.DisposeAsync());
        Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Stopped));
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task ConsumerStart_AfterDispose_ThrowsObjectDisposed()
    {
        var consumer = BuildIdleConsumer();
        await consumer.DisposeAsync();

        var e = Assert.Throws<ObjectDisposedException>(() => _ = consumer.StartAsync());

        Assert.That(e!.Message, Does.Contain("Consumer 'idle' was disposed"), "names the consumer");
    }

    private static KafkaConsumer<string, string> BuildIdleConsumer() =>
        new KafkaConsumerBuilder<string, string>("idle", new KafkaConsumerOptions { BootstrapServers = Unreachable, GroupId = "g", Topics = { "t" } })
            .SetHandler((_, _) => default)
            .Build();
}
