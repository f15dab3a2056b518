using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Proto;

namespace MLNetCompress.ML.Distillation;

/// <summary>The ONNX models behind <see cref="SoftLabelsEstimator"/>: a teacher with its soft-label head added
/// (Div by T, then Softmax or LogSoftmax over the classes) and its input taken as a flat float vector, and a
/// small model that combines the teachers of an ensemble. ML.NET's OnnxTransformer runs them, so the estimator
/// is made of public ML.NET pieces and its model saves like any other.</summary>
internal static class SoftLabelGraphs
{
    private const int Float = (int)TensorProto.Types.DataType.Float;

    /// <summary>The teacher at <paramref name="path"/> rewritten to read input <paramref name="inputName"/> [N, F] and
    /// give <paramref name="outputName"/> = softmax(z / T) flattened (ML.NET feeds one row: [C]) (or log-softmax when <paramref name="log"/>).</summary>
    /// <returns>The model bytes and C.</returns>
    public static (byte[] Model, int Classes) Teacher(string path, string? teacherOutput, double temperature, string inputName, string outputName, bool log)
    {
        var model = OnnxModelIO.Read(path);
        var graph = model.Graph;
        var file = Path.GetFileName(path);
        var opset = model.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx")?.Version ?? 1;
        if (opset < 5)
            throw new SoftLabelException($"teacher '{file}' uses opset {opset}; the soft-labels estimator needs opset 5 or later (run mlnet-compress upgrade --opset 13 first)");
        var initializers = graph.Initializer.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var inputs = graph.Input.Where(i => !initializers.Contains(i.Name)).ToList();
        if (inputs.Count != 1 || inputs[0].Type?.TensorType is not { } inputType || inputType.ElemType != Float)
            throw new SoftLabelException($"teacher '{file}' must take one float tensor for the soft-labels estimator; it takes {string.Join(", ", inputs.Select(i => $"'{i.Name}'"))}");
        var output = teacherOutput is null ? graph.Output.FirstOrDefault() : graph.Output.FirstOrDefault(o => o.Name == teacherOutput);
        if (output is null)
            throw new SoftLabelException($"teacher '{file}' has no output '{teacherOutput}'; it has {string.Join(", ", graph.Output.Select(o => $"'{o.Name}'"))}");
        var outDims = output.Type?.TensorType?.Shape?.Dim;
        if (outDims is null || outDims.Count != 2)
            throw new SoftLabelException($"output '{output.Name}' of teacher '{file}' must be [N, C] logits; its shape is {(outDims is null ? "unknown" : $"rank {outDims.Count}")}");
        var classes = outDims[1].HasDimValue ? checked((int)outDims[1].DimValue) : 0;

        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var v in graph.Input) names.Add(v.Name);
        foreach (var n in graph.Node) foreach (var o in n.Output) names.Add(o);
        names.UnionWith(initializers);
        string Unique(string prefix)
        {
            var name = prefix;
            for (var i = 1; names.Contains(name); i++) name = $"{prefix}_{i}";
            names.Add(name);
            return name;
        }
        if (names.Contains(outputName) && outputName != inputs[0].Name)
            throw new SoftLabelException($"teacher '{file}' already has a value named '{outputName}'; choose another output column name");

        // The input: a flat float vector per row, reshaped to what the teacher takes.
        var original = inputs[0];
        var dims = inputType.Shape?.Dim;
        if (dims is null || dims.Count < 2 || dims.Skip(1).Any(d => !d.HasDimValue))
            throw new SoftLabelException($"teacher '{file}' input '{original.Name}' needs fixed dims after the batch dim for the soft-labels estimator");
        var features = dims.Skip(1).Aggregate(1L, (a, d) => a * d.DimValue);
        if (inputName != original.Name || dims.Count != 2)
        {
            if (names.Contains(inputName) && inputName != original.Name)
                throw new SoftLabelException($"teacher '{file}' already has a value named '{inputName}'; choose another input column name");
            names.Add(inputName);
            var shapeName = Unique("softlabels_input_shape");
            var shape = new TensorProto { Name = shapeName, DataType = (int)TensorProto.Types.DataType.Int64 };
            shape.Dims.Add(dims.Count);
            shape.Int64Data.Add(-1);
            foreach (var d in dims.Skip(1)) shape.Int64Data.Add(d.DimValue);
            graph.Initializer.Add(shape);
            var reshape = new NodeProto { OpType = "Reshape", Name = Unique("softlabels_reshape") };
            reshape.Input.Add(inputName);
            reshape.Input.Add(shapeName);
            reshape.Output.Add(original.Name);
            graph.Node.Insert(0, reshape);
            graph.Input.Remove(original);
            graph.Input.Insert(0, Tensor(inputName, features));
        }

        // The head: z / T, then softmax over the classes (axis 1 of [N, C] means the same in every opset).
        var tName = Unique("softlabels_temperature");
        var t = new TensorProto { Name = tName, DataType = Float };
        t.FloatData.Add((float)temperature);
        graph.Initializer.Add(t);
        var scaled = Unique("softlabels_scaled");
        var div = new NodeProto { OpType = "Div", Name = Unique("softlabels_div") };
        div.Input.Add(output.Name);
        div.Input.Add(tName);
        div.Output.Add(scaled);
        var probabilities = Unique("softlabels_probabilities");
        var softmax = new NodeProto { OpType = log ? "LogSoftmax" : "Softmax", Name = Unique("softlabels_softmax") };
        softmax.Input.Add(scaled);
        softmax.Output.Add(probabilities);
        softmax.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
        // ML.NET runs the model one row at a time and gives an [N, C] output the type Vector<Single, 1, C>; the
        // row flattened to [C] gets Vector<Single, C>, the type soft-label files load with.
        var flatName = Unique("softlabels_flat_shape");
        var flat = new TensorProto { Name = flatName, DataType = (int)TensorProto.Types.DataType.Int64 };
        flat.Dims.Add(1);
        flat.Int64Data.Add(-1);
        graph.Initializer.Add(flat);
        var flatten = new NodeProto { OpType = "Reshape", Name = Unique("softlabels_flatten") };
        flatten.Input.Add(probabilities);
        flatten.Input.Add(flatName);
        flatten.Output.Add(outputName);
        graph.Node.Add(div);
        graph.Node.Add(softmax);
        graph.Node.Add(flatten);
        graph.Output.Clear();
        graph.Output.Add(Vector(outputName, classes));
        return (OnnxModelIO.ToBytes(model), classes);
    }

    /// <summary>A model taking <paramref name="inputs"/> (each one row's [C]) and giving <paramref name="output"/>: their
    /// mean (arithmetic: the inputs are probabilities), or softmax of their mean (geometric: log-probabilities).</summary>
    public static byte[] Combiner(IReadOnlyList<string> inputs, string output, int classes, SoftLabelCombine combine)
    {
        var graph = new GraphProto { Name = "soft_label_ensemble" };
        foreach (var name in inputs) graph.Input.Add(Vector(name, classes));
        var mean = new NodeProto { OpType = "Mean", Name = "mean" };
        mean.Input.AddRange(inputs);
        mean.Output.Add(combine == SoftLabelCombine.Arithmetic ? output : "mean_log_p");
        graph.Node.Add(mean);
        if (combine == SoftLabelCombine.Geometric)
        {
            var softmax = new NodeProto { OpType = "Softmax", Name = "normalize" };
            softmax.Input.Add("mean_log_p");
            softmax.Output.Add(output);
            softmax.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = -1 });
            graph.Node.Add(softmax);
        }
        graph.Output.Add(Vector(output, classes));
        var model = new ModelProto { IrVersion = 7, ProducerName = "MLNetCompress", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        return OnnxModelIO.ToBytes(model);
    }

    private static ValueInfoProto Vector(string name, long width)
    {
        var shape = new TensorShapeProto();
        shape.Dim.Add(width > 0 ? new TensorShapeProto.Types.Dimension { DimValue = width } : new TensorShapeProto.Types.Dimension { DimParam = "C" });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = Float, Shape = shape } } };
    }

    private static ValueInfoProto Tensor(string name, long width)
    {
        var shape = new TensorShapeProto();
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = "N" });
        shape.Dim.Add(width > 0 ? new TensorShapeProto.Types.Dimension { DimValue = width } : new TensorShapeProto.Types.Dimension { DimParam = "C" });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = Float, Shape = shape } } };
    }
}
