// ML.NET image pipeline with a compressed ResNet18 featurizer:
//   LoadImages -> ResizeImages -> ExtractPixels -> ResNetPreprocess -> Compress(ResNet18, int8-speed) -> SDCA classifier,
// on Fashion-MNIST images written out as PNG files, next to the same pipeline with the original ResNet18.
//   dotnet run --project samples/ResNet18Pipeline [-- --train N --test N]
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetCompress.Data;
using ResNet18Pipeline;

int train = Arg("--train", 400), test = Arg("--test", 200);
var subset = FashionMnistImages.FindSubset();
var folder = Path.Combine(Path.GetTempPath(), $"resnet18-pipeline-{Environment.ProcessId}");
var ml = new MLContext(seed: 1);
try
{
    var trainRows = FashionMnistImages.Write(subset, FashionMnistSplit.Train, train, folder);
    var testRows = FashionMnistImages.Write(subset, FashionMnistSplit.Test, test, folder);
    Console.WriteLine($"Fashion-MNIST: {trainRows.Length} training and {testRows.Length} test images written as PNG to {folder}");

    var trainData = ml.Data.LoadFromEnumerable(trainRows);
    var testData = ml.Data.LoadFromEnumerable(testRows);

    var (originalScored, originalTime) = FitAndScore(ImagePipeline.Original(ml), trainData, testData);
    var compress = ImagePipeline.Compressed(ml, ImagePipeline.Int8Recipe(subset));
    var (compressedScored, compressedTime) = FitAndScore(compress, trainData, testData);

    var a = Metrics(originalScored);
    var b = Metrics(compressedScored);
    var result = compress.Result!;
    var cosines = Features(originalScored).Zip(Features(compressedScored), Cosine).ToArray();
    Console.WriteLine();
    Console.WriteLine($"ResNet18 featurizer   {"bytes",12}  {"accuracy",9}  {"macro acc.",10}  {"fit+score s",11}");
    Console.WriteLine($"original              {result.BytesBefore,12:N0}  {a.MicroAccuracy,9:P1}  {a.MacroAccuracy,10:P1}  {originalTime,11:F1}");
    Console.WriteLine($"compressed (int8)     {result.BytesAfter,12:N0}  {b.MicroAccuracy,9:P1}  {b.MacroAccuracy,10:P1}  {compressedTime,11:F1}");
    Console.WriteLine();
    Console.WriteLine($"model {result.CompressionRatio:F2}x smaller; compression verified on {result.Verification.ProbeRows} rows: {result.Verification.Summary}");
    Console.WriteLine($"features of the {cosines.Length} test images, compressed vs original: cosine mean {cosines.Average():F4}, min {cosines.Min():F4}");
    Console.WriteLine($"predictions that agree: {Predictions(originalScored).Zip(Predictions(compressedScored)).Count(p => p.First == p.Second)} of {cosines.Length}");
}
finally
{
    if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
}

(IDataView Scored, double Seconds) FitAndScore(IEstimator<Microsoft.ML.Transforms.Onnx.OnnxTransformer> resnet, IDataView trainData, IDataView testData)
{
    var clock = Stopwatch.StartNew();
    var model = ImagePipeline.Classifier(ml, folder, resnet).Fit(trainData);
    // Cached so that the metrics, the features and the predictions come from one scoring pass.
    var scored = ml.Data.Cache(model.Transform(testData));
    _ = Metrics(scored);
    return (scored, clock.Elapsed.TotalSeconds);
}

MulticlassClassificationMetrics Metrics(IDataView scored) => ml.MulticlassClassification.Evaluate(scored, "LabelKey");

float[][] Features(IDataView scored) => scored.GetColumn<VBuffer<float>>(ImagePipeline.Features).Select(v => v.DenseValues().ToArray()).ToArray();

uint[] Predictions(IDataView scored) => scored.GetColumn<uint>("PredictedLabel").ToArray();

static double Cosine(float[] x, float[] y)
{
    double dot = 0, nx = 0, ny = 0;
    for (int i = 0; i < x.Length; i++) { dot += (double)x[i] * y[i]; nx += (double)x[i] * x[i]; ny += (double)y[i] * y[i]; }
    return dot / Math.Sqrt(nx * ny);
}

int Arg(string name, int fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v > 0 ? v : fallback;
}
