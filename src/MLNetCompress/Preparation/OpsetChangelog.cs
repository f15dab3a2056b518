using System.Collections.Frozen;

namespace MLNetCompress.Preparation;

/// <summary>
/// Facts from the ONNX operator changelog (onnx/onnx docs/Changelog.md and Operators.md): for each ai.onnx op,
/// the opset versions in which its definition changed, and which of those changes keep the meaning of every
/// node the previous version accepted (new types, new optional attributes or inputs whose defaults give the old
/// behaviour, negative axes allowed). Changes that alter meaning are either rewritten by
/// <see cref="OpsetUpgradePass"/> or refused by it.
/// </summary>
internal static class OpsetChangelog
{
    /// <summary>The highest ai.onnx opset this table covers (ONNX Runtime 1.31 loads up to 26).</summary>
    public const int MaxOpset = 26;

    // op → versions (ascending) in which the op was introduced or its definition changed.
    private static readonly (string Op, int[] Versions)[] Table =
    [
        ("Abs", [1, 6, 13]), ("Acos", [7, 22]), ("Acosh", [9, 22]), ("Add", [1, 6, 7, 13, 14]), ("AffineGrid", [20]),
        ("And", [1, 7]), ("ArgMax", [1, 11, 12, 13]), ("ArgMin", [1, 11, 12, 13]), ("Asin", [7, 22]), ("Asinh", [9, 22]),
        ("Atan", [7, 22]), ("Atanh", [9, 22]), ("Attention", [23, 24]), ("AveragePool", [1, 7, 10, 11, 19, 22]),
        ("BatchNormalization", [1, 6, 7, 9, 14, 15]), ("Bernoulli", [15, 22]), ("BitCast", [26]), ("BitShift", [11]), ("BitwiseAnd", [18]),
        ("BitwiseNot", [18]), ("BitwiseOr", [18]), ("BitwiseXor", [18]), ("BlackmanWindow", [17]),
        ("Cast", [1, 6, 9, 13, 19, 21, 23, 24, 25]), ("CastLike", [15, 19, 21, 23, 24, 25]), ("Ceil", [1, 6, 13]), ("Celu", [12]),
        ("CenterCropPad", [18]), ("Clip", [1, 6, 11, 12, 13]), ("Col2Im", [18]), ("Compress", [9, 11]), ("Concat", [1, 4, 11, 13]),
        ("ConcatFromSequence", [11]), ("Constant", [1, 9, 11, 12, 13, 19, 21, 23, 24, 25]),
        ("ConstantOfShape", [9, 20, 21, 23, 24, 25]), ("Conv", [1, 11, 22]), ("ConvInteger", [10]), ("ConvTranspose", [1, 11, 22]),
        ("Cos", [7, 22]), ("Cosh", [9, 22]), ("CumProd", [26]), ("CumSum", [11, 14]), ("DFT", [17, 20]), ("DeformConv", [19, 22]),
        ("DepthToSpace", [1, 11, 13]), ("DequantizeLinear", [10, 13, 19, 21, 23, 24, 25]), ("Det", [11, 22]),
        ("Div", [1, 6, 7, 13, 14]), ("Dropout", [1, 6, 7, 10, 12, 13, 22]), ("DynamicQuantizeLinear", [11]), ("Einsum", [12]),
        ("Elu", [1, 6, 22]), ("Equal", [1, 7, 11, 13, 19]), ("Erf", [9, 13]), ("Exp", [1, 6, 13]), ("Expand", [8, 13]),
        ("EyeLike", [9, 22]), ("Flatten", [1, 9, 11, 13, 21, 23, 24, 25]), ("Floor", [1, 6, 13]), ("GRU", [1, 3, 7, 14, 22]),
        ("Gather", [1, 11, 13]), ("GatherElements", [11, 13]), ("GatherND", [11, 12, 13]), ("Gelu", [20]),
        ("Gemm", [1, 6, 7, 9, 11, 13]), ("GlobalAveragePool", [1, 22]), ("GlobalLpPool", [1, 2, 22]), ("GlobalMaxPool", [1, 22]),
        ("Greater", [1, 7, 9, 13]), ("GreaterOrEqual", [12, 16]), ("GridSample", [16, 20, 22]), ("GroupNormalization", [18, 21]),
        ("HammingWindow", [17]), ("HannWindow", [17]), ("HardSigmoid", [1, 6, 22]), ("HardSwish", [14, 22]),
        ("Hardmax", [1, 11, 13]), ("Identity", [1, 13, 14, 16, 19, 21, 23, 24, 25]), ("If", [1, 11, 13, 16, 19, 21, 23, 24, 25]),
        ("ImageDecoder", [20]), ("InstanceNormalization", [1, 6, 22]), ("IsInf", [10, 20]), ("IsNaN", [9, 13, 20]),
        ("LRN", [1, 13]), ("LSTM", [1, 7, 14, 22]), ("LayerNormalization", [17]), ("LeakyRelu", [1, 6, 16]), ("Less", [1, 7, 9, 13]),
        ("LessOrEqual", [12, 16]), ("Log", [1, 6, 13]), ("LogSoftmax", [1, 11, 13]), ("Loop", [1, 11, 13, 16, 19, 21, 23, 24, 25]),
        ("LpNormalization", [1, 22]), ("LpPool", [1, 2, 11, 18, 22]), ("MatMul", [1, 9, 13]), ("MatMulInteger", [10]),
        ("Max", [1, 6, 8, 12, 13]), ("MaxPool", [1, 8, 10, 11, 12, 22]), ("MaxRoiPool", [1, 22]), ("MaxUnpool", [9, 11, 22]),
        ("Mean", [1, 6, 8, 13]), ("MeanVarianceNormalization", [9, 13]), ("MelWeightMatrix", [17]), ("Min", [1, 6, 8, 12, 13]),
        ("Mish", [18, 22]), ("Mod", [10, 13]), ("Mul", [1, 6, 7, 13, 14]), ("Multinomial", [7, 22]), ("Neg", [1, 6, 13]),
        ("NegativeLogLikelihoodLoss", [12, 13, 22]), ("NonMaxSuppression", [10, 11]), ("NonZero", [9, 13]), ("Not", [1]),
        ("OneHot", [9, 11]), ("Optional", [15]), ("OptionalGetElement", [15, 18]), ("OptionalHasElement", [15, 18]),
        ("Or", [1, 7]), ("PRelu", [1, 6, 7, 9, 16]), ("Pad", [1, 2, 11, 13, 18, 19, 21, 23, 24, 25]), ("Pow", [1, 7, 12, 13, 15]),
        ("QLinearConv", [10]), ("QLinearMatMul", [10, 21]), ("QuantizeLinear", [10, 13, 19, 21, 23, 24, 25]),
        ("RMSNormalization", [23]), ("RNN", [1, 7, 14, 22]), ("RandomNormal", [1, 22]), ("RandomNormalLike", [1, 22]),
        ("RandomUniform", [1, 22]), ("RandomUniformLike", [1, 22]), ("Range", [11]), ("Reciprocal", [1, 6, 13]),
        ("ReduceL1", [1, 11, 13, 18]), ("ReduceL2", [1, 11, 13, 18]), ("ReduceLogSum", [1, 11, 13, 18]),
        ("ReduceLogSumExp", [1, 11, 13, 18]), ("ReduceMax", [1, 11, 12, 13, 18, 20]), ("ReduceMean", [1, 11, 13, 18]),
        ("ReduceMin", [1, 11, 12, 13, 18, 20]), ("ReduceProd", [1, 11, 13, 18]), ("ReduceSum", [1, 11, 13]),
        ("ReduceSumSquare", [1, 11, 13, 18]), ("RegexFullMatch", [20]), ("Relu", [1, 6, 13, 14]),
        ("Reshape", [1, 5, 13, 14, 19, 21, 23, 24, 25]), ("Resize", [10, 11, 13, 18, 19]), ("ReverseSequence", [10]),
        ("RoiAlign", [10, 16, 22]), ("RotaryEmbedding", [23]), ("Round", [11, 22]), ("STFT", [17]),
        ("Scan", [8, 9, 11, 16, 19, 21, 23, 24, 25]), ("Scatter", [9, 11]), ("ScatterElements", [11, 13, 16, 18]),
        ("ScatterND", [11, 13, 16, 18]), ("Selu", [1, 6, 22]), ("SequenceAt", [11]), ("SequenceConstruct", [11]),
        ("SequenceEmpty", [11]), ("SequenceErase", [11]), ("SequenceInsert", [11]), ("SequenceLength", [11]),
        ("SequenceMap", [17]), ("Shape", [1, 13, 15, 19, 21, 23, 24, 25]), ("Shrink", [9]), ("Sigmoid", [1, 6, 13]),
        ("Sign", [9, 13]), ("Sin", [7, 22]), ("Sinh", [9, 22]), ("Size", [1, 13, 19, 21, 23, 24, 25]), ("Slice", [1, 10, 11, 13]),
        ("Softmax", [1, 11, 13]), ("SoftmaxCrossEntropyLoss", [12, 13]), ("Softplus", [1, 22]), ("Softsign", [1, 22]),
        ("SpaceToDepth", [1, 13]), ("Split", [1, 2, 11, 13, 18]), ("SplitToSequence", [11, 24]), ("Sqrt", [1, 6, 13]),
        ("Squeeze", [1, 11, 13, 21, 23, 24, 25]), ("StringConcat", [20]), ("StringNormalizer", [10]), ("StringSplit", [20]),
        ("Sub", [1, 6, 7, 13, 14]), ("Sum", [1, 6, 8, 13]), ("Swish", [24]), ("Tan", [7, 22]), ("Tanh", [1, 6, 13]),
        ("TensorScatter", [24]), ("TfIdfVectorizer", [9]), ("ThresholdedRelu", [10, 22]), ("Tile", [1, 6, 13]),
        ("TopK", [1, 10, 11, 24]), ("Transpose", [1, 13, 21, 23, 24, 25]), ("Trilu", [14]), ("Unique", [11]),
        ("Unsqueeze", [1, 11, 13, 21, 23, 24, 25]), ("Upsample", [1, 7, 9, 10]), ("Where", [9, 16]), ("Xor", [1, 7]),
    ];

    // Changes that keep the meaning of what the previous version accepted (types added, optional attributes or
    // inputs whose defaults give the old behaviour, negative axes allowed, numpy broadcasting as a superset of
    // same-shape inputs). Everything else in the table either has a rewrite in OpsetUpgradePass or is refused.
    private static readonly string[] CompatibleChanges =
    [
        "Abs-13", "Acos-22", "Acosh-22", "Add-13", "Add-14", "ArgMax-11", "ArgMax-12", "ArgMax-13", "ArgMin-11", "ArgMin-12", "ArgMin-13",
        "Asin-22", "Asinh-22", "Atan-22", "Atanh-22", "AveragePool-7", "AveragePool-10", "AveragePool-11", "AveragePool-19", "AveragePool-22",
        "BatchNormalization-15", "Bernoulli-22", "Cast-9", "Cast-13", "Cast-19", "Cast-21", "Cast-23", "Cast-24", "Cast-25",
        "CastLike-19", "CastLike-21", "CastLike-23", "CastLike-24", "CastLike-25", "Ceil-13", "Clip-12", "Clip-13", "Compress-11",
        "Concat-11", "Concat-13", "Constant-9", "Constant-11", "Constant-12", "Constant-13", "Constant-19", "Constant-21", "Constant-23",
        "Constant-24", "Constant-25", "ConstantOfShape-20", "ConstantOfShape-21", "ConstantOfShape-23", "ConstantOfShape-24",
        "ConstantOfShape-25", "Conv-11", "Conv-22", "ConvTranspose-11", "ConvTranspose-22", "Cos-22", "Cosh-22", "CumSum-14",
        "DeformConv-22", "DepthToSpace-11", "DepthToSpace-13", "DequantizeLinear-13", "DequantizeLinear-19", "DequantizeLinear-21",
        "DequantizeLinear-23", "DequantizeLinear-24", "DequantizeLinear-25", "Det-22", "Div-13", "Div-14", "Dropout-13", "Dropout-22",
        "Elu-22", "Equal-11", "Equal-13", "Equal-19", "Erf-13", "Exp-13", "Expand-13", "EyeLike-22", "Flatten-9", "Flatten-11",
        "Flatten-13", "Flatten-21", "Flatten-23", "Flatten-24", "Flatten-25", "Floor-13", "GRU-14", "GRU-22", "Gather-11", "Gather-13",
        "GatherElements-13", "GatherND-12", "GatherND-13", "Gemm-9", "Gemm-11", "Gemm-13", "GlobalAveragePool-22", "GlobalLpPool-22",
        "GlobalMaxPool-22", "Greater-9", "Greater-13", "GreaterOrEqual-16", "GridSample-22", "HardSigmoid-22", "HardSwish-22",
        "Hardmax-11", "Identity-13", "Identity-14", "Identity-16", "Identity-19", "Identity-21", "Identity-23", "Identity-24",
        "Identity-25", "If-11", "If-13", "If-16", "If-19", "If-21", "If-23", "If-24", "If-25", "InstanceNormalization-22", "IsInf-20",
        "IsNaN-13", "IsNaN-20", "LRN-13", "LSTM-14", "LSTM-22", "LeakyRelu-16", "Less-9", "Less-13", "LessOrEqual-16", "Log-13",
        "LogSoftmax-11", "Loop-11", "Loop-13", "Loop-16", "Loop-19", "Loop-21", "Loop-23", "Loop-24", "Loop-25", "LpNormalization-22",
        "LpPool-11", "LpPool-18", "LpPool-22", "MatMul-9", "MatMul-13", "Max-8", "Max-12", "Max-13", "MaxPool-8", "MaxPool-10",
        "MaxPool-11", "MaxPool-12", "MaxPool-22", "MaxRoiPool-22", "MaxUnpool-11", "MaxUnpool-22", "Mean-8", "Mean-13",
        "MeanVarianceNormalization-13", "Min-8", "Min-12", "Min-13", "Mish-22", "Mod-13", "Mul-13", "Mul-14", "Multinomial-22",
        "Neg-13", "NegativeLogLikelihoodLoss-13", "NegativeLogLikelihoodLoss-22", "NonMaxSuppression-11", "NonZero-13", "OneHot-11",
        "OptionalGetElement-18", "OptionalHasElement-18", "PRelu-7", "PRelu-9", "PRelu-16", "Pad-13", "Pad-18", "Pad-19", "Pad-21",
        "Pad-23", "Pad-24", "Pad-25", "Pow-12", "Pow-13", "Pow-15", "QLinearMatMul-21", "QuantizeLinear-13", "QuantizeLinear-19",
        "QuantizeLinear-21", "QuantizeLinear-23", "QuantizeLinear-24", "QuantizeLinear-25", "RNN-14", "RNN-22", "RandomNormal-22",
        "RandomNormalLike-22", "RandomUniform-22", "RandomUniformLike-22", "Reciprocal-13", "ReduceL1-11", "ReduceL1-13",
        "ReduceL2-11", "ReduceL2-13", "ReduceLogSum-11", "ReduceLogSum-13", "ReduceLogSumExp-11", "ReduceLogSumExp-13",
        "ReduceMax-11", "ReduceMax-12", "ReduceMax-13", "ReduceMax-20", "ReduceMean-11", "ReduceMean-13", "ReduceMin-11",
        "ReduceMin-12", "ReduceMin-13", "ReduceMin-20", "ReduceProd-11", "ReduceProd-13", "ReduceSum-11", "ReduceSumSquare-11",
        "ReduceSumSquare-13", "Relu-13", "Relu-14", "Reshape-13", "Reshape-14", "Reshape-19", "Reshape-21", "Reshape-23",
        "Reshape-24", "Reshape-25", "Resize-13", "Resize-18", "Resize-19", "RoiAlign-22", "Round-22", "Scan-11", "Scan-16", "Scan-19",
        "Scan-21", "Scan-23", "Scan-24", "Scan-25", "ScatterElements-13", "ScatterElements-16", "ScatterElements-18", "ScatterND-13",
        "ScatterND-16", "ScatterND-18", "Selu-22", "Shape-13", "Shape-15", "Shape-19", "Shape-21", "Shape-23", "Shape-24", "Shape-25",
        "Sigmoid-13", "Sign-13", "Sin-22", "Sinh-22", "Size-13", "Size-19", "Size-21", "Size-23", "Size-24", "Size-25", "Slice-11",
        "Slice-13", "SoftmaxCrossEntropyLoss-13", "Softmax-11", "Softplus-22", "Softsign-22", "SpaceToDepth-13", "Split-11",
        "SplitToSequence-24", "Sqrt-13", "Squeeze-11", "Squeeze-21", "Squeeze-23", "Squeeze-24", "Squeeze-25", "Sub-13", "Sub-14",
        "Sum-8", "Sum-13", "Tan-22", "Tanh-13", "ThresholdedRelu-22", "Tile-13", "TopK-11", "TopK-24", "Transpose-13",
        "Transpose-21", "Transpose-23", "Transpose-24", "Transpose-25", "Unsqueeze-11", "Unsqueeze-21", "Unsqueeze-23",
        "Unsqueeze-24", "Unsqueeze-25", "Where-16",
    ];

    private static readonly FrozenDictionary<string, int[]> Versions =
        Table.ToFrozenDictionary(e => e.Op, e => e.Versions, StringComparer.Ordinal);

    private static readonly FrozenSet<string> Compatible = CompatibleChanges.ToFrozenSet(StringComparer.Ordinal);

    /// <summary>True when the table knows the op.</summary>
    public static bool Knows(string op) => Versions.ContainsKey(op);

    /// <summary>The first version after <paramref name="from"/> and at most <paramref name="to"/> in which the op changed, or null.</summary>
    public static int? NextChange(string op, long from, long to)
    {
        if (!Versions.TryGetValue(op, out var versions)) return null;
        foreach (int v in versions)
            if (v > from && v <= to) return v;
        return null;
    }

    /// <summary>The version of the op's definition in force at <paramref name="opset"/>, or null when the op does not exist there.</summary>
    public static int? VersionAt(string op, long opset)
    {
        if (!Versions.TryGetValue(op, out var versions)) return null;
        int? found = null;
        foreach (int v in versions)
            if (v <= opset) found = v;
        return found;
    }

    /// <summary>True when the change of <paramref name="op"/> at <paramref name="version"/> keeps the meaning of older nodes.</summary>
    public static bool IsCompatible(string op, int version) => Compatible.Contains($"{op}-{version}");

    /// <summary>
    /// The lowest IR version that carries an opset (the ONNX release that introduced the opset): opset 9 came
    /// with IR 4, 10 with 5, 11 with 6, 12–14 with 7, 15–18 with 8, 19–20 with 9, 21–22 with 10, 23 with 11,
    /// 24 with 12, 25–26 with 13.
    /// </summary>
    public static long MinIrVersion(long opset) => opset switch
    {
        <= 8 => 3,
        9 => 4,
        10 => 5,
        11 => 6,
        <= 14 => 7,
        <= 18 => 8,
        <= 20 => 9,
        <= 22 => 10,
        23 => 11,
        24 => 12,
        _ => 13,
    };
}
