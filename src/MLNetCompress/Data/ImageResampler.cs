namespace MLNetCompress.Data;

/// <summary>Resize-shorter-side then center-crop of 8-bit RGB images, with PIL's antialiased bilinear filter
/// (a triangle kernel widened by the downscale factor), computing only the cropped pixels. Results are rounded
/// to 0..255 like an 8-bit image. Buffers are reused from image to image.</summary>
internal sealed class ImageResampler
{
    private readonly int _shorter;
    private readonly int _crop;
    private float[] _temp = [];

    public ImageResampler(int resizeShorter, int crop)
    {
        if (crop > resizeShorter) throw new DataSpecException($"images crop size {crop} is larger than the resized shorter side {resizeShorter}");
        _shorter = resizeShorter;
        _crop = crop;
    }

    /// <summary>Writes crop×crop×3 values (HWC, RGB) into <paramref name="destination"/>.</summary>
    public void Run(ReadOnlySpan<byte> rgb, int width, int height, Span<float> destination)
    {
        int newW, newH;
        // torchvision's rule: the shorter side becomes the target, the longer one scales and truncates.
        if (width <= height)
        {
            newW = _shorter;
            newH = Math.Max(_crop, (int)((long)_shorter * height / width));
        }
        else
        {
            newH = _shorter;
            newW = Math.Max(_crop, (int)((long)_shorter * width / height));
        }
        var left = (int)Math.Round((newW - _crop) / 2.0);
        var top = (int)Math.Round((newH - _crop) / 2.0);
        var cols = Coefficients.Create(width, newW, left, _crop);
        var rows = Coefficients.Create(height, newH, top, _crop);

        // Horizontal pass over the source rows the vertical taps touch.
        int y0 = rows.Start[0], y1 = rows.Start[_crop - 1] + rows.Count[_crop - 1];
        var rowStride = _crop * 3;
        var needed = (y1 - y0) * rowStride;
        if (_temp.Length < needed) _temp = new float[needed];
        var temp = _temp.AsSpan(0, needed);
        for (var y = y0; y < y1; y++)
        {
            var src = rgb.Slice(y * width * 3, width * 3);
            var dst = temp.Slice((y - y0) * rowStride, rowStride);
            for (var x = 0; x < _crop; x++)
            {
                var w = cols.Weights.AsSpan(x * cols.Stride, cols.Count[x]);
                var s = cols.Start[x] * 3;
                float r = 0, g = 0, b = 0;
                for (var k = 0; k < w.Length; k++, s += 3)
                {
                    r += src[s] * w[k];
                    g += src[s + 1] * w[k];
                    b += src[s + 2] * w[k];
                }
                dst[x * 3] = r;
                dst[x * 3 + 1] = g;
                dst[x * 3 + 2] = b;
            }
        }

        // Vertical pass, then round to 8-bit values.
        for (var y = 0; y < _crop; y++)
        {
            var w = rows.Weights.AsSpan(y * rows.Stride, rows.Count[y]);
            var outRow = destination.Slice(y * rowStride, rowStride);
            outRow.Clear();
            for (var k = 0; k < w.Length; k++)
            {
                var srcRow = temp.Slice((rows.Start[y] + k - y0) * rowStride, rowStride);
                var wk = w[k];
                for (var i = 0; i < rowStride; i++) outRow[i] += srcRow[i] * wk;
            }
            for (var i = 0; i < rowStride; i++) outRow[i] = Math.Clamp(MathF.Round(outRow[i]), 0f, 255f);
        }
    }

    // PIL's precompute_coeffs for the output positions [offset, offset + count) of a resize inSize -> outSize.
    private sealed class Coefficients
    {
        public required int[] Start { get; init; }
        public required int[] Count { get; init; }
        public required float[] Weights { get; init; }
        public required int Stride { get; init; }

        public static Coefficients Create(int inSize, int outSize, int offset, int count)
        {
            var scale = (double)inSize / outSize;
            var filterScale = Math.Max(scale, 1.0);
            var support = filterScale; // bilinear support 1, widened when shrinking (antialias)
            var stride = (int)Math.Ceiling(support) * 2 + 1;
            var start = new int[count];
            var taps = new int[count];
            var weights = new float[count * stride];
            for (var i = 0; i < count; i++)
            {
                var center = (i + offset + 0.5) * scale;
                var min = Math.Max((int)(center - support + 0.5), 0);
                var max = Math.Min((int)(center + support + 0.5), inSize);
                var n = Math.Min(max - min, stride);
                double sum = 0;
                for (var k = 0; k < n; k++)
                {
                    var t = Math.Abs((k + min - center + 0.5) / filterScale);
                    var w = t < 1 ? 1 - t : 0;
                    weights[i * stride + k] = (float)w;
                    sum += w;
                }
                if (sum > 0)
                    for (var k = 0; k < n; k++) weights[i * stride + k] = (float)(weights[i * stride + k] / sum);
                start[i] = min;
                taps[i] = n;
            }
            return new Coefficients { Start = start, Count = taps, Weights = weights, Stride = stride };
        }
    }
}
