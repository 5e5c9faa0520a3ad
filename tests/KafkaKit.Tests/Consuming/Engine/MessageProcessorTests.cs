using System.Text;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Tests.Support;
using Polly;
using Polly.Retry;

namespace KafkaKit.Tests.Consuming.Engine;

[CancelAfter(10_000)]
public sealed class MessageProcessorTests
{
    private static readonly ConsumeResult<byte[]?, byte[]?> Raw = new()
    {
        TopicPartitionOffset = new TopicPartitionOffset("orders", 2, 41),
        Message = new Message<byte[]?, byte[]?> { Key = Encoding.UTF8.GetBytes("k"), Value = Encoding.UTF8.GetBytes("v") },
    };

    [Test]
    public async Task ProcessAsync_HandlerSucceeds_DoneWithoutFault()
    {
        var test = new ProcessorTest(ConsumerErrorAction.Stop, _ => ValueTask.CompletedTask);

        Assert.That(await test.Processor.ProcessAsync(Raw, CancellationToken.None), Is.True);
        Assert.That(test.Seen, Is.EqualTo(new[] { "k=v@41" }));
        Assert.That(test.Faults, Is.Empty);
    }

    [Test]
    public async Task ProcessAsync_HandlerFailsWithSkip_DoneAndLogged()
    {
        var test = new ProcessorTest(ConsumerErrorAction.Skip, _ => throw new InvalidOperationException("boom"));

        Assert.That(await test.Processor.ProcessAsync(Raw, CancellationToken.None), Is.True);
        Assert.That(test.Faults, Is.Empty);
        Assert.That(test.Logs.Lines.Single(l => l.EventId.Id == 2008).Message, Does.Contain("orders [2] @41 failed (handler); action Skip"));
    }

    [Test]
    public async Task ProcessAsync_HandlerFailsWithStop_NotDoneAndConsumerFaulted()
    {
        var error = new InvalidOperationException("boom");
        var test = new ProcessorTest(ConsumerErrorAction.Stop, _ => throw error);

        Assert.That(await test.Processor.ProcessAsync(Raw, CancellationToken.None), Is.False);
        var fault = test.Faults.Single();
        Assert.That(fault.Message, Does.Contain("orders [2] @41 failed (handler); OnError is Stop"));
        Assert.That(fault.InnerException, Is.SameAs(error));
    }

    [Test]
    public async Task ProcessAsync_DeserializationFailsWithStop_HandlerNotCalledAndConsumerFaulted()
    {
        var test = new ProcessorTest(ConsumerErrorAction.Stop, _ => ValueTask.CompletedTask, valueDeserializer: new Failing());

        Assert.That(await test.Processor.ProcessAsync(Raw, CancellationToken.None), Is.False);
        Assert.That(test.Seen, Is.Empty);
        Assert.That(test.Faults.Single().Message, Does.Contain("failed (deserialization)"));
    }

    [Test]
    public async Task ProcessAsync_DeserializationFailsWithSkip_NotRetried()
    {
        var test = new ProcessorTest(ConsumerErrorAction.Skip, _ => ValueTask.CompletedTask, valueDeserializer: new Failing(), retry: Retry(3));

        Assert.That(await test.Processor.ProcessAsync(Raw, CancellationToken.None), Is.True);
        Assert.That(test.Seen, Is.Empty);
        Assert.That(test.Logs.Count(2008), Is.EqualTo(1));
    }

    [Test]
    public async Task ProcessAsync_FirstCallFails_HandedToRetryPipelineWhichSucceeds()
    {
        var calls = 0;
        var retried = new List<TopicPartitionOffset?>();
        var test = new ProcessorTest(ConsumerErrorAction.Stop, _ => ++calls == 1 ? throw new TimeoutException("first") : ValueTask.CompletedTask, retry: Retry(2, retried));

        Assert.That(await test.Processor.ProcessAsync(Raw, CancellationToken.None), Is.True);
        Assert.That(calls, Is.EqualTo(2));
        Assert.That(retried, Is.EqualTo(new[] { Raw.TopicPartitionOffset }), "the first failure is the pipeline's first attempt; the retry knows its message");
        Assert.That(test.Faults, Is.Empty);
    }

    [Test]
    public async Task ProcessAsync_RetriesExhaustedWithSkip_DoneAfterAllAttempts()
    {
        var calls = 0;
        var test = new ProcessorTest(ConsumerErrorAction.Skip, _ => { calls++; throw new TimeoutException("always"); }, retry: Retry(2));

        Assert.That(await test.Processor.ProcessAsync(Raw, CancellationToken.None), Is.True);
        Assert.That(calls, Is.EqualTo(3));
        Assert.That(test.Logs.Count(2008), Is.EqualTo(1));
    }

    [Test]
    public async Task ProcessAsync_HandlerUnavailable_NoRetryNoErrorPolicyConsumerFaulted()
    {
        var calls = 0;
        var unavailable = new HandlerUnavailableException("no handler", new InvalidOperationException("missing service"));
        var test = new ProcessorTest(ConsumerErrorAction.Skip, _ => { calls++; throw unavailable; }, retry: Retry(3));

        Assert.That(await test.Processor.ProcessAsync(Raw, CancellationToken.None), Is.False);
        Assert.That(calls, Is.EqualTo(1));
        Assert.That(test.Faults.Single(), Is.SameAs(unavailable));
        Assert.That(test.Logs.Count(2008), Is.Zero, "not a failure of this message");
    }

    [Test]
    public async Task ProcessAsync_CancelledWhileHandling_NotDoneNoFault()
    {
        using var cancel = new CancellationTokenSource();
        var test = new ProcessorTest(ConsumerErrorAction.Skip, async ct =>
        {
            await cancel.CancelAsync();
            ct.ThrowIfCancellationRequested();
        });

        Assert.That(await test.Processor.ProcessAsync(Raw, cancel.Token), Is.False);
        Assert.That(test.Faults, Is.Empty);
        Assert.That(test.Logs.Count(2008), Is.Zero);
    }

    [Test]
    public async Task ProcessAsync_DeadLetteringFails_NotDoneAndConsumerFaulted()
    {
        using var deadLetters = new DeadLetterPublisher("test", new Dictionary<string, string> { ["bootstrap.servers"] = ConsumerTestKit.Unreachable }, null, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        deadLetters.Close(TimeSpan.Zero); // publishing now throws ObjectDisposedException
        var test = new ProcessorTest(ConsumerErrorAction.DeadLetter, _ => throw new InvalidOperationException("boom"), deadLetters: deadLetters);

        Assert.That(await test.Processor.ProcessAsync(Raw, CancellationToken.None), Is.False);
        var fault = test.Faults.Single();
        Assert.That(fault.Message, Does.StartWith("Dead-lettering orders [2] @41 failed"));
        Assert.That(fault.InnerException, Is.InstanceOf<ObjectDisposedException>());
    }

    private static ResiliencePipeline Retry(int attempts, List<TopicPartitionOffset?>? retried = null) => new ResiliencePipelineBuilder()
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } e and not HandlerUnavailableException),
            MaxRetryAttempts = attempts,
            Delay = TimeSpan.Zero,
            OnRetry = args =>
            {
                args.Context.Properties.TryGetValue(MessageProcessor<string, string>.MessageKey, out var message);
                retried?.Add(message);
                return default;
            },
        })
        .Build();

    private sealed class Failing : IDeserializer<string>
    {
        public string Deserialize(ReadOnlySpan<byte> data, bool isNull, SerializationContext context) => throw new FormatException("not a string");
    }

    private sealed class ProcessorTest
    {
        public ProcessorTest(
            ConsumerErrorAction onError,
            Func<CancellationToken, ValueTask> handler,
            IDeserializer<string>? valueDeserializer = null,
            ResiliencePipeline? retry = null,
            DeadLetterPublisher? deadLetters = null)
        {
            var options = new KafkaConsumerOptions { OnError = onError };
            Processor = new MessageProcessor<string, string>(
                "test",
                "group",
                options,
                Deserializers.Utf8,
                valueDeserializer ?? Deserializers.Utf8,
                (result, ct) =>
                {
                    Seen.Add($"{result.Message.Key}={result.Message.Value}@{result.Offset.Value}");
                    return handler(ct);
                },
                retry ?? ResiliencePipeline.Empty,
                firstAttemptOutsidePipeline: true,
                deadLetters,
                Faults.Add,
                Logs.CreateLogger("KafkaKit.Consumer"),
                TimeProvider.System);
        }

        public MessageProcessor<string, string> Processor { get; }

        public List<string> Seen { get; } = [];

        public List<Exception> Faults { get; } = [];

        public CapturingLoggerFactory Logs { get; } = new();
    }
}
