namespace KafkaKit.Soak;

/// <summary>
/// Which sequence numbers a consumer group handled at least once, as one bit per number (64 KiB per 524,288 messages),
/// so that a long run does not itself grow the heap it measures. Thread-safe.
/// </summary>
internal sealed class HandledLedger
{
    private const int ChunkShift = 19;
    private const long ChunkMask = (1L << ChunkShift) - 1;
    private readonly Lock _grow = new();
    private long[]?[] _chunks = new long[]?[16];
    private long _calls;
    private long _distinct;
    private long _allocatedBytes;

    /// <summary>Gets the number of completed handler calls.</summary>
    public long Calls => Interlocked.Read(ref _calls);

    /// <summary>Gets the number of distinct sequence numbers handled.</summary>
    public long Distinct => Interlocked.Read(ref _distinct);

    /// <summary>Gets the handler calls beyond the first of each sequence number (re-deliveries and records written twice).</summary>
    public long Duplicates => Calls - Distinct;

    /// <summary>Gets the bytes of the bitset so far (it grows by 64 KiB per 524,288 sequence numbers), for subtracting from heap samples.</summary>
    public long AllocatedBytes => Interlocked.Read(ref _allocatedBytes);

    /// <summary>Records one completed handler call for <paramref name="seq"/>.</summary>
    /// <param name="seq">The message's sequence number, 0 or more.</param>
    public void Record(long seq)
    {
        var chunk = Chunk(seq >> ChunkShift);
        var bit = seq & ChunkMask;
        var mask = 1L << (int)(bit & 63);
        var before = Interlocked.Or(ref chunk[bit >> 6], mask);
        Interlocked.Increment(ref _calls);
        if ((before & mask) == 0)
        {
            Interlocked.Increment(ref _distinct);
        }
    }

    /// <summary>Counts the sequence numbers below <paramref name="produced"/> never handled, and lists the first few.</summary>
    /// <param name="produced">How many messages were produced (sequence numbers 0 to this - 1).</param>
    /// <param name="first">Receives up to 10 of the missing numbers.</param>
    /// <returns>The number of missing sequence numbers.</returns>
    public long CountMissing(long produced, List<long> first)
    {
        var missing = 0L;
        for (var seq = 0L; seq < produced; seq++)
        {
            var chunks = Volatile.Read(ref _chunks);
            var index = seq >> ChunkShift;
            var chunk = index < chunks.Length ? Volatile.Read(ref chunks[index]) : null;
            var bit = seq & ChunkMask;
            if (chunk is null || (Volatile.Read(ref chunk[bit >> 6]) & (1L << (int)(bit & 63))) == 0)
            {
                missing++;
                if (first.Count < 10)
                {
                    first.Add(seq);
                }
            }
        }

        return missing;
    }

    private long[] Chunk(long index)
    {
        var chunks = Volatile.Read(ref _chunks);
        if (index < chunks.Length && Volatile.Read(ref chunks[index]) is { } existing)
        {
            return existing;
        }

        lock (_grow)
        {
            chunks = _chunks;
            if (index >= chunks.Length)
            {
                var grown = new long[]?[Math.Max(chunks.Length * 2, (int)index + 1)];
                Array.Copy(chunks, grown, chunks.Length);
                chunks = grown;
                Volatile.Write(ref _chunks, grown);
            }

            if (Volatile.Read(ref chunks[index]) is not { } chunk)
            {
                chunk = new long[(1 << ChunkShift) / 64];
                Volatile.Write(ref chunks[index], chunk);
                Interlocked.Add(ref _allocatedBytes, chunk.Length * sizeof(long));
            }

            return chunk;
        }
    }
}
