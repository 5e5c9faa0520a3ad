using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Diagnostics;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Sharing;

/// <content>The poll thread: the only thread that touches the native share consumer.</content>
public sealed partial class KafkaShareConsumer<TKey, TValue> : IShareCallbackSink
{
    /// <summary>How often, at most, acknowledgements are sent while a batch is being handled (rd_kafka_share_commit_async).</summary>
    private static readonly TimeSpan AcknowledgementFlushInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>How long the poll thread waits for an outcome before it looks at the stop flag again.</summary>
    private static readonly TimeSpan OutcomeWait = TimeSpan.FromMilliseconds(50);

    /// <summary>How long the final commit (rd_kafka_share_commit_sync) waits for the broker.</summary>
    private static readonly TimeSpan FinalCommitTimeout = TimeSpan.FromSeconds(10);

    /// <summary>How long the start waits for the dead-letter producer's first metadata answer (see <see cref="ConnectDeadLetters"/>).</summary>
    private static readonly TimeSpan DeadLetterConnectTimeout = TimeSpan.FromSeconds(10);

    private int _unsentAcknowledgements;
    private long _lastFlush;

    /// <summary>The poll thread's body. Blocking waits here are on this dedicated thread only (the native handle must not move between threads mid-call, and it has no wake-up call).</summary>
    private unsafe void Run()
    {
        var self = GCHandle.Alloc((IShareCallbackSink)this);
        var rkshare = IntPtr.Zero;
        try
        {
            ConnectDeadLetters();
            rkshare = Create(GCHandle.ToIntPtr(self));
            _started.TrySetResult();
            ShareConsumerLog.Started(_logger, Name, GroupId, string.Join(", ", Topics), _options.MaxConcurrency, _options.MaxDeliveryAttempts);
            while (!StopRequested)
            {
                IntPtr batch = IntPtr.Zero;
                var error = ShareNative.TakeError(ShareNative.rd_kafka_share_poll(rkshare, (int)_options.PollTimeout.TotalMilliseconds, &batch));
                var polled = Stopwatch.GetTimestamp();
                Interlocked.Exchange(ref _lastPoll, polled);
                Interlocked.Exchange(ref _heartbeat, polled);
                if (error.Code != 0)
                {
                    if (error.Fatal)
                    {
                        throw new KafkaException(new Error((ErrorCode)error.Code, error.Reason, isFatal: true));
                    }

                    if (_logSummariser.ShouldLog(LogLevel.Warning, error.Reason))
                    {
                        ShareConsumerLog.PollFailed(_logger, Name, error.Reason, (ErrorCode)error.Code);
                    }

                    continue;
                }

                if (batch != IntPtr.Zero)
                {
                    try
                    {
                        HandleBatch(rkshare, batch);
                    }
                    finally
                    {
                        ShareNative.rd_kafka_messages_destroy(batch);
                    }
                }
            }
        }
        catch (Exception e) when (rkshare == IntPtr.Zero)
        {
            ShareConsumerLog.StartFailed(_logger, Name, e.Message);
            Volatile.Write(ref _fault, e);
            Volatile.Write(ref _state, (int)KafkaConsumerState.Faulted);
            _started.TrySetException(e);
        }
        catch (Exception e)
        {
            ShareConsumerLog.Faulted(_logger, Name, e.Message, e);
            Volatile.Write(ref _fault, e);
        }
        finally
        {
            if (rkshare != IntPtr.Zero)
            {
                RequestStop(); // a fatal error ends the loop without a request: the stop begins now
                Close(rkshare);
                Volatile.Write(ref _state, (int)(Volatile.Read(ref _fault) is null ? KafkaConsumerState.Stopped : KafkaConsumerState.Faulted));
                ShareConsumerLog.Stopped(_logger, Name, Stopwatch.GetElapsedTime(Interlocked.Read(ref _stopSince)), Accepted, Released, Rejected, DeadLettered);
            }

            self.Free();
            _stopped.TrySetResult();
        }
    }

    /// <summary>
    /// Creates the dead-letter producer before the share consumer subscribes: a client's first connections are made and
    /// closed (librdkafka drops its bootstrap connection once it knows the brokers) before this member holds records. On
    /// the embedded cluster a connection closing ends every share session of its broker, so a producer created at the
    /// first dead letter made the broker refuse the acknowledgements of the records just dead-lettered and deliver them
    /// again (dead-lettered twice). Failing to reach the cluster here is logged only: the first dead letter tries again.
    /// </summary>
    private void ConnectDeadLetters()
    {
        if (_deadLetters is null)
        {
            return;
        }

        try
        {
            _deadLetters.Connect(DeadLetterConnectTimeout);
        }
        catch (KafkaException e)
        {
            ShareConsumerLog.DeadLetterConnectFailed(_logger, Name, DeadLetterConnectTimeout, e.Message);
        }
    }

    /// <summary>Creates the native share consumer, registers the callbacks and subscribes.</summary>
    /// <exception cref="InvalidOperationException">librdkafka refused a property, the creation or the subscription.</exception>
    private unsafe IntPtr Create(IntPtr opaque)
    {
        ShareNative.EnsureLoaded();
        var errstr = new byte[512];
        var conf = ShareNative.rd_kafka_conf_new();
        var properties = new Dictionary<string, string>(_config, StringComparer.Ordinal)
        {
            // Log lines go to the reply queue, which the poll thread serves (see ShareCallbacks).
            ["log.queue"] = "true",
        };
        foreach (var (key, value) in properties)
        {
            if (key.StartsWith("dotnet.", StringComparison.Ordinal))
            {
                continue;
            }

            if (ShareNative.rd_kafka_conf_set(conf, key, value, errstr, (UIntPtr)errstr.Length) != 0)
            {
                ShareNative.rd_kafka_conf_destroy(conf);
                throw new InvalidOperationException($"Share consumer '{Name}': librdkafka refuses '{key}{(Internal.ConfigText.IsSecret(key) ? string.Empty : "=" + value)}': {Text(errstr)}");
            }
        }

        ShareNative.rd_kafka_conf_set_log_cb(conf, ShareCallbacks.Log);
        ShareNative.rd_kafka_conf_set_error_cb(conf, ShareCallbacks.Error);
        ShareNative.rd_kafka_conf_set_opaque(conf, opaque);

        // rd_kafka_share_consumer_new takes ownership of conf only when it succeeds.
        var rkshare = ShareNative.rd_kafka_share_consumer_new(conf, errstr, (UIntPtr)errstr.Length);
        if (rkshare == IntPtr.Zero)
        {
            ShareNative.rd_kafka_conf_destroy(conf);
            throw new InvalidOperationException($"Share consumer '{Name}': librdkafka refused the configuration: {Text(errstr)}");
        }

        var logQueue = ShareNative.TakeError(ShareNative.rd_kafka_share_set_log_queue(rkshare, IntPtr.Zero));
        var callback = ShareNative.TakeError(ShareNative.rd_kafka_share_set_acknowledgement_commit_cb(rkshare, ShareCallbacks.AcknowledgementCommit, opaque));
        var topics = ShareNative.rd_kafka_topic_partition_list_new(Topics.Count);
        foreach (var topic in Topics)
        {
            ShareNative.rd_kafka_topic_partition_list_add(topics, topic, -1);
        }

        var subscribed = ShareNative.rd_kafka_share_subscribe(rkshare, (IntPtr)topics);
        ShareNative.rd_kafka_topic_partition_list_destroy(topics);
        if (subscribed != 0 || logQueue.Code != 0 || callback.Code != 0)
        {
            ShareNative.TakeError(ShareNative.rd_kafka_share_destroy(rkshare));
            var (what, code, reason) = subscribed != 0 ? ("subscribe", subscribed, ShareNative.ErrorText(subscribed))
                : logQueue.Code != 0 ? ("forward its log", logQueue.Code, logQueue.Reason)
                : ("register the acknowledgement callback", callback.Code, callback.Reason);
            throw new InvalidOperationException($"Share consumer '{Name}': librdkafka could not {what}: {reason} ({(ErrorCode)code}).");
        }

        return rkshare;
    }

    /// <summary>Hands a polled batch to handlers and acknowledges every record of it before returning (or stops early when asked, releasing the rest).</summary>
    private unsafe void HandleBatch(IntPtr rkshare, IntPtr batch)
    {
        var count = (int)ShareNative.rd_kafka_messages_count(batch);
        var records = new List<Pending>(count);
        for (var i = 0; i < count; i++)
        {
            var message = ShareNative.rd_kafka_messages_get(batch, (UIntPtr)i);
            var topic = ShareNative.Utf8(ShareNative.rd_kafka_topic_name(message->Rkt)) ?? string.Empty;
            if (message->Err != 0)
            {
                ShareConsumerLog.RecordError(_logger, Name, topic, message->Partition, message->Offset, (ErrorCode)message->Err);
                continue;
            }

            records.Add(new Pending((IntPtr)message, Copy(message, topic), ShareNative.rd_kafka_message_delivery_count(message)));
        }

        var next = 0;
        var running = 0;
        var done = 0;
        long stopDeadline = 0;
        Volatile.Write(ref _batchPending, records.Count);
        Interlocked.Exchange(ref _batchSince, Stopwatch.GetTimestamp());
        while (done < records.Count)
        {
            Interlocked.Exchange(ref _heartbeat, Stopwatch.GetTimestamp());
            while (!StopRequested && next < records.Count && running < _options.MaxConcurrency)
            {
                var record = records[next++];
                running++;
                _ = Task.Run(() => HandleAsync(record));
            }

            if (StopRequested)
            {
                if (stopDeadline == 0)
                {
                    stopDeadline = Stopwatch.GetTimestamp() + (long)(_options.ShutdownTimeout.TotalSeconds * Stopwatch.Frequency);
                    ShareConsumerLog.Stopping(_logger, Name, running, _options.ShutdownTimeout);
                }

                if (running == 0 || Stopwatch.GetTimestamp() >= stopDeadline)
                {
                    break;
                }
            }

            if (running > 0 && WaitForOutcome())
            {
                while (_outcomes.Reader.TryRead(out var outcome))
                {
                    if (!outcome.Record.Acknowledged)
                    {
                        Acknowledge(rkshare, outcome.Record, outcome.Kind);
                        running--;
                        done++;
                    }
                }

                Volatile.Write(ref _batchPending, records.Count - done);
            }

            FlushAcknowledgements(rkshare, force: false);
        }

        if (done < records.Count)
        {
            ReleaseUnhandled(rkshare, records, running);
        }

        FlushAcknowledgements(rkshare, force: true);
        Interlocked.Exchange(ref _batchSince, 0);
    }

    /// <summary>At stop: cancels handlers that outlived the timeout, acknowledges what finished meanwhile and releases the rest.</summary>
    private void ReleaseUnhandled(IntPtr rkshare, List<Pending> records, int running)
    {
        if (running > 0)
        {
            ShareConsumerLog.ShutdownTimedOut(_logger, Name, running, _options.ShutdownTimeout);
            _handlerCancellation.Cancel();
        }

        while (_outcomes.Reader.TryRead(out var outcome))
        {
            if (!outcome.Record.Acknowledged)
            {
                Acknowledge(rkshare, outcome.Record, outcome.Kind);
            }
        }

        var released = 0;
        foreach (var record in records)
        {
            if (!record.Acknowledged)
            {
                Acknowledge(rkshare, record, OutcomeKind.Release);
                released++;
            }
        }

        ShareConsumerLog.ReleasedAtStop(_logger, Name, released);
    }

    /// <summary>Waits (this dedicated thread only) until an outcome is readable or a short interval passed.</summary>
    private bool WaitForOutcome()
    {
        if (_outcomes.Reader.TryPeek(out _))
        {
            return true;
        }

        var wait = _outcomes.Reader.WaitToReadAsync().AsTask();
#pragma warning disable VSTHRD002 // The dedicated poll thread blocks by design: it owns the native handle and has nothing else to do.
        return wait.Wait(OutcomeWait) && wait.Result;
#pragma warning restore VSTHRD002
    }

    private unsafe void Acknowledge(IntPtr rkshare, Pending record, OutcomeKind kind)
    {
        record.Acknowledged = true;
        var type = kind switch
        {
            OutcomeKind.Release => ShareNative.AcknowledgeRelease,
            OutcomeKind.Reject => ShareNative.AcknowledgeReject,
            _ => ShareNative.AcknowledgeAccept,
        };
        var code = ShareNative.rd_kafka_share_acknowledge_type(rkshare, (ShareNative.Message*)record.Message, type);
        if (code != 0)
        {
            ShareConsumerLog.AcknowledgeFailed(_logger, Name, record.Raw.Topic, record.Raw.Partition.Value, record.Raw.Offset.Value, kind.ToString(), ShareNative.ErrorText(code), (ErrorCode)code);
            return;
        }

        _unsentAcknowledgements++;
        string tag;
        switch (kind)
        {
            case OutcomeKind.Release:
                Interlocked.Increment(ref _released);
                tag = "released";
                break;
            case OutcomeKind.Reject:
                Interlocked.Increment(ref _rejected);
                tag = "rejected";
                break;
            case OutcomeKind.DeadLettered:
                Interlocked.Increment(ref _deadLettered);
                Interlocked.Increment(ref _accepted);
                tag = "dead_lettered";
                break;
            default:
                Interlocked.Increment(ref _accepted);
                tag = "accepted";
                break;
        }

        KafkaKitMetrics.ShareRecords.Add(
            1,
            new KeyValuePair<string, object?>("outcome", tag),
            new KeyValuePair<string, object?>("messaging.consumer.group.name", GroupId));
    }

    /// <summary>Sends the acknowledgements made so far (rd_kafka_share_commit_async) at most every <see cref="AcknowledgementFlushInterval"/>, or at once with <paramref name="force"/>; the broker's answers arrive in the acknowledgement commit callback.</summary>
    private void FlushAcknowledgements(IntPtr rkshare, bool force)
    {
        if (_unsentAcknowledgements == 0 || (!force && Stopwatch.GetElapsedTime(_lastFlush) < AcknowledgementFlushInterval))
        {
            return;
        }

        _unsentAcknowledgements = 0;
        _lastFlush = Stopwatch.GetTimestamp();
        var error = ShareNative.TakeError(ShareNative.rd_kafka_share_commit_async(rkshare));
        if (error.Code != 0 && _logSummariser.ShouldLog(LogLevel.Warning, error.Reason))
        {
            ShareConsumerLog.ClientError(_logger, Name, error.Reason, (ErrorCode)error.Code);
        }
    }

    /// <summary>Commits the acknowledgements (rd_kafka_share_commit_sync), leaves the group and destroys the handle.</summary>
    private unsafe void Close(IntPtr rkshare)
    {
        ShareNative.PartitionList* results = null;
        var commit = ShareNative.TakeError(ShareNative.rd_kafka_share_commit_sync(rkshare, (int)FinalCommitTimeout.TotalMilliseconds, &results));
        if (commit.Code != 0)
        {
            ShareConsumerLog.FinalCommitFailed(_logger, Name, commit.Reason, (ErrorCode)commit.Code);
        }

        if (results != null)
        {
            for (var i = 0; i < results->Cnt; i++)
            {
                var partition = results->Elems[i];
                if (partition.Err != 0)
                {
                    ShareConsumerLog.AcknowledgementCommitFailed(_logger, Name, ShareNative.Utf8(partition.Topic) ?? "?", partition.Partition, -1, ShareNative.ErrorText(partition.Err), (ErrorCode)partition.Err);
                }
            }

            ShareNative.rd_kafka_topic_partition_list_destroy(results);
        }

        var close = ShareNative.TakeError(ShareNative.rd_kafka_share_consumer_close(rkshare));
        if (close.Code != 0)
        {
            ShareConsumerLog.CloseFailed(_logger, Name, close.Reason, (ErrorCode)close.Code);
        }

        var destroy = ShareNative.TakeError(ShareNative.rd_kafka_share_destroy(rkshare));
        if (destroy.Code != 0)
        {
            ShareConsumerLog.ClientError(_logger, Name, destroy.Reason, (ErrorCode)destroy.Code);
        }
    }

    /// <summary>Copies a native record into managed memory: key, value, headers, timestamp.</summary>
    private static unsafe ConsumeResult<byte[]?, byte[]?> Copy(ShareNative.Message* message, string topic)
    {
        var key = message->Key == IntPtr.Zero ? null : new ReadOnlySpan<byte>((void*)message->Key, (int)message->KeyLen).ToArray();
        var value = message->Payload == IntPtr.Zero ? null : new ReadOnlySpan<byte>((void*)message->Payload, (int)message->Len).ToArray();
        int timestampType;
        var timestamp = ShareNative.rd_kafka_message_timestamp(message, &timestampType);
        var headers = new Headers();
        IntPtr native;
        if (ShareNative.rd_kafka_message_headers(message, &native) == 0)
        {
            IntPtr name;
            IntPtr data;
            UIntPtr size;
            for (var i = 0; ShareNative.rd_kafka_header_get_all(native, (UIntPtr)i, &name, &data, &size) == 0; i++)
            {
                headers.Add(ShareNative.Utf8(name) ?? string.Empty, data == IntPtr.Zero ? null : new ReadOnlySpan<byte>((void*)data, (int)size).ToArray());
            }
        }

        return new ConsumeResult<byte[]?, byte[]?>
        {
            Topic = topic,
            Partition = new Partition(message->Partition),
            Offset = new Offset(message->Offset),
            Message = new Message<byte[]?, byte[]?>
            {
                Key = key,
                Value = value,
                Headers = headers,
                Timestamp = timestampType == 0 ? Timestamp.Default : new Timestamp(timestamp, (TimestampType)timestampType),
            },
        };
    }

    private static string Text(byte[] errstr)
    {
        var length = Array.IndexOf(errstr, (byte)0);
        return Encoding.UTF8.GetString(errstr, 0, length < 0 ? errstr.Length : length);
    }

    /// <inheritdoc />
    void IShareCallbackSink.OnLog(int level, string facility, string text) =>
        ClientLog.Forward(_logSummariser, new LogMessage(Name, (SyslogLevel)level, facility, text));

    /// <inheritdoc />
    void IShareCallbackSink.OnError(int code, string reason)
    {
        if (_logSummariser.ShouldLog(LogLevel.Warning, reason))
        {
            ShareConsumerLog.ClientError(_logger, Name, reason, (ErrorCode)code);
        }
    }

    /// <inheritdoc />
    void IShareCallbackSink.OnAcknowledgementCommit(string topic, int partition, int count, int code)
    {
        if (code != 0)
        {
            ShareConsumerLog.AcknowledgementCommitFailed(_logger, Name, topic, partition, count, ShareNative.ErrorText(code), (ErrorCode)code);
        }
    }
}
