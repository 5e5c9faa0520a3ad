using System.Runtime.ExceptionServices;
using Confluent.Kafka;
using KafkaKit.Diagnostics;
using KafkaKit.Internal;
using Microsoft.Extensions.Logging;

namespace KafkaKit.Consuming;

/// <content>
/// Ending the open transaction at a revoke (before the drain: commit; after: the revoked partitions' state), at a loss (abort) and at the stop (poll thread).
/// </content>
internal sealed partial class TransactionCoordinator
{
    /// <summary>
    /// Revoke, before the revoked partitions' handlers are drained (poll thread): a commit that was waiting for running
    /// calls is completed first, so that a revoked partition's call waiting at the closed gate can run and the drain
    /// does not wait <see cref="KafkaConsumerOptions.RevokeTimeout"/> for nothing.
    /// </summary>
    /// <param name="consumer">The client.</param>
    /// <param name="bound">The revoke's bound.</param>
    public void BeforeDrain(IConsumer<byte[]?, byte[]?> consumer, TimeSpan bound)
    {
        if (!EnterEnding())
        {
            return;
        }

        try
        {
            BeforeDrainEntered(consumer, bound);
        }
        finally
        {
            Monitor.Exit(_ending);
        }
    }

    /// <summary>Revoke, the transaction thread idle: see <see cref="BeforeDrain"/>.</summary>
    private void BeforeDrainEntered(IConsumer<byte[]?, byte[]?> consumer, TimeSpan bound)
    {
        bool closing;
        lock (_gate)
        {
            closing = _closing;
        }

        if (_unusable || !closing)
        {
            return;
        }

        if (!CloseAndWait(bound))
        {
            lock (_gate)
            {
                _abortReason ??= $"handler calls still running after {bound} at a revoke";
            }
        }

        End(consumer, rewind: true, commitBound: bound < _options.OperationTimeout ? bound : _options.OperationTimeout);
        Reopen();
    }

    /// <summary>
    /// Revoke (poll thread, inside the callback, after the revoked partitions' handlers were drained): waits for the
    /// other partitions' running calls, then commits the open transaction, the revoked partitions' final offsets with
    /// it, before they move; on failure aborts it (the revoked partitions' next owners start from the last commit) and
    /// rewinds the partitions kept.
    /// </summary>
    /// <param name="consumer">The client.</param>
    /// <param name="revoked">The revoked partitions.</param>
    /// <param name="bound">What is left of the revoke's bound.</param>
    public void OnRevoked(IConsumer<byte[]?, byte[]?> consumer, IReadOnlyList<TopicPartitionOffset> revoked, TimeSpan bound)
    {
        var entered = EnterEnding();
        try
        {
            OnRevokedEntered(consumer, revoked, bound);
        }
        finally
        {
            if (entered)
            {
                Monitor.Exit(_ending);
            }
        }
    }

    /// <summary>Revoke, the transaction thread idle (or overrun: then the producer is unusable): see <see cref="OnRevoked"/>.</summary>
    private void OnRevokedEntered(IConsumer<byte[]?, byte[]?> consumer, IReadOnlyList<TopicPartitionOffset> revoked, TimeSpan bound)
    {
        if (!_unusable)
        {
            if (!CloseAndWait(bound))
            {
                lock (_gate)
                {
                    _abortReason ??= $"handler calls still running after {bound} at a revoke";
                }
            }

            End(consumer, rewind: true, commitBound: bound < _options.OperationTimeout ? bound : _options.OperationTimeout);
        }

        foreach (var partition in revoked)
        {
            _firstDispatched.Remove(partition.TopicPartition);
            lock (_gate)
            {
                _handled.Remove(partition.TopicPartition);
                _committedAt.Remove(partition.TopicPartition);
            }
        }

        Reopen();
    }

    /// <summary>Loss (poll thread): the open transaction holds output for partitions another member may handle now, so it is aborted at the next maintenance.</summary>
    /// <param name="lost">The lost partitions.</param>
    public void OnLost(IReadOnlyList<TopicPartitionOffset> lost)
    {
        var entered = EnterEnding(); // a commit under way ends first, as if it had ended before the loss
        lock (_gate)
        {
            _closing = true;
            _abortReason ??= "partitions lost";
            foreach (var partition in lost)
            {
                _handled.Remove(partition.TopicPartition);
                _committedAt.Remove(partition.TopicPartition);
            }
        }

        foreach (var partition in lost)
        {
            _firstDispatched.Remove(partition.TopicPartition);
        }

        if (entered)
        {
            Monitor.Exit(_ending);
        }
    }

    /// <summary>Stop (poll thread, after the handlers drained or were cancelled): commits the open transaction, or aborts it when it cannot be committed, within the stop's bound. No new transaction is opened.</summary>
    /// <param name="consumer">The client.</param>
    /// <param name="bound">What is left of the stop's bound (<see cref="KafkaConsumerOptions.ShutdownTimeout"/>).</param>
    public void Finish(IConsumer<byte[]?, byte[]?> consumer, TimeSpan bound)
    {
        if (_unusable || _producer is null || !EnterEnding())
        {
            return;
        }

        try
        {
            FinishEntered(consumer, bound);
        }
        finally
        {
            Monitor.Exit(_ending);
        }
    }

    /// <summary>Stop, the transaction thread idle: see <see cref="Finish"/>.</summary>
    private void FinishEntered(IConsumer<byte[]?, byte[]?> consumer, TimeSpan bound)
    {
        if (!CloseAndWait(bound))
        {
            lock (_gate)
            {
                _abortReason ??= "handler calls still running at stop";
            }
        }

        int records;
        lock (_gate)
        {
            records = _records;
        }

        var committed = End(consumer, rewind: false, commitBound: bound < _options.OperationTimeout ? bound : _options.OperationTimeout);
        TransactionLog.Finished(_logger, _name, committed ? "committed" : "aborted", records);
        _unusable = true; // stopped: no further transaction (the workers were drained or cancelled before)
    }
}
