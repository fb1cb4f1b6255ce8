namespace DualLora.Training;

/// <summary>
/// A stage's batches by position: the number of micro-batches drawn before it since the stage began. A
/// resumed run asks for the positions an unbroken run would have reached next, so it sees the same batches.
/// </summary>
public interface IBatchSource<out TBatch>
{
    TBatch At(long position);
}

public static class BatchSource
{
    /// <summary>Batches computed from their position (e.g. from <see cref="ShuffledOrder"/>): any position can be asked for.</summary>
    public static IBatchSource<TBatch> Of<TBatch>(Func<long, TBatch> at) => new Indexed<TBatch>(at);

    /// <summary>Batches drawn one after another from a stream (a random generator, say): only the next position can be asked for, so a run on it cannot resume.</summary>
    public static IBatchSource<TBatch> Sequential<TBatch>(Func<TBatch> next) => new Stream<TBatch>(next);

    sealed class Indexed<TBatch>(Func<long, TBatch> at) : IBatchSource<TBatch>
    {
        public TBatch At(long position) => at(position);
    }

    sealed class Stream<TBatch>(Func<TBatch> next) : IBatchSource<TBatch>
    {
        long expected;

        public TBatch At(long position)
        {
            if (position != expected)
                throw new InvalidOperationException($"this batch source yields its batches in order: position {expected} comes next, {position} was asked for (a run on it cannot resume).");
            expected++;
            return next();
        }
    }
}

/// <summary>
/// Which items make up the batch at each position: every epoch is a fresh shuffle of all items, drawn from
/// the seed and the epoch's number alone, cut into batches of <see cref="BatchSize"/> (a last, partial
/// batch is dropped, so every batch has the same size). The same seed gives the same order on any machine.
/// </summary>
public sealed class ShuffledOrder
{
    readonly long seed;
    int[]? epochOrder;
    long epochOfOrder = -1;

    public int ItemCount { get; }
    public int BatchSize { get; }
    public int BatchesPerEpoch => ItemCount / BatchSize;

    public ShuffledOrder(int itemCount, int batchSize, long seed)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "the batch size must be at least 1.");
        if (itemCount < batchSize) throw new ArgumentException($"{itemCount} items cannot fill one batch of {batchSize}.");
        ItemCount = itemCount;
        BatchSize = batchSize;
        this.seed = seed;
    }

    public IReadOnlyList<int> IndicesAt(long position)
    {
        if (position < 0) throw new ArgumentOutOfRangeException(nameof(position), position, "positions start at 0.");
        long epoch = position / BatchesPerEpoch;
        if (epoch != epochOfOrder)
        {
            epochOrder = Shuffle(epoch);
            epochOfOrder = epoch;
        }
        int start = (int)(position % BatchesPerEpoch) * BatchSize;
        return new ArraySegment<int>(epochOrder!, start, BatchSize);
    }

    // Fisher-Yates with a SplitMix64 stream keyed by (seed, epoch): no dependence on System.Random's implementation.
    int[] Shuffle(long epoch)
    {
        var order = Enumerable.Range(0, ItemCount).ToArray();
        ulong state = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL ^ (ulong)epoch * 0xBF58476D1CE4E5B9UL);
        for (int i = ItemCount - 1; i > 0; i--)
        {
            state = unchecked(state + 0x9E3779B97F4A7C15UL);
            ulong z = state;
            z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
            z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
            z ^= z >> 31;
            int j = (int)(z % (ulong)(i + 1));
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }
}
