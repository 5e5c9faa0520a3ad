namespace KafkaKit.Samples.Notifications;

/// <summary>A notification as it travels through Kafka (topic <c>notifications</c>, key = <see cref="RecipientId"/>) and out to the page.</summary>
/// <param name="Id">A new GUID per accepted request.</param>
/// <param name="SenderId">Who sent it.</param>
/// <param name="RecipientId">Who receives it; also the Kafka key, so one recipient's notifications stay in order.</param>
/// <param name="Message">The text, 1 to <see cref="NotificationRequest.MaxMessageLength"/> characters.</param>
/// <param name="SentAt">When the API accepted it.</param>
public sealed record Notification(Guid Id, string SenderId, string RecipientId, string Message, DateTimeOffset SentAt);

/// <summary>The body of <c>POST /notifications</c>. Every member may be missing or null in the JSON: validation says which is wrong.</summary>
/// <param name="SenderId">The sender's user id.</param>
/// <param name="RecipientId">The recipient's user id.</param>
/// <param name="Message">The text.</param>
public sealed record NotificationRequest(string? SenderId, string? RecipientId, string? Message)
{
    /// <summary>The longest message, in characters (UTF-16 code units).</summary>
    public const int MaxMessageLength = 1_000;

    /// <summary>Lists what is wrong with the request, by JSON member name; empty when it is valid.</summary>
    /// <returns>The problems (for a 400 validation problem).</returns>
    public Dictionary<string, string[]> Validate()
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        CheckId(SenderId, "senderId", errors);
        CheckId(RecipientId, "recipientId", errors);
        if (string.IsNullOrWhiteSpace(Message))
        {
            errors["message"] = ["The message is required and must not be empty or only white space."];
        }
        else if (Message.Length > MaxMessageLength)
        {
            errors["message"] = [$"The message has {Message.Length} characters; at most {MaxMessageLength} are allowed."];
        }

        return errors;
    }

    private static void CheckId(string? id, string member, Dictionary<string, string[]> errors)
    {
        if (string.IsNullOrEmpty(id))
        {
            errors[member] = [$"The {member} is required."];
        }
        else if (!UserDirectory.IsWellFormedId(id))
        {
            errors[member] = [$"'{Truncate(id)}' is not a user id: use 1 to {UserDirectory.MaxIdLength} lower-case letters, digits, '-' or '_', starting with a letter."];
        }
    }

    private static string Truncate(string id) => id.Length <= 40 ? id : string.Concat(id.AsSpan(0, 40), "...");
}
