using MLNetCompress.Onnx.Passes;

namespace MLNetCompress.Preparation;

/// <summary>
/// The passes that make a float model ready for compression: what is quantized or pruned afterwards is then
/// the graph ONNX Runtime will fuse. (Named <c>PreparationPasses</c>, not <c>Preparation</c>, so the class does
/// not share its namespace's name, which would make <c>Preparation.X</c> ambiguous for callers.)
/// </summary>
public static class PreparationPasses
{
    /// <summary>
    /// Identity/Dropout removal first (it exposes Conv→BatchNormalization pairs and constant chains hidden
    /// behind pass-through nodes), then constant folding (BatchNormalization parameters or weights computed
    /// from constants become initializers), then MatMul+Add → Gemm where A is provably 2-D (exactly the same
    /// computation, and a BatchNormalization after it can then fold too), then BatchNormalization folding, which needs
    /// constant parameters.
    /// </summary>
    public static IReadOnlyList<IGraphPass> Default() =>
        [new RemoveIdentityPass(), new ConstantFoldingPass(), new FuseMatMulAddPass(), new FoldBatchNormPass()];
}
