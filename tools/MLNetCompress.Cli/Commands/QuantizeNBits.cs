using System.CommandLine;
using System.Globalization;
using MLNetCompress.Calibration;
using MLNetCompress.Data;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Quantization.Dynamic;
using MLNetCompress.Quantization.NBits;

namespace MLNetCompress.Cli.Commands;

/// <summary>What <c>quantize --mode dynamic|matmulnbits [--block-size N] [--symmetric] [--accuracy-level L] [--gptq]
/// [--float-embeddings]</c> asked for.</summary>
internal sealed record QuantizeModeSettings(string Mode, int BlockSize, bool BlockSizeGiven, bool Symmetric, int AccuracyLevel, bool AccuracyGiven,
    bool Gptq, bool FloatEmbeddings)
{
    /// <summary>The dynamic path (<c>--mode dynamic</c> or the older <c>--dynamic</c>).</summary>
    public bool IsDynamic => Mode == "dynamic";

    /// <summary>The 4-bit MatMulNBits path.</summary>
    public bool IsMatMulNBits => Mode == "matmulnbits";

    /// <summary>Checks the combination before anything runs.</summary>
    /// <exception cref="InputException">An option does not apply to the mode or is out of range.</exception>
    public void Check(bool staticOnlyOptionsGiven)
    {
        if (!IsMatMulNBits)
        {
            if (BlockSizeGiven) throw new InputException($"--block-size applies to --mode matmulnbits, not --mode {Mode}; add --mode matmulnbits or drop --block-size");
            if (Symmetric) throw new InputException($"--symmetric applies to --mode matmulnbits, not --mode {Mode}; add --mode matmulnbits or drop --symmetric");
            if (AccuracyGiven) throw new InputException($"--accuracy-level applies to --mode matmulnbits, not --mode {Mode}; add --mode matmulnbits or drop --accuracy-level");
            if (Gptq) throw new InputException($"--gptq applies to --mode matmulnbits, not --mode {Mode}; add --mode matmulnbits or drop --gptq");
        }
        if (Mode == "static" && FloatEmbeddings)
            throw new InputException("--float-embeddings applies to --mode dynamic and matmulnbits (static quantization leaves Gather tables float)");
        if (Mode != "static" && staticOnlyOptionsGiven)
            throw new InputException($"--method, --per-channel, --activations and --percentile apply to static quantization, not --mode {Mode}; drop them");
        if (BlockSize < 16 || BlockSize > 256 || (BlockSize & (BlockSize - 1)) != 0)
            throw new InputException($"--block-size takes a power of two from 16 to 256 (32, 64 or 128), not {BlockSize}");
        if (AccuracyLevel is < 0 or > 4)
            throw new InputException($"--accuracy-level takes 0 to 4 (4: int8 activations inside MatMulNBits, the fast path; 0: exact, no faster), not {AccuracyLevel}");
    }

    /// <summary>The passes of the dynamic or MatMulNBits path; null for static (the QDQ recipe).</summary>
    public IReadOnlyList<IGraphPass>? Passes(IReadOnlySet<string> exclude, IDataFeed calibration, int calibrationRows,
        MLNetCompress.Quantization.KernelSafety.PairSumGuard guard = MLNetCompress.Quantization.KernelSafety.PairSumGuard.PairSafeWeights)
    {
        if (IsDynamic)
            return [new DynamicQuantizationPass(new DynamicQuantizationOptions { ExcludeNodes = exclude, QuantizeEmbeddings = !FloatEmbeddings, Guard = guard })];
        if (!IsMatMulNBits) return null;
        return [new MatMulNBitsPass(new MatMulNBitsOptions
        {
            BlockSize = BlockSize,
            Symmetric = Symmetric,
            AccuracyLevel = AccuracyLevel,
            Algorithm = Gptq ? NBitsAlgorithm.Gptq : NBitsAlgorithm.RoundToNearest,
            Calibration = Gptq ? calibration : null,
            CalibrationSettings = new CalibrationOptions { MaxRows = calibrationRows, BatchSize = 8, MaxVectorsPerRow = 128 },
            QuantizeEmbeddings = !FloatEmbeddings,
            ExcludeNodes = exclude,
        })];
    }

    /// <summary>The "method" line of the result, or null for static.</summary>
    public string? Method => Mode switch
    {
        "dynamic" => "dynamic: MatMul weights S8 per column, activations U8 quantized at run time" +
                     (FloatEmbeddings ? "" : "; constant Gather tables (if any) int8 per row"),
        "matmulnbits" => string.Create(CultureInfo.InvariantCulture,
            $"MatMulNBits: 4-bit weights in blocks of {BlockSize}, {(Symmetric ? "symmetric" : "zero points")}, accuracy level {AccuracyLevel}, " +
            $"{(Gptq ? "GPTQ on the calibration data" : "round to nearest")}{(FloatEmbeddings ? "" : "; constant Gather tables (if any) 4-bit, GatherBlockQuantized")}"),
        _ => null,
    };
}

/// <summary>The dynamic and MatMulNBits options of <c>quantize</c>. Kept beside <see cref="QuantizeCommand"/> so that the
/// command's file holds only their registration and one branch.</summary>
internal sealed class QuantizeModeOptions
{
    private readonly Option<string> _mode = new("--mode")
    {
        Description = "static (default): int8 QDQ weights and activations, calibrated (QLinearConv / QGemm / QLinearMatMul). " +
                      "dynamic: transformer MatMul weights int8, activations quantized at run time (DynamicQuantizeMatMul), and large " +
                      "constant Gather tables (word embeddings) int8 per row. matmulnbits: transformer MatMul weights 4-bit as " +
                      "com.microsoft.MatMulNBits (blocks along K, see --block-size, --symmetric, --accuracy-level, --gptq) and Gather tables " +
                      "4-bit as com.microsoft.GatherBlockQuantized. In dynamic and matmulnbits modes the --calibration data serves as " +
                      "probes and timing data (and, with --gptq, as GPTQ's calibration inputs). " +
                      "storage: weights stored in fewer bits (--weights int8|uint8|int4|uint4|int2|binary, --per-channel, --block-size N, --clip) and " +
                      "expanded at load by nodes ONNX Runtime folds: a smaller file at the float model's speed.",
        DefaultValueFactory = _ => "static",
        HelpName = "MODE",
    };

    private readonly Option<int?> _blockSize = new("--block-size")
    {
        Description = "matmulnbits: weights per block along K sharing one scale: 32 (default), 64 or 128 (16 to 256, a power of two). " +
                      "Smaller is more accurate; larger is smaller and a little faster. " +
                      "storage: values per scale along the reduction axis, a multiple of 8.",
        HelpName = "N",
    };

    private readonly Option<bool> _symmetric = new("--symmetric")
    {
        Description = "matmulnbits: symmetric blocks (zero point 8, none stored) instead of a zero point per block.",
    };

    private readonly Option<int?> _accuracyLevel = new("--accuracy-level")
    {
        Description = "matmulnbits: MatMulNBits' accuracy_level: 4 (default) quantizes activations to int8 inside the kernel, the fast " +
                      "path; 0 or 1 compute in float (exact, about fp32 speed).",
        HelpName = "L",
    };

    private readonly Option<bool> _gptq = new("--gptq")
    {
        Description = "matmulnbits: GPTQ instead of round to nearest: each layer's weights are chosen against the second moment (XᵀX) of " +
                      "its inputs on the --calibration data (--calibration-rows rows), compensating each rounding error on the weights not " +
                      "yet quantized.",
    };

    private readonly Option<bool> _floatEmbeddings = new("--float-embeddings")
    {
        Description = "dynamic and matmulnbits: keep constant Gather tables (word embeddings) in float. By default tables of at least " +
                      "65,536 values are quantized too (int8 per row for dynamic, 4-bit for matmulnbits): in a small BERT the word " +
                      "embeddings are half the file.",
    };

    /// <summary>The options, to add to the command.</summary>
    public IEnumerable<Option> All => [_mode, _blockSize, _symmetric, _accuracyLevel, _gptq, _floatEmbeddings];

    /// <summary>Reads what was given; <paramref name="dynamicFlag"/> is the older <c>--dynamic</c>.</summary>
    /// <exception cref="InputException">The mode is unknown, or <c>--dynamic</c> contradicts <c>--mode</c>.</exception>
    public QuantizeModeSettings Read(ParseResult r, bool dynamicFlag)
    {
        ArgumentNullException.ThrowIfNull(r);
        string mode = (r.GetValue(_mode) ?? "static").ToLowerInvariant();
        if (mode is not ("static" or "dynamic" or "matmulnbits"))
            throw new InputException($"unknown --mode '{mode}'; expected static, dynamic, storage or matmulnbits");
        if (dynamicFlag)
        {
            if (mode is not ("static" or "dynamic"))
                throw new InputException($"--dynamic contradicts --mode {mode}; give one of them");
            mode = "dynamic";
        }
        int? blockSize = r.GetValue(_blockSize);
        int? accuracy = r.GetValue(_accuracyLevel);
        return new QuantizeModeSettings(mode, blockSize ?? 32, blockSize is not null, r.GetValue(_symmetric), accuracy ?? 4, accuracy is not null,
            r.GetValue(_gptq), r.GetValue(_floatEmbeddings));
    }
}
