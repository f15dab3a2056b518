using System.Collections.Frozen;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Preparation;

/// <summary>Where an adapter works: the model, the graph of the node, and the opset being upgraded to.</summary>
internal sealed record UpgradeStep(ModelGraph Graph, GraphScope Scope, long Target);

/// <summary>
/// A rewrite of one op at one opset version: <see cref="Check"/> says why it cannot be done (null when it can),
/// <see cref="Apply"/> edits the node (and may add nodes or initializers) and describes the edit.
/// <see cref="RenamesTo"/> is the op type the node has afterwards when the adapter replaces the op.
/// </summary>
internal sealed record OpsetAdapter(Func<UpgradeStep, NodeProto, string?> Check, Func<UpgradeStep, NodeProto, string> Apply, string? RenamesTo = null);

/// <summary>
/// The rewrites for the changes of meaning listed in <see cref="OpsetChangelog"/>, keyed <c>Op-Version</c>:
/// attributes that became inputs, axis semantics that changed, removed attributes, renamed ops.
/// </summary>
internal static class OpsetAdapters
{
    private static readonly OpsetAdapter DropConsumedInputs = Simple((_, n) =>
        GraphEdits.RemoveAttribute(n, "consumed_inputs") ? "dropped consumed_inputs" : "no consumed_inputs");

    private static readonly string[] ConsumedInputsAt6 =
    [
        "Abs", "Add", "BatchNormalization", "Ceil", "Clip", "Div", "Dropout", "Elu", "Exp", "Floor", "Gemm", "HardSigmoid",
        "InstanceNormalization", "LeakyRelu", "Log", "Max", "Mean", "Min", "Mul", "Neg", "PRelu", "Reciprocal", "Relu", "Selu",
        "Sigmoid", "Sqrt", "Sub", "Sum", "Tanh",
    ];

    private static readonly string[] BroadcastAt7 = ["Add", "Sub", "Mul", "Div", "Pow", "And", "Or", "Xor", "Equal", "Greater", "Less"];

    private static readonly string[] ReduceAt18 =
        ["ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSumSquare"];

    // Built on first use: the adapters below are static fields initialized in textual order.
    private static readonly Lazy<FrozenDictionary<string, OpsetAdapter>> all = new(Build);

    public static FrozenDictionary<string, OpsetAdapter> All => all.Value;

    private static FrozenDictionary<string, OpsetAdapter> Build()
    {
        var d = new Dictionary<string, OpsetAdapter>(StringComparer.Ordinal);
        foreach (var op in ConsumedInputsAt6) d[$"{op}-6"] = DropConsumedInputs;
        foreach (var op in BroadcastAt7) d[$"{op}-7"] = NumpyBroadcast;
        foreach (var op in ReduceAt18) d[$"{op}-18"] = AxesToInput("axes");
        d["ReduceSum-13"] = AxesToInput("axes");
        d["Squeeze-13"] = AxesToInput("axes");
        d["Unsqueeze-13"] = AxesToInput("axes");
        d["Softmax-13"] = d["LogSoftmax-13"] = d["Hardmax-13"] = SingleAxis;
        d["BatchNormalization-6"] = DropConsumedInputs;
        d["BatchNormalization-7"] = Simple((_, n) => GraphEdits.RemoveAttribute(n, "is_test") ? "dropped is_test (inference)" : "no is_test");
        d["BatchNormalization-9"] = BatchNormSpatial;
        d["BatchNormalization-14"] = BatchNormOutputs;
        d["Gemm-7"] = Simple((_, n) => GraphEdits.RemoveAttribute(n, "broadcast") ? "dropped broadcast (C broadcasts numpy-style)" : "no broadcast");
        d["Dropout-7"] = Simple((_, n) => GraphEdits.RemoveAttribute(n, "is_test") ? "dropped is_test (inference)" : "no is_test");
        d["Dropout-10"] = new((s, n) => MaskUsed(s, n) ? "its mask output is read and changes type from the data type to bool at opset 10" : null,
            (_, _) => "mask output is bool from now on (unused here)");
        d["Dropout-12"] = new((_, _) => null, (s, n) => AttributeToInput(s, n, "ratio", 1, OnnxDataType.Float, scalar: true));
        d["Clip-11"] = new((_, _) => null, ClipInputs);
        d["Pad-2"] = Simple((_, n) => RenameAttribute(n, "paddings", "pads"));
        d["Pad-11"] = new((_, _) => null, PadInputs);
        d["Reshape-5"] = new((_, n) => GraphEdits.Attribute(n, "shape") is null && n.Input.Count < 2 ? "it has no shape" : null,
            (s, n) => AttributeToInput(s, n, "shape", 1, OnnxDataType.Int64, scalar: false));
        d["Slice-10"] = new((_, _) => null, SliceInputs);
        d["TopK-10"] = new((_, n) => GraphEdits.Attribute(n, "k") is null ? "it has no k" : null,
            (s, n) => AttributeToInput(s, n, "k", 1, OnnxDataType.Int64, scalar: false));
        d["Split-2"] = new((_, n) => n.Input.Count > 1 && n.Input[1].Length > 0 ? "its split sizes come from a second input (Split-1 form)" : null,
            (_, _) => "no change");
        d["Split-13"] = new((_, _) => null, (s, n) => AttributeToInput(s, n, "split", 1, OnnxDataType.Int64, scalar: false));
        d["Split-18"] = Simple((_, n) =>
        {
            if (n.Input.Count > 1 && n.Input[1].Length > 0) return "no change (split sizes given)";
            GraphEdits.SetInt(n, "num_outputs", n.Output.Count);
            return $"num_outputs = {n.Output.Count} (equal split)";
        });
        d["Concat-4"] = Simple((_, n) =>
        {
            if (GraphEdits.Attribute(n, "axis") is not null) return "no change";
            GraphEdits.SetInt(n, "axis", 1);
            return "axis = 1 made explicit (it became required)";
        });
        d["Cast-6"] = new((_, n) => GraphEdits.Attribute(n, "to") is { Type: AttributeProto.Types.AttributeType.String } a && CastTypeOf(a.S.ToStringUtf8()) is null
            ? $"its type name '{a.S.ToStringUtf8()}' is unknown" : null, CastToInt);
        d["Scatter-11"] = new((_, _) => null, (_, n) => { n.OpType = "ScatterElements"; return "Scatter (deprecated) -> ScatterElements"; }, "ScatterElements");
        d["Upsample-9"] = new((s, n) => GraphEdits.Attribute(n, "scales") is null && n.Input.Count < 2 ? "it has no scales" : null,
            (s, n) => AttributeToInput(s, n, "scales", 1, OnnxDataType.Float, scalar: false));
        d["Upsample-10"] = new(UpsampleCheck, (_, n) => { n.OpType = "Resize"; return "Upsample (deprecated) -> Resize"; }, "Resize");
        d["Resize-11"] = new(ResizeCheck, Resize11);
        d["RoiAlign-16"] = Simple((_, n) =>
        {
            if (GraphEdits.Attribute(n, "coordinate_transformation_mode") is not null) return "no change";
            GraphEdits.SetString(n, "coordinate_transformation_mode", "output_half_pixel");
            return "coordinate_transformation_mode = output_half_pixel (the old behaviour; the default became half_pixel)";
        });
        d["GridSample-20"] = Simple((_, n) =>
        {
            string mode = GraphEdits.String(n, "mode", "bilinear");
            string renamed = mode switch { "bilinear" => "linear", "bicubic" => "cubic", _ => mode };
            GraphEdits.SetString(n, "mode", renamed);
            return $"mode {mode} -> {renamed}";
        });
        return d.ToFrozenDictionary(StringComparer.Ordinal);
    }

    private static OpsetAdapter Simple(Func<UpgradeStep, NodeProto, string> apply) => new((_, _) => null, apply);

    // ---- helpers ------------------------------------------------------------------------------

    /// <summary>Re-inserts a node after an edit of its input list, so the graph's indexes follow.</summary>
    private static void EditInputs(GraphScope scope, NodeProto n, Action<Google.Protobuf.Collections.RepeatedField<string>> edit)
    {
        int at = GraphEdits.IndexOf(scope, n);
        scope.RemoveNode(n);
        edit(n.Input);
        while (n.Input.Count > 0 && n.Input[^1].Length == 0) n.Input.RemoveAt(n.Input.Count - 1);
        scope.AddNode(n, at);
    }

    private static void SetInputAt(GraphScope scope, NodeProto n, int index, string value) =>
        EditInputs(scope, n, inputs =>
        {
            while (inputs.Count <= index) inputs.Add("");
            inputs[index] = value;
        });

    private static string AddInt64(UpgradeStep s, NodeProto n, string what, long[] values, bool scalar = false)
    {
        var t = TensorData.FromInt64(s.Graph.UniqueName($"{GraphScope.NodeLabel(n)}_{what}"), scalar ? [] : [values.Length], values);
        s.Scope.AddInitializer(t);
        return t.Name;
    }

    private static string AddFloats(UpgradeStep s, NodeProto n, string what, float[] values, bool scalar, OnnxDataType type = OnnxDataType.Float)
    {
        var t = TensorData.FromFloats(s.Graph.UniqueName($"{GraphScope.NodeLabel(n)}_{what}"), scalar ? [] : [values.Length], values, type);
        s.Scope.AddInitializer(t);
        return t.Name;
    }

    /// <summary>Moves an ints/floats attribute into a constant input at <paramref name="index"/> (an absent attribute leaves the input absent).</summary>
    private static string AttributeToInput(UpgradeStep s, NodeProto n, string attribute, int index, OnnxDataType type, bool scalar)
    {
        var a = GraphEdits.Attribute(n, attribute);
        if (a is null) return $"no {attribute} attribute";
        GraphEdits.RemoveAttribute(n, attribute);
        string name = type == OnnxDataType.Int64
            ? AddInt64(s, n, attribute, a.Type == AttributeProto.Types.AttributeType.Int ? [a.I] : a.Ints.ToArray(), scalar)
            : AddFloats(s, n, attribute, a.Type == AttributeProto.Types.AttributeType.Float ? [a.F] : a.Floats.ToArray(), scalar);
        SetInputAt(s.Scope, n, index, name);
        return $"attribute {attribute} -> input {name}";
    }

    private static OpsetAdapter AxesToInput(string attribute) =>
        new((_, _) => null, (s, n) => AttributeToInput(s, n, attribute, 1, OnnxDataType.Int64, scalar: false));

    private static string RenameAttribute(NodeProto n, string from, string to)
    {
        var a = GraphEdits.Attribute(n, from);
        if (a is null) return "no change";
        a.Name = to;
        return $"attribute {from} -> {to}";
    }

    private static bool MaskUsed(UpgradeStep s, NodeProto n) =>
        n.Output.Count > 1 && n.Output[1].Length > 0 && (s.Scope.Consumers(n.Output[1]).Count > 0 || s.Scope.IsGraphOutput(n.Output[1]));

    /// <summary>The declared element type and shape of a value, from graph inputs, outputs, value_info or constants.</summary>
    internal static (OnnxDataType? Type, int? Rank) TypeOf(GraphScope scope, string value)
    {
        for (var s = scope; s is not null; s = s.Parent)
        {
            if (GraphEdits.Constant(s, value) is { } t) return (OnnxDataTypes.FromWire(t.DataType), t.Dims.Count);
            foreach (var v in s.Proto.Input.Concat(s.Proto.ValueInfo).Concat(s.Proto.Output))
                if (v.Name == value && v.Type?.TensorType is { } tt)
                    return (tt.ElemType == 0 ? null : OnnxDataTypes.FromWire(tt.ElemType), tt.Shape is null ? null : tt.Shape.Dim.Count);
            if (s.Producer(value) is not null) return (null, null);
        }
        return (null, null);
    }

    // ---- broadcast/axis (opset 7) -------------------------------------------------------------

    private static readonly OpsetAdapter NumpyBroadcast = new(BroadcastCheck, BroadcastApply);

    private static (int Shift, string? Refusal) BroadcastShift(UpgradeStep s, NodeProto n)
    {
        if (GraphEdits.Int(n, "broadcast", 0) == 0 || GraphEdits.Attribute(n, "axis") is not { } axisAttr) return (0, null);
        var (_, rankA) = TypeOf(s.Scope, n.Input[0]);
        var (_, rankB) = TypeOf(s.Scope, n.Input[1]);
        if (rankA is null || rankB is null) return (0, $"broadcast with axis {axisAttr.I} needs the ranks of both inputs, which the graph does not declare");
        long axis = axisAttr.I < 0 ? axisAttr.I + rankA.Value : axisAttr.I;
        // Old: B aligns with A's dims [axis, axis + rank B). Numpy: with A's last rank B dims. Pad B with trailing 1s.
        return ((int)(rankA.Value - axis - rankB.Value), null);
    }

    private static string? BroadcastCheck(UpgradeStep s, NodeProto n)
    {
        var (shift, refusal) = BroadcastShift(s, n);
        if (refusal is not null) return refusal;
        if (shift < 0) return "its axis puts B past the end of A";
        if (shift > 0 && GraphEdits.Constant(s.Scope, n.Input[1]) is null && s.Target < 7) return "B is not a constant";
        return null;
    }

    private static string BroadcastApply(UpgradeStep s, NodeProto n)
    {
        var (shift, _) = BroadcastShift(s, n);
        GraphEdits.RemoveAttribute(n, "broadcast");
        GraphEdits.RemoveAttribute(n, "axis");
        if (shift <= 0) return "dropped broadcast/axis (numpy broadcasting gives the same alignment)";
        string b = n.Input[1];
        if (GraphEdits.Constant(s.Scope, b) is { } t)
        {
            // A constant B gets trailing 1-dims in a new initializer: no extra node.
            var copy = t.Clone();
            copy.Name = s.Graph.UniqueName(b + "_bcast");
            for (int k = 0; k < shift; k++) copy.Dims.Add(1);
            s.Scope.AddInitializer(copy);
            SetInputAt(s.Scope, n, 1, copy.Name);
            GraphEdits.RemoveIfUnused(s.Scope, b);
            return $"dropped broadcast/axis; B reshaped to [{string.Join(",", copy.Dims)}] for numpy broadcasting";
        }
        long rankB = TypeOf(s.Scope, b).Rank!.Value;
        var axes = Enumerable.Range((int)rankB, shift).Select(i => (long)i).ToArray();
        string expanded = s.Graph.UniqueName(b + "_bcast");
        var unsqueeze = s.Target >= 13
            ? GraphEdits.Node(s.Graph, "Unsqueeze", b + "_bcast", [b, AddInt64(s, n, "bcast_axes", axes)], [expanded])
            : GraphEdits.Node(s.Graph, "Unsqueeze", b + "_bcast", [b], [expanded], IntsAttr("axes", axes));
        s.Scope.InsertBefore(unsqueeze, n);
        SetInputAt(s.Scope, n, 1, expanded);
        return $"dropped broadcast/axis; B unsqueezed at axes [{string.Join(",", axes)}] for numpy broadcasting";
    }

    private static AttributeProto IntsAttr(string name, long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    // ---- Softmax / LogSoftmax / Hardmax (opset 13) ---------------------------------------------

    private static readonly OpsetAdapter SingleAxis = new((_, _) => null, SingleAxisApply);

    /// <summary>
    /// Before 13 the op worked on the input coerced to 2-D at <c>axis</c> (default 1): over all trailing dims
    /// together. From 13 it works on the one axis (default −1). Where axis is the last dim the two agree;
    /// otherwise Flatten(axis) → op(axis 1) → Reshape(back to the input's shape) keeps the old meaning.
    /// </summary>
    private static string SingleAxisApply(UpgradeStep s, NodeProto n)
    {
        long axis = GraphEdits.Int(n, "axis", 1);
        var (_, rank) = TypeOf(s.Scope, n.Input[0]);
        if (rank is int r && (axis == r - 1 || axis == -1))
        {
            GraphEdits.SetInt(n, "axis", -1);
            return $"axis {axis} is the last of {r} dims: same meaning with axis -1";
        }
        if (rank is 2 && axis is 1 or -1)
        {
            GraphEdits.SetInt(n, "axis", 1);
            return "2-D input: same meaning";
        }
        string x = n.Input[0], y = n.Output[0];
        string flat = s.Graph.UniqueName(x + "_2d"), shape = s.Graph.UniqueName(x + "_shape"), y2d = s.Graph.UniqueName(y + "_2d");
        s.Scope.InsertBefore(GraphEdits.Node(s.Graph, "Shape", x + "_shape", [x], [shape]), n);
        s.Scope.InsertBefore(GraphEdits.Node(s.Graph, "Flatten", x + "_flatten", [x], [flat], GraphEdits.IntAttr("axis", axis)), n);
        int at = GraphEdits.IndexOf(s.Scope, n);
        s.Scope.RemoveNode(n);
        n.Input[0] = flat;
        n.Output[0] = y2d;
        GraphEdits.SetInt(n, "axis", 1);
        s.Scope.AddNode(n, at);
        s.Scope.AddNode(GraphEdits.Node(s.Graph, "Reshape", y + "_restore", [y2d, shape], [y]), at + 1);
        return $"axis {axis} over the coerced 2-D input: Flatten(axis {axis}) -> {n.OpType}(axis 1) -> Reshape to the input's shape";
    }

    // ---- BatchNormalization (9, 14) ------------------------------------------------------------

    private static readonly OpsetAdapter BatchNormSpatial = new(
        (s, n) => GraphEdits.Int(n, "spatial", 1) == 0 && TypeOf(s.Scope, n.Input[0]).Rank is not 2
            ? "spatial = 0 (per-position statistics) has no equivalent from opset 9" : null,
        (_, n) => GraphEdits.RemoveAttribute(n, "spatial") ? "dropped spatial (per-channel statistics)" : "no spatial");

    private static readonly OpsetAdapter BatchNormOutputs = new(
        (s, n) => n.Output.Skip(1).Any(o => o.Length > 0 && (s.Scope.Consumers(o).Count > 0 || s.Scope.IsGraphOutput(o)))
            ? "its training statistics outputs are read; they changed meaning at opset 14" : null,
        (s, n) =>
        {
            if (n.Output.Count == 1) return "no change (inference form)";
            int at = GraphEdits.IndexOf(s.Scope, n);
            s.Scope.RemoveNode(n);
            while (n.Output.Count > 1) n.Output.RemoveAt(n.Output.Count - 1);
            s.Scope.AddNode(n, at);
            return "dropped the unused training outputs";
        });

    // ---- Clip (11), Pad (11), Slice (10) -------------------------------------------------------

    private static string ClipInputs(UpgradeStep s, NodeProto n)
    {
        var min = GraphEdits.Attribute(n, "min");
        var max = GraphEdits.Attribute(n, "max");
        GraphEdits.RemoveAttribute(n, "min");
        GraphEdits.RemoveAttribute(n, "max");
        if (min is null && max is null) return "no min/max";
        // min/max take the input's type from 11; an undeclared type is taken as float (Clip-6 took float types only).
        var type = TypeOf(s.Scope, n.Input[0]).Type ?? OnnxDataType.Float;
        string lo = min is null ? "" : AddFloats(s, n, "min", [min.F], scalar: true, type);
        string hi = max is null ? "" : AddFloats(s, n, "max", [max.F], scalar: true, type);
        EditInputs(s.Scope, n, inputs => { inputs.Add(lo); inputs.Add(hi); });
        return $"min/max attributes -> inputs ({OnnxDataTypes.Name(type)} scalars)";
    }

    private static string PadInputs(UpgradeStep s, NodeProto n)
    {
        var pads = GraphEdits.Ints(n, "pads") ?? [];
        var value = GraphEdits.Attribute(n, "value");
        GraphEdits.RemoveAttribute(n, "pads");
        GraphEdits.RemoveAttribute(n, "value");
        string padsName = AddInt64(s, n, "pads", pads);
        string valueName = "";
        if (value is not null && value.F != 0 && GraphEdits.String(n, "mode", "constant") == "constant")
            valueName = AddFloats(s, n, "value", [value.F], scalar: true, TypeOf(s.Scope, n.Input[0]).Type ?? OnnxDataType.Float);
        EditInputs(s.Scope, n, inputs => { inputs.Add(padsName); inputs.Add(valueName); });
        return "pads/value attributes -> inputs";
    }

    private static string SliceInputs(UpgradeStep s, NodeProto n)
    {
        var starts = GraphEdits.Ints(n, "starts") ?? [];
        var ends = GraphEdits.Ints(n, "ends") ?? [];
        var axes = GraphEdits.Ints(n, "axes");
        foreach (var a in new[] { "starts", "ends", "axes" }) GraphEdits.RemoveAttribute(n, a);
        string st = AddInt64(s, n, "starts", starts), en = AddInt64(s, n, "ends", ends);
        string ax = axes is null ? "" : AddInt64(s, n, "axes", axes);
        EditInputs(s.Scope, n, inputs => { inputs.Add(st); inputs.Add(en); inputs.Add(ax); });
        return "starts/ends/axes attributes -> inputs";
    }

    // ---- Cast (6) ------------------------------------------------------------------------------

    private static OnnxDataType? CastTypeOf(string name) => name.ToUpperInvariant() switch
    {
        "FLOAT" => OnnxDataType.Float, "UINT8" => OnnxDataType.UInt8, "INT8" => OnnxDataType.Int8, "UINT16" => OnnxDataType.UInt16,
        "INT16" => OnnxDataType.Int16, "INT32" => OnnxDataType.Int32, "INT64" => OnnxDataType.Int64, "BOOL" => OnnxDataType.Bool,
        "FLOAT16" => OnnxDataType.Float16, "DOUBLE" => OnnxDataType.Double, "UINT32" => OnnxDataType.UInt32, "UINT64" => OnnxDataType.UInt64,
        _ => null,
    };

    private static string CastToInt(UpgradeStep s, NodeProto n)
    {
        var a = GraphEdits.Attribute(n, "to");
        if (a is null || a.Type != AttributeProto.Types.AttributeType.String) return "no change";
        string name = a.S.ToStringUtf8();
        GraphEdits.SetInt(n, "to", (long)CastTypeOf(name)!.Value);
        return $"to '{name}' -> {(long)CastTypeOf(name)!.Value}";
    }

    // ---- Upsample → Resize (10), Resize (11) -----------------------------------------------------

    private static float[]? ConstantScales(UpgradeStep s, NodeProto n)
    {
        if (GraphEdits.Floats(n, "scales") is { } attr) return attr;
        // Only Upsample and Resize-10 are asked: both read scales at input 1.
        const int index = 1;
        return n.Input.Count > index && GraphEdits.Constant(s.Scope, n.Input[index]) is { } t ? TensorData.ToFloatArray(t) : null;
    }

    private static string? UpsampleCheck(UpgradeStep s, NodeProto n) =>
        s.Target >= 11 ? ResizeCheck(s, n) : null;

    /// <summary>
    /// Resize-10 (and Upsample) map output to input coordinates as x / scale ("asymmetric") and pick the nearest
    /// pixel by floor when upsampling (ONNX Runtime's "simple" rounding takes ceil when downsampling). Resize-11
    /// makes both explicit attributes, so the old meaning needs constant scales to choose the rounding.
    /// </summary>
    private static string? ResizeCheck(UpgradeStep s, NodeProto n)
    {
        string mode = GraphEdits.String(n, "mode", "nearest");
        if (mode is not ("nearest" or "linear" or "bilinear")) return $"mode '{mode}' is not nearest or linear";
        if (mode != "nearest") return null;
        var scales = ConstantScales(s, n);
        if (scales is null) return "nearest mode with scales computed at run time: the rounding cannot be chosen";
        if (scales.Any(v => v < 1) && scales.Any(v => v > 1)) return "nearest mode scaling up some axes and down others";
        return null;
    }

    private static string Resize11(UpgradeStep s, NodeProto n)
    {
        string mode = GraphEdits.String(n, "mode", "nearest");
        if (mode == "bilinear") GraphEdits.SetString(n, "mode", mode = "linear");
        GraphEdits.SetString(n, "coordinate_transformation_mode", "asymmetric");
        string rounding = "";
        if (mode == "nearest")
        {
            rounding = ConstantScales(s, n)!.Any(v => v < 1) ? "ceil" : "floor";
            GraphEdits.SetString(n, "nearest_mode", rounding);
        }
        // Inputs (X, scales) become (X, roi, scales); roi is unused by asymmetric but required before 13.
        string roi = s.Target >= 13 ? "" : AddFloats(s, n, "roi", [], scalar: false);
        string scalesInput = n.Input.Count > 1 ? n.Input[1] : "";
        EditInputs(s.Scope, n, inputs =>
        {
            while (inputs.Count < 2) inputs.Add("");
            inputs[1] = roi;
            inputs.Insert(2, scalesInput);
        });
        return $"coordinate_transformation_mode = asymmetric{(rounding.Length > 0 ? $", nearest_mode = {rounding}" : "")}; roi input added";
    }
}
