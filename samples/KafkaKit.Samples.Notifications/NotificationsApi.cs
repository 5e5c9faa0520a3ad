using System.Globalization;
using Confluent.Kafka;
using KafkaKit.Producing;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace KafkaKit.Samples.Notifications;

/// <summary>The API role: <c>POST /notifications</c>.</summary>
internal static class NotificationsApi
{
    /// <summary>The body of a 202.</summary>
    /// <param name="Id">The notification id.</param>
    /// <param name="Partition">The partition it was written to.</param>
    /// <param name="Offset">Its offset there.</param>
    public sealed record AcceptedNotification(Guid Id, int Partition, long Offset);

    public static void MapNotificationsApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/notifications", PostAsync)
            .WithName("SendNotification")
            .Accepts<NotificationRequest>("application/json")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status500InternalServerError)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
    }

    /// <summary>
    /// Validates, checks both users exist, produces the notification (key = recipient) and waits for the broker's
    /// acknowledgement, at most <see cref="NotificationsOptions.ProduceTimeout"/>.
    /// </summary>
    internal static async Task<Results<Accepted<AcceptedNotification>, ValidationProblem, ProblemHttpResult>> PostAsync(
        NotificationRequest? request,
        UserDirectory users,
        HostRole role,
        IKafkaProducer<string, Notification> producer,
        IOptions<NotificationsOptions> options,
        TimeProvider time,
        ILoggerFactory loggers,
        HttpContext http)
    {
        if (request is null)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { [""] = ["A JSON body { senderId, recipientId, message } is required."] });
        }

        var errors = request.Validate();
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, title: "The notification is not valid.");
        }

        var unknown = new[] { ("sender", request.SenderId!), ("recipient", request.RecipientId!) }.Where(u => !users.Contains(u.Item2)).ToList();
        if (unknown.Count > 0)
        {
            return TypedResults.Problem(
                statusCode: StatusCodes.Status404NotFound,
                title: "Unknown user.",
                detail: string.Join(" ", unknown.Select(u => $"The {u.Item1} '{u.Item2}' does not exist.")) + " GET /users lists the users.",
                extensions: new Dictionary<string, object?> { ["unknownUsers"] = unknown.Select(u => u.Item2).Distinct().ToArray() });
        }

        var o = options.Value;
        var logger = loggers.CreateLogger(typeof(NotificationsApi).FullName!);
        var notification = new Notification(Guid.NewGuid(), request.SenderId!, request.RecipientId!, request.Message!, time.GetUtcNow());
        var message = new Message<string, Notification> { Key = notification.RecipientId, Value = notification };

        // The request never waits longer than ProduceTimeout: the token ends a wait for queue room (MaxBlock) and the
        // retries; WaitAsync ends the wait for the acknowledgement (which librdkafka bounds by message.timeout.ms).
        using var timeout = new CancellationTokenSource(o.ProduceTimeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, http.RequestAborted);
        Task<DeliveryResult<string, Notification>>? produce = null;
        try
        {
            produce = producer.ProduceAsync(o.Topic, message, linked.Token).AsTask();
            var result = await produce.WaitAsync(linked.Token);
            Log.Accepted(logger, notification.Id, notification.SenderId, notification.RecipientId, result.TopicPartitionOffset);
            // Location: where the notification will show up (the recipient's notifications), when this process or a
            // configured worker serves them.
            var path = $"/users/{Uri.EscapeDataString(notification.RecipientId)}/notifications";
            var location = role.ServesWorker ? path : o.WorkerUrl is { } worker ? $"{worker.TrimEnd('/')}{path}" : null;
            return TypedResults.Accepted(location, new AcceptedNotification(notification.Id, result.Partition.Value, result.Offset.Value));
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !http.RequestAborted.IsCancellationRequested)
        {
            Log.ProduceTimedOut(logger, notification.Id, o.ProduceTimeout);
            if (produce is not null)
            {
                ReportLateOutcome(produce, notification.Id, logger);
            }

            return Unavailable(http, o, notification.Id, $"The Kafka cluster did not acknowledge the notification within {o.ProduceTimeout.TotalSeconds:0.###} s. It may still be delivered: check the recipient's notifications before sending it again.", null);
        }
        catch (ProducerQueueFullException e)
        {
            Log.ProduceFailed(logger, notification.Id, 503, $"{e.Error.Reason} ({e.Error.Code})");
            return Unavailable(http, o, notification.Id, "The producer's queue is full (the cluster is slow or unreachable); the notification was not sent.", e.Error);
        }
        catch (ProducerFaultedException e)
        {
            Log.ProduceFailed(logger, notification.Id, 503, $"{e.Error.Reason} ({e.Error.Code})");
            return Unavailable(http, o, notification.Id, "The producer hit a fatal error and cannot send until the service restarts (see /health); the notification was not sent.", e.Error);
        }
        catch (ProduceException<string, Notification> e) when (ProduceErrors.IsRetriable(e.Error))
        {
            Log.ProduceFailed(logger, notification.Id, 503, $"{e.Error.Reason} ({e.Error.Code})");
            return Unavailable(http, o, notification.Id, $"The Kafka cluster is unavailable ({e.Error.Reason}); the notification was not sent.", e.Error);
        }
        catch (ProduceException<string, Notification> e)
        {
            Log.ProduceFailed(logger, notification.Id, 500, $"{e.Error.Reason} ({e.Error.Code})");
            return TypedResults.Problem(
                statusCode: StatusCodes.Status500InternalServerError,
                title: "The notification could not be sent.",
                detail: $"Kafka refused the notification: {e.Error.Reason}. Sending it again will fail the same way.",
                extensions: Extensions(notification.Id, e.Error));
        }
        catch (ProducerCircuitOpenException e)
        {
            Log.ProduceFailed(logger, notification.Id, 503, $"{e.Error.Reason} ({e.Error.Code})");
            return Unavailable(http, o, notification.Id, "Recent notifications failed, so sending is paused for a moment (circuit open); the notification was not sent.", e.Error);
        }
        catch (ObjectDisposedException)
        {
            Log.ProduceFailed(logger, notification.Id, 503, "the service is stopping");
            return Unavailable(http, o, notification.Id, "The service is stopping; the notification was not sent.", null);
        }
    }

    private static ProblemHttpResult Unavailable(HttpContext http, NotificationsOptions options, Guid id, string detail, Error? error)
    {
        http.Response.Headers.RetryAfter = ((int)Math.Ceiling(options.RetryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        return TypedResults.Problem(
            statusCode: StatusCodes.Status503ServiceUnavailable,
            title: "Notifications are unavailable for now; try again later.",
            detail: detail,
            extensions: Extensions(id, error));
    }

    private static Dictionary<string, object?> Extensions(Guid id, Error? error)
    {
        var extensions = new Dictionary<string, object?>(StringComparer.Ordinal) { ["notificationId"] = id };
        if (error is not null)
        {
            extensions["kafkaErrorCode"] = error.Code.ToString();
            extensions["kafkaErrorNumber"] = (int)error.Code;
        }

        return extensions;
    }

    /// <summary>Logs what became of a notification whose request gave up waiting (so the log tells whether a 503 was in fact delivered).</summary>
    private static void ReportLateOutcome(Task<DeliveryResult<string, Notification>> produce, Guid id, ILogger logger) =>
        _ = produce.ContinueWith(
            t =>
            {
                if (t.IsCompletedSuccessfully)
                {
                    Log.DeliveredAfterTimeout(logger, id, t.Result.TopicPartitionOffset);
                }
                else if (t.Exception?.GetBaseException() is { } e)
                {
                    Log.FailedAfterTimeout(logger, id, e.Message);
                }
            },
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
}
