using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Quantization.Qdq;

/// <summary>
/// Ops that ONNX Runtime runs on int8 data between quantized layers, so the chain stays in int8: Relu (absorbed into
/// the layer before it), MaxPool, AveragePool, GlobalAveragePool, Add, Concat, Reshape, Flatten, Transpose. Their
/// computed float inputs are quantized and so is their output; the data-movement ops keep their input's scale, which is
/// what lets ONNX Runtime drop their Q/DQ pair and run them on the int8 tensor.
/// </summary>
internal sealed class PassThroughHandler : QdqOpHandler
{
    private readonly bool _sharesRange;
    private readonly int _dataInputs;

    /// <summary>Creates the handler of one op kind.</summary>
    /// <param name="opType">The op.</param>
    /// <param name="sharesRange">True when the output must keep input 0's scale (data movement, MaxPool).</param>
    /// <param name="dataInputs">How many leading inputs are data (Reshape: 1, its shape is not); -1 for all.</param>
    public PassThroughHandler(string opType, bool sharesRange, int dataInputs = -1)
    {
        ArgumentException.ThrowIfNullOrEmpty(opType);
        OpType = opType;
        _sharesRange = sharesRange;
        _dataInputs = dataInputs;
    }

    /// <inheritdoc />
    public override string OpType { get; }

    /// <inheritdoc />
    public override QdqNodeRule? Describe(NodeProto node, GraphScope scope, out string? reason)
    {
        ArgumentNullException.ThrowIfNull(node);
        ArgumentNullException.ThrowIfNull(scope);
        if (node.Output.Count != 1 && OpType != "MaxPool")
        {
            reason = $"{node.Output.Count} outputs";
            return null;
        }
        // MaxPool's optional Indices output is int64: the node stays float when it is used.
        if (OpType == "MaxPool" && node.Output.Count > 1 && node.Output[1].Length > 0)
        {
            reason = "its Indices output is used";
            return null;
        }
        int count = _dataInputs < 0 ? node.Input.Count : Math.Min(_dataInputs, node.Input.Count);
        var inputs = new List<int>(count);
        for (int i = 0; i < count; i++)
            if (IsComputed(scope, node, i)) inputs.Add(i);
        if (inputs.Count == 0)
        {
            reason = "no computed input";
            return null;
        }
        if (_sharesRange && !inputs.Contains(0))
        {
            reason = "its data input is constant";
            return null;
        }
        reason = null;
        return new QdqNodeRule(inputs, null, null, QuantizeOutput: true, SharesInputRange: _sharesRange);
    }
}
