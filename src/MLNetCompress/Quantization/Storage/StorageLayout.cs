namespace MLNetCompress.Quantization.Storage;

/// <summary>
/// Where each value of a weight goes in storage. The weight is seen as <c>[Outer, Channels, Inner]</c> around
/// its output-channel axis; each channel's <c>Outer · Inner</c> reduction values are stored together, in
/// (outer, inner) order, padded to <see cref="Padded"/> = <see cref="Blocks"/> · <see cref="BlockSize"/>, and
/// each block has one scale. Storage is therefore <c>[Channels, Blocks, BlockSize]</c>, row-major: every
/// channel and every block starts on a whole byte, whatever the bits per value.
/// </summary>
public readonly record struct StorageLayout
{
    /// <summary>Lays out a weight of shape <paramref name="dims"/>.</summary>
    /// <param name="dims">The weight's shape.</param>
    /// <param name="axis">Its output-channel axis, or null for one group of the whole tensor.</param>
    /// <param name="blockSize">Values per scale along the reduction, or null for one scale per channel.</param>
    /// <param name="valuesPerByte">Values packed in a byte: the one-scale-per-channel layout pads each channel to whole bytes.</param>
    public StorageLayout(ReadOnlySpan<long> dims, int? axis, int? blockSize, int valuesPerByte)
    {
        long count = 1;
        foreach (long d in dims) count = checked(count * d);
        if (axis is int a)
        {
            if (a < 0 || a >= dims.Length)
                throw new ArgumentOutOfRangeException(nameof(axis), $"axis {a} is outside a tensor of rank {dims.Length}.");
            long outer = 1, inner = 1;
            for (int k = 0; k < a; k++) outer *= dims[k];
            for (int k = a + 1; k < dims.Length; k++) inner *= dims[k];
            Outer = checked((int)outer);
            Channels = checked((int)dims[a]);
            Inner = checked((int)inner);
        }
        else
        {
            Outer = 1;
            Channels = 1;
            Inner = checked((int)count);
        }
        Axis = axis;
        int reduction = checked(Outer * Inner);
        int block = blockSize is int b && b < reduction ? b : RoundUp(Math.Max(reduction, 1), valuesPerByte);
        BlockSize = block;
        Blocks = Math.Max(1, (reduction + block - 1) / block);
    }

    /// <summary>The output-channel axis, or null for one group.</summary>
    public int? Axis { get; }

    /// <summary>Product of the dims before the channel axis.</summary>
    public int Outer { get; }

    /// <summary>Output channels (1 without an axis).</summary>
    public int Channels { get; }

    /// <summary>Product of the dims after the channel axis.</summary>
    public int Inner { get; }

    /// <summary>Values per channel: <c>Outer · Inner</c>.</summary>
    public int Reduction => Outer * Inner;

    /// <summary>Values per scale.</summary>
    public int BlockSize { get; }

    /// <summary>Scales per channel.</summary>
    public int Blocks { get; }

    /// <summary>Stored values per channel, padding included.</summary>
    public int Padded => Blocks * BlockSize;

    /// <summary>Stored values in all, padding included.</summary>
    public long StoredCount => (long)Channels * Padded;

    /// <summary>Number of scales.</summary>
    public int ScaleCount => Channels * Blocks;

    /// <summary>Flat index in the original tensor of reduction value <paramref name="r"/> of channel <paramref name="c"/>.</summary>
    public long SourceIndex(int c, int r) => ((long)(r / Inner) * Channels + c) * Inner + r % Inner;

    /// <summary>
    /// Copies channel <paramref name="c"/>'s reduction values from <paramref name="values"/> (original layout)
    /// into <paramref name="destination"/> (<see cref="Reduction"/> long) in storage order.
    /// </summary>
    public void Gather(ReadOnlySpan<float> values, int c, Span<float> destination)
    {
        if (Outer == 1)
        {
            values.Slice(c * Inner, Inner).CopyTo(destination);
            return;
        }
        for (int o = 0; o < Outer; o++)
            values.Slice((o * Channels + c) * Inner, Inner).CopyTo(destination.Slice(o * Inner, Inner));
    }

    private static int RoundUp(int n, int multiple) => (n + multiple - 1) / multiple * multiple;
}
