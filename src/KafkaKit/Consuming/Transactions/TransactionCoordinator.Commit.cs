using System.Runtime.ExceptionServices;
using Confluent.Kafka;
using KafkaKit.Diagnostics;
using KafkaKit.Internal;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Consuming;

/// <content>
/// The transaction thread and the commit: flush, SendOffsetsToTransaction, CommitTransaction, each bounded, one thread at a time ending a transaction.
/// </content>
internal sealed partial class TransactionCoordinator
{
    /// <summary>
    /// The transaction thread: woken when the gate is closed and no lease is held, commits the open transaction and
    /// opens the next one; when the commit fails, leaves the gate closed with the reason for the poll thread to abort.
    /// </summary>
    private void CommitLoop()
    {
        try
        {
            while (true)
            {
                lock (_wake)
                {
                    while (!_wakeRequested && !_stopping)
                    {
                        Monitor.Wait(_wake);
                    }

                    _wakeRequested = false;
                }

                if (_stopping)
                {
                    return;
                }

                lock (_ending)
                {
                    CommitReady();
                }
            }
        }
        catch (Exception e)
        {
            _unusable = true;
            _fail(e);
        }
    }

    /// <summary>Commits the open transaction if the gate is closed, no lease is held and nothing dooms it (transaction thread, holding <see cref="_ending"/>).</summary>
    private void CommitReady()
    {
        lock (_gate)
        {
            if (_unusable || _stopping || !_closing || _active > 0 || _abortReason is not null)
            {
                return;
            }
        }

        var abortReason = Commit(_consumer!, _options.OperationTimeout);
        if (abortReason is null)
        {
            Reopen();
        }
        else if (!_unusable)
        {
            lock (_gate)
            {
                _abortReason ??= abortReason; // the poll thread aborts and rewinds (ReadyToEnd)
            }
        }
    }

    /// <summary>Wakes the transaction thread.</summary>
    private void Wake()
    {
        lock (_wake)
        {
            if (!_wakeRequested)
            {
                _wakeRequested = true;
                Monitor.Pulse(_wake);
            }
        }
    }

    /// <summary>Waits (poll thread) until the transaction thread is not ending a transaction, at most as long as its calls are bounded; otherwise the producer is unusable.</summary>
    /// <returns>Whether the poll thread holds <see cref="_ending"/>.</returns>
    private bool EnterEnding()
    {
        var bound = _options.OperationTimeout + CallGrace;
        if (Monitor.TryEnter(_ending, bound))
        {
            return true;
        }

        if (!_unusable)
        {
            Unusable(_callOperation, $"the transaction thread's call did not return within {bound}, so the transaction's outcome is unknown");
        }

        return false;
    }

    /// <summary>Commits (or aborts) the open transaction; the gate is closed and no lease is held.</summary>
    /// <returns>Whether the transaction was committed (or was empty).</returns>
    private bool End(IConsumer<byte[]?, byte[]?> consumer, bool rewind, TimeSpan commitBound)
    {
        int records;
        lock (_gate)
        {
            records = _records;
        }

        var abortReason = Commit(consumer, commitBound);
        if (abortReason is null)
        {
            return !_unusable;
        }

        if (!_unusable)
        {
            Abort(consumer, abortReason, records, rewind);
        }

        return false;
    }

    /// <summary>Commits the open transaction and begins the next one (the gate is closed and no lease is held; the caller holds <see cref="_ending"/>).</summary>
    /// <returns><see langword="null"/> when committed or empty; otherwise why the transaction must be aborted.</returns>
    private string? Commit(IConsumer<byte[]?, byte[]?> consumer, TimeSpan bound)
    {
        List<TopicPartitionOffset> offsets;
        int records;
        string? abortReason;
        lock (_gate)
        {
            offsets = [.. _handled.Select(h => new TopicPartitionOffset(h.Key, h.Value))];
            records = _records;
            abortReason = _abortReason;
        }

        if (abortReason is not null || records == 0)
        {
            return abortReason; // nothing handled: the open transaction holds nothing
        }

        abortReason = SendAndCommit(consumer, offsets, bound);
        if (abortReason is not null)
        {
            return abortReason;
        }

        Interlocked.Increment(ref _commits);
        TransactionLog.Committed(_logger, _name, records, Describe(offsets));
        TransactionCommitted?.Invoke(Volatile.Read(ref _transaction));
        lock (_gate)
        {
            foreach (var offset in offsets)
            {
                _committedAt[offset.TopicPartition] = offset.Offset.Value;
            }

            _handled.Clear();
            _records = 0;
        }

        if (!_unusable)
        {
            Begin();
        }

        return null;
    }

    /// <summary>Sends the offsets and commits.</summary>
    /// <returns><see langword="null"/> when committed; otherwise why the transaction must be aborted (also when the producer became unusable).</returns>
    private string? SendAndCommit(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartitionOffset> offsets, TimeSpan bound)
    {
        var producer = _producer!;
        var deadline = _time.GetTimestamp() + (long)(bound.TotalSeconds * _time.TimestampFrequency);
        try
        {
            Deliver(producer, deadline);
            var metadata = consumer.ConsumerGroupMetadata;
            if (offsets.Count > 0
                && !Retry("SendOffsetsToTransaction", () => producer.SendOffsetsToTransaction(offsets, metadata, Left(deadline)), deadline))
            {
                return _unusable ? "the producer is unusable" : "SendOffsetsToTransaction did not succeed in time";
            }

            return Retry("CommitTransaction", () => producer.CommitTransaction(Left(deadline)), deadline)
                ? null
                : _unusable ? "the producer is unusable" : "CommitTransaction did not succeed in time";
        }
        catch (KafkaException e)
        {
            return $"{e.Error.Reason} ({e.Error.Code})"; // abortable (or unknown): abort, then handle again
        }
    }

    /// <summary>
    /// Has the transaction's messages sent at once and waits until they are acknowledged, in 1 ms <c>Flush</c> slices,
    /// for at most half the time left: <c>CommitTransaction</c> waits for them too, but checks only every 10 ms while
    /// Confluent.Kafka's background thread serves the delivery reports, so a commit right after the last produce would
    /// take about 10 ms longer than the deliveries. A delivery that does not complete is left to <c>CommitTransaction</c>,
    /// which reports it.
    /// </summary>
    private void Deliver(IProducer<byte[]?, byte[]?> producer, long deadline)
    {
        var until = _time.GetTimestamp() + ((deadline - _time.GetTimestamp()) / 2);
        while (producer.Flush(FlushSlice) > 0 && Left(until) > TimeSpan.Zero)
        {
        }
    }

    /// <summary>Runs a transaction call, again while it fails with a retriable error and time is left.</summary>
    /// <returns>Whether it succeeded; <see langword="false"/> when the time ran out or the producer became unusable.</returns>
    /// <exception cref="KafkaException">An abortable error (or one that is neither retriable nor fatal).</exception>
    private bool Retry(string operation, Action call, long deadline)
    {
        while (true)
        {
            try
            {
                return Call(operation, call, Left(deadline));
            }
            catch (KafkaRetriableException e) when (Left(deadline) > TimeSpan.Zero)
            {
                TransactionLog.Retrying(_logger, _name, operation, e.Error.Reason, e.Error.Code, Left(deadline));
            }
            catch (KafkaRetriableException)
            {
                return false;
            }
        }
    }
}
