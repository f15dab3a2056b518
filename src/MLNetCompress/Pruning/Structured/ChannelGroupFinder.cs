using System.Collections.Frozen;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Pruning.Structured;

/// <summary>
/// Finds the channel groups of a model's main graph. From each Conv it follows the output channels forward through
/// ops that keep channels apart (per-channel BatchNormalization, elementwise activations, pooling, Concat at an
/// offset, Flatten into a Gemm/MatMul, depthwise Convs) up to the layers that consume them, and backward from every
/// residual Add to the other Convs that write the same channels. Anything it cannot follow exactly — an op that mixes
/// channels, a graph input or output, a shared constant — makes the whole group skipped with the reason.
/// </summary>
internal static class ChannelGroupFinder
{
    /// <summary>Ops that act on each channel alone: the channels of input 0 are the channels of output 0.</summary>
    private static readonly FrozenSet<string> PassThrough = new[]
    {
        "Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "Elu", "Selu", "HardSigmoid", "HardSwish", "Softplus", "Softsign",
        "Neg", "Abs", "Sqrt", "Exp", "Identity", "Dropout", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool",
    }.ToFrozenSet(StringComparer.Ordinal);

    /// <summary>Elementwise ops of several inputs: every non-constant input has the output's channels.</summary>
    private static readonly FrozenSet<string> Elementwise = new[] { "Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "PRelu" }
        .ToFrozenSet(StringComparer.Ordinal);

    /// <summary>Every group with a Conv source in the main graph, valid or not, in graph order.</summary>
    public static List<ChannelGroup> Find(ModelGraph graph)
    {
        var scope = graph.Main;
        var groups = new List<ChannelGroup>();
        var taken = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        foreach (var node in scope.Nodes)
        {
            if (node.OpType is not ("Conv" or "Gemm") || !GraphEdits.IsOnnxDomain(node) || taken.Contains(node)) continue;
            if (GraphEdits.Int(node, "group", 1) != 1) continue; // depthwise Convs follow their input's group
            var group = new Builder(scope).Build(node);
            foreach (var s in group.Sources) taken.Add(s);
            groups.Add(group);
        }
        return groups;
    }

    /// <summary>The channel count of a value read off the graph's constants, or null when it cannot be told statically.</summary>
    internal static int? StaticChannels(GraphScope scope, string value, int depth = 0)
    {
        if (depth > 256) return null;
        if (scope.IsGraphInput(value))
        {
            var input = scope.Proto.Input.First(i => i.Name == value);
            var dims = input.Type?.TensorType?.Shape?.Dim;
            return dims is { Count: > 1 } && dims[1].DimValue > 0 ? (int)dims[1].DimValue : null;
        }
        var p = scope.Producer(value);
        if (p is null || !GraphEdits.IsOnnxDomain(p)) return null;
        switch (p.OpType)
        {
            case "Conv":
                return GraphEdits.Constant(scope, p.Input.Count > 1 ? p.Input[1] : "") is { Dims.Count: > 2 } w ? (int)w.Dims[0] : null;
            case "BatchNormalization":
                return GraphEdits.Constant(scope, p.Input[1]) is { Dims.Count: 1 } s ? (int)s.Dims[0] : StaticChannels(scope, p.Input[0], depth + 1);
            case "Concat" when GraphEdits.Int(p, "axis", 1) == 1:
                int sum = 0;
                foreach (var i in p.Input)
                {
                    if (StaticChannels(scope, i, depth + 1) is not int c) return null;
                    sum += c;
                }
                return sum;
            default:
                if (PassThrough.Contains(p.OpType)) return StaticChannels(scope, p.Input[0], depth + 1);
                if (Elementwise.Contains(p.OpType))
                    foreach (var i in p.Input)
                        if (GraphEdits.Constant(scope, i) is null && StaticChannels(scope, i, depth + 1) is int c) return c;
                return null;
        }
    }

    private sealed class Builder(GraphScope scope)
    {
        private readonly ChannelGroup group = new();
        private readonly Queue<string> work = new();
        private readonly HashSet<NodeProto> handledAsReader = new(ReferenceEqualityComparer.Instance);
        private readonly HashSet<NodeProto> handledAsWriter = new(ReferenceEqualityComparer.Instance);

        private bool Failed => group.SkipReason is not null;

        private void Fail(string reason) => group.SkipReason ??= reason;

        public ChannelGroup Build(NodeProto conv)
        {
            if (!AddSource(conv)) return group;
            while (work.Count > 0 && !Failed)
            {
                string v = work.Dequeue();
                var map = group.Values[v];
                var producer = scope.Producer(v);
                if (producer is null)
                    Fail(scope.IsGraphInput(v) ? $"its channels reach the graph input '{v}'" : $"'{v}' has no producer in the main graph");
                else if (!handledAsWriter.Contains(producer))
                    Writer(producer, v, map);
                foreach (var reader in scope.Consumers(v).ToList())
                {
                    if (Failed) break;
                    if (!handledAsReader.Contains(reader)) Reader(reader, v, map);
                }
            }
            if (!Failed) CheckCuts();
            return group;
        }

        private bool AddValue(string value, ChannelMap map)
        {
            if (group.Values.TryGetValue(value, out var old))
            {
                if (old != map) Fail($"'{value}' would hold the channels in two layouts");
                return !Failed;
            }
            if (scope.IsGraphOutput(value)) { Fail($"its channels reach the graph output '{value}', whose shape must not change"); return false; }
            group.Values[value] = map;
            work.Enqueue(value);
            return true;
        }

        /// <summary>A Conv or Gemm whose output channels (features) belong to the group.</summary>
        private bool AddSource(NodeProto conv)
        {
            handledAsWriter.Add(conv);
            if (conv.OpType == "Gemm") return AddGemmSource(conv);
            if (GraphEdits.Int(conv, "group", 1) != 1) { Fail($"{GraphEdits.Label(conv)} is a grouped Conv"); return false; }
            var w = conv.Input.Count > 1 ? GraphEdits.Constant(scope, conv.Input[1]) : null;
            if (w is null || w.Dims.Count < 3) { Fail($"the weight of {GraphEdits.Label(conv)} is not a constant of rank ≥ 3"); return false; }
            if (conv.Output.Count != 1) { Fail($"{GraphEdits.Label(conv)} has {conv.Output.Count} outputs"); return false; }
            int m = (int)w.Dims[0];
            if (group.Sources.Count == 0) group.Channels = m;
            else if (group.Channels != m) { Fail($"{GraphEdits.Label(conv)} writes {m} channels into a residual group of {group.Channels}"); return false; }
            var map = new ChannelMap(0, 1, m, w.Dims.Count, false);
            group.Sources.Add(conv);
            group.Cuts.Add(new TensorCut(conv.Input[1], conv, 0, map, 1, IsWeight: true));
            if (conv.Input.Count > 2 && conv.Input[2].Length > 0 && !CutConstant(conv.Input[2], conv, 0, map)) return false;
            return AddValue(conv.Output[0], map);
        }

        /// <summary>A Gemm's output features: rows of B with transB, else columns, and the matching entries of C.</summary>
        private bool AddGemmSource(NodeProto gemm)
        {
            var w = gemm.Input.Count > 1 ? GraphEdits.Constant(scope, gemm.Input[1]) : null;
            if (w is not { Dims.Count: 2 }) { Fail($"the weight of {GraphEdits.Label(gemm)} is not a 2-D constant"); return false; }
            int axis = GraphEdits.Int(gemm, "transB", 0) != 0 ? 0 : 1;
            int m = (int)w.Dims[axis];
            if (group.Sources.Count == 0) group.Channels = m;
            else if (group.Channels != m) { Fail($"{GraphEdits.Label(gemm)} writes {m} features into a group of {group.Channels}"); return false; }
            var map = new ChannelMap(0, 1, m, 2, false);
            group.Sources.Add(gemm);
            group.Cuts.Add(new TensorCut(gemm.Input[1], gemm, axis, map, 1, IsWeight: true));
            if (gemm.Input.Count > 2 && gemm.Input[2].Length > 0)
            {
                var c = GraphEdits.Constant(scope, gemm.Input[2]);
                if (c is null) { Fail($"the C input of {GraphEdits.Label(gemm)} is not a constant"); return false; }
                // C broadcasts to [N, M]: one value per feature on its last axis, or a single value (nothing to cut).
                if (c.Dims.Any(d => d != 1) && !CutConstant(gemm.Input[2], gemm, c.Dims.Count - 1, map)) return false;
            }
            return AddValue(gemm.Output[0], map);
        }

        private bool CutConstant(string name, NodeProto node, int axis, ChannelMap map, int hw = 1, bool isWeight = false)
        {
            var t = GraphEdits.Constant(scope, name);
            if (t is null) { Fail($"input '{name}' of {GraphEdits.Label(node)} is not a constant"); return false; }
            if (!OnnxDataTypes.IsFloatingPoint(OnnxDataTypes.FromWire(t.DataType)))
            { Fail($"'{name}' of {GraphEdits.Label(node)} is not a float tensor"); return false; }
            if (axis >= t.Dims.Count || t.Dims[axis] != (long)map.Total * hw)
            { Fail($"'{name}' of {GraphEdits.Label(node)} has shape [{string.Join(",", t.Dims)}], not {map.Total * hw} entries on axis {axis}"); return false; }
            group.Cuts.Add(new TensorCut(name, node, axis, map, hw, isWeight));
            return true;
        }

        /// <summary>Handles the node that computes a group value (reached from the value, not from its inputs).</summary>
        private void Writer(NodeProto p, string v, ChannelMap map)
        {
            if (!GraphEdits.IsOnnxDomain(p)) { Fail($"'{v}' is computed by {GraphEdits.Label(p)} of domain '{p.Domain}'"); return; }
            if ((p.OpType == "Conv" && GraphEdits.Int(p, "group", 1) == 1) || p.OpType == "Gemm")
            {
                if (map is not { Offset: 0, Block: 1, Flattened: false }) { Fail($"{GraphEdits.Label(p)} would write only part of the channels of '{v}'"); return; }
                AddSource(p);
                return;
            }
            if (IsChannelwise(p)) { Channelwise(p, map); return; }
            Fail($"'{v}' is computed by {GraphEdits.Label(p)}, whose channels cannot be pruned together with the rest of the group");
        }

        private bool IsChannelwise(NodeProto n) =>
            PassThrough.Contains(n.OpType) || Elementwise.Contains(n.OpType) || n.OpType == "BatchNormalization"
            || (n.OpType == "Conv" && GraphEdits.Int(n, "group", 1) != 1);

        /// <summary>Handles a node that reads a group value.</summary>
        private void Reader(NodeProto n, string v, ChannelMap map)
        {
            if (!GraphEdits.IsOnnxDomain(n) || GraphScope.SubgraphsOf(n).Any())
            { Fail($"'{v}' is read by {GraphEdits.Label(n)}, which the pass cannot rewrite"); return; }
            if (IsChannelwise(n)) { Channelwise(n, map); return; }
            handledAsReader.Add(n);
            // Concat, Flatten and Reshape are followed forward only: their output's producer is not a way back.
            if (n.OpType is "Concat" or "Flatten" or "Reshape") handledAsWriter.Add(n);
            switch (n.OpType)
            {
                case "Conv":
                    if (n.Input[0] != v || n.Input.Skip(1).Contains(v)) { Fail($"'{v}' is a weight of {GraphEdits.Label(n)}"); return; }
                    if (map.Flattened) { Fail($"{GraphEdits.Label(n)} reads flattened channels"); return; }
                    if (CutConstant(n.Input[1], n, 1, map, 1, isWeight: true))
                        group.Sinks.Add(new ChannelSink(n, SinkKind.Conv, v, group.Cuts[^1]));
                    return;
                case "Concat":
                    Concat(n, v, map);
                    return;
                case "Flatten":
                    if (GraphEdits.Int(n, "axis", 1) != 1) { Fail($"{GraphEdits.Label(n)} flattens from axis {GraphEdits.Int(n, "axis", 1)}, not 1"); return; }
                    Flatten(n, map);
                    return;
                case "Reshape":
                    var shape = n.Input.Count > 1 ? GraphEdits.Constant(scope, n.Input[1]) : null;
                    long[]? s = shape is null ? null : TensorData.ToInt64Array(shape);
                    if (n.Input[0] != v || s is not { Length: 2 } || s[1] != -1 || s[0] < 0)
                    { Fail($"{GraphEdits.Label(n)} reshapes the channels in a way the pass cannot follow (only [N or 0, -1] is followed)"); return; }
                    Flatten(n, map);
                    return;
                case "Gemm" or "MatMul":
                    Dense(n, v, map);
                    return;
                default:
                    Fail($"'{v}' is read by {GraphEdits.Label(n)}, which mixes or moves channels in a way the pass cannot follow");
                    return;
            }
        }

        private void Flatten(NodeProto n, ChannelMap map)
        {
            if (map.Flattened || map.Rank == 2) { AddValue(n.Output[0], map with { Rank = 2 }); return; } // already 2-D: nothing moves
            AddValue(n.Output[0], map with { Rank = 2, Flattened = true });
        }

        private void Concat(NodeProto n, string v, ChannelMap map)
        {
            if (map.Flattened) { Fail($"{GraphEdits.Label(n)} concatenates flattened channels"); return; }
            long axis = GraphEdits.Int(n, "axis", 1);
            if (axis < 0) axis += map.Rank;
            if (axis != 1) { Fail($"{GraphEdits.Label(n)} concatenates on axis {axis}, not the channel axis"); return; }
            if (n.Input.Count(i => i == v) != 1) { Fail($"{GraphEdits.Label(n)} reads '{v}' more than once"); return; }
            int before = 0, total = 0;
            bool seen = false;
            foreach (var input in n.Input)
            {
                int? c = input == v ? map.Total : StaticChannels(scope, input);
                if (c is null) { Fail($"the channel count of '{input}' (an input of {GraphEdits.Label(n)}) cannot be read from the graph"); return; }
                if (input == v) seen = true;
                else if (!seen) before += c.Value;
                total += c.Value;
            }
            AddValue(n.Output[0], map with { Offset = map.Offset + before, Total = total });
        }

        private void Dense(NodeProto n, string v, ChannelMap map)
        {
            bool gemm = n.OpType == "Gemm";
            if (n.Input[0] != v || n.Input.Skip(1).Contains(v)) { Fail($"'{v}' is not the left operand of {GraphEdits.Label(n)}"); return; }
            if (gemm && GraphEdits.Int(n, "transA", 0) != 0) { Fail($"{GraphEdits.Label(n)} transposes its input (transA)"); return; }
            if (map.Rank != 2) { Fail($"{GraphEdits.Label(n)} reads a rank-{map.Rank} value; only a Flatten into it is followed"); return; }
            var w = GraphEdits.Constant(scope, n.Input[1]);
            if (w is not { Dims.Count: 2 }) { Fail($"the weight of {GraphEdits.Label(n)} is not a 2-D constant"); return; }
            int axis = gemm && GraphEdits.Int(n, "transB", 0) != 0 ? 1 : 0;
            long k = w.Dims[axis];
            int hw = map.Flattened ? (int)(k / map.Total) : 1;
            if (hw < 1 || (long)hw * map.Total != k) { Fail($"{GraphEdits.Label(n)} has {k} inputs, not a multiple of the {map.Total} channels"); return; }
            if (CutConstant(n.Input[1], n, axis, map, hw, isWeight: true))
                group.Sinks.Add(new ChannelSink(n, gemm ? SinkKind.Gemm : SinkKind.MatMul, v, group.Cuts[^1]));
        }

        /// <summary>Ops whose inputs and output carry the same channels; reached from either side.</summary>
        private void Channelwise(NodeProto n, ChannelMap map)
        {
            handledAsReader.Add(n);
            handledAsWriter.Add(n);
            if (n.OpType == "BatchNormalization")
            {
                if (map.Flattened) { Fail($"{GraphEdits.Label(n)} normalizes flattened channels"); return; }
                if (GraphEdits.Int(n, "training_mode", 0) != 0) { Fail($"{GraphEdits.Label(n)} runs in training mode"); return; }
                if (n.Input.Count < 5 || !StatisticsUnused(n)) { Fail($"{GraphEdits.Label(n)} has its statistics outputs in use"); return; }
                for (int k = 1; k < 5; k++)
                    if (!CutConstant(n.Input[k], n, 0, map)) return;
                if (AddValue(n.Input[0], map)) AddValue(n.Output[0], map);
                return;
            }
            if (n.OpType == "Conv") { Depthwise(n, map); return; }
            if (PassThrough.Contains(n.OpType))
            {
                if (!StatisticsUnused(n)) { Fail($"{GraphEdits.Label(n)} has a second output in use"); return; }
                if (n.Input.Skip(1).Contains(n.Input[0])) { Fail($"{GraphEdits.Label(n)} reads the channels as a parameter"); return; }
                if (AddValue(n.Input[0], map)) AddValue(n.Output[0], map);
                return;
            }
            // Elementwise: constants broadcast over the channels or hold one value per channel; the rest join the group.
            foreach (var input in n.Input)
            {
                if (input.Length == 0) continue;
                if (GraphEdits.Constant(scope, input) is { } c)
                {
                    // Right-aligned broadcasting: the constant's axis facing the value's channel axis 1.
                    int channelAxis = 1 - (map.Rank - c.Dims.Count);
                    if (c.Dims.All(d => d == 1) || (!map.Flattened && (channelAxis < 0 || c.Dims[channelAxis] == 1))) continue;
                    if (map.Flattened || channelAxis < 0 || c.Dims[channelAxis] != map.Total)
                    { Fail($"the constant '{input}' of {GraphEdits.Label(n)} (shape [{string.Join(",", c.Dims)}]) does not hold one value per channel"); return; }
                    if (!CutConstant(input, n, channelAxis, map)) return;
                }
                else if (!AddValue(input, map)) return;
            }
            AddValue(n.Output[0], map);
        }

        private void Depthwise(NodeProto n, ChannelMap map)
        {
            long g = GraphEdits.Int(n, "group", 1);
            var w = n.Input.Count > 1 ? GraphEdits.Constant(scope, n.Input[1]) : null;
            if (map.Flattened || g != map.Total || w is null || w.Dims.Count < 3 || w.Dims[0] != g || w.Dims[1] != 1)
            { Fail($"{GraphEdits.Label(n)} is a grouped Conv (group {g}) that is not depthwise over these {map.Total} channels"); return; }
            if (!CutConstant(n.Input[1], n, 0, map, 1, isWeight: true)) return;
            if (n.Input.Count > 2 && n.Input[2].Length > 0 && !CutConstant(n.Input[2], n, 0, map)) return;
            group.Depthwise.Add(n);
            if (AddValue(n.Input[0], map)) AddValue(n.Output[0], map);
        }

        private bool StatisticsUnused(NodeProto n)
        {
            for (int k = 1; k < n.Output.Count; k++)
            {
                string o = n.Output[k];
                if (o.Length > 0 && (scope.Consumers(o).Count > 0 || scope.IsGraphOutput(o))) return false;
            }
            return true;
        }

        /// <summary>A constant cut for this group must not be read by any node the cut was not planned for.</summary>
        private void CheckCuts()
        {
            foreach (var cut in group.Cuts)
            {
                if (scope.IsGraphOutput(cut.Tensor)) { Fail($"the constant '{cut.Tensor}' is a graph output"); return; }
                var readers = scope.Consumers(cut.Tensor);
                if (readers.Count != 1 || !ReferenceEquals(readers[0], cut.Node))
                { Fail($"the constant '{cut.Tensor}' is shared by {readers.Count} nodes; cutting it would change the others"); return; }
                if (scope.Initializer(cut.Tensor) is null && scope.Producer(cut.Tensor) is null)
                { Fail($"the constant '{cut.Tensor}' lives outside the main graph"); return; }
            }
            var byTensor = group.Cuts.GroupBy(c => (c.Tensor, c.Axis));
            if (byTensor.Any(g => g.Count() > 1)) Fail("a constant would be cut twice along one axis by the same group");
        }
    }
}
