using Confluent.Kafka;

namespace KafkaKit.Consuming;

/// <summary>
/// The offsets of one owned partition: which dispatched messages finished, and from that the next committable offset
/// (the offset after the highest finished message all of whose earlier dispatched messages finished too). Messages may
/// finish in any order; the committable offset never passes an unfinished message and never moves backwards.
/// </summary>
/// <remarks>
/// <para>
/// Threads: <see cref="Track"/>, <see cref="TakeStore"/>, <see cref="MarkStored"/> and <see cref="Release"/> run on the
/// poll thread; <see cref="Complete"/> runs wherever a message finishes (the thread pool). One lock guards the state; with concurrent
/// dispatch (<see cref="ConsumerOrdering.Key"/>, <see cref="ConsumerOrdering.Unordered"/>) the message is found by binary
/// search while the pending offsets ascend (always, unless the fetch position moved back), so a long-running oldest
/// message does not make each completion scan everything pending behind it.
/// </para>
/// <para>
/// Created <c>inOrder</c> (<see cref="ConsumerOrdering.Partition"/>: one message at a time in dispatch order), the
/// finished message is always the oldest pending one, so the tracker keeps two counters and the committable offset
/// instead of the list and the lock (no lock on the per-message path); the caller guarantees that completions come one
/// at a time in dispatch order. The committable offset is the same as the list would give.
/// </para>
/// <para>
/// Contiguity follows dispatch order, not offset arithmetic: Kafka offsets have gaps (compaction, transaction markers),
/// so "the next message" is the next one tracked. A tracked offset not above the previous one (librdkafka moved the
/// fetch position back, e.g. after log truncation) is tracked all the same; the committable offset then stays where it
/// was until the new messages pass it.
/// </para>
/// </remarks>
internal sealed class OffsetTracker
{
    private readonly object _gate = new();
    private readonly List<(long Offset, bool Done)> _pending = []; // dispatch order; [_head..] are pending
    private readonly bool _inOrder; // completions come one at a time in dispatch order: counters, no list, no lock
    private int _head;
    private long _committable = Offset.Unset.Value;
    private bool _released;
    private bool _ascending = true; // the pending offsets ascend: Complete may search them
    private long _tracked; // in order: messages tracked (poll thread)
    private long _completed; // in order: messages completed (one completion at a time)

    /// <summary>Initializes a new instance of the <see cref="OffsetTracker"/> class.</summary>
    /// <param name="partition">The partition.</param>
    /// <param name="inOrder">Whether messages complete one at a time in the order they were tracked (see the remarks).</param>
    public OffsetTracker(TopicPartition partition, bool inOrder = false)
    {
        Partition = partition;
        _inOrder = inOrder;
    }

    /// <summary>Gets the partition.</summary>
    public TopicPartition Partition { get; }

    /// <summary>Gets the next committable offset (the highest contiguous finished offset + 1), or <see cref="Offset.Unset"/> before the first finished message.</summary>
    public long Committable
    {
        get
        {
            if (_inOrder)
            {
                return Volatile.Read(ref _committable);
            }

            lock (_gate)
            {
                return _committable;
            }
        }
    }

    /// <summary>Gets the last offset handed to librdkafka's offset store, or <see cref="Offset.Unset"/> (poll thread).</summary>
    public long Stored { get; private set; } = Offset.Unset.Value;

    /// <summary>Gets the number of dispatched messages not yet counted in <see cref="Committable"/>.</summary>
    public int Pending
    {
        get
        {
            if (_inOrder)
            {
                return (int)(Volatile.Read(ref _tracked) - Volatile.Read(ref _completed));
            }

            lock (_gate)
            {
                return _pending.Count - _head;
            }
        }
    }

    /// <summary>Records a message handed out for processing (poll thread, in fetch order).</summary>
    /// <param name="offset">The message's offset.</param>
    public void Track(long offset)
    {
        if (_inOrder)
        {
            Volatile.Write(ref _tracked, _tracked + 1); // only the poll thread writes it
            return;
        }

        lock (_gate)
        {
            if (_pending.Count > _head && _pending[^1].Offset >= offset)
            {
                _ascending = false; // until the pending list empties
            }

            _pending.Add((offset, false));
        }
    }

    /// <summary>Records that a tracked message finished (handled, dead-lettered or skipped); any thread.</summary>
    /// <param name="offset">The message's offset.</param>
    /// <returns><see langword="false"/> when no unfinished tracked message has this offset (nothing changed).</returns>
    public bool Complete(long offset)
    {
        if (_inOrder)
        {
            if (_completed >= Volatile.Read(ref _tracked))
            {
                return false;
            }

            Volatile.Write(ref _completed, _completed + 1); // one completion at a time writes it
            if (offset + 1 > _committable)
            {
                Volatile.Write(ref _committable, offset + 1); // never backwards (the fetch position may have moved back)
            }

            return true;
        }

        lock (_gate)
        {
            return CompleteLocked(offset);
        }
    }

    /// <summary>Records that the messages <c>results[from..to)</c> finished, under one lock (a batch); any thread.</summary>
    /// <param name="results">The messages.</param>
    /// <param name="from">The first index.</param>
    /// <param name="to">The index after the last.</param>
    public void CompleteRange(IReadOnlyList<ConsumeResult<byte[]?, byte[]?>> results, int from, int to)
    {
        if (_inOrder)
        {
            for (var i = from; i < to; i++)
            {
                Complete(results[i].Offset.Value); // a batch is a run of the oldest pending messages, in dispatch order
            }

            return;
        }

        lock (_gate)
        {
            for (var i = from; i < to; i++)
            {
                CompleteLocked(results[i].Offset.Value);
            }
        }
    }

    /// <summary>The body of <see cref="Complete(long)"/>, under the lock.</summary>
    private bool CompleteLocked(long offset)
    {
        var index = _ascending ? Search(offset) : Scan(offset);

        if (index < 0)
        {
            return false;
        }

        _pending[index] = (offset, true);
        var advanced = false;
        var next = _committable;
        while (_head < _pending.Count && _pending[_head].Done)
        {
            next = _pending[_head].Offset + 1;
            _head++;
            advanced = true;
        }

        if (advanced && next > _committable)
        {
            _committable = next; // never backwards
        }

        if (_head == _pending.Count)
        {
            _pending.Clear();
            _head = 0;
            _ascending = true;
        }
        else if (_head > 1024 && _head > _pending.Count / 2)
        {
            _pending.RemoveRange(0, _head);
            _head = 0;
        }

        return true;
    }

    /// <summary>
    /// Gets the offset to hand to librdkafka's offset store, if there is a newer one than <see cref="Stored"/> and the
    /// partition is still owned (poll thread).
    /// </summary>
    /// <param name="offset">The offset to store.</param>
    /// <returns><see langword="true"/> when there is one.</returns>
    public bool TakeStore(out long offset)
    {
        offset = Committable;
        return !_released && offset > Stored;
    }

    /// <summary>Records that <paramref name="offset"/> was stored (poll thread).</summary>
    /// <param name="offset">The stored offset.</param>
    public void MarkStored(long offset)
    {
        if (offset > Stored)
        {
            Stored = offset;
        }
    }

    /// <summary>Marks the partition as no longer owned: nothing more is stored for it (poll thread).</summary>
    public void Release() => _released = true;

    /// <summary>Finds the unfinished pending message at <paramref name="offset"/> in ascending offsets, or -1 (under the lock).</summary>
    private int Search(long offset)
    {
        int low = _head, high = _pending.Count - 1;
        while (low <= high)
        {
            var middle = low + ((high - low) / 2);
            var at = _pending[middle].Offset;
            if (at == offset)
            {
                return _pending[middle].Done ? -1 : middle;
            }

            if (at < offset)
            {
                low = middle + 1;
            }
            else
            {
                high = middle - 1;
            }
        }

        return -1;
    }

    /// <summary>Finds the first unfinished pending message at <paramref name="offset"/>, or -1 (under the lock).</summary>
    private int Scan(long offset)
    {
        for (var i = _head; i < _pending.Count; i++)
        {
            if (_pending[i].Offset == offset && !_pending[i].Done)
            {
                return i;
            }
        }

        return -1;
    }
}
