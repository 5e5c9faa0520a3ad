using System.Runtime.ExceptionServices;
using Confluent.Kafka;
using KafkaKit.Diagnostics;
using KafkaKit.Internal;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Consuming;

/// <content>
/// Abort and rewind, the gate that holds new handler calls while a transaction ends, and the bounded blocking calls.
/// </content>
internal sealed partial class TransactionCoordinator
{
    /// <summary>
    /// Aborts the open transaction and, unless stopping, has the kept partitions handled again from where the aborted
    /// transaction started: their workers (idle, waiting at the gate, or with buffered records) are cancelled and replaced,
    /// and each partition is sought back.
    /// </summary>
    private void Abort(IConsumer<byte[]?, byte[]?> consumer, string reason, int records, bool rewind)
    {
        var partitions = _partitions!;
        var kept = rewind ? partitions.Assignment : [];
        if (rewind)
        {
            var workers = partitions.Take(kept.Select(p => new TopicPartitionOffset(p, Offset.Unset)));
            foreach (var worker in workers)
            {
                worker.Cancel();
            }

            partitions.AwaitCancelled(workers);
            foreach (var worker in workers)
            {
                partitions.Retire(consumer, worker);
            }
        }

        lock (_gate)
        {
            if (_active > 0 && rewind)
            {
                // A handler ignores its cancelled token and may still produce: a new transaction could take its output.
                // At the stop (no rewind) no transaction follows, and librdkafka refuses a produce outside a transaction
                // (Local_State), so the abort goes ahead: left open, the transaction would hold back read_committed
                // readers of its output partitions until transaction.timeout.ms.
                Unusable("AbortTransaction", $"{_active} handler calls did not end after cancellation");
                return;
            }
        }

        var producer = _producer!;
        var deadline = _time.GetTimestamp() + (long)(_options.OperationTimeout.TotalSeconds * _time.TimestampFrequency);
        try
        {
            if (!Retry("AbortTransaction", () => producer.AbortTransaction(Left(deadline)), deadline))
            {
                if (!_unusable)
                {
                    Unusable("AbortTransaction", "did not succeed in time");
                }

                return;
            }
        }
        catch (KafkaException e)
        {
            Unusable("AbortTransaction", $"{e.Error.Reason} ({e.Error.Code})");
            return;
        }

        Interlocked.Increment(ref _aborts);
        lock (_gate)
        {
            _handled.Clear();
            _records = 0;
            _abortReason = null;
        }

        var positions = new List<TopicPartitionOffset>();
        if (rewind)
        {
            partitions.Add(kept);
            try
            {
                foreach (var partition in kept)
                {
                    long offset; // its last commit, else where it started
                    lock (_gate)
                    {
                        offset = _committedAt.GetValueOrDefault(partition, -1);
                    }

                    if (offset >= 0 || _firstDispatched.TryGetValue(partition, out offset))
                    {
                        var position = new TopicPartitionOffset(partition, offset);
                        consumer.Seek(position);
                        positions.Add(position);
                    }
                }
            }
            catch (KafkaException e)
            {
                Unusable("Seek", $"rewinding after the abort failed: {e.Error.Reason} ({e.Error.Code})");
                return;
            }

            Begin();
        }

        TransactionLog.Aborted(_logger, _name, reason, records, positions.Count == 0 ? "their last commit" : Describe(positions));
    }

    private bool Begin()
    {
        try
        {
            _producer!.BeginTransaction();
            lock (_gate)
            {
                _transaction++;
            }

            return true;
        }
        catch (KafkaException e)
        {
            Unusable("BeginTransaction", $"{e.Error.Reason} ({e.Error.Code})");
            return false;
        }
    }

    /// <summary>Closes the gate and waits (poll thread, blocking on purpose like the revoke's drain) until no lease is held or <paramref name="bound"/> passes.</summary>
    private bool CloseAndWait(TimeSpan bound)
    {
        Task drained;
        lock (_gate)
        {
            _closing = true;
            if (_active == 0)
            {
                return true;
            }

            _drained = NewSignal();
            drained = _drained.Task;
        }

        var waited = drained.WaitAsync(bound, _time);
        ((IAsyncResult)waited).AsyncWaitHandle.WaitOne();
        _ = waited.Exception;
        return drained.IsCompleted;
    }

    /// <summary>Opens the gate for the next transaction: waiting handler calls go on.</summary>
    private void Reopen()
    {
        TaskCompletionSource open;
        lock (_gate)
        {
            if (_abortReason is not null && !_unusable)
            {
                return; // still to abort (a loss): the next maintenance does it
            }

            _closing = false;
            _drained = null;
            open = _open;
            _open = NewSignal();
        }

        open.TrySetResult();
    }

    /// <summary>
    /// Runs a blocking Confluent.Kafka transaction call on a dedicated thread and waits for it (poll thread) at most
    /// <paramref name="timeout"/> + 5 s. A fatal error (fenced by a newer instance with the same transactional.id:
    /// PRODUCER_FENCED, INVALID_PRODUCER_EPOCH; or any other) or an overrun makes the producer unusable and stops the
    /// consumer.
    /// </summary>
    /// <returns><see langword="true"/> when the call succeeded, <see langword="false"/> when the producer became unusable.</returns>
    /// <exception cref="KafkaException">A non-fatal error of the call (abortable or retriable).</exception>
    private bool Call(string operation, Action call, TimeSpan timeout)
    {
        if (Thread.CurrentThread == _committer)
        {
            // The transaction thread is dedicated: it runs the call itself, and the poll thread's maintenance bounds it.
            _callOperation = operation;
            Volatile.Write(ref _callDeadline, _time.GetTimestamp() + (long)((timeout + CallGrace).TotalSeconds * _time.TimestampFrequency));
            try
            {
                call();
                return true;
            }
            catch (KafkaException kafka) when (kafka.Error.IsFatal || kafka.Error.Code is ErrorCode.ProducerFenced or ErrorCode.InvalidProducerEpoch)
            {
                Unusable(operation, $"{kafka.Error.Reason} ({kafka.Error.Code})");
                return false;
            }
            finally
            {
                Volatile.Write(ref _callDeadline, 0);
            }
        }

        var task = Task.Factory.StartNew(call, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var waited = task.WaitAsync(timeout + CallGrace, _time);
        ((IAsyncResult)waited).AsyncWaitHandle.WaitOne();
        _ = waited.Exception;
        if (!task.IsCompleted)
        {
            _overrun = task;
            Unusable(operation, $"did not return within {timeout + CallGrace}, so the transaction's outcome is unknown");
            return false;
        }

        if (task.Exception?.InnerException is { } error)
        {
            if (error is KafkaException kafka && (kafka.Error.IsFatal || kafka.Error.Code is ErrorCode.ProducerFenced or ErrorCode.InvalidProducerEpoch))
            {
                Unusable(operation, $"{kafka.Error.Reason} ({kafka.Error.Code})");
                return false;
            }

            ExceptionDispatchInfo.Throw(error);
        }

        return true;
    }

    private void Unusable(string operation, string reason)
    {
        _unusable = true;
        TransactionLog.Unusable(_logger, _name, operation, reason);
        _fail(new InvalidOperationException(
            $"Consumer '{_name}': the transactional producer ({TransactionalId}) can no longer be used: {operation}: {reason}. "
            + "The open transaction is not committed (its output stays invisible to read_committed readers) and the consumer stops; "
            + "a newer instance with the same transactional.id fences this one (KIP-98): give every running instance its own TransactionalIdPrefix."));
    }

    private void OnProducerError(Error error)
    {
        if (error.IsFatal)
        {
            _fail(new KafkaException(error)); // fenced or otherwise unusable: the next transaction call reports it too
        }

        if (_logSummariser.ShouldLog(LogLevel.Warning, error.Reason))
        {
            TransactionLog.ProducerError(_logger, _name, error.Reason, error.Code);
        }
    }

    private TimeSpan Left(long deadline)
    {
        var left = TimeSpan.FromSeconds((deadline - _time.GetTimestamp()) / (double)_time.TimestampFrequency);
        return left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }
}
