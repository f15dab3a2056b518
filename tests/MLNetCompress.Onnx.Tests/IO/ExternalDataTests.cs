using System.Buffers.Binary;
using System.Security.Cryptography;
using Google.Protobuf;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Onnx.Tests.Graph;
using MLNetCompress.Testing;
using static MLNetCompress.Onnx.Tests.IO.BadInputTests;

namespace MLNetCompress.Onnx.Tests.IO;

/// <summary>
/// External data: written with ExternalDataMode.Always it reads back identical, ONNX Runtime loads the
/// pair, writes are atomic and never touch the input; locations that leave the model's folder and
/// offsets past the end of the data file are refused.
/// </summary>
public class ExternalDataTests
{
    private static readonly ModelWriteOptions Always = new() { ExternalData = ExternalDataMode.Always };

    private static Dictionary<string, byte[]> Payloads(ModelGraph g) =>
        g.Constants.ToDictionary(c => c.Scope.Path + "/" + c.Name, c => TensorData.RawBytes(c.Tensor).ToArray());

    private static string Hash(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    private static string Entry(TensorProto t, string key) => t.ExternalData.Single(e => e.Key == key).Value;

    [Fact]
    public void Always_WritesASmallModelAndADataFile_ThatReadBackIdentical_AndOrtLoads()
    {
        var source = RealModels.MlpSample;
        var sourceHash = Hash(source);
        var original = ModelGraph.Load(source);
        var dir = RealModels.TempDir("ext-always");
        var path = Path.Combine(dir, "m.onnx");
        original.Save(path, Always);

        Assert.Equal(["m.onnx", "m.onnx.data"], Directory.GetFiles(dir).Select(Path.GetFileName).Order());
        long modelBytes = new FileInfo(path).Length, dataBytes = new FileInfo(path + ".data").Length;
        Assert.True(modelBytes < 4096, $"the .onnx is {modelBytes} bytes; the weights should be in the data file");
        Assert.True(dataBytes >= new FileInfo(source).Length - 4096, $"the data file is only {dataBytes} bytes");
        Assert.Equal(modelBytes + dataBytes, OnnxModelIO.SizeOnDisk(path));

        // The file as written: each large tensor is EXTERNAL, at a 4 KiB-aligned offset, and those bytes of
        // the data file are the tensor's payload.
        var raw = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        var data = File.ReadAllBytes(path + ".data");
        var payloads = Payloads(original);
        int external = 0;
        foreach (var t in raw.Graph.Initializer)
        {
            if (t.DataLocation != TensorProto.Types.DataLocation.External)
            {
                Assert.True(t.RawData.Length < Always.ExternalThresholdBytes);
                continue;
            }
            external++;
            Assert.Equal("m.onnx.data", Entry(t, "location"));
            long offset = long.Parse(Entry(t, "offset")), length = long.Parse(Entry(t, "length"));
            Assert.Equal(0, offset % 4096);
            Assert.True(t.RawData.IsEmpty);
            Assert.Equal(payloads["main/" + t.Name], data.AsSpan((int)offset, (int)length).ToArray());
        }
        Assert.True(external >= 3);

        var reread = ModelGraph.Load(path);
        Assert.Equal(payloads, Payloads(reread));
        Assert.Contains(reread.Constants, c => c.ExternalLocation == "m.onnx.data");
        Assert.Equal(original.ToBytes(), reread.ToBytes()); // inline again, it is the same model

        var xs = TestTensors.RandomValues(2 * 784, 5).Select(v => (v + 1) / 2).ToArray();
        using var x = Ort.Floats(xs, 2, 784);
        var expected = Ort.Run(source, ("input", x));
        var actual = Ort.Run(path, ("input", x));
        Assert.Equal(expected[0].Bytes, actual[0].Bytes);
        Assert.Equal(sourceHash, Hash(source));
    }

    [Fact]
    public void Always_MovesConstantNodeAndSubgraphTensorsToo_AndOrtLoads()
    {
        var model = ModelGraphEditTests.IfModel().ToGraph();
        var dir = RealModels.TempDir("ext-if");
        var path = Path.Combine(dir, "if.onnx");
        model.Save(path, Always with { ExternalThresholdBytes = 16 });
        var reread = ModelGraph.Load(path);
        Assert.Equal(Payloads(model), Payloads(reread));
        // W1 (main), Wt (then branch), c2 (a Constant node's value) came from the data file.
        var fromFile = reread.Constants.Where(c => c.ExternalLocation is not null).Select(c => c.Name).Order(StringComparer.Ordinal);
        Assert.Equal(["W1", "Wt", "c2", "ct"], fromFile);
        using var x = Ort.Floats([0.5f, -1f, 2f, 0.25f, 1.5f, -0.75f, 3f, -2f], 2, 4);
        foreach (bool flag in new[] { true, false })
        {
            using var f = Ort.Bools([flag]);
            Assert.Equal(Ort.Run(model.ToBytes(), ("x", x), ("flag", f))[0].Bytes, Ort.Run(path, ("x", x), ("flag", f))[0].Bytes);
        }
    }

    [Fact]
    public void Auto_StaysInlineForSmallModels()
    {
        var g = ModelGraph.Load(RealModels.MlpSample);
        var dir = RealModels.TempDir("ext-auto");
        var path = Path.Combine(dir, "m.onnx");
        g.Save(path);
        Assert.Equal(["m.onnx"], Directory.GetFiles(dir).Select(Path.GetFileName));
        Assert.Equal(g.ToBytes(), File.ReadAllBytes(path));
        Assert.All(ModelProto.Parser.ParseFrom(File.ReadAllBytes(path)).Graph.Initializer,
            t => Assert.Equal(TensorProto.Types.DataLocation.Default, t.DataLocation));
        // Auto goes external only past its limit: a limit of 1 KB sends this model's weights out.
        g.Save(Path.Combine(dir, "limited.onnx"), new ModelWriteOptions { InlineLimitBytes = 1024 });
        Assert.True(File.Exists(Path.Combine(dir, "limited.onnx.data")));
    }

    [Fact]
    public void Writes_AreAtomic_AndNeverTouchTheInput()
    {
        var dir = RealModels.TempDir("ext-atomic");
        var path = Path.Combine(dir, "m.onnx");
        ModelGraph.Load(RealModels.MlpSample).Save(path, Always);
        var before = (Hash(path), Hash(path + ".data"));

        // Load the pair, save elsewhere, twice: the input pair is unchanged, the outputs are identical.
        var g = ModelGraph.Load(path);
        var outDir = RealModels.TempDir("ext-atomic-out");
        g.Save(Path.Combine(outDir, "a.onnx"), Always);
        g.Save(Path.Combine(outDir, "b.onnx"), Always);
        Assert.Equal(before, (Hash(path), Hash(path + ".data")));
        Assert.Equal(File.ReadAllBytes(Path.Combine(outDir, "a.onnx.data")), File.ReadAllBytes(Path.Combine(outDir, "b.onnx.data")));
        Assert.Equal(["a.onnx", "a.onnx.data", "b.onnx", "b.onnx.data"], Directory.GetFiles(outDir).Select(Path.GetFileName).Order());

        // Saving over the input itself works: everything was read into memory first.
        g.Save(path, Always);
        Assert.Equal(Payloads(g), Payloads(ModelGraph.Load(path)));
        Assert.Equal(["m.onnx", "m.onnx.data"], Directory.GetFiles(dir).Select(Path.GetFileName).Order());

        // A write that fails (the target is a folder) leaves no temp files behind.
        var blocked = Path.Combine(outDir, "blocked.onnx");
        Directory.CreateDirectory(blocked);
        Assert.ThrowsAny<IOException>(() => g.Save(blocked, Always));
        Assert.ThrowsAny<IOException>(() => g.Save(blocked));
        Assert.DoesNotContain(Directory.GetFiles(outDir), f => f.EndsWith(".tmp", StringComparison.Ordinal));
    }

    [Fact]
    public void ExternalModelFromBytes_NeedsItsFolder()
    {
        var dir = RealModels.TempDir("ext-bytes");
        var path = Path.Combine(dir, "m.onnx");
        ModelGraph.Load(RealModels.MlpSample).Save(path, Always);
        var bytes = File.ReadAllBytes(path);
        AssertFormatError(() => ModelGraph.FromBytes(bytes), "keeps tensors in external data files");
        var g = ModelGraph.FromBytes(bytes, new ModelReadOptions { BaseDirectory = dir });
        Assert.Equal(Payloads(ModelGraph.Load(RealModels.MlpSample)), Payloads(g));
        AssertFormatError(() => ModelGraph.Load(path, new ModelReadOptions { MaxExternalDataBytes = 1000 }), "MaxExternalDataBytes");
    }

    // ---- hostile locations and offsets --------------------------------------------------------

    /// <summary>A model whose 4-float initializer W lives in external data as described.</summary>
    private static string ModelWithExternalW(string dir, string? location, string? offset = null, string? length = null)
    {
        var w = TestTensors.Header("W", [4], OnnxDataType.Float);
        w.DataLocation = TensorProto.Types.DataLocation.External;
        if (location is not null) w.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        if (offset is not null) w.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset });
        if (length is not null) w.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = length });
        var path = Path.Combine(dir, "model.onnx");
        TestModels.Model().Input("x", OnnxDataType.Float, 4).Initializer(w).Node("Add", ["x", "W"], ["y"]).Output("y", OnnxDataType.Float, 4).Save(path);
        return path;
    }

    private static byte[] FourFloats(float a, float b, float c, float d)
    {
        var bytes = new byte[16];
        foreach (var (v, i) in new[] { a, b, c, d }.Select((v, i) => (v, i))) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), v);
        return bytes;
    }

    [Fact]
    public void LocationsInsideTheFolder_AreRead_WithOffsetAndLength()
    {
        var dir = RealModels.TempDir("ext-ok");
        Directory.CreateDirectory(Path.Combine(dir, "weights"));
        File.WriteAllBytes(Path.Combine(dir, "weights", "w.bin"), [0xAA, 0xBB, .. FourFloats(1, 2, 3, 4), 0xCC]);
        var g = ModelGraph.Load(ModelWithExternalW(dir, "weights/w.bin", "2", "16"));
        var w = Assert.Single(g.Constants);
        Assert.Equal([1f, 2f, 3f, 4f], w.ToFloats());
        Assert.Equal("weights/w.bin", w.ExternalLocation);
        // No length: to the end of the file; "./" is inside the folder; a link that stays inside is fine.
        File.WriteAllBytes(Path.Combine(dir, "exact.bin"), FourFloats(5, 6, 7, 8));
        Assert.Equal([5f, 6f, 7f, 8f], ModelGraph.Load(ModelWithExternalW(dir, "./exact.bin")).Constants.Single().ToFloats());
        File.CreateSymbolicLink(Path.Combine(dir, "alias.bin"), Path.Combine(dir, "exact.bin"));
        Assert.Equal([5f, 6f, 7f, 8f], ModelGraph.Load(ModelWithExternalW(dir, "alias.bin")).Constants.Single().ToFloats());
        // ORT agrees on the offset and length it reads.
        using var x = Ort.Floats([0f, 0f, 0f, 0f], 4);
        Assert.Equal([1f, 2f, 3f, 4f], Ort.Run(ModelWithExternalW(dir, "weights/w.bin", "2", "16"), ("x", x))[0].Floats);
    }

    [Fact]
    public void LocationsOutsideTheFolder_AreRefused()
    {
        var root = RealModels.TempDir("ext-escape");
        var dir = Path.Combine(root, "model");
        var outside = Path.Combine(root, "outside");
        Directory.CreateDirectory(dir);
        Directory.CreateDirectory(outside);
        var secret = Path.Combine(outside, "secret.bin");
        File.WriteAllBytes(secret, FourFloats(9, 9, 9, 9));

        AssertFormatError(() => ModelGraph.Load(ModelWithExternalW(dir, secret)), "absolute path");
        AssertFormatError(() => ModelGraph.Load(ModelWithExternalW(dir, "../outside/secret.bin")), "leaves the model's folder");
        AssertFormatError(() => ModelGraph.Load(ModelWithExternalW(dir, "sub/../../outside/secret.bin")), "leaves the model's folder");
        AssertFormatError(() => ModelGraph.Load(ModelWithExternalW(dir, "..\\outside\\secret.bin")), "leaves the model's folder");
        // A link to the file, and a link to a folder on the way, both pointing out.
        File.CreateSymbolicLink(Path.Combine(dir, "link.bin"), secret);
        AssertFormatError(() => ModelGraph.Load(ModelWithExternalW(dir, "link.bin")), "a link that points outside");
        Directory.CreateSymbolicLink(Path.Combine(dir, "sub"), outside);
        AssertFormatError(() => ModelGraph.Load(ModelWithExternalW(dir, "sub/secret.bin")), "a link that points outside");
        File.CreateSymbolicLink(Path.Combine(dir, "relative.bin"), "../outside/secret.bin");
        AssertFormatError(() => ModelGraph.Load(ModelWithExternalW(dir, "relative.bin")), "a link that points outside");
        // A chain of links that ends outside.
        File.CreateSymbolicLink(Path.Combine(dir, "hop.bin"), Path.Combine(dir, "link.bin"));
        AssertFormatError(() => ModelGraph.Load(ModelWithExternalW(dir, "hop.bin")), "a link that points outside");
    }

    [Fact]
    public void OffsetsAndLengthsPastTheEnd_AreRefused()
    {
        var dir = RealModels.TempDir("ext-range");
        File.WriteAllBytes(Path.Combine(dir, "w.bin"), FourFloats(1, 2, 3, 4));
        AssertFormatError(() => ModelGraph.Load(ModelWithExternalW(dir, "w.bin", "8", "16")), "past the end of that 16-byte file");
        AssertFormatError(() => ModelGraph.Load(ModelWithExternalW(dir, "w.bin", "17")), "past the end");
        AssertFormatError(() => ModelGraph.Load(ModelWithExternalW(dir, "w.bin", "0", "9223372036854775807")), "past the end");
        AssertFormatError(() => ModelGraph.Load(ModelWithExternalW(dir, "w.bin", "4")), "holds 12 bytes");
        AssertFormatError(() => ModelGraph.Load(ModelWithExternalW(dir, "w.bin", "-4", "16")), "not a non-negative integer");
        AssertFormatError(() => ModelGraph.Load(ModelWithExternalW(dir, "w.bin", "0", "sixteen")), "not a non-negative integer");
        AssertFormatError(() => ModelGraph.Load(ModelWithExternalW(dir, "missing.bin")), "does not exist");
        AssertFormatError(() => ModelGraph.Load(ModelWithExternalW(dir, null)), "names no location");
        AssertFormatError(() => ModelGraph.Load(ModelWithExternalW(dir, "")), "empty external data location");
        AssertFormatError(() => ModelGraph.Load(ModelWithExternalW(dir, "w\n.bin")), "does not exist");
    }
}
