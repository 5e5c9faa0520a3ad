using Confluent.Kafka;
using KafkaKit.Producing;
using KafkaKit.Samples.Notifications;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Polly.CircuitBreaker;

namespace KafkaKit.Samples.Tests.Notifications;

/// <summary>
/// How <c>POST /notifications</c> maps each failure of <see cref="IKafkaProducer{TKey, TValue}.ProduceAsync"/> to a status,
/// with a stand-in producer (the fault tests cover the same paths on a real embedded cluster where one can be caused).
/// </summary>
[TestFixture]
[CancelAfter(10_000)]
public sealed class NotificationsApiErrorMappingTests
{
    private static IEnumerable<TestCaseData> Failures()
    {
        yield return new TestCaseData(new Func<Exception>(() => new ProducerFaultedException(new Error(ErrorCode.OutOfOrderSequenceNumber, "fenced", isFatal: true))), 503, nameof(ErrorCode.OutOfOrderSequenceNumber))
            .SetName("PostAsync_ProducerFaulted_503");
        yield return new TestCaseData(new Func<Exception>(() => new ProducerQueueFullException("notifications", TimeSpan.FromSeconds(2), 100_000)), 503, nameof(ErrorCode.Local_QueueFull))
            .SetName("PostAsync_ProducerQueueFull_503");
        yield return new TestCaseData(new Func<Exception>(() => Produce(ErrorCode.Local_AllBrokersDown)), 503, nameof(ErrorCode.Local_AllBrokersDown))
            .SetName("PostAsync_AllBrokersDown_503");
        yield return new TestCaseData(new Func<Exception>(() => Produce(ErrorCode.Local_MsgTimedOut)), 503, nameof(ErrorCode.Local_MsgTimedOut))
            .SetName("PostAsync_MessageTimedOut_503");
        yield return new TestCaseData(new Func<Exception>(() => new ProducerCircuitOpenException("notifications", new Error(ErrorCode.Local_MsgTimedOut, "Local: Message timed out"), TimeSpan.FromSeconds(3), new BrokenCircuitException("open"))), 503, nameof(ErrorCode.Local_MsgTimedOut))
            .SetName("PostAsync_CircuitOpen_503");
        yield return new TestCaseData(new Func<Exception>(() => new ObjectDisposedException("producer")), 503, null)
            .SetName("PostAsync_ProducerDisposedAtShutdown_503");
        yield return new TestCaseData(new Func<Exception>(() => Produce(ErrorCode.TopicAuthorizationFailed)), 500, nameof(ErrorCode.TopicAuthorizationFailed))
            .SetName("PostAsync_TopicAuthorizationFailed_500");
        yield return new TestCaseData(new Func<Exception>(() => Produce(ErrorCode.Local_ValueSerialization)), 500, nameof(ErrorCode.Local_ValueSerialization))
            .SetName("PostAsync_SerializationFailed_500");
    }

    [TestCaseSource(nameof(Failures))]
    [CancelAfter(10_000)]
    public async Task PostAsync_ProduceFails_MapsToStatusWithProblemDetails(Func<Exception> failure, int status, string? kafkaErrorCode)
    {
        // Arrange
        var http = new DefaultHttpContext();
        var producer = new StandInProducer(_ => Task.FromException<DeliveryResult<string, Notification>>(failure()));

        // Act
        var result = await PostAsync(producer, http, TimeSpan.FromSeconds(5));

        // Assert
        var problem = result.Result as ProblemHttpResult;
        Assert.That(problem, Is.Not.Null, result.Result.GetType().Name);
        Assert.That(problem!.StatusCode, Is.EqualTo(status));
        Assert.That(problem.ProblemDetails.Extensions.TryGetValue("kafkaErrorCode", out var code) ? code : null, Is.EqualTo(kafkaErrorCode));
        Assert.That(problem.ProblemDetails.Extensions["notificationId"], Is.TypeOf<Guid>());
        Assert.That(http.Response.Headers.RetryAfter.ToString(), Is.EqualTo(status == 503 ? "5" : string.Empty));
    }

    [Test]
    [CancelAfter(10_000)]
    public async Task PostAsync_NoAcknowledgementWithinTimeout_503AfterTheTimeout()
    {
        var http = new DefaultHttpContext();
        var never = new TaskCompletionSource<DeliveryResult<string, Notification>>();
#pragma warning disable VSTHRD003 // the stand-in's acknowledgement never comes: that task is the point of the test
        var producer = new StandInProducer(_ => never.Task);
#pragma warning restore VSTHRD003
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var result = await PostAsync(producer, http, TimeSpan.FromMilliseconds(300));

        Assert.That(clock.Elapsed, Is.InRange(TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(5)));
        Assert.That((result.Result as ProblemHttpResult)?.StatusCode, Is.EqualTo(503));
        Assert.That(http.Response.Headers.RetryAfter.ToString(), Is.EqualTo("5"));
    }

    [Test]
    [CancelAfter(10_000)]
    public async Task PostAsync_Delivered_202WithPartitionAndOffsetAndKeyIsRecipient()
    {
        var http = new DefaultHttpContext();
        Message<string, Notification>? sent = null;
        var producer = new StandInProducer(message =>
        {
            sent = message;
            return Task.FromResult(new DeliveryResult<string, Notification> { Message = message, TopicPartitionOffset = new TopicPartitionOffset("notifications", 2, 41) });
        });

        var result = await PostAsync(producer, http, TimeSpan.FromSeconds(5));

        var accepted = result.Result as Accepted<NotificationsApi.AcceptedNotification>;
        Assert.That(accepted, Is.Not.Null);
        Assert.That(accepted!.Location, Is.EqualTo("/users/bob/notifications"));
        Assert.That((accepted.Value!.Partition, accepted.Value.Offset), Is.EqualTo((2, 41L)));
        Assert.That(sent!.Key, Is.EqualTo("bob"));
        Assert.That(sent.Value.Id, Is.EqualTo(accepted.Value.Id));
    }

    private static ProduceException<string, Notification> Produce(ErrorCode code) =>
        new(new Error(code), new DeliveryResult<string, Notification>());

    private static Task<Microsoft.AspNetCore.Http.HttpResults.Results<Accepted<NotificationsApi.AcceptedNotification>, ValidationProblem, ProblemHttpResult>> PostAsync(
        IKafkaProducer<string, Notification> producer, HttpContext http, TimeSpan produceTimeout) =>
        NotificationsApi.PostAsync(
            new NotificationRequest("alice", "bob", "hi"),
            UserDirectory.Seeded,
            new HostRole(NotificationsRole.All),
            producer,
            Options.Create(new NotificationsOptions { ProduceTimeout = produceTimeout }),
            TimeProvider.System,
            NullLoggerFactory.Instance,
            http);

    /// <summary>A producer whose ProduceAsync does what the test says; nothing else is used by the endpoint.</summary>
    private sealed class StandInProducer(Func<Message<string, Notification>, Task<DeliveryResult<string, Notification>>> produce) : IKafkaProducer<string, Notification>
    {
        public string Name => "stand-in";

        public long QueuedMessages => 0;

        public Error? FatalError => null;

        public IProducer<string, Notification> Inner => throw new NotSupportedException();

        public ValueTask<DeliveryResult<string, Notification>> ProduceAsync(string topic, Message<string, Notification> message, CancellationToken cancellationToken = default) =>
            new(produce(message));

        public ValueTask EnqueueAsync(string topic, Message<string, Notification> message, Action<DeliveryReport<string, Notification>>? onDelivery = null, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();

        public bool TryEnqueue(string topic, Message<string, Notification> message, Action<DeliveryReport<string, Notification>>? onDelivery = null) =>
            throw new NotSupportedException();

        public ValueTask<int> FlushAsync(CancellationToken cancellationToken = default) => new(0);

        public int Flush(TimeSpan timeout) => 0;

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
