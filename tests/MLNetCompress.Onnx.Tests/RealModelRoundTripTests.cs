using MLNetCompress.Onnx;
using MLNetCompress.Testing;
using Microsoft.ML.OnnxRuntime;

namespace MLNetCompress.Onnx.Tests;

public class RealModelRoundTripTests
{
    [Fact]
    public void ResNet18_LoadsWithItsConstantsAndIr3Inputs()
    {
        var g = ModelGraph.Load(RealModels.ResNet18);
        Assert.Equal(3, g.IrVersion);
        Assert.Equal(8, g.OnnxOpset);
        // IR 3 lists initializers among the inputs; the real signature has just the image.
        Assert.Single(g.Signature.Inputs);
        Assert.True(g.Constants.Count() > 20);
    }

    [Fact]
    public void MiniLm_Loads()
    {
        var g = ModelGraph.Load(RealModels.MiniLm);
        Assert.Equal(13, g.OnnxOpset);
        Assert.Equal(3, g.Signature.Inputs.Count);
    }
}
