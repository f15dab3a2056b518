using System.Security.Cryptography;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using MLNetCompress.Clustering;
using MLNetCompress.Onnx;
using MLNetCompress.Onnx.Passes;
using MLNetCompress.Onnx.Proto;
using MLNetCompress.Packing;
using MLNetCompress.Pruning;
using MLNetCompress.Testing;

namespace MLNetCompress.Tests.Packing;

public class PackingTests
{
    private static byte[] RoundTrip(byte[] model, PackOptions? options = null)
    {
        var packed = ModelPacker.Pack(model, options);
        var back = PackedModel.Unpack(packed.Packed);
        Assert.Equal(model.Length, back.Length);
        Assert.True(model.AsSpan().SequenceEqual(back), "unpacked bytes differ from the original");
        return packed.Packed;
    }

    [Fact]
    public void SamplesRoundTripByteExactAndShrink()
    {
        foreach (var path in new[] { RealModels.CnnSample, RealModels.MlpSample })
        {
            var model = File.ReadAllBytes(path);
            var packed = RoundTrip(model, new PackOptions { Quality = 9 });
            Assert.True(packed.Length < model.Length * 0.95, $"{Path.GetFileName(path)}: {packed.Length} of {model.Length} bytes");
        }
    }

    [Fact]
    public void ResNet18RoundTripsByteExact()
    {
        // Quality does not change what comes back; a fast one keeps the test short.
        RoundTrip(File.ReadAllBytes(RealModels.ResNet18), new PackOptions { Quality = 3, Window = 22 });
    }

    [Fact]
    public void PrunedClusteredSparseCnnRoundTripsAndRunsInOrt()
    {
        var graph = ModelGraph.Load(RealModels.CnnSample);
        PassManager.Run(graph, [new MagnitudePruningPass(new PruningOptions { Sparsity = 0.9, Global = true }), new KMeansClusteringPass(new KMeansClusteringOptions { Clusters = 16 })]);
        var clustered = graph.ToBytes();
        var sparse = graph.Clone();
        PassManager.Run(sparse, [new SparseStoragePass()]);
        foreach (var model in new[] { clustered, sparse.ToBytes() })
        {
            var packed = RoundTrip(model);
            Assert.True(packed.Length * 4 < model.Length, $"{packed.Length} of {model.Length} bytes");
            using var session = new InferenceSession(PackedModel.Unpack(packed));
            Assert.Single(session.OutputMetadata);
        }
    }

    [Fact]
    public void LoadReadsAFileForOrt()
    {
        var model = File.ReadAllBytes(RealModels.MlpSample);
        var path = Path.Combine(RealModels.TempDir("pack-load"), "mlp.mlcz");
        File.WriteAllBytes(path, ModelPacker.Pack(model, new PackOptions { Quality = 5 }).Packed);
        var bytes = PackedModel.Load(path);
        Assert.Equal(SHA256.HashData(model), SHA256.HashData(bytes));
        using var session = new InferenceSession(bytes);
        Assert.NotEmpty(session.InputMetadata);
    }

    [Fact]
    public void SplitterFindsEveryInitializerPayloadWhereProtobufPutsIt()
    {
        var model = File.ReadAllBytes(RealModels.CnnSample);
        var ranges = OnnxStreamSplitter.Find(model);
        var proto = ModelProto.Parser.ParseFrom(model);
        var payloads = proto.Graph.Initializer.Where(t => !t.RawData.IsEmpty).Select(t => t.RawData.ToByteArray()).ToList();
        Assert.Equal(payloads.Count, ranges.Count);
        // Independent of the splitter's walk: every range holds exactly one initializer's raw bytes, in file order.
        for (int i = 0; i < ranges.Count; i++)
            Assert.True(model.AsSpan((int)ranges[i].Offset, (int)ranges[i].Length).SequenceEqual(payloads[i]), $"payload {i}");
        Assert.All(ranges.Zip(proto.Graph.Initializer.Where(t => !t.RawData.IsEmpty)),
            p => Assert.Equal(p.Second.DataType == (int)OnnxDataType.Float ? 4 : p.Second.DataType == (int)OnnxDataType.Int64 ? 8 : p.First.ElementSize, p.First.ElementSize));
    }

    [Fact]
    public void ConstantNodeAndSubgraphTensorsAndOddBytesRoundTrip()
    {
        var model = new ModelProto { IrVersion = 8, Graph = new GraphProto { Name = "g" } };
        model.OpsetImport.Add(new OperatorSetIdProto { Version = 13 });
        var t = new TensorProto { Name = "c", DataType = (int)OnnxDataType.Int64, RawData = ByteString.CopyFrom(Enumerable.Range(0, 64).SelectMany(i => BitConverter.GetBytes((long)i * 3)).ToArray()) };
        t.Dims.Add(64);
        var node = new NodeProto { OpType = "Constant" };
        node.Output.Add("c");
        node.Attribute.Add(new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = t });
        model.Graph.Node.Add(node);
        var f = new TensorProto { Name = "f", DataType = (int)OnnxDataType.Float };
        f.FloatData.Add(Enumerable.Range(0, 100).Select(i => i * 0.5f));
        model.Graph.Initializer.Add(f);
        var bytes = model.ToByteArray();
        Assert.Equal(2, OnnxStreamSplitter.Find(bytes).Count);
        RoundTrip(bytes);
        // Not a model at all: kept whole, still exact.
        RoundTrip([0xFF, 0x01, 0x02, 0x03, 0x99]);
        RoundTrip([]);
    }

    [Fact]
    public void TransformsMatchTheirDefinitionAndInvert()
    {
        byte[] data = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        var shuffled = new byte[12];
        ByteTransforms.Shuffle(data, shuffled, 4);
        Assert.Equal(new byte[] { 1, 5, 9, 2, 6, 10, 3, 7, 11, 4, 8, 12 }, shuffled);
        var back = new byte[12];
        ByteTransforms.Unshuffle(shuffled, back, 4);
        Assert.Equal(data, back);

        var ints = new byte[24];
        long[] values = [5, 9, -3];
        for (int i = 0; i < 3; i++) BitConverter.TryWriteBytes(ints.AsSpan(i * 8), values[i]);
        ByteTransforms.Delta(ints, 8);
        Assert.Equal(new long[] { 5, 4, -12 }, Enumerable.Range(0, 3).Select(i => BitConverter.ToInt64(ints, i * 8)));
        ByteTransforms.Undelta(ints, 8);
        Assert.Equal(values, Enumerable.Range(0, 3).Select(i => BitConverter.ToInt64(ints, i * 8)));
    }

    [Fact]
    public void DamagedContainersAreRefusedWithOneLine()
    {
        var packed = ModelPacker.Pack(File.ReadAllBytes(RealModels.MlpSample), new PackOptions { Quality = 5 }).Packed;

        AssertRefused([.. packed[..3]], "not a packed model");
        AssertRefused([.. "ONNX"u8.ToArray(), .. packed[4..]], "not a packed model");
        AssertRefused(packed[..40], "truncated");
        AssertRefused(packed[..(packed.Length - 10)], "truncated");

        var version = (byte[])packed.Clone();
        version[4] = 9;
        AssertRefused(version, "version 9");

        var huge = (byte[])packed.Clone();
        BitConverter.TryWriteBytes(huge.AsSpan(StreamTable + 16 + 8), long.MaxValue); // skeleton's packed length
        AssertRefused(huge, "past the end");

        var bigRaw = (byte[])packed.Clone();
        BitConverter.TryWriteBytes(bigRaw.AsSpan(8), (ulong)long.MaxValue); // original length
        AssertRefused(bigRaw, "damaged header");

        var hash = (byte[])packed.Clone();
        hash[20] ^= 0x40;
        AssertRefused(hash, "SHA-256");

        var body = (byte[])packed.Clone();
        body[^50] ^= 0x5A;
        AssertRefused(body, "damaged");

        AssertRefused([.. packed, 0], "unexpected bytes");
    }

    /// <summary>Where the per-stream lengths start in a version-2 container: after the fixed header and the chunk size.</summary>
    private const int StreamTable = ModelPacker.FixedHeader + 4;

    /// <summary>The streams' (raw, packed) lengths and the chunk lengths, read from a version-2 header by hand.</summary>
    private static (int ChunkBytes, (long Raw, long Packed)[] Streams, uint[] Chunks) Header(byte[] packed)
    {
        Assert.Equal(2, packed[4]);
        int chunkBytes = BitConverter.ToInt32(packed, ModelPacker.FixedHeader);
        var streams = Enumerable.Range(0, packed[48])
            .Select(i => (BitConverter.ToInt64(packed, StreamTable + 16 * i), BitConverter.ToInt64(packed, StreamTable + 16 * i + 8))).ToArray();
        int chunks = streams.Sum(s => (int)((s.Item1 + chunkBytes - 1) / chunkBytes));
        int at = StreamTable + 16 * streams.Length;
        return (chunkBytes, streams, Enumerable.Range(0, chunks).Select(k => BitConverter.ToUInt32(packed, at + 4 * k)).ToArray());
    }

    [Fact]
    public void StreamsSpanningSeveralChunks_RoundTripByteExact_AndTheChunkTableAddsUp()
    {
        // The CNN's 3.2 MB of float weights make four 1 MiB chunks of bytes4; an int64 tensor of 3 MB spans three of bytes8.
        var cnn = File.ReadAllBytes(RealModels.CnnSample);
        var ints = new TensorProto { Name = "i", DataType = (int)OnnxDataType.Int64, RawData = ByteString.CopyFrom(Enumerable.Range(0, 3 << 17).SelectMany(i => BitConverter.GetBytes((long)i * i % 1_000_003)).ToArray()) };
        ints.Dims.Add(3 << 17);
        var model = new ModelProto { IrVersion = 8, Graph = new GraphProto { Name = "g" } };
        model.Graph.Initializer.Add(ints);
        foreach (var bytes in new[] { cnn, model.ToByteArray() })
        {
            var packed = RoundTrip(bytes, new PackOptions { Quality = 5, ChunkBytes = PackOptions.MinChunkBytes });
            var (chunkBytes, streams, chunks) = Header(packed);
            Assert.Equal(1 << 20, chunkBytes);
            Assert.Contains(streams, s => s.Raw > 2 * chunkBytes);
            // Independent of the reader: the header, the chunk lengths and the chunks themselves fill the file exactly.
            Assert.Equal(packed.LongLength, StreamTable + 16L * streams.Length + 4L * chunks.Length + chunks.Sum(c => (long)c));
            Assert.Equal(streams.Sum(s => s.Packed), chunks.Sum(c => (long)c));
            Assert.Equal(bytes.LongLength, streams.Skip(1).Sum(s => s.Raw));
        }
        // The chunk size changes how the bytes are cut, never what comes back.
        RoundTrip(cnn, new PackOptions { Quality = 1, ChunkBytes = 3 << 20 });
        Assert.Throws<ArgumentException>(() => ModelPacker.Pack(cnn, new PackOptions { ChunkBytes = 4096 }));
    }

    [Fact]
    public void ACorruptedChunk_IsRefusedWithOneLine()
    {
        var model = File.ReadAllBytes(RealModels.CnnSample);
        var packed = ModelPacker.Pack(model, new PackOptions { Quality = 5, ChunkBytes = PackOptions.MinChunkBytes }).Packed;
        var (_, streams, chunks) = Header(packed);
        // The second chunk of bytes4 (stream 4): skip the header, the chunk table and every chunk before it.
        int before = streams.Take(4).Sum(s => (int)((s.Raw + (1 << 20) - 1) >> 20)) + 1;
        long start = StreamTable + 16L * streams.Length + 4L * chunks.Length + chunks.Take(before).Sum(c => (long)c);
        var damaged = (byte[])packed.Clone();
        for (int k = 0; k < 16; k++) damaged[start + chunks[before] / 2 + k] ^= 0xA5;
        AssertRefused(damaged, "damaged");

        // A chunk length that no longer adds up to its stream's.
        var table = (byte[])packed.Clone();
        int lengthAt = StreamTable + 16 * streams.Length + 4 * before;
        BitConverter.TryWriteBytes(table.AsSpan(lengthAt), chunks[before] - 1);
        BitConverter.TryWriteBytes(table.AsSpan(lengthAt + 4), chunks[before + 1] + 1);
        AssertRefused(table, "damaged");
    }

    [Fact]
    public void Version1Containers_AreStillRead()
    {
        // A version-1 file is a version-2 file of one chunk per stream without the chunk size and the chunk lengths.
        var model = File.ReadAllBytes(RealModels.MlpSample);
        var packed = ModelPacker.Pack(model, new PackOptions { Quality = 5 }).Packed;
        var (_, streams, chunks) = Header(packed);
        Assert.Equal(streams.Count(s => s.Raw > 0), chunks.Length);
        int tableEnd = StreamTable + 16 * streams.Length;
        byte[] v1 = [.. packed[..ModelPacker.FixedHeader], .. packed[StreamTable..tableEnd], .. packed[(tableEnd + 4 * chunks.Length)..]];
        v1[4] = 1;
        Assert.Equal(model, PackedModel.Unpack(v1));
        v1[4] = 3;
        AssertRefused(v1, "versions 1 and 2");
    }

    private static void AssertRefused(byte[] data, string expected)
    {
        var e = Assert.Throws<PackedModelException>(() => PackedModel.Unpack(data));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }
}
