using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetCompress.Data;
using MLNetCompress.ML.Distillation;
using MLNetCompress.Runtime;

namespace MLNetCompress.Benchmarks.Distillation;

/// <summary>
/// The distillation board: Fashion-MNIST, teacher = the CNN sample; students LbfgsMaximumEntropy and LightGbm on raw
/// pixels (784 floats in [0, 1]), trained on hard labels and on the teacher's soft labels at several temperatures,
/// several seeds each (a seed picks the training rows out of a pool and seeds the trainer). Prints test accuracy
/// mean ± sd, the student's size (saved zip) and per-row latency against the teacher's (ONNX bytes, ORT per-row time).
/// <code>students [--data DIR] [--teacher FILE] [--train N] [--pool N] [--test N] [--seeds K] [--temperatures 1,2,5,10]
///          [--lbfgs-iterations N] [--lightgbm-iterations N] [--drop-threshold P] [--threads T] [--latency-rows N] [--out FILE]</code>
/// The teacher's soft labels are computed here with <see cref="ModelRunner"/> (softmax(z / T) of its logits), once
/// per row, so every configuration sees the same teacher.
/// </summary>
internal static class StudentBoard
{
    private sealed record Settings(string Data, string Teacher, int Train, int Pool, int Test, int Seeds, double[] Temperatures,
        int LbfgsIterations, int LightGbmIterations, double DropThreshold, int Threads, int LatencyRows, string? Out);

    private sealed record Cell(string Student, string Target, List<double> Accuracy, List<long> Bytes, List<double> LatencyUs, List<double> RowsPerSource, List<double> TrainSeconds, List<double> DroppedMass);

    private sealed class InputRow
    {
        public float[] Features { get; set; } = [];
    }

    private sealed class OutputRow
    {
        public float[] Score { get; set; } = [];

        public uint PredictedLabel { get; set; }
    }

    public static int Run(string[] args)
    {
        Settings s;
        try
        {
            s = Parse(args);
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
        var started = Stopwatch.GetTimestamp();
        Console.WriteLine($"students: teacher {s.Teacher}, data {s.Data}: train {s.Train} of a {s.Pool}-row pool, test {s.Test}, {s.Seeds} seeds, T = {string.Join(", ", s.Temperatures)}");

        using var teacher = ModelRunner.Load(s.Teacher, RuntimeOptions.Default, outputNames: ["logits"]);
        var (poolX, poolY, poolZ) = RunTeacher(teacher, new FashionMnistFeed(s.Data, teacher.Inputs, FashionMnistSplit.Train), s.Pool);
        var (testX, testY, testZ) = RunTeacher(teacher, new FashionMnistFeed(s.Data, teacher.Inputs, FashionMnistSplit.Test), s.Test);
        double teacherAccuracy = Accuracy(testZ, testY);
        double teacherLatency = TeacherLatencyUs(teacher, testX, s.LatencyRows);
        long teacherBytes = new FileInfo(s.Teacher).Length;
        Console.WriteLine($"teacher: test accuracy {teacherAccuracy:P2}, {teacherBytes:N0} bytes, {teacherLatency:0.0} µs per row (ORT, batch 1); labelled in {Seconds(started):0} s");

        var ml = new MLContext(0);
        var testView = View(ml, testX, testY, testZ, temperature: 1);
        var cells = new List<Cell>();
        Cell CellFor(string student, string target)
        {
            var cell = cells.Find(c => c.Student == student && c.Target == target);
            if (cell is null) cells.Add(cell = new Cell(student, target, [], [], [], [], [], []));
            return cell;
        }

        var dir = Directory.CreateTempSubdirectory("students-");
        for (var seed = 1; seed <= s.Seeds; seed++)
        {
            var pick = Enumerable.Range(0, poolY.Length).OrderBy(_ => 0).ToArray();
            new Random(seed).Shuffle(pick);
            pick = pick[..s.Train];
            var x = pick.Select(i => poolX[i]).ToArray();
            var y = pick.Select(i => poolY[i]).ToArray();
            var z = pick.Select(i => poolZ[i]).ToArray();
            foreach (var trainer in new[] { StudentTrainer.LbfgsMaximumEntropy, StudentTrainer.LightGbm })
            {
                var configs = new List<(string Name, double Alpha, double T)> { ("hard labels", 1, 1) };
                configs.AddRange(s.Temperatures.Select(t => ($"soft, T = {t.ToString(CultureInfo.InvariantCulture)}", 0.0, t)));
                foreach (var (name, alpha, t) in configs)
                {
                    var options = new DistillationOptions
                    {
                        Trainer = trainer,
                        Alpha = alpha,
                        Temperature = t,
                        DropThreshold = s.DropThreshold,
                        Seed = seed,
                        MaximumIterations = trainer == StudentTrainer.LightGbm ? s.LightGbmIterations : s.LbfgsIterations,
                        NumberOfThreads = s.Threads,
                    };
                    var result = new DistillationTrainer(ml, options).Train(View(ml, x, y, z, t));
                    var accuracy = StudentEvaluation.Accuracy(result.Model, testView).Accuracy;
                    var path = Path.Combine(dir.FullName, $"{trainer}-{seed}-{alpha}-{t}.zip");
                    var bytes = result.Save(path);
                    var latency = StudentLatencyUs(ml, ml.Model.Load(path, out _), testX, s.LatencyRows);
                    var studentName = trainer == StudentTrainer.LightGbm ? "LightGbm" : "LbfgsMaximumEntropy";
                    var cell = CellFor(studentName, name);
                    cell.Accuracy.Add(accuracy);
                    cell.Bytes.Add(bytes);
                    cell.LatencyUs.Add(latency);
                    cell.RowsPerSource.Add(result.Expansion.RowsPerSourceRow);
                    cell.TrainSeconds.Add(result.Elapsed.TotalSeconds);
                    cell.DroppedMass.Add(result.Expansion.MeanDroppedMass);
                    Console.WriteLine($"  seed {seed} {studentName,-20} {name,-12} acc {accuracy:P2}  {bytes,9:N0} B  {latency,7:0.0} µs/row  " +
                                      $"{result.Expansion.RowsPerSourceRow:0.00} rows/row  dropped {result.Expansion.MeanDroppedMass:0.0000}  train {result.Elapsed.TotalSeconds:0.0} s  [{Seconds(started):0} s]");
                }
            }
        }
        dir.Delete(recursive: true);

        var table = Table(s, cells, teacherAccuracy, teacherBytes, teacherLatency, Seconds(started));
        Console.WriteLine();
        Console.WriteLine(table);
        if (s.Out is { } outPath) File.WriteAllText(outPath, table);
        return 0;
    }

    private static string Table(Settings s, List<Cell> cells, double teacherAccuracy, long teacherBytes, double teacherLatency, double seconds)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Fashion-MNIST students of fashion_mnist_cnn.onnx: {s.Train:N0} training rows (a seeded pick of the first {s.Pool:N0}), full {s.Test:N0}-row test set, {s.Seeds} seeds; raw pixels / 255; drop threshold {s.DropThreshold}; L-BFGS {s.LbfgsIterations} iterations, LightGBM {s.LightGbmIterations} rounds, {s.Threads} trainer thread(s). Total {seconds:0} s.");
        sb.AppendLine();
        sb.AppendLine("| model | target | test accuracy (mean ± sd) | size (bytes) | size / teacher | latency per row | latency / teacher | expanded rows per row | train s |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| teacher CNN (ONNX Runtime) | – | {teacherAccuracy * 100:0.00}% | {teacherBytes:N0} | 1.00 | {teacherLatency:0.0} µs | 1.00 | – | – |");
        foreach (var c in cells)
        {
            double mean = c.Accuracy.Average(), sd = Sd(c.Accuracy), bytes = c.Bytes.Average(), latency = Median(c.LatencyUs);
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"| {c.Student} | {c.Target} | {mean * 100:0.00}% ± {sd * 100:0.00} | {bytes:N0} | {bytes / teacherBytes:0.000} | {latency:0.0} µs | {latency / teacherLatency:0.00} | {c.RowsPerSource.Average():0.00} | {c.TrainSeconds.Average():0.0} |");
        }
        return sb.ToString();
    }

    /// <summary>Pixels (as the teacher takes them), labels and logits of the first <paramref name="rows"/> rows.</summary>
    private static (float[][] X, int[] Y, float[][] Z) RunTeacher(ModelRunner teacher, FashionMnistFeed feed, int rows)
    {
        var x = new List<float[]>(rows);
        var y = new List<int>(rows);
        var z = new List<float[]>(rows);
        foreach (var batch in feed.Batches(256, rows))
        {
            var pixels = batch.Inputs[teacher.Inputs[0].Name].FloatData;
            var logits = teacher.Run(batch)["logits"];
            int d = pixels.Length / batch.RowCount;
            for (var i = 0; i < batch.RowCount; i++)
            {
                x.Add(pixels.AsSpan(i * d, d).ToArray());
                y.Add(batch.Labels![i]);
                z.Add(logits.Row(i).ToArray());
            }
        }
        if (x.Count < rows) throw new ArgumentException($"the data has {x.Count} rows, fewer than the {rows} asked for");
        return (x.ToArray(), y.ToArray(), z.ToArray());
    }

    private sealed class SoftRow
    {
        public int Label { get; set; }

        public float[] Features { get; set; } = [];

        public float[] SoftLabel { get; set; } = [];
    }

    /// <summary>A soft-label view (the soft-label file's columns) with softmax(z / T) of the teacher's logits.</summary>
    private static IDataView View(MLContext ml, float[][] x, int[] y, float[][] z, double temperature)
    {
        var rows = new SoftRow[x.Length];
        for (var i = 0; i < x.Length; i++) rows[i] = new SoftRow { Label = y[i], Features = x[i], SoftLabel = Softmax(z[i], temperature) };
        var definition = SchemaDefinition.Create(typeof(SoftRow));
        definition[nameof(SoftRow.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, x[0].Length);
        definition[nameof(SoftRow.SoftLabel)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, z[0].Length);
        return ml.Data.LoadFromEnumerable(rows, definition);
    }

    private static float[] Softmax(float[] z, double t)
    {
        double max = z.Max(), sum = 0;
        var e = new double[z.Length];
        for (var i = 0; i < z.Length; i++) sum += e[i] = Math.Exp((z[i] - max) / t);
        return e.Select(v => (float)(v / sum)).ToArray();
    }

    private static double Accuracy(float[][] logits, int[] labels)
    {
        var correct = 0;
        for (var i = 0; i < labels.Length; i++)
            if (Array.IndexOf(logits[i], logits[i].Max()) == labels[i]) correct++;
        return (double)correct / labels.Length;
    }

    /// <summary>Median µs of one-row ORT runs of the teacher.</summary>
    private static double TeacherLatencyUs(ModelRunner teacher, float[][] x, int rows)
    {
        var input = teacher.Inputs[0];
        long[] shape = input.Dims.Count == 4 ? [1, 1, 28, 28] : [1, x[0].Length];
        var times = new List<double>(rows);
        for (var i = 0; i < rows + 20; i++)
        {
            var tensors = new Dictionary<string, NamedTensor> { [input.Name] = new NamedTensor(x[i % x.Length], shape) };
            var t0 = Stopwatch.GetTimestamp();
            teacher.Run(tensors);
            if (i >= 20) times.Add(Stopwatch.GetElapsedTime(t0).TotalMicroseconds);
        }
        return Median(times);
    }

    /// <summary>Median µs of one-row predictions of the loaded student through an ML.NET PredictionEngine.</summary>
    private static double StudentLatencyUs(MLContext ml, ITransformer model, float[][] x, int rows)
    {
        var definition = SchemaDefinition.Create(typeof(InputRow));
        definition[nameof(InputRow.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, x[0].Length);
        using var engine = ml.Model.CreatePredictionEngine<InputRow, OutputRow>(model, inputSchemaDefinition: definition);
        var times = new List<double>(rows);
        var input = new InputRow();
        var output = new OutputRow();
        for (var i = 0; i < rows + 20; i++)
        {
            input.Features = x[i % x.Length];
            var t0 = Stopwatch.GetTimestamp();
            engine.Predict(input, ref output);
            if (i >= 20) times.Add(Stopwatch.GetElapsedTime(t0).TotalMicroseconds);
        }
        return Median(times);
    }

    private static double Median(List<double> values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        return sorted.Length == 0 ? double.NaN : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static double Sd(List<double> values)
    {
        if (values.Count < 2) return 0;
        var mean = values.Average();
        return Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));
    }

    private static double Seconds(long started) => Stopwatch.GetElapsedTime(started).TotalSeconds;

    private static Settings Parse(string[] args)
    {
        string data = "/usr/share/datasets/fashion-mnist", teacher = FindTeacher();
        int train = 5000, pool = 15000, test = 10000, seeds = 3, lbfgs = 100, lightgbm = 50, threads = 1, latencyRows = 300;
        double drop = 0.01;
        double[] temperatures = [1, 2, 5, 10];
        string? output = null;
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int Int() => int.TryParse(Next(), CultureInfo.InvariantCulture, out var v) && v > 0 ? v : throw new ArgumentException($"{args[i - 1]} takes a whole number ≥ 1");
            switch (args[i])
            {
                case "--data": data = Next(); break;
                case "--teacher": teacher = Next(); break;
                case "--train": train = Int(); break;
                case "--pool": pool = Int(); break;
                case "--test": test = Int(); break;
                case "--seeds": seeds = Int(); break;
                case "--lbfgs-iterations": lbfgs = Int(); break;
                case "--lightgbm-iterations": lightgbm = Int(); break;
                case "--threads": threads = Int(); break;
                case "--latency-rows": latencyRows = Int(); break;
                case "--drop-threshold": drop = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--temperatures": temperatures = Next().Split(',').Select(t => double.Parse(t, CultureInfo.InvariantCulture)).ToArray(); break;
                case "--out": output = Next(); break;
                default: throw new ArgumentException($"unknown option '{args[i]}'");
            }
        }
        if (train > pool) throw new ArgumentException($"--train {train} is more than --pool {pool}");
        return new Settings(data, teacher, train, pool, test, seeds, temperatures, lbfgs, lightgbm, drop, threads, latencyRows, output);
    }

    private static string FindTeacher()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "onnx-samples", "fashion_mnist_cnn.onnx");
            if (File.Exists(candidate)) return candidate;
        }
        return "onnx-samples/fashion_mnist_cnn.onnx";
    }
}
