using System.Collections.Frozen;
using MLNetCompress.Calibration;
using MLNetCompress.Data;

namespace MLNetCompress.Quantization.NBits;

/// <summary>How <see cref="MatMulNBitsPass"/> chooses the quantized values.</summary>
public enum NBitsAlgorithm
{
    /// <summary>Each value rounded to the nearest level of its block.</summary>
    RoundToNearest,

    /// <summary>GPTQ: rows quantized in order, each one's error compensated on the rows still to come, weighted by the
    /// second moment of the layer's calibration inputs. Needs <see cref="MatMulNBitsOptions.Calibration"/>.</summary>
    Gptq,
}

/// <summary>Options of <see cref="MatMulNBitsPass"/>.</summary>
public sealed record MatMulNBitsOptions
{
    /// <summary>Bits per weight: 4 (default), or 2 or 8.</summary>
    public int Bits { get; init; } = 4;

    /// <summary>Weights per block along K sharing a scale: 16, 32 (default), 64, 128 or 256. Smaller is more accurate and
    /// a little larger (one float scale per block).</summary>
    public int BlockSize { get; init; } = 32;

    /// <summary>Symmetric blocks (zero point <c>2^(bits−1)</c>, none stored) instead of a zero point per block.</summary>
    public bool Symmetric { get; init; }

    /// <summary>MatMulNBits' accuracy_level: 0 (unset), 1 (fp32), 2 (fp16), 3 (bf16), 4 (int8 activations inside,
    /// the default: the fast path on CPUs with int8 dot products; 0 and 1 compute in float and are no faster than fp32).</summary>
    public int AccuracyLevel { get; init; } = 4;

    /// <summary>Round to nearest (default) or GPTQ.</summary>
    public NBitsAlgorithm Algorithm { get; init; } = NBitsAlgorithm.RoundToNearest;

    /// <summary>Calibration data for GPTQ (the model's inputs); unused by round to nearest.</summary>
    public IDataFeed? Calibration { get; init; }

    /// <summary>Rows, batch size and runtime of the GPTQ calibration run.</summary>
    public CalibrationOptions CalibrationSettings { get; init; } = new() { MaxRows = 64, BatchSize = 8, MaxVectorsPerRow = 128 };

    /// <summary>GPTQ damping: this fraction of the mean diagonal of <c>XᵀX</c> is added to its diagonal (default 0.01).</summary>
    public double GptqDamping { get; init; } = 0.01;

    /// <summary>MatMuls whose weight has fewer elements stay in float.</summary>
    public long MinElements { get; init; } = 1024;

    /// <summary>Constant Gather tables (word embeddings) are stored 4-bit too, as com.microsoft.GatherBlockQuantized
    /// with the same block size and symmetry. Off by default.</summary>
    public bool QuantizeEmbeddings { get; init; }

    /// <summary>Gather tables with fewer elements stay float.</summary>
    public long MinEmbeddingElements { get; init; } = 65536;

    /// <summary>Names of MatMul (or Gather) nodes to leave in float.</summary>
    public IReadOnlySet<string> ExcludeNodes { get; init; } = FrozenSet<string>.Empty;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option.</summary>
    public void Validate()
    {
        if (Bits is not (2 or 4 or 8))
            throw new ArgumentException($"Bits is {Bits}; MatMulNBits takes 2, 4 or 8.", nameof(Bits));
        if (BlockSize < 16 || BlockSize > 256 || (BlockSize & (BlockSize - 1)) != 0)
            throw new ArgumentException($"BlockSize is {BlockSize}; it must be a power of two from 16 to 256 (32, 64 and 128 are usual).", nameof(BlockSize));
        if (AccuracyLevel is < 0 or > 4)
            throw new ArgumentException($"AccuracyLevel is {AccuracyLevel}; it must be 0 to 4.", nameof(AccuracyLevel));
        if (Algorithm == NBitsAlgorithm.Gptq && Calibration is null)
            throw new ArgumentException("GPTQ needs calibration data: set Calibration.", nameof(Calibration));
        ArgumentNullException.ThrowIfNull(CalibrationSettings, nameof(CalibrationSettings));
        if (!(GptqDamping > 0 && GptqDamping < 1))
            throw new ArgumentException($"GptqDamping is {GptqDamping}; it must be in (0, 1).", nameof(GptqDamping));
        if (MinElements < 0)
            throw new ArgumentException($"MinElements is {MinElements}; it must be 0 or more.", nameof(MinElements));
        if (MinEmbeddingElements < 0)
            throw new ArgumentException($"MinEmbeddingElements is {MinEmbeddingElements}; it must be 0 or more.", nameof(MinEmbeddingElements));
        ArgumentNullException.ThrowIfNull(ExcludeNodes, nameof(ExcludeNodes));
    }
}
