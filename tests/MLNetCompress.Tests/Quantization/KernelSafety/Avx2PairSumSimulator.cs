using MLNetCompress.Data;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Runtime;

namespace MLNetCompress.Tests.Quantization.KernelSafety;

/// <summary>What the simulation saw in one integer layer.</summary>
/// <param name="Layer">The Conv / Gemm / MatMul node.</param>
/// <param name="Pairs">Pair sums computed (over every simulated reduction order).</param>
/// <param name="Saturated">Pair sums outside [-32768, 32767].</param>
/// <param name="LargestPair">The largest |pair sum| seen.</param>
/// <param name="LargestAccumulatorError">The largest |saturated − exact| int32 accumulator, relative to the largest |exact| one.</param>
internal sealed record SimulatedLayer(string Layer, long Pairs, long Saturated, int LargestPair, double LargestAccumulatorError)
{
    public double SaturatedShare => Pairs == 0 ? 0 : (double)Saturated / Pairs;
}

/// <summary>
/// An independent simulation of what an x86 CPU without VNNI computes for the integer layers of a quantized model: the
/// u8×s8 kernels (VPMADDUBSW) multiply two adjacent bytes of the reduction axis and add the two products into a signed
/// 16-bit lane with saturation; the 16-bit lanes are then summed into int32 exactly. The layers are found from the
/// QDQ pattern ONNX Runtime fuses (uint8 codes from QuantizeLinear → DequantizeLinear → Conv/Gemm/MatMul ← DequantizeLinear
/// ← int8 weight) or from the dynamic pattern (DynamicQuantizeLinear → MatMulInteger). The activation codes are taken
/// from ONNX Runtime (the QuantizeLinear outputs made graph outputs); the weights from the file; everything else is
/// computed here, in plain loops, by a code path that shares nothing with the library's guard.
/// </summary>
/// <remarks>
/// Which products share a pair depends on how the kernel packs the reduction axis, which the file does not say. Convs
/// are simulated in both orders a kernel can use, (channel, kh, kw) as im2col on NCHW and (kh, kw, channel) as on NHWC;
/// a layer is safe only when neither saturates. Padding positions carry the input's zero point, as in the kernels.
/// </remarks>
internal static class Avx2PairSumSimulator
{
    private sealed record IntegerLayer(NodeProto Node, string Codes, int ZeroPoint, float[] Weight, long[] WeightDims, bool WeightIsUInt8);

    /// <summary>Simulates every integer layer of <paramref name="quantizedModel"/> on the rows of <paramref name="feed"/>.</summary>
    public static IReadOnlyList<SimulatedLayer> Run(byte[] quantizedModel, IDataFeed feed, int rows, int? onlyFirst = null)
    {
        var graph = ModelGraph.FromBytes(quantizedModel);
        var layers = FindLayers(graph);
        if (onlyFirst is int k) layers = layers.Take(k).ToList();
        var withCodes = graph.Clone();
        foreach (var l in layers.Select(l => l.Codes).Distinct())
            if (!withCodes.Main.IsGraphOutput(l)) withCodes.Main.Proto.Output.Add(new ValueInfoProto { Name = l });
        var counts = layers.ToDictionary(l => l, _ => new Counter());
        using var runner = ModelRunner.Load(withCodes.ToBytes(), outputNames: layers.Select(l => l.Codes).Distinct().ToList());
        foreach (var batch in feed.Batches(1, rows))
        {
            var outputs = runner.Run(batch);
            foreach (var layer in layers)
            {
                var codes = outputs[layer.Codes];
                int[] x = codes.Data.ToArray().Select(v => (int)v).ToArray();
                var shape = codes.Shape.ToArray();
                if (layer.Node.OpType == "Conv") SimulateConv(layer, x, shape, counts[layer]);
                else SimulateMatMul(layer, x, shape, counts[layer]);
            }
        }
        return layers.Select(l => counts[l].Result(GraphScope.NodeLabel(l.Node))).ToList();
    }

    private sealed class Counter
    {
        public long Pairs, Saturated;
        public int LargestPair;
        public double LargestError, LargestExact;

        public SimulatedLayer Result(string name) => new(name, Pairs, Saturated, LargestPair, LargestExact == 0 ? 0 : LargestError / LargestExact);
    }

    private static List<IntegerLayer> FindLayers(ModelGraph graph)
    {
        var scope = graph.Main;
        var layers = new List<IntegerLayer>();
        foreach (var node in scope.Nodes)
        {
            if (node.OpType is "Conv" or "Gemm" or "MatMul")
            {
                // QDQ: x ← DequantizeLinear(QuantizeLinear(...)), W ← DequantizeLinear(int8 initializer)
                if (scope.Producer(node.Input[0]) is not { OpType: "DequantizeLinear" } dx) continue;
                if (scope.Producer(dx.Input[0]) is not { OpType: "QuantizeLinear" }) continue;
                if (node.Input.Count < 2 || scope.Producer(node.Input[1]) is not { OpType: "DequantizeLinear" } dw) continue;
                if (scope.Initializer(dw.Input[0]) is not { } w) continue;
                if (node.OpType == "Gemm" && node.Attribute.Any(a => a.Name == "transA" && a.I != 0)) continue;
                int zp = (int)TensorData.ToFloatArray(scope.Initializer(dx.Input[2])!)[0];
                var weight = TensorData.ToFloatArray(w);
                bool u8 = w.DataType == (int)OnnxDataType.UInt8;
                var dims = w.Dims.ToArray();
                if (node.OpType == "Gemm" && node.Attribute.Any(a => a.Name == "transB" && a.I != 0)) (weight, dims) = (Transpose(weight, dims), [dims[1], dims[0]]);
                layers.Add(new IntegerLayer(node, dx.Input[0], zp, weight, dims, u8));
            }
            else if (node.OpType == "MatMulInteger" && scope.Producer(node.Input[0]) is { OpType: "DynamicQuantizeLinear" } dq
                     && scope.Initializer(node.Input[1]) is { } w)
            {
                // The zero point is a run-time value here: the codes are taken as they come (the product is raw codes).
                layers.Add(new IntegerLayer(node, dq.Output[0], 0, TensorData.ToFloatArray(w), w.Dims.ToArray(), w.DataType == (int)OnnxDataType.UInt8));
            }
        }
        return layers;
    }

    private static float[] Transpose(float[] w, long[] dims)
    {
        int r = (int)dims[0], c = (int)dims[1];
        var t = new float[w.Length];
        for (int i = 0; i < r; i++)
            for (int j = 0; j < c; j++) t[j * r + i] = w[i * c + j];
        return t;
    }

    /// <summary>One output: Σ pairs with int16 saturation of each pair; counts the pairs that clip.</summary>
    private static void Accumulate(ReadOnlySpan<int> codes, ReadOnlySpan<int> weights, bool u8u8, Counter counter)
    {
        long exact = 0, saturated = 0, clippedPairs = 0;
        int largest = counter.LargestPair, n = codes.Length;
        for (int k = 0; k < n; k += 2)
        {
            int pair = codes[k] * weights[k] + (k + 1 < n ? codes[k + 1] * weights[k + 1] : 0);
            exact += pair;
            // U8U8 kernels widen both sides to 16 bits first and add the pair into int32 (VPMADDWD): no clipping.
            int clipped = u8u8 ? pair : Math.Clamp(pair, short.MinValue, short.MaxValue);
            if (clipped != pair) clippedPairs++;
            int magnitude = Math.Abs(pair);
            if (magnitude > largest) largest = magnitude;
            saturated += clipped;
        }
        counter.Pairs += (n + 1) / 2;
        counter.Saturated += clippedPairs;
        counter.LargestPair = largest;
        counter.LargestExact = Math.Max(counter.LargestExact, Math.Abs(exact));
        counter.LargestError = Math.Max(counter.LargestError, Math.Abs(saturated - exact));
    }

    private static void SimulateMatMul(IntegerLayer layer, int[] x, long[] shape, Counter counter)
    {
        int k = (int)layer.WeightDims[^2], n = (int)layer.WeightDims[^1];
        int rows = x.Length / k;
        var column = new int[k];
        var row = new int[k];
        var w = layer.Weight.Select(v => (int)v).ToArray();
        for (int c = 0; c < n; c++)
        {
            for (int j = 0; j < k; j++) column[j] = w[j * n + c];
            for (int r = 0; r < rows; r++)
            {
                x.AsSpan(r * k, k).CopyTo(row);
                Accumulate(row, column, layer.WeightIsUInt8, counter);
            }
        }
    }

    private static void SimulateConv(IntegerLayer layer, int[] x, long[] shape, Counter counter)
    {
        var node = layer.Node;
        long[] Ints(string name, long[] fallback) => node.Attribute.FirstOrDefault(a => a.Name == name)?.Ints.ToArray() ?? fallback;
        long group = node.Attribute.FirstOrDefault(a => a.Name == "group")?.I ?? 1;
        int n = (int)shape[0], c = (int)shape[1], h = (int)shape[2], wd = (int)shape[3];
        int m = (int)layer.WeightDims[0], cg = (int)layer.WeightDims[1], kh = (int)layer.WeightDims[2], kw = (int)layer.WeightDims[3];
        var pads = Ints("pads", [0, 0, 0, 0]);
        var strides = Ints("strides", [1, 1]);
        var dil = Ints("dilations", [1, 1]);
        if (node.Attribute.Any(a => a.Name == "auto_pad" && a.S.ToStringUtf8() is not ("" or "NOTSET")))
            throw new NotSupportedException("auto_pad is not simulated");
        int oh = (int)((h + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) / strides[0] + 1);
        int ow = (int)((wd + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) / strides[1] + 1);
        int kLen = cg * kh * kw;
        var w = layer.Weight.Select(v => (int)v).ToArray();
        // The weights of each output channel in both reduction orders.
        var wChw = new int[m][];
        var wHwc = new int[m][];
        for (int o = 0; o < m; o++)
        {
            wChw[o] = w.AsSpan(o * kLen, kLen).ToArray();
            wHwc[o] = new int[kLen];
            for (int ci = 0; ci < cg; ci++)
                for (int i = 0; i < kh; i++)
                    for (int j = 0; j < kw; j++)
                        wHwc[o][(i * kw + j) * cg + ci] = wChw[o][(ci * kh + i) * kw + j];
        }
        var chw = new int[kLen];
        var hwc = new int[kLen];
        int outPerGroup = m / (int)group;
        for (int b = 0; b < n; b++)
            for (int g = 0; g < group; g++)
                for (int y = 0; y < oh; y++)
                    for (int xo = 0; xo < ow; xo++)
                    {
                        for (int ci = 0; ci < cg; ci++)
                            for (int i = 0; i < kh; i++)
                                for (int j = 0; j < kw; j++)
                                {
                                    int iy = (int)(y * strides[0] - pads[0] + i * dil[0]), ix = (int)(xo * strides[1] - pads[1] + j * dil[1]);
                                    int channel = (int)(g * cg + ci);
                                    int v = iy < 0 || iy >= h || ix < 0 || ix >= wd ? layer.ZeroPoint : x[((b * c + channel) * h + iy) * wd + ix];
                                    chw[(ci * kh + i) * kw + j] = v;
                                    hwc[(i * kw + j) * cg + ci] = v;
                                }
                        for (int o = (int)(g * outPerGroup); o < (g + 1) * outPerGroup; o++)
                        {
                            Accumulate(chw, wChw[o], layer.WeightIsUInt8, counter);
                            Accumulate(hwc, wHwc[o], layer.WeightIsUInt8, counter);
                        }
                    }
    }
}
