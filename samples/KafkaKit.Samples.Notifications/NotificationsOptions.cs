namespace KafkaKit.Samples.Notifications;

/// <summary>The sample's own settings (section <c>"Notifications"</c>); KafkaKit's are in section <c>"KafkaKit"</c>.</summary>
internal sealed class NotificationsOptions
{
    /// <summary>Gets or sets the topic. Default: <c>notifications</c>.</summary>
    public string Topic { get; set; } = "notifications";

    /// <summary>Gets or sets the partitions of the topic when the sample creates it. Default: 3.</summary>
    public int Partitions { get; set; } = 3;

    /// <summary>
    /// Gets or sets whether the sample creates the topic at start on a real cluster (through the Admin API; an existing
    /// topic is left as it is). The embedded cluster always gets it. Default: <see langword="true"/>.
    /// </summary>
    public bool CreateTopic { get; set; } = true;

    /// <summary>
    /// Gets or sets the longest a <c>POST /notifications</c> waits for the broker's acknowledgement before it answers
    /// 503. Default: 5 s.
    /// </summary>
    public TimeSpan ProduceTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Gets or sets the <c>Retry-After</c> of a 503. Default: 5 s.</summary>
    public TimeSpan RetryAfter { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Gets or sets how many notifications the worker keeps per user. Default: 50.</summary>
    public int HistorySize { get; set; } = 50;

    /// <summary>
    /// Gets or sets how many notifications may wait for one slow event-stream connection; past that the connection is
    /// closed (the browser reconnects and catches up). Default: 100.
    /// </summary>
    public int StreamBuffer { get; set; } = 100;

    /// <summary>Gets or sets how often an idle event stream sends a <c>ping</c> event (keeps proxies from closing it). Default: 15 s.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Gets or sets the base URL of the API process that the page sends to, when the worker runs apart from it
    /// (<c>--role worker</c>). Default: none (the page sends to its own origin).
    /// </summary>
    public string? ApiUrl { get; set; }

    /// <summary>
    /// Gets or sets the base URL of the worker process, for the <c>Location</c> header of a 202 when the API runs apart
    /// from it (<c>--role api</c>): the recipient's notifications are served there. Default: none (then the API process
    /// sends no <c>Location</c>, having no such resource itself).
    /// </summary>
    public string? WorkerUrl { get; set; }

    /// <summary>Gets the origins allowed to call <c>POST /notifications</c> from a browser (CORS), for a page served by a separate worker process.</summary>
    public IList<string> AllowedOrigins { get; } = new List<string>();

    /// <summary>Lists every problem, empty when valid.</summary>
    /// <returns>One sentence per problem.</returns>
    public IEnumerable<string> Validate()
    {
        if (string.IsNullOrWhiteSpace(Topic))
        {
            yield return "Notifications:Topic is empty.";
        }

        if (Partitions is < 1 or > 1000)
        {
            yield return $"Notifications:Partitions is {Partitions}; it must be between 1 and 1000.";
        }

        if (ProduceTimeout <= TimeSpan.Zero || ProduceTimeout > TimeSpan.FromMinutes(5))
        {
            yield return $"Notifications:ProduceTimeout is {ProduceTimeout}; it must be more than 0 and at most 5 minutes.";
        }

        if (RetryAfter < TimeSpan.FromSeconds(1))
        {
            yield return $"Notifications:RetryAfter is {RetryAfter}; it must be at least 1 s.";
        }

        if (HistorySize is < 1 or > 10_000)
        {
            yield return $"Notifications:HistorySize is {HistorySize}; it must be between 1 and 10000.";
        }

        if (StreamBuffer is < 1 or > 100_000)
        {
            yield return $"Notifications:StreamBuffer is {StreamBuffer}; it must be between 1 and 100000.";
        }

        if (HeartbeatInterval < TimeSpan.FromMilliseconds(100))
        {
            yield return $"Notifications:HeartbeatInterval is {HeartbeatInterval}; it must be at least 100 ms.";
        }

        if (ApiUrl is not null && !Uri.TryCreate(ApiUrl, UriKind.Absolute, out _))
        {
            yield return $"Notifications:ApiUrl '{ApiUrl}' is not an absolute URL.";
        }

        if (WorkerUrl is not null && !Uri.TryCreate(WorkerUrl, UriKind.Absolute, out _))
        {
            yield return $"Notifications:WorkerUrl '{WorkerUrl}' is not an absolute URL.";
        }
    }
}
