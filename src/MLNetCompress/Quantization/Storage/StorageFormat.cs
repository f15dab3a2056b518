namespace MLNetCompress.Quantization.Storage;

/// <summary>How many bits a stored weight value takes, and what the values mean.</summary>
public enum StorageFormat
{
    /// <summary>Symmetric int8: <c>q</c> in [-127, 127], <c>w ≈ q · scale</c>, <c>scale = max|w| / 127</c>.</summary>
    Int8,

    /// <summary>Symmetric int4: <c>q</c> in [-7, 7], <c>scale = max|w| / 7</c>; two values per byte, the first in the low nibble.</summary>
    Int4,

    /// <summary>Symmetric 2-bit: <c>q</c> in {-1, 0, 1} (two's complement bits), <c>scale = max|w|</c>; four values per byte, the first in the lowest bits.</summary>
    Int2,

    /// <summary>1-bit, as in XNOR-Net: <c>w ≈ sign(w) · scale</c> with <c>scale = mean|w|</c> (sign(0) = +1); eight values per byte, the first in the lowest bit (1 = +1, 0 = -1).</summary>
    Binary,

    /// <summary>
    /// Asymmetric uint8: <c>q</c> in [0, 255], <c>w ≈ (q − zp) · scale</c> with <c>scale = (max − min) / 255</c> and
    /// <c>zp = round(−min / scale)</c> over the block's range widened to hold 0, so an exact 0 stays exactly 0.
    /// </summary>
    [System.Text.Json.Serialization.JsonStringEnumMemberName("uint8")] // recipes: "uint8", not the kebab-case "u-int8"
    UInt8,

    /// <summary>Asymmetric uint4: <c>q</c> in [0, 15], <c>scale = (max − min) / 15</c>, as <see cref="UInt8"/>; two values per byte, the first in the low nibble.</summary>
    [System.Text.Json.Serialization.JsonStringEnumMemberName("uint4")]
    UInt4,
}

/// <summary>Facts about each <see cref="StorageFormat"/>.</summary>
public static class StorageFormats
{
    /// <summary>Bits per stored value: 8, 4, 2 or 1.</summary>
    public static int Bits(this StorageFormat format) => format switch
    {
        StorageFormat.Int8 or StorageFormat.UInt8 => 8,
        StorageFormat.Int4 or StorageFormat.UInt4 => 4,
        StorageFormat.Int2 => 2,
        StorageFormat.Binary => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "unknown storage format"),
    };

    /// <summary>Values packed into one byte: 1, 2, 4 or 8.</summary>
    public static int ValuesPerByte(this StorageFormat format) => 8 / format.Bits();

    /// <summary>
    /// The largest quantized magnitude of the symmetric integer formats (127, 7, 1); 1 for binary (its values are ±1);
    /// the largest code of the asymmetric ones (255, 15).
    /// </summary>
    public static int QMax(this StorageFormat format) => format switch
    {
        StorageFormat.Binary => 1,
        StorageFormat.UInt8 or StorageFormat.UInt4 => (1 << format.Bits()) - 1,
        _ => (1 << (format.Bits() - 1)) - 1,
    };

    /// <summary>True for uint8 and uint4: unsigned codes with a zero point (a per-block offset), the range min..max instead of ±max|w|.</summary>
    public static bool IsAsymmetric(this StorageFormat format) => format is StorageFormat.UInt8 or StorageFormat.UInt4;

    /// <summary>The name used on the command line and in reports: int8, int4, int2, binary, uint8, uint4.</summary>
    public static string Name(this StorageFormat format) => format switch
    {
        StorageFormat.Binary => "binary",
        StorageFormat.UInt8 or StorageFormat.UInt4 => "uint" + format.Bits(),
        _ => "int" + format.Bits(),
    };

    /// <summary>Parses <c>int8</c>, <c>uint8</c>, <c>int4</c>, <c>uint4</c>, <c>int2</c> or <c>binary</c> (case-insensitive); false for anything else.</summary>
    public static bool TryParse(string? name, out StorageFormat format)
    {
        foreach (var f in Enum.GetValues<StorageFormat>())
            if (string.Equals(f.Name(), name, StringComparison.OrdinalIgnoreCase))
            {
                format = f;
                return true;
            }
        format = default;
        return false;
    }
}
