namespace KafkaKit.Consuming;

/// <summary>
/// Exactly-once consume-transform-produce (KIP-98, KIP-447): the consumer's handled offsets and the messages its handler
/// produces through <see cref="TransactionContext"/> are committed together, in one Kafka transaction per batch of
/// handled records. Setting <see cref="TransactionalIdPrefix"/> turns the mode on; the handler must then be set with
/// <c>KafkaConsumerBuilder.SetTransactionalHandler</c> (<see cref="ITransactionalMessageHandler{TKey, TValue}"/>).
/// </summary>
public sealed class ConsumerTransactionOptions
{
    internal const int DefaultMaxRecords = 500;
    internal static readonly TimeSpan DefaultMaxInterval = TimeSpan.FromMilliseconds(100);
    internal static readonly TimeSpan DefaultOperationTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Gets or sets the prefix of the transactional producer's <c>transactional.id</c>, which is
    /// <c>&lt;prefix&gt;-&lt;consumer name&gt;</c>. Default: <see langword="null"/> (not transactional). Every running
    /// instance needs its own id (e.g. a prefix holding the pod name or ordinal): a second instance with the same id
    /// fences the first (KIP-98), which then stops with a fault. Letters, digits and <c>. _ -</c>, at most 200 characters.
    /// </summary>
    public string? TransactionalIdPrefix { get; set; }

    /// <summary>Gets or sets how many handled records a transaction holds at most before it is committed. Default: 500. Range 1 to 100000.</summary>
    public int MaxRecords { get; set; } = DefaultMaxRecords;

    /// <summary>
    /// Gets or sets how long a transaction stays open at most after its first handled record before it is committed.
    /// Default: 100 ms. Range 1 ms to 60 s. Output becomes visible to <c>read_committed</c> readers only at the commit, so
    /// this bounds the added end-to-end latency.
    /// </summary>
    public TimeSpan MaxInterval { get; set; } = DefaultMaxInterval;

    /// <summary>
    /// Gets or sets the bound of each blocking transaction call (<c>InitTransactions</c>, <c>SendOffsetsToTransaction</c>,
    /// <c>CommitTransaction</c>, <c>AbortTransaction</c>). Default: 10 s. Range 100 ms to 5 min, and less than
    /// <c>max.poll.interval.ms</c>. A call that has not returned within this bound plus 5 s leaves the transaction's
    /// outcome unknown: the consumer stops with a fault.
    /// </summary>
    public TimeSpan OperationTimeout { get; set; } = DefaultOperationTimeout;

    /// <summary>Gets whether the transactional mode is on (<see cref="TransactionalIdPrefix"/> is set).</summary>
    internal bool Enabled => TransactionalIdPrefix is not null;

    /// <summary>The producer's <c>transactional.id</c> for the consumer <paramref name="name"/>.</summary>
    internal string TransactionalId(string name) => $"{TransactionalIdPrefix}-{name}";

    internal void Validate(List<string> problems)
    {
        if (!Enabled)
        {
            return;
        }

        if (string.IsNullOrWhiteSpace(TransactionalIdPrefix) || TransactionalIdPrefix.Length > 200
            || !TransactionalIdPrefix.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
        {
            problems.Add($"Transactions.TransactionalIdPrefix is '{TransactionalIdPrefix}'; it must be 1 to 200 letters, digits, '.', '_' or '-'.");
        }

        if (MaxRecords is < 1 or > 100_000)
        {
            problems.Add($"Transactions.MaxRecords is {MaxRecords}; it must be between 1 and 100000.");
        }

        if (MaxInterval < TimeSpan.FromMilliseconds(1) || MaxInterval > TimeSpan.FromSeconds(60))
        {
            problems.Add($"Transactions.MaxInterval is {MaxInterval}; it must be between 1 ms and 60 s.");
        }

        if (OperationTimeout < TimeSpan.FromMilliseconds(100) || OperationTimeout > TimeSpan.FromMinutes(5))
        {
            problems.Add($"Transactions.OperationTimeout is {OperationTimeout}; it must be between 100 ms and 5 min.");
        }
    }
}
