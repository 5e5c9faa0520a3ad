using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;
using System.Threading.Channels;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Diagnostics;
using KafkaKit.Serialization;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Sharing;

/// <summary>Constants of the share consumer.</summary>
public static class KafkaShareConsumer
{
    /// <summary>
    /// The diagnostic id of the preview share-consumer API (<see cref="ExperimentalAttribute"/>): suppress it
    /// (<c>&lt;NoWarn&gt;KAFKAKIT001&lt;/NoWarn&gt;</c>) to use the API, accepting that it may change.
    /// </summary>
    public const string DiagnosticId = "KAFKAKIT001";
}

/// <summary>
/// A member of a Kafka share group (KIP-932, "queues for Kafka") over librdkafka's share consumer: records of the
/// subscribed topics are spread over the group's members record by record (several members may read one partition),
/// handed to a handler, and acknowledged one by one: accepted when handled, released for redelivery when the handler
/// failed, rejected (or dead-lettered) when they cannot succeed. Delivery is at least once and in no particular order.
/// </summary>
/// <typeparam name="TKey">The record key type.</typeparam>
/// <typeparam name="TValue">The record value type.</typeparam>
/// <remarks>
/// <para>
/// Preview: librdkafka marks its share-consumer API a preview (signatures may change; close takes no timeout; no lock
/// renewal, so a handler running longer than the broker's record lock duration sees its record redelivered elsewhere).
/// This type may change with it. See docs/share-groups.md.
/// </para>
/// <para>
/// Threading: one dedicated thread owns the native handle (which is not thread-safe) and makes every native call: it
/// polls a batch, hands its records to handlers on the thread pool (at most
/// <see cref="KafkaShareConsumerOptions.MaxConcurrency"/> at once), acknowledges each outcome as it arrives and sends the
/// acknowledgements to the broker in batches (rd_kafka_share_commit_async). librdkafka refuses the next poll until
/// every record of the previous batch is acknowledged, so the thread polls again only when the whole batch has its
/// outcomes. Members of this type are thread-safe.
/// </para>
/// </remarks>
[Experimental(KafkaShareConsumer.DiagnosticId)]
public sealed partial class KafkaShareConsumer<TKey, TValue> : IAsyncDisposable
{
    private readonly IReadOnlyDictionary<string, string> _config;
    private readonly KafkaShareConsumerOptions _options;
    private readonly IDeserializer<TKey> _keyDeserializer;
    private readonly IDeserializer<TValue> _valueDeserializer;
    private readonly Func<ConsumeResult<TKey, TValue>, CancellationToken, ValueTask> _handler;
    private readonly DeadLetterPublisher? _deadLetters;
    private readonly ILogger _logger;
    private readonly ClientLogSummariser _logSummariser;
    private readonly Channel<Outcome> _outcomes = Channel.CreateUnbounded<Outcome>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _handlerCancellation = new();
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly object _gate = new();
    private long _accepted;
    private long _released;
    private long _rejected;
    private long _deadLettered;
    private long _lastPoll;
    private long _heartbeat;
    private long _batchSince;
    private int _batchPending;
    private int _state;
    private int _stopRequested;
    private long _stopSince;
    private Exception? _fault;

    internal KafkaShareConsumer(
        string name,
        IReadOnlyDictionary<string, string> config,
        KafkaShareConsumerOptions options,
        IDeserializer<TKey> keyDeserializer,
        IDeserializer<TValue> valueDeserializer,
        Func<ConsumeResult<TKey, TValue>, CancellationToken, ValueTask> handler,
        ILogger logger)
    {
        Name = name;
        _config = config;
        _options = options;
        GroupId = config["group.id"];
        Topics = [.. options.Topics];
        _keyDeserializer = keyDeserializer;
        _valueDeserializer = valueDeserializer;
        _handler = handler;
        _logger = logger;
        _logSummariser = new ClientLogSummariser(logger, name, TimeProvider.System);
        _deadLetters = options.DeadLetterTopic is null ? null : new DeadLetterPublisher(name, config, options.DeadLetterTopic, logger, "Share consumer");
    }

    /// <summary>Gets the share consumer's name (its <c>client.id</c> unless set in the configuration).</summary>
    public string Name { get; }

    /// <summary>Gets the share group id.</summary>
    public string GroupId { get; }

    /// <summary>Gets the subscribed topics.</summary>
    public IReadOnlyList<string> Topics { get; }

    /// <summary>Gets the life-cycle state (the consumer's states: Created, Running, Stopping, Stopped, Faulted).</summary>
    public KafkaConsumerState State => (KafkaConsumerState)Volatile.Read(ref _state);

    /// <summary>Gets why the share consumer faulted (a fatal librdkafka error, a handler that could not be created, a failed dead-letter produce), or <see langword="null"/>.</summary>
    public Exception? Fault => Volatile.Read(ref _fault);

    /// <summary>Gets how many records were acknowledged as accepted (handled, or dead-lettered) so far.</summary>
    public long Accepted => Interlocked.Read(ref _accepted);

    /// <summary>Gets how many records were released for redelivery so far (handler failures before the last attempt, records not handled at stop).</summary>
    public long Released => Interlocked.Read(ref _released);

    /// <summary>Gets how many records were rejected so far (the broker archives them).</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    /// <summary>Gets how many records were dead-lettered (and accepted) so far.</summary>
    public long DeadLettered => Interlocked.Read(ref _deadLettered);

    /// <summary>
    /// Gets the time since the poll thread last returned from a poll, or <see langword="null"/> before the first poll.
    /// It grows while the poll thread waits for the outcomes of a batch (librdkafka refuses the next poll until then);
    /// the health check tells that wait from a stalled thread (see <see cref="KafkaShareConsumerOptions.MaxPollInterval"/>).
    /// </summary>
    public TimeSpan? SinceLastPoll => Since(ref _lastPoll);

    /// <summary>Gets the options the share consumer was built with.</summary>
    internal KafkaShareConsumerOptions Options => _options;

    /// <summary>Gets the time since the poll thread last ran (polled, or looked at its batch's outcomes), or null before it started.</summary>
    internal TimeSpan? SinceLastRun => Since(ref _heartbeat);

    /// <summary>Gets how long the poll thread has been handling its current batch and how many of its records await an outcome, or null between batches.</summary>
    internal (TimeSpan For, int Pending)? BatchWait => Since(ref _batchSince) is { } since ? (since, Volatile.Read(ref _batchPending)) : null;

    /// <summary>
    /// Starts the poll thread: it creates the native share consumer (librdkafka checks the properties now), subscribes and
    /// starts polling. Returns once the consumer is subscribed; the broker then assigns partitions with its heartbeats.
    /// With a <see cref="KafkaShareConsumerOptions.DeadLetterTopic"/>, the dead-letter producer is created first and the
    /// start waits at most 10 s for its first metadata answer (so that its connections do not disturb this member's share
    /// sessions later); when the cluster does not answer in time, event 6040 is logged and the start goes on.
    /// </summary>
    /// <param name="cancellationToken">Cancels the wait for the start (the thread keeps starting; stop it with <see cref="StopAsync"/>).</param>
    /// <returns>A task that completes when the share consumer polls.</returns>
    /// <exception cref="InvalidOperationException">The share consumer was started before, or librdkafka refused its configuration or subscription (the message has librdkafka's reason, naming the property).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.CompareExchange(ref _state, (int)KafkaConsumerState.Running, (int)KafkaConsumerState.Created) != (int)KafkaConsumerState.Created)
        {
            throw new InvalidOperationException($"Share consumer '{Name}' was started before; a share consumer starts once.");
        }

        var thread = new Thread(Run) { IsBackground = true, Name = $"kafkakit-share-{Name}" };
        thread.Start();
        return _started.Task.WaitAsync(cancellationToken);
    }

    /// <summary>
    /// Stops: no new poll; records of the current batch not yet handed to a handler are released; running handlers get
    /// <see cref="KafkaShareConsumerOptions.ShutdownTimeout"/> to finish (then their token is cancelled and their records
    /// released); finished outcomes are acknowledged; then the acknowledgements are committed (rd_kafka_share_commit_sync),
    /// the member leaves the group (close) and the native handle is destroyed. Idempotent.
    /// </summary>
    /// <param name="cancellationToken">Cancels the wait (the stop continues on the poll thread).</param>
    /// <returns>A task that completes when the share consumer stopped.</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.CompareExchange(ref _state, (int)KafkaConsumerState.Stopped, (int)KafkaConsumerState.Created) == (int)KafkaConsumerState.Created)
        {
            _stopped.TrySetResult();
            _started.TrySetCanceled(CancellationToken.None);
            return Task.CompletedTask;
        }

        RequestStop();
        return _stopped.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Stops as <see cref="StopAsync"/> does and releases the dead-letter producer. Idempotent.</summary>
    /// <returns>A task that completes when the share consumer stopped.</returns>
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        lock (_gate)
        {
            _deadLetters?.Close(_options.ShutdownTimeout);
        }

        _logSummariser.Dispose();
        _handlerCancellation.Dispose();
    }

    /// <summary>Completes when the poll thread has ended (stopped or faulted; never throws), for the hosted service; <see cref="State"/> then says how.</summary>
#pragma warning disable VSTHRD003 // the task of a completion source this class owns and completes (continuations run asynchronously)
    internal Task WhenStoppedAsync() => _stopped.Task;
#pragma warning restore VSTHRD003

    private static TimeSpan? Since(ref long timestamp) => Interlocked.Read(ref timestamp) is var at and not 0 ? Stopwatch.GetElapsedTime(at) : null;

    /// <summary>Asks the poll thread to stop: the state becomes Stopping (from Running) and the stop's clock starts (first request only).</summary>
    private void RequestStop()
    {
        Interlocked.CompareExchange(ref _stopSince, Stopwatch.GetTimestamp(), 0);
        Interlocked.CompareExchange(ref _state, (int)KafkaConsumerState.Stopping, (int)KafkaConsumerState.Running);
        Volatile.Write(ref _stopRequested, 1);
    }

    /// <summary>Stops the share consumer on an error found on a handler's thread (the first error wins); the poll thread releases what is not handled and the state ends Faulted.</summary>
    private void Fail(Exception error)
    {
        if (Interlocked.CompareExchange(ref _fault, error, null) is null)
        {
            ShareConsumerLog.Faulted(_logger, Name, error.Message, error);
        }

        RequestStop();
    }

    private bool StopRequested => Volatile.Read(ref _stopRequested) != 0;

    /// <summary>Runs on the thread pool: deserializes and handles one record, then hands its outcome to the poll thread.</summary>
    private async Task HandleAsync(Pending record)
    {
        var raw = record.Raw;
        var kind = OutcomeKind.Accept;
        using var activity = KafkaKitTracing.StartProcess(Name, GroupId, raw);
        activity?.SetTag("kafkakit.share.delivery_count", record.DeliveryCount);
        KafkaKitMetrics.ShareDeliveryAttempts.Record(record.DeliveryCount, new KeyValuePair<string, object?>("messaging.consumer.group.name", GroupId));
        var token = _handlerCancellation.Token;
        var started = Stopwatch.GetTimestamp();
        try
        {
            ConsumeResult<TKey, TValue> typed;
            try
            {
                typed = await MessageProcessor<TKey, TValue>.DeserializeOnceAsync(_keyDeserializer, _valueDeserializer, raw).ConfigureAwait(false);
            }
            catch (SerializationUnavailableException e)
            {
                ShareConsumerLog.DeserializerUnavailable(_logger, Name, raw.Topic, raw.Partition.Value, raw.Offset.Value, e.Message);
                kind = OutcomeKind.Release;
                return;
            }
            catch (Exception e)
            {
                kind = await FinalFailureAsync(record, e, "the record cannot be deserialized").ConfigureAwait(false);
                return;
            }

            await _handler(WithDeliveryCount(typed, record.DeliveryCount), token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            kind = OutcomeKind.Release;
        }
        catch (HandlerUnavailableException e)
        {
            // A configuration error (the handler cannot be created), not a failure of the record: as the consumer, stop at once.
            Fail(e);
            kind = OutcomeKind.Release;
        }
        catch (Exception e)
        {
            activity?.SetStatus(ActivityStatusCode.Error, e.Message);
            if (record.DeliveryCount >= _options.MaxDeliveryAttempts)
            {
                kind = await FinalFailureAsync(record, e, "the last delivery attempt failed").ConfigureAwait(false);
            }
            else
            {
                ShareConsumerLog.Released(_logger, Name, raw.Topic, raw.Partition.Value, raw.Offset.Value, record.DeliveryCount, _options.MaxDeliveryAttempts, e.GetType().Name, e.Message);
                kind = OutcomeKind.Release;
            }
        }
        finally
        {
            KafkaKitMetrics.ProcessDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, new KeyValuePair<string, object?>("messaging.destination.name", raw.Topic));
            _outcomes.Writer.TryWrite(new Outcome(record, kind));
        }
    }

    /// <summary>A record that cannot succeed: dead-lettered then accepted with a dead-letter topic, else rejected.</summary>
    private async Task<OutcomeKind> FinalFailureAsync(Pending record, Exception error, string why)
    {
        var raw = record.Raw;
        if (_deadLetters is null)
        {
            ShareConsumerLog.Rejected(_logger, Name, raw.Topic, raw.Partition.Value, raw.Offset.Value, record.DeliveryCount, why, error.GetType().Name, error.Message);
            return OutcomeKind.Reject;
        }

        try
        {
            var topic = await _deadLetters.PublishAsync(raw, error, GroupId, CancellationToken.None, deliveryCount: record.DeliveryCount).ConfigureAwait(false);
            ShareConsumerLog.DeadLettered(_logger, Name, raw.Topic, raw.Partition.Value, raw.Offset.Value, topic, record.DeliveryCount, why, error.GetType().Name, error.Message);
            return OutcomeKind.DeadLettered;
        }
        catch (ObjectDisposedException) when (StopRequested)
        {
            // A handler that ignored its token ended after DisposeAsync: its record was released at stop, so it is not a fault.
            ShareConsumerLog.EndedAfterStop(_logger, Name, raw.Topic, raw.Partition.Value, raw.Offset.Value, error.GetType().Name, error.Message);
            return OutcomeKind.Release;
        }
        catch (Exception e)
        {
            ShareConsumerLog.DeadLetterFailed(_logger, Name, raw.Topic, raw.Partition.Value, raw.Offset.Value, e.GetType().Name, e.Message);
            Fail(new InvalidOperationException($"Share consumer '{Name}' could not dead-letter {raw.Topic} [{raw.Partition.Value}] @{raw.Offset.Value} to {_options.DeadLetterTopic}: {e.Message}", e));
            return OutcomeKind.Release;
        }
    }

    /// <summary>The record the handler sees: the deserialized record with its own headers plus <see cref="ShareHeaders.DeliveryCount"/> (the raw record's headers, which a dead letter copies, stay as the producer wrote them).</summary>
    private static ConsumeResult<TKey, TValue> WithDeliveryCount(ConsumeResult<TKey, TValue> typed, int deliveryCount)
    {
        var headers = new Headers();
        foreach (var header in typed.Message.Headers ?? [])
        {
            if (header.Key != ShareHeaders.DeliveryCount)
            {
                headers.Add(header.Key, header.GetValueBytes());
            }
        }

        headers.Add(ShareHeaders.DeliveryCount, Encoding.UTF8.GetBytes(deliveryCount.ToString(CultureInfo.InvariantCulture)));
        typed.Message.Headers = headers;
        return typed;
    }

    private enum OutcomeKind
    {
        Accept,
        Release,
        Reject,
        DeadLettered,
    }

    /// <summary>A record of the current batch: its native message (valid until the batch is destroyed) and managed copy.</summary>
    private sealed class Pending(IntPtr message, ConsumeResult<byte[]?, byte[]?> raw, int deliveryCount)
    {
        public IntPtr Message { get; } = message;

        public ConsumeResult<byte[]?, byte[]?> Raw { get; } = raw;

        public int DeliveryCount { get; } = deliveryCount;

        /// <summary>Gets or sets a value indicating whether the record was acknowledged (poll thread only).</summary>
        public bool Acknowledged { get; set; }
    }

    private readonly record struct Outcome(Pending Record, OutcomeKind Kind);
}
