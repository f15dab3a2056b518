using System.Globalization;
using Google.Protobuf;
using MLNetCompress.Compression;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Pruning;

namespace MLNetCompress.Clustering;

/// <summary>How a clustered weight's indices are stored.</summary>
public enum ClusterIndexStorage
{
    /// <summary>One uint8 per value (up to 256 clusters, any opset).</summary>
    UInt8,
    /// <summary>A uint4 tensor, two values per byte (16 clusters or fewer, opset 21 and IR 10: Cast from uint4).</summary>
    UInt4,
    /// <summary>
    /// 4-bit indices below opset 21: uint8 bytes holding value i in the low nibble and value i + ⌈n/2⌉ in the high
    /// nibble, split back by BitShift (opset 11) and Concat. Same size as uint4.
    /// </summary>
    PackedNibbles,
}

/// <summary>
/// Weight sharing (Deep Compression's second stage): each weight of Conv, ConvTranspose, Gemm and MatMul is
/// replaced by K centroids — an index tensor and a small codebook — and computed back under its own name by
/// <c>Cast(indices → int32) → Gather(codebook)</c>. ONNX Runtime folds those constant nodes at session load, so
/// the model runs the same float kernels at the same speed while the file holds 4 or 8 bits per weight.
/// </summary>
/// <remarks>
/// Per layer, 1-D k-means (<see cref="KMeans1D"/>) on the weight's values. Exact zeros of a pruned layer keep a
/// centroid of their own, 0.0 at index 0, so they stay exactly zero and the index tensor is as sparse as the weight
/// (<see cref="SparseStoragePass"/> then shrinks it). With 16 clusters or fewer the indices take 4 bits: a uint4
/// tensor at opset 21, else nibble pairs in uint8 split by BitShift at opset 11 and above; below that, uint8.
/// With <see cref="KMeansClusteringOptions.Refine"/>, each codebook is then re-fitted by least squares to the layer's
/// outputs on calibration data, the assignment kept (<see cref="CodebookRefinement"/>).
/// </remarks>
public sealed class KMeansClusteringPass : LayerReportingPass<ClusteringPlan>
{
    /// <summary>Creates the pass.</summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public KMeansClusteringPass(KMeansClusteringOptions? options = null)
    {
        Options = options ?? new KMeansClusteringOptions();
        Options.Validate();
    }

    /// <summary>The options.</summary>
    public KMeansClusteringOptions Options { get; }

    /// <inheritdoc />
    public override string Name => "kmeans-clustering";

    /// <inheritdoc />
    protected override IEnumerable<LayerChange> LayerChanges(ClusteringPlan plan) =>
        plan.Layers.Select(l => l.ToLayerChange());

    /// <summary>How indices of <paramref name="clusters"/> centroids are stored in a model of this opset and IR version.</summary>
    public static ClusterIndexStorage StorageFor(int clusters, long opset, long irVersion) => clusters switch
    {
        > 16 => ClusterIndexStorage.UInt8,
        _ when opset >= 21 && irVersion >= 10 => ClusterIndexStorage.UInt4,
        _ when opset >= 11 => ClusterIndexStorage.PackedNibbles,
        _ => ClusterIndexStorage.UInt8,
    };

    /// <inheritdoc />
    protected override ClusteringPlan Plan(ModelGraph graph, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(context);
        var skipped = new List<string>();
        var sites = LayerWeights.Find(graph, Options.Ops, Options.Exclude, Options.MinElements, skipped);
        var layers = new List<ClusteredLayer>(sites.Count);
        for (int k = 0; k < sites.Count; k++)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            context.Report(Name, "k-means", k, sites.Count);
            var site = sites[k];
            var values = TensorData.ToFloatArray(site.Tensor);
            if (Array.Exists(values, v => !float.IsFinite(v)))
            {
                skipped.Add($"{site.Name} ({site.Consumer.OpType} in {site.Scope.Path}): it holds NaN or infinite values.");
                continue;
            }
            layers.Add(Cluster(graph, site, values));
        }
        context.Report(Name, "k-means", sites.Count, sites.Count);
        if (Options.Refine && layers.Count > 0) CodebookRefiner.Refine(graph, layers, Options, context, Name, skipped);
        return new ClusteringPlan(layers, skipped);
    }

    private ClusteredLayer Cluster(ModelGraph graph, WeightSite site, float[] values)
    {
        var indices = new byte[values.Length];
        long zeros = Options.PreserveZeros ? MagnitudeSelection.CountZeros(values) : 0;
        float[] codebook;
        KMeansResult fit;
        if (zeros > 0 && zeros < values.Length)
        {
            // Index 0 is the zero centroid; the non-zeros share the other K − 1.
            var nonZero = new float[values.Length - zeros];
            for (int i = 0, j = 0; i < values.Length; i++) if (values[i] != 0) nonZero[j++] = values[i];
            fit = KMeans1D.Fit(nonZero, Options.Clusters - 1, Options.Init, Options.Seed, Options.MaxIterations);
            codebook = [0f, .. fit.Centroids];
            var scratch = new byte[1];
            for (int i = 0; i < values.Length; i++)
            {
                if (values[i] == 0) continue; // indices[i] stays 0
                KMeans1D.Assign(values.AsSpan(i, 1), fit.Centroids, scratch, offset: 1);
                indices[i] = scratch[0];
            }
        }
        else
        {
            fit = KMeans1D.Fit(values, Options.Clusters, Options.Init, Options.Seed, Options.MaxIterations);
            codebook = fit.Centroids;
            KMeans1D.Assign(values, codebook, indices);
        }
        // The codebook is stored in the weight's own type: what the model computes is the rounded centroid.
        var stored = TensorData.ToFloatArray(TensorData.FromFloats("codebook", [codebook.Length], codebook, site.DataType));
        float maxError = 0;
        for (int i = 0; i < values.Length; i++) maxError = MathF.Max(maxError, MathF.Abs(values[i] - stored[indices[i]]));
        var storage = StorageFor(codebook.Length, graph.OnnxOpset, graph.IrVersion);
        return new ClusteredLayer(site, stored, indices, storage, fit.Iterations, fit.Converged, fit.SumOfSquaredErrors, maxError, zeros);
    }

    /// <inheritdoc />
    protected override PassResult Rewrite(ModelGraph graph, ClusteringPlan plan, PassContext context)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(context);
        if (plan.Layers.Count == 0) return PassResult.Unchanged(Name, plan.Skipped);
        var changes = new List<string>(plan.Layers.Count);
        foreach (var layer in plan.Layers)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            Store(graph, layer);
            changes.Add(layer.ToString());
        }
        return new PassResult(Name, true, changes, plan.Skipped);
    }

    /// <summary>Replaces the weight by indices and a codebook, and inserts the nodes that gather it back under its name.</summary>
    private static void Store(ModelGraph graph, ClusteredLayer layer)
    {
        var site = layer.Site;
        var scope = site.Scope;
        string name = site.Name;
        var anchor = GraphEdits.FirstConsumer(scope, name);
        if (site.Kind == ConstantKind.Initializer) scope.RemoveInitializer(name);
        else scope.RemoveNode(scope.Producer(name)!);

        var codebook = TensorData.FromFloats(graph.UniqueName(name + "_codebook"), [layer.CodebookValues.Length], layer.CodebookValues, site.DataType);
        scope.AddInitializer(codebook);
        int n = layer.IndexValues.Length;
        void Add(NodeProto node) => scope.InsertBefore(node, anchor);
        string idx32 = graph.UniqueName(name + "_indices_int32");
        switch (layer.Storage)
        {
            case ClusterIndexStorage.UInt8:
            case ClusterIndexStorage.UInt4:
            {
                var indices = layer.Storage == ClusterIndexStorage.UInt8
                    ? TensorData.FromRaw(graph.UniqueName(name + "_indices"), site.Dims, OnnxDataType.UInt8, layer.IndexValues)
                    : TensorData.FromUInt4(graph.UniqueName(name + "_indices"), site.Dims, layer.IndexValues);
                scope.AddInitializer(indices);
                Add(GraphEdits.Node(graph, "Cast", name + "_cast", [indices.Name], [idx32], Int("to", (long)OnnxDataType.Int32)));
                Add(GraphEdits.Node(graph, "Gather", name + "_gather", [codebook.Name, idx32], [name]));
                break;
            }
            default:
            {
                // Value i in the low nibble of byte i, value h + i in its high nibble (h = ⌈n/2⌉).
                int h = (n + 1) / 2;
                var packed = new byte[h];
                for (int i = 0; i < h; i++) packed[i] = (byte)(layer.IndexValues[i] | (h + i < n ? layer.IndexValues[h + i] << 4 : 0));
                var p = TensorData.FromRaw(graph.UniqueName(name + "_nibbles"), [h], OnnxDataType.UInt8, packed);
                // The shifts run on uint32 after a Cast, so the expansion starts with a Cast of low-bit storage, which
                // constant folding (preparation, before quantization) keeps: folding the shifts would store the indices
                // unpacked, and the Gather after them the dense weight.
                var four = TensorData.FromIntegers(graph.UniqueName(name + "_four"), [], OnnxDataType.UInt32, [4L]);
                var twentyEight = TensorData.FromIntegers(graph.UniqueName(name + "_twenty_eight"), [], OnnxDataType.UInt32, [28L]);
                var shape = TensorData.FromInt64(graph.UniqueName(name + "_shape"), [site.Dims.Length], site.Dims);
                scope.AddInitializer(p);
                scope.AddInitializer(four);
                scope.AddInitializer(twentyEight);
                scope.AddInitializer(shape);
                string wide = graph.UniqueName(name + "_nibbles_uint32");
                string hi = graph.UniqueName(name + "_high"), up = graph.UniqueName(name + "_low_up"), lo = graph.UniqueName(name + "_low");
                string all = graph.UniqueName(name + "_indices");
                Add(GraphEdits.Node(graph, "Cast", name + "_widen", [p.Name], [wide], Int("to", (long)OnnxDataType.UInt32)));
                Add(GraphEdits.Node(graph, "BitShift", name + "_high", [wide, four.Name], [hi], Text("direction", "RIGHT")));
                // uint32 shifts drop the bits pushed out: left by 28 then right by 28 keeps the low nibble.
                Add(GraphEdits.Node(graph, "BitShift", name + "_low_up", [wide, twentyEight.Name], [up], Text("direction", "LEFT")));
                Add(GraphEdits.Node(graph, "BitShift", name + "_low", [up, twentyEight.Name], [lo], Text("direction", "RIGHT")));
                Add(GraphEdits.Node(graph, "Concat", name + "_concat", [lo, hi], [all], Int("axis", 0)));
                if (n % 2 == 1)
                {
                    // An odd count leaves one padding nibble at the end.
                    var starts = TensorData.FromInt64(graph.UniqueName(name + "_start"), [1], [0L]);
                    var ends = TensorData.FromInt64(graph.UniqueName(name + "_end"), [1], [(long)n]);
                    scope.AddInitializer(starts);
                    scope.AddInitializer(ends);
                    string trimmed = graph.UniqueName(name + "_indices_trimmed");
                    Add(GraphEdits.Node(graph, "Slice", name + "_trim", [all, starts.Name, ends.Name], [trimmed]));
                    all = trimmed;
                }
                string flat = graph.UniqueName(name + "_flat");
                Add(GraphEdits.Node(graph, "Cast", name + "_cast", [all], [idx32], Int("to", (long)OnnxDataType.Int32)));
                Add(GraphEdits.Node(graph, "Gather", name + "_gather", [codebook.Name, idx32], [flat]));
                Add(GraphEdits.Node(graph, "Reshape", name + "_reshape", [flat, shape.Name], [name]));
                break;
            }
        }
    }



    private static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    private static AttributeProto Text(string name, string value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };
}

/// <summary>What <see cref="KMeansClusteringPass"/> decided: the codebook and indices of each weight, and what it left alone.</summary>
public sealed class ClusteringPlan
{
    internal ClusteringPlan(IReadOnlyList<ClusteredLayer> layers, IReadOnlyList<string> skipped)
    {
        Layers = layers;
        Skipped = skipped;
    }

    /// <summary>The clustered weights, in graph order.</summary>
    public IReadOnlyList<ClusteredLayer> Layers { get; }

    /// <summary>One line per weight left alone, saying why.</summary>
    public IReadOnlyList<string> Skipped { get; }
}

/// <summary>One clustered weight: its codebook, the index of every value, and how far the values moved.</summary>
public sealed class ClusteredLayer
{
    internal ClusteredLayer(WeightSite site, float[] codebook, byte[] indices, ClusterIndexStorage storage, int iterations,
        bool converged, double sse, float maxAbsError, long zeros)
    {
        Site = site; CodebookValues = codebook; IndexValues = indices; Storage = storage; Iterations = iterations;
        Converged = converged; SumOfSquaredErrors = sse; MaxAbsError = maxAbsError; Zeros = zeros;
    }

    internal WeightSite Site { get; }

    internal float[] CodebookValues { get; }

    internal byte[] IndexValues { get; }

    /// <summary>The weight's value name (kept: the Gather produces it).</summary>
    public string Name => Site.Name;

    /// <summary>The op that reads it as a weight (the first such node).</summary>
    public string OpType => Site.Consumer.OpType;

    /// <summary>The graph it is defined in.</summary>
    public string Graph => Site.Scope.Path;

    /// <summary>Its shape.</summary>
    public IReadOnlyList<long> Shape => Site.Dims;

    /// <summary>The centroids as the model computes them (rounded to the weight's type); index 0 is 0.0 when zeros were kept.</summary>
    public IReadOnlyList<float> Codebook => CodebookValues;

    /// <summary>The codebook index of every value, row-major.</summary>
    public IReadOnlyList<byte> Indices => IndexValues;

    /// <summary>How the indices are stored.</summary>
    public ClusterIndexStorage Storage { get; }

    /// <summary>Lloyd iterations run.</summary>
    public int Iterations { get; }

    /// <summary>True when k-means converged before the iteration limit.</summary>
    public bool Converged { get; }

    /// <summary>Σ (w − k-means centroid)² of the non-zero values (all values when no zeros were kept).</summary>
    public double SumOfSquaredErrors { get; }

    /// <summary>The largest |w − codebook[index]|.</summary>
    public float MaxAbsError { get; private set; }

    /// <summary>What data-aware refinement did to the codebook; null when it was not refined (no <see cref="KMeansClusteringOptions.Refine"/>,
    /// or a layer refinement does not handle).</summary>
    public CodebookRefinement? Refinement { get; private set; }

    /// <summary>The weight as the model computes it from <paramref name="codebook"/> and the indices, in the weight's own type.</summary>
    internal TensorProto Expanded(ReadOnlySpan<float> codebook)
    {
        var values = new float[IndexValues.Length];
        for (int i = 0; i < values.Length; i++) values[i] = codebook[IndexValues[i]];
        return TensorData.FromFloats(Name, Site.Dims, values, Site.DataType);
    }

    /// <summary>Records the refinement and, when <paramref name="codebook"/> is given, takes it (same size, already rounded to the weight's type).</summary>
    internal void ApplyRefinement(float[]? codebook, CodebookRefinement refinement, ReadOnlySpan<float> original)
    {
        Refinement = refinement;
        if (codebook is null) return;
        if (codebook.Length != CodebookValues.Length) throw new ArgumentException("a refined codebook keeps its size.", nameof(codebook));
        codebook.CopyTo(CodebookValues, 0);
        float maxError = 0;
        for (int i = 0; i < original.Length; i++) maxError = MathF.Max(maxError, MathF.Abs(original[i] - CodebookValues[IndexValues[i]]));
        MaxAbsError = maxError;
    }

    /// <summary>Exact zeros kept on the zero centroid.</summary>
    public long Zeros { get; }

    /// <summary>Bits per stored index.</summary>
    public int IndexBits => Storage == ClusterIndexStorage.UInt8 ? 8 : 4;

    /// <summary>Payload bytes after: indices plus codebook.</summary>
    public long BytesAfter => (Storage == ClusterIndexStorage.UInt8 ? Indices.Count : (Indices.Count + 1L) / 2)
                              + OnnxDataTypes.ByteCount(Site.DataType, Codebook.Count);

    private string StorageAfter => $"{(Storage == ClusterIndexStorage.UInt4 ? "uint4" : Storage == ClusterIndexStorage.UInt8 ? "uint8" : "4-bit (uint8 nibbles)")} indices, " +
                                   $"{Codebook.Count} {OnnxDataTypes.Name(Site.DataType)} centroids";

    /// <summary>The row for the compression report.</summary>
    public LayerChange ToLayerChange() => new(Name, OpType, Graph, Site.Dims, OnnxDataTypes.Name(Site.DataType), StorageAfter,
        OnnxDataTypes.ByteCount(Site.DataType, Indices.Count), BytesAfter, MaxAbsError);

    /// <summary>One line: name, op, shape, storage and error.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Name} ({OpType} in {Graph}): [{string.Join(",", Site.Dims)}] -> {StorageAfter}, {OnnxDataTypes.ByteCount(Site.DataType, Indices.Count)} -> {BytesAfter} bytes, " +
        $"{Iterations} iterations, max abs error {MaxAbsError:G3}{(Refinement is null ? "" : "; " + Refinement)}");
}
