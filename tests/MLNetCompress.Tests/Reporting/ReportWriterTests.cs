using System.Diagnostics;
using System.Text.Json;
using MLNetCompress.Clustering;
using MLNetCompress.Compression;
using MLNetCompress.Evaluation;
using MLNetCompress.Onnx;
using MLNetCompress.Pruning;
using MLNetCompress.Reporting;
using MLNetCompress.Testing;
using StbImageSharp;
using static MLNetCompress.Tests.Pruning.PruningChecks;

namespace MLNetCompress.Tests.Reporting;

public class ReportWriterTests
{
    private const OnnxDataType F = OnnxDataType.Float;
    private const string Hostile = "<img src=x onerror=alert(1)>|**W**`\"'&</script><script>alert(2)</script>";

    private static CompressionReport HostileReport()
    {
        var model = TestModels.Model().Input("x", F, "batch", 64)
            .Initializer(TestTensors.Random(Hostile, [64, 128], 1))
            .Node("MatMul", ["x", Hostile], ["y"], name: Hostile)
            .Output("y", F, "batch", 128).ToBytes();
        var path = Path.Combine(RealModels.TempDir("report-hostile"), "out.onnx");
        var result = ModelCompressor.Compress(model, [new MagnitudePruningPass(new PruningOptions { Sparsity = 0.5 })],
            new CompressionOptions { OutputPath = path, Verification = new VerifyOptions { MinCosine = 0.5 } });
        return CompressionReport.Build(model, File.ReadAllBytes(path), result);
    }

    [Fact]
    public void HostileLayerName_IsEscapedInHtmlAndMarkdown_AndKeptExactInJson()
    {
        var report = HostileReport();
        Assert.Equal(Hostile, Assert.Single(report.Layers).Weight);

        var html = ReportWriter.ToHtml(report);
        Assert.DoesNotContain("<img", html);
        Assert.DoesNotContain("alert(2)</script>", html);
        Assert.Contains("&lt;img src=x onerror=alert(1)&gt;", html);
        Assert.Equal(1, CountOf(html, "<script"));   // only the page's own render check
        Assert.Equal(1, CountOf(html, "</script>"));

        var md = ReportWriter.ToMarkdown(report);
        Assert.DoesNotContain("<img", md);
        Assert.Contains("&lt;img src=x onerror=alert\\(1\\)&gt;\\|\\*\\*W\\*\\*\\`", md);
        // The layer row still has exactly the table's 14 columns: the name's pipe did not split a cell.
        var row = md.Split('\n').Single(l => l.Contains("onerror", StringComparison.Ordinal) && l.StartsWith("| &lt;", StringComparison.Ordinal));
        Assert.Equal(15, row.Replace("\\|", "", StringComparison.Ordinal).Count(c => c == '|'));

        Assert.Equal(Hostile, ReportWriter.FromJson(ReportWriter.ToJson(report)).Layers[0].Weight);
    }

    [Fact]
    public void WriteAll_WritesTheThreeFiles_AndLeavesNoTemporaryFiles()
    {
        var report = HostileReport();
        var dir = Path.Combine(RealModels.TempDir("report-write"), "nested", "report");
        var paths = ReportWriter.WriteAll(report, dir);

        Assert.Equal(["report.json", "report.md", "report.html"], paths.Select(Path.GetFileName));
        Assert.Equal(3, Directory.GetFiles(dir).Length);
        Assert.Equal(ReportWriter.ToJson(report), File.ReadAllText(paths[0]));
        // Writing again replaces the files in place.
        ReportWriter.WriteAll(report, dir);
        Assert.Equal(3, Directory.GetFiles(dir).Length);
        Assert.Throws<IOException>(() => ReportWriter.WriteAll(report, paths[0]));
    }

    /// <summary>
    /// The CNN sample pruned to 50% and clustered to 16 centroids, evaluated on the bundled Fashion-MNIST subset:
    /// the report page is opened in headless Chromium, which must lay out every plot with a non-zero size and
    /// draw every bar (the page's inline script measures them into #render-check), and paint them in a screenshot.
    /// </summary>
    [Fact]
    public void HtmlReport_RendersItsPlots_InHeadlessChromium()
    {
        string chromium = Chromium.Find();
        var dir = RealModels.TempDir("report-chromium");
        var output = Path.Combine(dir, "cnn.pruned.clustered.onnx");
        var probes = SubsetFeed(RealModels.CnnSample);
        var result = ModelCompressor.Compress(RealModels.CnnSample,
            [new MagnitudePruningPass(new PruningOptions { Sparsity = 0.5 }), new KMeansClusteringPass(new KMeansClusteringOptions { Clusters = 16 })],
            new CompressionOptions { OutputPath = output, Probes = probes, Verification = new VerifyOptions { MinCosine = 0.9, ProbeRows = 64 } });
        var eval = ModelComparer.Compare(RealModels.CnnSample, output, probes, new EvalOptions { MaxRows = 256, BatchSize = 64, WarmupRuns = 1, MinLatencySamples = 2 });
        var report = CompressionReport.Build(result, eval);
        Assert.All(report.Layers, l => Assert.Equal(16, l.Clusters));
        var html = ReportWriter.WriteAll(report, dir)[2];

        var dom = Chromium.Run(chromium, dir, "--dump-dom", new Uri(html).AbsoluteUri);
        int start = dom.IndexOf("<pre id=\"render-check\" hidden=\"\">", StringComparison.Ordinal);
        Assert.True(start >= 0, "the page's render check did not run: " + dom[..Math.Min(dom.Length, 300)]);
        start = dom.IndexOf('>', start) + 1;
        var json = System.Net.WebUtility.HtmlDecode(dom[start..dom.IndexOf("</pre>", start, StringComparison.Ordinal)]);
        var plots = JsonSerializer.Deserialize<List<PlotBox>>(json, new JsonSerializerOptions(JsonSerializerDefaults.Web))!;

        var expected = new[] { "plot-stages", "plot-bytes", "plot-sparsity", "plot-clusters", "plot-bits", "plot-error", "plot-maxerror" }
            .Concat(report.Layers.Select((_, k) => $"hist-{k}")).ToList();
        Assert.Equal(expected.Order(), plots.Select(p => p.Id).Order());
        foreach (var p in plots)
        {
            Assert.True(p.Width > 0 && p.Height > 0, $"{p.Id} is laid out {p.Width}x{p.Height}");
            Assert.True(p.Marks > 0 && p.Drawn == p.Marks, $"{p.Id}: {p.Drawn} of {p.Marks} marks drawn with a size");
        }
        // Bytes: two bars per layer; stages: the original and the written file; histograms: bins before and after.
        Assert.Equal(2 * report.Layers.Count, plots.Single(p => p.Id == "plot-bytes").Marks);
        Assert.Equal(2, plots.Single(p => p.Id == "plot-stages").Marks);

        var png = Path.Combine(dir, "report.png");
        Chromium.Run(chromium, dir, $"--screenshot={png}", "--window-size=1280,2400", "--hide-scrollbars", new Uri(html).AbsoluteUri);
        var image = ImageResult.FromMemory(File.ReadAllBytes(png), ColorComponents.RedGreenBlue);
        long blue = 0, grey = 0;
        for (int i = 0; i < image.Data.Length; i += 3)
        {
            var (r, g, b) = (image.Data[i], image.Data[i + 1], image.Data[i + 2]);
            if (Math.Abs(r - 0x1f) < 12 && Math.Abs(g - 0x6f) < 12 && Math.Abs(b - 0xb4) < 12) blue++;
            if (Math.Abs(r - 0x9a) < 12 && Math.Abs(g - 0xa5) < 12 && Math.Abs(b - 0xb1) < 12) grey++;
        }
        Assert.True(blue > 2000 && grey > 2000, $"the screenshot shows {blue} 'after' and {grey} 'before' pixels: the plots were not painted");
    }

    private sealed record PlotBox(string Id, double Width, double Height, int Marks, int Drawn);

    private static int CountOf(string text, string part)
    {
        int n = 0;
        for (int at = text.IndexOf(part, StringComparison.OrdinalIgnoreCase); at >= 0; at = text.IndexOf(part, at + 1, StringComparison.OrdinalIgnoreCase)) n++;
        return n;
    }
}

/// <summary>Debian's chromium, run headless. The render test needs it: CI installs it, and without it the test fails.</summary>
internal static class Chromium
{
    public static string Find() =>
        new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome" }.FirstOrDefault(File.Exists)
        ?? throw new Xunit.Sdk.XunitException("headless Chromium was not found at /usr/bin/chromium: install chromium (apt-get install chromium) to run the report render test");

    /// <summary>Runs chromium headless with a throwaway profile and returns its stdout.</summary>
    public static string Run(string chromium, string workDir, params string[] args)
    {
        string profile = Path.Combine(workDir, "chromium-profile-" + Guid.NewGuid().ToString("N"));
        try
        {
            return Launch(chromium, profile, args);
        }
        finally
        {
            // Chromium's profile is megabytes of caches; nothing in it is needed afterwards.
            try { if (Directory.Exists(profile)) Directory.Delete(profile, recursive: true); }
            catch (IOException) { }
        }
    }

    private static string Launch(string chromium, string profile, string[] args)
    {
        var start = new ProcessStartInfo(chromium)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-extensions", $"--user-data-dir={profile}" })
            start.ArgumentList.Add(a);
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(90)))
        {
            process.Kill(entireProcessTree: true);
            throw new Xunit.Sdk.XunitException("chromium did not finish within 90 s");
        }
        Assert.True(process.ExitCode == 0, $"chromium exited with {process.ExitCode}: {stderr.Result}");
        return stdout.Result;
    }
}
