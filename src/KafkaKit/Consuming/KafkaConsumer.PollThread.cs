using Confluent.Kafka;
using KafkaKit.Diagnostics;

namespace KafkaKit.Consuming;

/// <content>
/// The poll thread: the loop (poll, dispatch, maintain) and the stop sequence. Rebalance callbacks, commit reports and
/// statistics run on this thread too, inside <c>Consume</c> (see <see cref="RebalanceHandler"/>,
/// <see cref="OffsetCommitter"/>, <see cref="ConsumerStatistics"/>).
/// </content>
public sealed partial class KafkaConsumer<TKey, TValue>
{
    private void PollLoop()
    {
        var consumer = _consumer!;
        var pollMs = (int)_options.PollTimeout.TotalMilliseconds;
        var lastMaintenance = 0L;
        try
        {
            CheckRetryTopics(consumer);
            _transactions?.Start(consumer); // the transactional producer's InitTransactions, before the first poll
            while (!_stopRequested)
            {
                ConsumeResult<byte[]?, byte[]?>? result = null;
                try
                {
                    // While a partition is paused, poll in short slices so it resumes as soon as its buffer drains.
                    // (Also while a transactional consumer has records in flight: a transaction commits from this thread once
                    // its last handler call ended, which must not wait for a long poll.)
                    var shortPoll = _partitions.PausedCount > 0 || _transactions is { Pending: true };
                    result = consumer.Consume(shortPoll ? Math.Min(pollMs, PausedPollMs) : pollMs);
                }
                catch (ConsumeException e) when (e.Error.Code == ErrorCode.UnknownTopicOrPart && _patternWatch is not null
                    && e.Error.Reason.Contains(": ^", StringComparison.Ordinal))
                {
                    // librdkafka reports a pattern that matches no topic yet as an error at every metadata refresh.
                    ConsumerLog.PatternTopicNotAvailable(_logger, Name, e.Error.Reason, e.Error.Code);
                }
                catch (ConsumeException e)
                {
                    ConsumerLog.ConsumeFailed(_logger, Name, e.Error.Reason, e.Error.Code);
                    if (e.Error.IsFatal)
                    {
                        Fail(e);
                    }
                }

                var now = _time.GetTimestamp();
                Volatile.Write(ref _lastPollTimestamp, now); // read by the health check; atomic, and cheaper than an interlocked exchange per message
                if (result is { IsPartitionEOF: false })
                {
                    _partitions.Dispatch(consumer, result);
                    _transactions?.Dispatched(result);
                }

                if (result is null || _time.GetElapsedTime(lastMaintenance, now) >= MaintenanceInterval)
                {
                    lastMaintenance = now;
                    _partitions.Maintain(consumer);
                    _transactions?.Maintain(consumer);
                    WatchPatterns();
                }
                else if (_transactions is { ReadyToEnd: true })
                {
                    _transactions.Maintain(consumer);
                }
            }
        }
        catch (Exception e)
        {
            Fail(e);
        }

        Shutdown(consumer);
    }

    /// <summary>
    /// With <see cref="ConsumerErrorAction.RetryTopics"/>, faults the consumer before its first poll when a retry or
    /// dead-letter topic is missing, naming each; runs on the poll thread (one metadata request, bounded at 5 s). When the
    /// cluster does not answer in time the check is skipped with a warning: a later write to a missing topic still stops
    /// the consumer with its offset uncommitted.
    /// </summary>
    private void CheckRetryTopics(IConsumer<byte[]?, byte[]?> consumer)
    {
        if (_retryTopics is null)
        {
            return;
        }

        string[] missing;
        try
        {
            using var admin = new DependentAdminClientBuilder(consumer.Handle).Build();
            var existing = admin.GetMetadata(TimeSpan.FromSeconds(5)).Topics
                .Where(t => !t.Error.IsError).Select(t => t.Topic).ToHashSet(StringComparer.Ordinal);
            missing = [.. _retryTopics.Topics.Concat(_retryTopics.DeadLetterTopics).Where(t => !existing.Contains(t))];
        }
        catch (KafkaException e)
        {
            ConsumerLog.RetryTopicsUnchecked(_logger, Name, e.Error.Reason);
            return;
        }

        if (missing.Length == 0)
        {
            ConsumerLog.RetryTopicsFound(_logger, Name, string.Join(", ", _retryTopics.Topics.Concat(_retryTopics.DeadLetterTopics)));
            return;
        }

        Fail(new InvalidOperationException(
            $"Consumer '{Name}' has OnError RetryTopics but these topics do not exist: {string.Join(", ", missing.Select(t => $"'{t}'"))}. "
            + "Create them before starting the consumer, with as many partitions as their source topic (for example: kafka-topics.sh --bootstrap-server <servers> --create "
            + $"--topic {missing[0]} --partitions <n>), or have them provisioned at start; the consumer writes failed records to them and reads the retry topics back."));
    }

    /// <summary>
    /// Has the pattern watch list the matched topics at the first poll and after each assignment change: librdkafka
    /// rejoins the group whenever the topics its patterns match change.
    /// </summary>
    private void WatchPatterns()
    {
        var assignment = _partitions.Assignment;
        if (_patternWatch is not null && !ReferenceEquals(assignment, _watchedAssignment))
        {
            _watchedAssignment = assignment;
            _patternWatch.Signal();
        }
    }

    /// <summary>
    /// The stop sequence. Steps 1-4 run while still polling, so a rebalance that starts meanwhile (another member leaving,
    /// say) can complete: a group member that stops polling cannot rejoin, and its commits would be refused until it is
    /// evicted. Nothing is dispatched: every partition is paused and fetched messages are dropped unhandled (their offsets
    /// are not stored, so the partitions' next owners receive them).
    /// </summary>
    private void Shutdown(IConsumer<byte[]?, byte[]?> consumer)
    {
        Volatile.Write(ref _state, (int)KafkaConsumerState.Stopping);
        var deadline = _time.GetTimestamp() + (long)(_options.ShutdownTimeout.TotalSeconds * _time.TimestampFrequency);
        _rebalance.ShutdownDeadline = deadline;
        try
        {
            // 1. Stop dispatching; 2. wait for in-flight handlers up to ShutdownTimeout, then cancel them.
            ConsumerLog.StopStep(_logger, Name, "stop dispatching, drain running handlers");
            var (workers, drained) = _partitions.BeginStopAll();
            TryPause(consumer);
            while (!drained.IsCompleted && !_stopHard.IsCancellationRequested && _time.GetTimestamp() < deadline)
            {
                PollWithoutDispatch(consumer);
                _transactions?.Maintain(consumer); // a commit under way lets the handlers waiting for it finish
            }

            if (!drained.IsCompleted)
            {
                _partitions.CancelRunning(workers, _options.ShutdownTimeout);
            }

            // Transactional: commit the open transaction (or abort it) within what is left of the bound.
            _transactions?.Finish(consumer, _stopHard.IsCancellationRequested ? TimeSpan.Zero : _time.GetElapsedTime(_time.GetTimestamp(), deadline));

            // 3. Store completed offsets.
            ConsumerLog.StopStep(_logger, Name, "store and commit handled offsets");
            _partitions.StoreAndReleaseAll(consumer);

            // 4. Commit synchronously. A commit refused because the group is rebalancing (or its coordinator moved)
            //    succeeds once this member has rejoined, which needs polls: retry until the shutdown bound.
            while (_committer.Commit(consumer, stopping: true) is { } error && OffsetCommitter.IsRetriableCommitError(error.Code)
                && !_stopHard.IsCancellationRequested && _time.GetTimestamp() < deadline)
            {
                var retryAt = _time.GetTimestamp() + (_time.TimestampFrequency / 5);
                while (_time.GetTimestamp() < retryAt)
                {
                    PollWithoutDispatch(consumer);
                }
            }

            // 5. Leave the group.
            ConsumerLog.StopStep(_logger, Name, "leave the group");
            try
            {
                consumer.Close();
            }
            catch (Exception e)
            {
                ConsumerLog.CloseFailed(_logger, e, Name);
            }
        }
        finally
        {
            // 6. Dispose.
            _partitions.Clear();

            // A start-position lookup or a pattern check calls into the client from its own thread: let it end (it gives
            // up once a stop was requested, and its calls are bounded) before the native handle goes. Blocking is fine on
            // this dedicated thread.
            _rebalance.WaitForStartLookups();
            _patternWatch?.WaitForCheck();
            _transactions?.Dispose(); // ends the transaction thread, which reads the client's group metadata, before the handle goes
            consumer.Dispose();
            _logSummariser.Dispose();
            // Dead-letter messages still in flight get what is left of the stop's bound (ShutdownTimeout from the start
            // of the stop, then CloseTimeout), so StopAsync returns within its documented bound; the rest is purged.
            _deadLetters?.Close(_stopHard.IsCancellationRequested ? TimeSpan.Zero : _time.GetElapsedTime(_time.GetTimestamp(), deadline) + _options.CloseTimeout);
            _statistics.Dispose();
            var final = Fault is null ? KafkaConsumerState.Stopped : KafkaConsumerState.Faulted;
            Volatile.Write(ref _state, (int)final);
            ConsumerLog.Stopped(_logger, Name, final);
            _stopped.TrySetResult();
        }
    }

    private void PollWithoutDispatch(IConsumer<byte[]?, byte[]?> consumer)
    {
        try
        {
            _ = consumer.Consume(50); // serves rebalance callbacks; a message returned here is dropped unhandled
            Interlocked.Exchange(ref _lastPollTimestamp, _time.GetTimestamp());
            TryPause(consumer);
        }
        catch (ConsumeException e)
        {
            ConsumerLog.ConsumeFailed(_logger, Name, e.Error.Reason, e.Error.Code);
        }
    }

    private static void TryPause(IConsumer<byte[]?, byte[]?> consumer)
    {
        try
        {
            var assignment = consumer.Assignment;
            if (assignment.Count > 0)
            {
                consumer.Pause(assignment);
            }
        }
        catch (KafkaException)
        {
            // assignment changing under a rebalance: the next poll pauses it
        }
    }
}
