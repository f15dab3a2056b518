using MLNetCompress.Data;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetCompress.Tests.Data;

public class NpyTests
{
    [Fact]
    public void V1Float32_ReadsShapeAndValues()
    {
        var bytes = DataTestFiles.Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", DataTestFiles.Floats(1, 2, 3, 4, 5, 6.5f));
        var a = NpyArray.Read(new MemoryStream(bytes), "a.npy");
        Assert.Equal(NpyDType.Float32, a.DType);
        Assert.Equal([2L, 3], a.Shape);
        var dst = new float[3];
        a.CopyRows(1, 1, dst);
        Assert.Equal([4f, 5f, 6.5f], dst);
    }

    [Fact]
    public void V2Int64AndOneDimShape()
    {
        var bytes = DataTestFiles.Npy("{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", DataTestFiles.Int64s(7, -1, long.MaxValue, 0), major: 2);
        var a = NpyArray.Read(new MemoryStream(bytes), "b.npy");
        Assert.Equal([4L], a.Shape);
        Assert.Equal(1, a.RowLength);
        var dst = new long[4];
        a.CopyRows(0, 4, dst);
        Assert.Equal([7L, -1, long.MaxValue, 0], dst);
    }

    [Fact]
    public void Float64AndInt32_ConvertToTheModelsType()
    {
        var f8 = NpyArray.Read(new MemoryStream(DataTestFiles.Npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }", DataTestFiles.Doubles(0.25, -3))), "c");
        var f = new float[2];
        f8.CopyRows(0, 1, f);
        Assert.Equal([0.25f, -3f], f);

        var i4 = NpyArray.Read(new MemoryStream(DataTestFiles.Npy("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 1), }", DataTestFiles.Int32s(5, -6))), "d");
        var l = new long[2];
        i4.CopyRows(0, 2, l);
        Assert.Equal([5L, -6], l);
        i4.CopyRows(0, 2, f);
        Assert.Equal([5f, -6f], f);
    }

    [Fact]
    public void WriteThenRead_RoundTrips()
    {
        var ms = new MemoryStream();
        float[] values = [1, 2, 3, 4, 5, 6, 7, 8];
        NpyArray.Write(ms, values, [2, 2, 2]);
        Assert.Equal(0, (ms.Length - values.Length * 4) % 64); // header padded to 64 bytes
        ms.Position = 0;
        var a = NpyArray.Read(ms, "rt");
        Assert.Equal([2L, 2, 2], a.Shape);
        var dst = new float[8];
        a.CopyRows(0, 2, dst);
        Assert.Equal(values, dst);
    }

    [Theory]
    [InlineData("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", "Fortran order")]
    [InlineData("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", "dtype '>f4'")]
    [InlineData("{'descr': '<u2', 'fortran_order': False, 'shape': (2, 2), }", "dtype '<u2'")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", "scalar")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", "is truncated: shape (2, 3) <f4 needs 24 bytes of data, found 16")]
    public void BadFiles_GiveOneLineErrors(string dict, string expected)
    {
        var bytes = DataTestFiles.Npy(dict, DataTestFiles.Floats(1, 2, 3, 4));
        var e = Assert.Throws<DataSpecException>(() => NpyArray.Read(new MemoryStream(bytes), "bad.npy"));
        Assert.Contains(expected, e.Message);
        Assert.Contains("bad.npy", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void NotNpy_AndUnknownVersion()
    {
        var e = Assert.Throws<DataSpecException>(() => NpyArray.Read(new MemoryStream("PK\x03\x04 not npy"u8.ToArray()), "x.npy"));
        Assert.Contains("magic", e.Message);
        var v9 = DataTestFiles.Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", DataTestFiles.Floats(1));
        v9[6] = 9;
        e = Assert.Throws<DataSpecException>(() => NpyArray.Read(new MemoryStream(v9), "x.npy"));
        Assert.Contains("version 9", e.Message);
    }

    [Fact]
    public void Feed_ChecksShapeAndType_AndBatches()
    {
        var path = Path.Combine(DataTestFiles.TempDir("npy"), "rows.npy");
        File.WriteAllBytes(path, DataTestFiles.Npy("{'descr': '<f8', 'fortran_order': False, 'shape': (5, 4), }", DataTestFiles.Doubles(Enumerable.Range(0, 20).Select(i => (double)i).ToArray())));

        var feed = new NpyFeed(path, [new ModelInputInfo("x", TensorElementType.Float, [-1, 4])]);
        var batches = feed.Batches(2).ToList();
        Assert.Equal([2, 2, 1], batches.Select(b => b.RowCount));
        Assert.Equal([16f, 17, 18, 19], batches[2].Inputs["x"].FloatData);
        Assert.Null(batches[0].Labels);

        var e = Assert.Throws<DataSpecException>(() => new NpyFeed(path, [new ModelInputInfo("x", TensorElementType.Float, [-1, 3, 224, 224])]));
        Assert.Equal("npy rows.npy gives [N,4] but model input 'x' wants [N,3,224,224]", e.Message);
        e = Assert.Throws<DataSpecException>(() => new NpyFeed(path, [new ModelInputInfo("ids", TensorElementType.Int64, [-1, 4])]));
        Assert.Contains("holds Float64 but model input 'ids' wants Int64", e.Message);
    }
}
