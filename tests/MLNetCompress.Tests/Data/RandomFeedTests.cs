using MLNetCompress.Data;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetCompress.Tests.Data;

public class RandomFeedTests
{
    private static readonly ModelInputInfo[] Inputs =
    [
        new("x", TensorElementType.Float, [-1, 3, -1]),
        new("input_ids", TensorElementType.Int64, [-1, -1]),
        new("attention_mask", TensorElementType.Int64, [-1, -1]),
        new("token_type_ids", TensorElementType.Int64, [-1, -1]),
    ];

    [Fact]
    public void ShapesFreeDims_AndKeepsIdsAndMasksValid()
    {
        var batch = new RandomFeed(Inputs, rows: 5).Batches(5).Single();
        Assert.Equal([5L, 3, 16], batch.Inputs["x"].Shape);
        Assert.All(batch.Inputs["x"].FloatData, v => Assert.InRange(v, 0f, 0.99999994f));
        Assert.All(batch.Inputs["input_ids"].Int64Data, v => Assert.InRange(v, 0L, 9L));
        Assert.All(batch.Inputs["attention_mask"].Int64Data, v => Assert.Equal(1L, v));
        Assert.All(batch.Inputs["token_type_ids"].Int64Data, v => Assert.Equal(0L, v));
        Assert.True(batch.Inputs["x"].FloatData.Distinct().Count() > 200);
    }

    [Fact]
    public void SameSeed_SameRows_WhateverTheBatchSize()
    {
        var whole = new RandomFeed(Inputs, rows: 6, seed: 3).Batches(6).Single().Inputs["x"].FloatData;
        var pieces = new RandomFeed(Inputs, rows: 6, seed: 3).Batches(4).SelectMany(b => b.Inputs["x"].FloatData).ToArray();
        Assert.Equal(whole, pieces);
        var other = new RandomFeed(Inputs, rows: 6, seed: 4).Batches(6).Single().Inputs["x"].FloatData;
        Assert.NotEqual(whole, other);
    }
}
