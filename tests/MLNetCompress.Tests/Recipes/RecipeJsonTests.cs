using MLNetCompress.Calibration;
using MLNetCompress.Clustering;
using MLNetCompress.LowRank;
using MLNetCompress.Pruning;
using MLNetCompress.Pruning.Structured;
using MLNetCompress.Quantization.KernelSafety;
using MLNetCompress.Quantization.NBits;
using MLNetCompress.Quantization.Qdq;
using MLNetCompress.Quantization.Storage;
using MLNetCompress.Recipes;
using MLNetCompress.Recipes.Steps;
using MLNetCompress.Testing;

namespace MLNetCompress.Tests.Recipes;

public class RecipeJsonTests
{
    private const string Everything = """
        {
          // every step, with some non-default values
          "name": "all", "description": "every step", "minCosine": 0.97,
          "steps": [
            { "step": "prepare", "opset": 13 },
            { "step": "quantize-static", "perChannel": false, "activations": "s8", "range": { "method": "percentile", "percentile": 99.9 },
              "excludeNodes": ["b", "a"], "calibrationSettings": { "maxRows": 32, "batchSize": 4 } },
            { "step": "quantize-dynamic", "minElements": 2048 },
            { "step": "matmul-nbits", "bits": 8, "blockSize": 64, "algorithm": "gptq" },
            { "step": "prune", "sparsity": 0.5, "global": true, "pattern": "2:4", "layerSparsity": { "w1": 0.25 } },
            { "step": "reconstruct", "damping": 0.05 },
            { "step": "prune-structured", "fraction": 0.25, "criterion": "activation", "reconstruct": true, "roundTo": 8,
              "layerFractions": { "conv2": 0.5 }, "exclude": ["conv1"], "calibrationSettings": { "maxRows": 64 } },
            { "step": "cluster", "clusters": 8, "init": "density", "seed": 3 },
            { "step": "lowrank", "targetParams": 0.5, "conv": "tucker", "dataAware": true },
            { "step": "sparse-storage", "maxSizeRatio": 0.8 },
            { "step": "int8-storage", "perChannel": false, "ops": ["Gemm", "MatMul"] },
            { "step": "weight-storage", "format": "int4", "blockSize": 32, "clip": true, "useNativeInt4": false },
          ]
        }
        """;

    [Fact]
    public void EveryStep_ReadsIntoItsOptionsRecord_AndRoundTrips()
    {
        var recipe = Recipe.Parse(Everything);
        Assert.Equal(RecipeSteps.Names, recipe.Steps.Select(s => s.Name));
        Assert.Equal(0.97, recipe.MinCosine);
        Assert.Equal(13, ((PrepareStep)recipe.Steps[0]).Opset);
        var qdq = ((QuantizeStaticStep)recipe.Steps[1]).Options;
        Assert.False(qdq.PerChannel);
        Assert.Equal(QdqActivationType.S8, qdq.Activations);
        Assert.Equal(RangeMethod.Percentile, qdq.Range.Method);
        Assert.Equal(99.9, qdq.Range.Percentile);
        Assert.True(qdq.ExcludeNodes.SetEquals(["a", "b"]));
        Assert.Equal(32, qdq.CalibrationSettings.MaxRows);
        Assert.Equal(4, qdq.CalibrationSettings.BatchSize);
        var nbits = ((MatMulNBitsStep)recipe.Steps[3]).Options;
        Assert.Equal((8, 64, NBitsAlgorithm.Gptq), (nbits.Bits, nbits.BlockSize, nbits.Algorithm));
        var prune = ((PruneStep)recipe.Steps[4]).Options;
        Assert.Equal(new NMPattern(2, 4), prune.Pattern);
        Assert.True(prune.Global);
        Assert.Equal(0.25, prune.LayerSparsity["w1"]);
        Assert.Equal(0.05, ((ReconstructStep)recipe.Steps[5]).Options.Damping);
        var structured = ((PruneStructuredStep)recipe.Steps[6]).Options;
        Assert.Equal((0.25, ChannelCriterion.Activation, true, 8), (structured.Fraction, structured.Criterion, structured.Reconstruct, structured.RoundTo));
        Assert.Equal(0.5, structured.LayerFractions["conv2"]);
        Assert.True(structured.Exclude.SetEquals(["conv1"]));
        Assert.Equal(64, structured.CalibrationSettings.MaxRows);
        Assert.Null(structured.Calibration);
        var cluster = ((ClusterStep)recipe.Steps[7]).Options;
        Assert.Equal((8, KMeansInit.Density, 3), (cluster.Clusters, cluster.Init, cluster.Seed));
        var lowRank = (LowRankStep)recipe.Steps[8];
        Assert.True(lowRank.DataAware);
        Assert.Equal((0.5, ConvFactorization.Tucker), (lowRank.Options.TargetParams, lowRank.Options.Conv));
        Assert.Equal(0.8, ((SparseStorageStep)recipe.Steps[9]).Options.MaxSizeRatio);
        Assert.True(((Int8StorageStep)recipe.Steps[10]).Options.Ops.SetEquals(["Gemm", "MatMul"]));
        var storage = ((WeightStorageStep)recipe.Steps[11]).Options;
        Assert.Equal((StorageFormat.Int4, 32, true, false, true), (storage.Format, storage.BlockSize, storage.Clip, storage.UseNativeInt4, storage.PerChannel));
        Assert.True(recipe.NeedsCalibration);

        // Written and read back: the same JSON again, and defaults are not written.
        var json = recipe.ToJson();
        Assert.Equal(json, Recipe.Parse(json).ToJson());
        Assert.Contains("\"step\": \"cluster\"", json, StringComparison.Ordinal);
        Assert.DoesNotContain("maxIterations", json, StringComparison.Ordinal);
        Assert.DoesNotContain("calibration\"", json, StringComparison.Ordinal);
        Assert.Contains("\"pattern\": \"2:4\"", json, StringComparison.Ordinal);
        Assert.Contains("\"format\": \"int4\"", json, StringComparison.Ordinal);
        Assert.Contains("\"criterion\": \"activation\"", json, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("uint8", StorageFormat.UInt8)]
    [InlineData("uint4", StorageFormat.UInt4)]
    [InlineData("int2", StorageFormat.Int2)]
    [InlineData("binary", StorageFormat.Binary)]
    public void StorageFormats_ReadAndWriteUnderTheirCliNames(string name, StorageFormat format)
    {
        var recipe = Recipe.Parse($$"""{"steps":[{"step":"weight-storage","format":"{{name}}"}]}""");
        Assert.Equal(format, ((WeightStorageStep)recipe.Steps[0]).Options.Format);
        Assert.Contains($"\"format\": \"{name}\"", recipe.ToJson(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("pair-safe-weights", PairSumGuard.PairSafeWeights)]
    [InlineData("seven-bit-weights", PairSumGuard.SevenBitWeights)]
    [InlineData("reduced-range-activations", PairSumGuard.ReducedRangeActivations)]
    [InlineData("uint8-weights", PairSumGuard.Uint8Weights)]
    [InlineData("none", PairSumGuard.None)]
    public void PairSumGuards_ReadAndWriteUnderReadableNames(string name, PairSumGuard guard)
    {
        var recipe = Recipe.Parse($$"""{"steps":[{"step":"quantize-static","guard":"{{name}}","keepFloatWhereSlower":false,"uint8WeightNodes":["conv1"]}]}""");
        var options = ((QuantizeStaticStep)recipe.Steps[0]).Options;
        Assert.Equal(guard, options.Guard);
        Assert.False(options.KeepFloatWhereSlower);
        Assert.Equal(["conv1"], options.Uint8WeightNodes);
        if (guard != PairSumGuard.PairSafeWeights) Assert.Contains($"\"guard\": \"{name}\"", recipe.ToJson(), StringComparison.Ordinal);
        // The default guard is pair-safe: a recipe that does not name one is guarded.
        Assert.Equal(PairSumGuard.PairSafeWeights, ((QuantizeStaticStep)Recipe.Parse("""{"steps":[{"step":"quantize-static"}]}""").Steps[0]).Options.Guard);
    }

    [Fact]
    public void OptionsBuiltInCode_WriteTheFieldsThatDifferFromTheDefaults()
    {
        var recipe = new Recipe
        {
            Name = "code",
            Steps = [new ClusterStep { Options = new KMeansClusteringOptions { Clusters = 32 } }, new SparseStorageStep()],
        };
        var json = recipe.ToJson();
        var back = Recipe.Parse(json);
        Assert.Equal(32, ((ClusterStep)back.Steps[0]).Options.Clusters);
        Assert.Equal("""{"name":"code","steps":[{"step":"cluster","clusters":32},{"step":"sparse-storage"}]}""",
            System.Text.Json.Nodes.JsonNode.Parse(json)!.ToJsonString());
        Assert.False(back.NeedsCalibration);
    }

    [Theory]
    [InlineData("""{"steps":[{"step":"prepare"},{"step":"clustr"}]}""", "recipe steps[1] (\"clustr\"): unknown step \"clustr\"; use one of prepare, quantize-static")]
    [InlineData("""{"steps":[{"clusters":4}]}""", "recipe steps[0]: the step has no \"step\" field naming it; add \"step\"")]
    [InlineData("""{"steps":[{"step":"cluster","clustrs":4}]}""", "recipe steps[0] (\"cluster\"): unknown field \"clustrs\"; fields of cluster: clusters,")]
    [InlineData("""{"steps":[{"step":"cluster","clusters":"many"}]}""", "recipe steps[0] (\"cluster\"): field \"clusters\" has the wrong type or value")]
    [InlineData("""{"steps":[{"step":"cluster","clusters":1000}]}""", "recipe steps[0] (\"cluster\"): Clusters is 1000; it must be in [2, 256] (field \"clusters\"); fix that value in this step")]
    [InlineData("""{"steps":[{"step":"prune","sparsity":1.5}]}""", "recipe steps[0] (\"prune\"): Sparsity is 1.5; it must be in [0, 1) (field \"sparsity\")")]
    [InlineData("""{"steps":[{"step":"prune","pattern":"4:2"}]}""", "recipe steps[0] (\"prune\"): field \"pattern\" has the wrong type or value")]
    [InlineData("""{"steps":[{"step":"quantize-static","activations":"u4"}]}""", "recipe steps[0] (\"quantize-static\"): field \"activations\" has the wrong type or value")]
    [InlineData("""{"steps":[{"step":"reconstruct"}]}""", "recipe steps[0] (\"reconstruct\"): reconstruct re-fits the weights a prune step zeroes; put it right after")]
    [InlineData("""{"steps":[{"step":"lowrank"}]}""", "recipe steps[0] (\"lowrank\"): set exactly one of Energy, RankRatio, TargetParams and Vbmf (0 are set)")]
    [InlineData("""{"steps":[{"step":"sparse-storage","foo":1}]}""", "recipe steps[0] (\"sparse-storage\"): unknown field \"foo\"; fields of sparse-storage: exclude, format, maxSizeRatio, minElements")]
    [InlineData("""{"steps":[{"step":"weight-storage","format":"int3"}]}""", "recipe steps[0] (\"weight-storage\"): field \"format\" has the wrong type or value")]
    [InlineData("""{"steps":[{"step":"weight-storage","format":"int4","blockSize":12}]}""", "recipe steps[0] (\"weight-storage\"): BlockSize is 12; it must be a multiple of 8 (8, 16, 32, ...) so that blocks start on whole bytes (field \"blockSize\"); fix that value in this step")]
    [InlineData("""{"steps":[{"step":"prune-structured","fraction":1}]}""", "recipe steps[0] (\"prune-structured\"): Fraction is 1; it must be in [0, 1) (field \"fraction\"); fix that value in this step")]
    [InlineData("""{"steps":[{"step":"prune-structured","fraction":0.3,"criterion":"reconstruction"}]}""", "recipe steps[0] (\"prune-structured\"): the Reconstruction criterion ranks channels by the error left after reconstruction: it needs Reconstruct (field \"criterion\")")]
    [InlineData("""{"steps":[]}""", "the recipe has no steps")]
    [InlineData("""{"step":[{"step":"prepare"}]}""", "unknown recipe field \"step\"")]
    [InlineData("""{"steps":[{"step":"prepare"}""", "the recipe is not valid JSON")]
    [InlineData("""{"minCosine":2,"steps":[{"step":"prepare"}]}""", "recipe field \"minCosine\" must be a number in [-1, 1], not 2")]
    public void BadRecipes_FailWithOneLineNamingTheStepFieldAndFix(string json, string expected)
    {
        var e = Assert.Throws<RecipeException>(() => Recipe.Parse(json));
        Assert.StartsWith(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void AStepThatNeedsData_WithoutData_SaysSoBeforeAnythingRuns()
    {
        var recipe = Recipe.Parse("""{"steps":[{"step":"prepare"},{"step":"quantize-static"}]}""");
        Assert.True(recipe.NeedsCalibration);
        var e = Assert.Throws<RecipeException>(() => recipe.Passes(13));
        Assert.StartsWith("recipe steps[1] (\"quantize-static\"): this step needs calibration data; pass --calibration SPEC", e.Message, StringComparison.Ordinal);
        Assert.Equal(1, e.StepIndex);
    }

    [Theory]
    [InlineData("""{"step":"prune-structured","fraction":0.25}""", false)]
    [InlineData("""{"step":"prune-structured","fraction":0.25,"criterion":"activation"}""", true)]
    [InlineData("""{"step":"prune-structured","fraction":0.25,"reconstruct":true}""", true)]
    [InlineData("""{"step":"weight-storage","format":"binary"}""", false)]
    public void NewSteps_AskForCalibrationData_OnlyWhenTheyReadIt(string step, bool needsData)
    {
        var recipe = Recipe.Parse($$"""{"steps":[{{step}}]}""");
        Assert.Equal(needsData, recipe.NeedsCalibration);
        if (needsData)
        {
            var e = Assert.Throws<RecipeException>(() => recipe.Passes(13));
            Assert.StartsWith($"recipe steps[0] (\"{recipe.Steps[0].Name}\"): this step needs calibration data", e.Message, StringComparison.Ordinal);
            return;
        }
        var pass = Assert.Single(recipe.Passes(13));
        if (pass is StructuredPruningPass structured) Assert.Null(structured.Options.Calibration);
        else Assert.Equal(StorageFormat.Binary, Assert.IsType<WeightStoragePass>(pass).Options.Format);
    }

    [Fact]
    public void PruneStructured_GetsTheRunnersDataAndRuntime()
    {
        var recipe = Recipe.Parse("""{"steps":[{"step":"prune-structured","fraction":0.5,"criterion":"activation","calibrationSettings":{"maxRows":32}}]}""");
        var feed = new MLNetCompress.Data.RandomFeed([new("x", Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float, [-1, 4])]);
        var runtime = MLNetCompress.Runtime.RuntimeOptions.Default with { IntraOpThreads = 1 };
        var options = Assert.IsType<StructuredPruningPass>(Assert.Single(recipe.Passes(13, feed, runtime))).Options;
        Assert.Same(feed, options.Calibration);
        Assert.Equal(runtime, options.CalibrationSettings.Runtime);
        Assert.Equal(32, options.CalibrationSettings.MaxRows);
    }

    [Fact]
    public void PruneThenReconstruct_RunAsOneReconstructionPass()
    {
        var recipe = Recipe.Parse("""{"steps":[{"step":"prune","sparsity":0.3},{"step":"reconstruct"},{"step":"prune","sparsity":0.2}]}""");
        var feed = new MLNetCompress.Data.RandomFeed([new("x", Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float, [-1, 4])]);
        var passes = recipe.Passes(13, feed);
        Assert.Collection(passes,
            p => Assert.Equal(0.3, Assert.IsType<ReconstructionPass>(p).Options.Pruning.Sparsity),
            p => Assert.Equal(0.2, Assert.IsType<MagnitudePruningPass>(p).Options.Sparsity));
    }

    [Fact]
    public void ShippedRecipes_AllParse()
    {
        var dir = Path.Combine(RealModels.SamplesDir, "recipes");
        var files = Directory.GetFiles(dir, "*.json");
        Assert.Contains(files, f => f.EndsWith("int8-speed.json", StringComparison.Ordinal));
        foreach (var file in files)
        {
            var recipe = Recipe.Load(file);
            Assert.Equal(Path.GetFileNameWithoutExtension(file), recipe.Name);
            Assert.NotEmpty(recipe.Steps);
        }
    }
}
