using System.Text;
using Google.Protobuf;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.Onnx;

/// <summary>Small helpers every pass shares: attributes, constants, node creation, positions and renaming outputs.</summary>
internal static class GraphEdits
{
    public static bool IsOnnxDomain(NodeProto n) => n.Domain is "" or "ai.onnx";

    public static AttributeProto? Attribute(NodeProto n, string name)
    {
        foreach (var a in n.Attribute)
            if (a.Name == name) return a;
        return null;
    }

    public static long Int(NodeProto n, string name, long fallback) => Attribute(n, name) is { } a ? a.I : fallback;

    public static float Float(NodeProto n, string name, float fallback) => Attribute(n, name) is { } a ? a.F : fallback;

    public static string String(NodeProto n, string name, string fallback) =>
        Attribute(n, name) is { } a ? a.S.ToStringUtf8() : fallback;

    public static long[]? Ints(NodeProto n, string name) => Attribute(n, name) is { } a ? a.Ints.ToArray() : null;

    public static float[]? Floats(NodeProto n, string name) => Attribute(n, name) is { } a ? a.Floats.ToArray() : null;

    public static bool RemoveAttribute(NodeProto n, string name)
    {
        for (int k = 0; k < n.Attribute.Count; k++)
            if (n.Attribute[k].Name == name) { n.Attribute.RemoveAt(k); return true; }
        return false;
    }

    public static void SetInt(NodeProto n, string name, long value)
    {
        RemoveAttribute(n, name);
        n.Attribute.Add(IntAttr(name, value));
    }

    public static void SetFloat(NodeProto n, string name, float value)
    {
        RemoveAttribute(n, name);
        n.Attribute.Add(new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value });
    }

    public static void SetString(NodeProto n, string name, string value)
    {
        RemoveAttribute(n, name);
        n.Attribute.Add(new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFrom(value, Encoding.UTF8) });
    }

    public static void SetInts(NodeProto n, string name, IEnumerable<long> values)
    {
        RemoveAttribute(n, name);
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        n.Attribute.Add(a);
    }

    public static AttributeProto IntAttr(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static NodeProto Node(ModelGraph graph, string opType, string namePrefix, IEnumerable<string> inputs, IEnumerable<string> outputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = graph.UniqueName(namePrefix) };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        return node;
    }

    /// <summary>
    /// The constant behind a value read in <paramref name="scope"/> — initializer or Constant node, looked up
    /// through enclosing graphs — or null. An IR ≥ 4 initializer that is also a graph input is not constant:
    /// callers may feed another value.
    /// </summary>
    public static TensorProto? Constant(GraphScope scope, string value)
    {
        if (value.Length == 0) return null;
        for (var s = scope; s is not null; s = s.Parent)
        {
            if (s.Initializer(value) is { } t)
                return s.Model.IrVersion >= 4 && s.Proto.Input.Any(i => i.Name == value) ? null : t;
            if (s.Producer(value) is { } p)
                return p is { OpType: "Constant" } && IsOnnxDomain(p) ? GraphScope.ConstantNodeTensor(p) : null;
            if (s.IsGraphInput(value)) return null;
        }
        return null;
    }

    /// <summary>The position of a node in its graph, by reference (protobuf messages compare by value).</summary>
    public static int IndexOf(GraphScope scope, NodeProto node)
    {
        var nodes = scope.Nodes;
        for (int k = 0; k < nodes.Count; k++)
            if (ReferenceEquals(nodes[k], node)) return k;
        return -1;
    }

    /// <summary>The reader of <paramref name="value"/> that comes first in node order: where a node feeding it must go.</summary>
    public static NodeProto FirstConsumer(GraphScope scope, string value)
    {
        NodeProto? first = null;
        int firstIndex = int.MaxValue;
        foreach (var n in scope.Consumers(value))
        {
            int at = IndexOf(scope, n);
            if (at >= 0 && at < firstIndex) { first = n; firstIndex = at; }
        }
        return first ?? throw new InvalidOperationException($"'{value}' has no reader in graph {scope.Path}.");
    }

    /// <summary>
    /// Makes <paramref name="node"/> produce <paramref name="newName"/> at output <paramref name="outputIndex"/>
    /// instead of its old value, keeping its position; the caller rewires readers of the old value.
    /// </summary>
    public static void RenameOutput(GraphScope scope, NodeProto node, int outputIndex, string newName)
    {
        int at = IndexOf(scope, node);
        if (at < 0) throw new InvalidOperationException($"node '{GraphScope.NodeLabel(node)}' is not in graph {scope.Path}.");
        string old = node.Output[outputIndex];
        scope.RemoveNode(node);
        node.Output[outputIndex] = newName;
        scope.AddNode(node, at);
        DropValueInfo(scope, old);
    }

    /// <summary>Removes the value_info entry of a value that no longer exists (stale entries confuse shape inference).</summary>
    public static void DropValueInfo(GraphScope scope, string value)
    {
        var list = scope.Proto.ValueInfo;
        for (int k = list.Count - 1; k >= 0; k--)
            if (list[k].Name == value) list.RemoveAt(k);
    }

    /// <summary>Removes a constant nothing reads any more (initializer, with its IR 3 input entry, or Constant node).</summary>
    public static bool RemoveIfUnused(GraphScope scope, string name)
    {
        for (var s = scope; s is not null; s = s.Parent)
        {
            if (s.Consumers(name).Count > 0 || s.IsGraphOutput(name)) return false;
            if (s.Initializer(name) is not null)
            {
                s.RemoveInitializer(name);
                return true;
            }
            if (s.Producer(name) is { OpType: "Constant" } p)
            {
                s.RemoveNode(p);
                return true;
            }
        }
        return false;
    }

    public static string Label(NodeProto n) => $"{n.OpType} '{GraphScope.NodeLabel(n)}'";
}
