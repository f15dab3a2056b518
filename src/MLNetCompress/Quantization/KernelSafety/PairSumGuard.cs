namespace MLNetCompress.Quantization.KernelSafety;

/// <summary>
/// How an int8 layer is kept safe from the int16 pair-sum saturation of x86 CPUs without VNNI.
/// </summary>
/// <remarks>
/// <para>The facts (ONNX Runtime 1.31, MLAS; see <c>docs/int8-kernels.md</c> for the measurements): on x86-64 a u8×s8
/// product (uint8 activations, int8 weights: QLinearConv, QGemm, QLinearMatMul, MatMulIntegerToFloat,
/// DynamicQuantizeMatMul) runs on <c>VPMADDUBSW</c> when the CPU has AVX2 or AVX-512 but no VNNI: it multiplies two
/// adjacent bytes of the reduction axis and adds the two products into a signed 16-bit lane with saturation. With
/// uint8 codes up to 255 and int8 codes up to 127, a pair reaches 255·127·2 = 64,770, and everything above 32,767 is
/// clipped. With VNNI (<c>VPDPBUSD</c>) the products go straight into int32 and nothing clips, so the same file is
/// right on one CPU and wrong on another. uint8×uint8 (U8U8) runs on a kernel that widens both sides to 16 bits
/// first (<c>VPMADDWD</c>) and cannot clip.</para>
/// <para>Pairs are adjacent in the kernel's packing of the reduction axis, which the file cannot control, so a safe
/// layer is one where <em>any</em> two weights of an output channel (one accumulator) stay in range: two same-sign
/// weight codes may sum to at most ⌊32767 / 255⌋ = 128 in magnitude.</para>
/// </remarks>
public enum PairSumGuard
{
    /// <summary>Default. The layers that could clip get per-channel scales just wide enough that the two largest
    /// same-sign weights of each channel sum to at most 128 codes (between 7 and 8 bits; channels that are already safe
    /// keep their 8-bit scale). Same kernels and speed as plain int8.</summary>
    PairSafeWeights,

    /// <summary>The layers that could clip get 7-bit weights (codes in [-64, 64]) on every channel.</summary>
    SevenBitWeights,

    /// <summary>The inputs of the layers that could clip are quantized to 7 bits (codes [0, 127]): 127·127·2 stays
    /// below 32,767. Only for uint8 activations (int8 activations are shifted to uint8 by the kernel, so their codes
    /// still reach 255 and this guard would not help; the option is refused with them).</summary>
    ReducedRangeActivations,

    /// <summary>The layers that could clip store uint8 weights with zero point 128 (the same values as int8), so ONNX
    /// Runtime runs them on its U8U8 kernels, which cannot clip.</summary>
    Uint8Weights,

    /// <summary>No guard: plain 8-bit weights. Right only on CPUs with VNNI (or ARM); the model may be wrong on others.</summary>
    None,
}
