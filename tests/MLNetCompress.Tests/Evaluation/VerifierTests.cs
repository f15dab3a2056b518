using MLNetCompress.Data;
using MLNetCompress.Evaluation;
using MLNetCompress.Testing;

namespace MLNetCompress.Tests.Evaluation;

public class VerifierTests
{
    [Fact]
    public void SameModel_Passes_OnRandomProbes()
    {
        var model = EvaluationTestModels.Mlp();
        var result = Verifier.Verify(model, model);
        Assert.True(result.Passed, result.Reason);
        Assert.Equal(8, result.Rows);
        Assert.StartsWith("passed on 8 probe rows: min cosine 1 ('y'), max abs diff 0", result.Reason);
    }

    [Fact]
    public void SmallPerturbation_PassesLooseAndFailsTightThresholds()
    {
        var original = EvaluationTestModels.Mlp();
        var candidate = EvaluationTestModels.Mlp(0.001f);
        Assert.True(Verifier.Verify(original, candidate).Passed);

        var tight = Verifier.Verify(original, candidate, options: new VerifyOptions { MaxAbsDiff = 1e-7 });
        Assert.False(tight.Passed);
        Assert.StartsWith("output 'y': max abs diff ", tight.Reason);
        Assert.EndsWith(" is above 1E-07", tight.Reason);
    }

    [Fact]
    public void LargePerturbation_FailsOnCosine_WithGivenProbes()
    {
        var probes = new ArrayFeed(TestTensors.RandomValues(20 * 4, 5), 20, new int[20]);
        var result = Verifier.Verify(EvaluationTestModels.Mlp(), EvaluationTestModels.Mlp(3f), probes, new VerifyOptions { ProbeRows = 20 });
        Assert.False(result.Passed);
        Assert.Equal(20, result.Rows);
        Assert.Matches(@"^output 'y': min cosine -?[0-9.E-]+ is below 0\.99$", result.Reason);
        Assert.True(Assert.Single(result.Outputs).MinCosine < 0.99);
    }

    [Fact]
    public void CandidateThatDoesNotLoad_IsAFailedVerification()
    {
        var broken = EvaluationTestModels.Mlp();
        broken = broken[..(broken.Length / 2)];
        var result = Verifier.Verify(EvaluationTestModels.Mlp(), broken);
        Assert.False(result.Passed);
        Assert.StartsWith("the candidate does not load in ONNX Runtime: ", result.Reason);
        Assert.DoesNotContain('\n', result.Reason);
        Assert.Empty(result.Outputs);
    }

    [Fact]
    public void CandidateWithOtherSignature_Fails()
    {
        var result = Verifier.Verify(EvaluationTestModels.Mlp(), EvaluationTestModels.Mlp(inputName: "features"));
        Assert.False(result.Passed);
        Assert.Equal("the candidate has no input 'x'", result.Reason);
    }

    [Fact]
    public void OriginalThatDoesNotLoad_IsReported()
    {
        var result = Verifier.Verify("junk"u8.ToArray(), EvaluationTestModels.Mlp());
        Assert.False(result.Passed);
        Assert.StartsWith("the original model does not load: ", result.Reason);
    }
}
