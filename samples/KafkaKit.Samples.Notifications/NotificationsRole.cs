namespace KafkaKit.Samples.Notifications;

/// <summary>What one process of the sample runs (<c>--role</c>).</summary>
[Flags]
internal enum NotificationsRole
{
    /// <summary><c>POST /notifications</c> with its producer, <c>GET /users</c> and <c>/health</c>.</summary>
    Api = 1,

    /// <summary>
    /// The consumer that delivers notifications, the per-user history and event streams, the page, <c>GET /users</c> and
    /// <c>/health</c>.
    /// </summary>
    Worker = 2,

    /// <summary>Both, in one process (the default).</summary>
    All = Api | Worker,
}

/// <summary>The role of this process, as a service (endpoints ask it what this process serves).</summary>
/// <param name="Role">The role.</param>
internal sealed record HostRole(NotificationsRole Role)
{
    public bool ServesWorker => Role.HasFlag(NotificationsRole.Worker);
}

/// <summary>A command-line mistake: the message is for the user; the process exits 2.</summary>
internal sealed class UsageException(string message) : Exception(message);
