using MLNetCompress.Quantization.Storage;

namespace MLNetCompress.Tests.Quantization.Storage;

/// <summary>Bit layouts against bytes worked out by hand.</summary>
public class BitPackingTests
{
    private static byte[] Pack(StorageFormat format, params sbyte[] codes)
    {
        var packed = new byte[BitPacking.PackedLength(format, codes.Length)];
        BitPacking.Pack(format, codes, packed);
        return packed;
    }

    [Fact]
    public void Int4_TwoPerByte_FirstInTheLowNibble_TwosComplement()
    {
        // [1, -1] -> 0x1 | 0xF << 4; [7, -7] -> 0x7 | 0x9 << 4; [0, 3] -> 0x30; [-2] -> 0xE, high nibble padded with 0.
        Assert.Equal(new byte[] { 0xF1, 0x97, 0x30, 0x0E }, Pack(StorageFormat.Int4, 1, -1, 7, -7, 0, 3, -2));
    }

    [Fact]
    public void Int2_FourPerByte_FirstInTheLowestBits()
    {
        // [1, -1, 0, -2] -> 01 | 11 << 2 | 00 << 4 | 10 << 6 = 0x01 + 0x0C + 0x80 = 0x8D; [1] -> 0x01.
        Assert.Equal(new byte[] { 0x8D, 0x01 }, Pack(StorageFormat.Int2, 1, -1, 0, -2, 1));
    }

    [Fact]
    public void Binary_EightPerByte_FirstInTheLowestBit_OneMeansPlus()
    {
        // bits 1,0,0,1,1,1,0,1 from the lowest: 0b1011_1001 = 0xB9; then bits 0,1: 0b10.
        Assert.Equal(new byte[] { 0xB9, 0x02 }, Pack(StorageFormat.Binary, 1, -1, -1, 1, 1, 1, -1, 1, -1, 1));
    }

    [Fact]
    public void UInt4_TwoPerByte_FirstInTheLowNibble_Unsigned()
    {
        // [1, 15] -> 0x1 | 0xF << 4 = 0xF1; [8, 9] -> 0x98; [0, 3] -> 0x30; [14] -> 0x0E, high nibble padded with 0.
        Assert.Equal(new byte[] { 0xF1, 0x98, 0x30, 0x0E }, Pack(StorageFormat.UInt4, 1, 15, 8, 9, 0, 3, 14));
        // Unpacked without sign extension: 0xF1's high nibble is 15, not -1.
        Assert.Equal(15, BitPacking.Unpack(StorageFormat.UInt4, [0xF1], 1));
    }

    [Fact]
    public void UInt8_IsOneByteEach_TheCodesBitsAsTheByte()
    {
        // uint8 codes travel as sbyte bits: 200 is unchecked((sbyte)200) = -56.
        Assert.Equal(new byte[] { 0x00, 0xC8, 0xFF }, Pack(StorageFormat.UInt8, 0, unchecked((sbyte)200), unchecked((sbyte)255)));
        Assert.Equal(200, BitPacking.Unpack(StorageFormat.UInt8, [0x00, 0xC8], 1));
    }

    [Fact]
    public void Int8_IsOneByteEach()
    {
        Assert.Equal(new byte[] { 0x01, 0xFF, 0x81 }, Pack(StorageFormat.Int8, 1, -1, -127));
    }

    [Theory]
    [InlineData(StorageFormat.Int4, 8)]
    [InlineData(StorageFormat.Int4, -9)]
    [InlineData(StorageFormat.Int2, 2)]
    [InlineData(StorageFormat.Binary, 0)]
    [InlineData(StorageFormat.UInt4, 16)]
    [InlineData(StorageFormat.UInt4, -1)]
    public void CodesOutsideTheFormat_AreRejected(StorageFormat format, int code)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Pack(format, 1, (sbyte)code));
    }

    [Theory]
    [InlineData(StorageFormat.Int4)]
    [InlineData(StorageFormat.Int2)]
    [InlineData(StorageFormat.Binary)]
    [InlineData(StorageFormat.UInt4)]
    public void LookupTable_RowOfEachByte_IsItsCodes_AndUnpackAgrees(StorageFormat format)
    {
        int perByte = format.ValuesPerByte(), bits = 8 / perByte;
        var table = BitPacking.LookupTable(format);
        Assert.Equal(256 * perByte, table.Length);
        for (int v = 0; v < 256; v++)
            for (int k = 0; k < perByte; k++)
            {
                int field = (v >> (k * bits)) & ((1 << bits) - 1);
                int expected = format == StorageFormat.Binary ? 2 * field - 1
                    : format == StorageFormat.UInt4 || field < 1 << (bits - 1) ? field : field - (1 << bits);
                Assert.Equal(expected, table[v * perByte + k]);
                Assert.Equal(expected, BitPacking.Unpack(format, [(byte)v], k));
            }
        // Spot checks from the hand-packed bytes above.
        if (format == StorageFormat.Int4) Assert.Equal([1f, -1f], table.AsSpan(0xF1 * 2, 2).ToArray());
        if (format == StorageFormat.UInt4) Assert.Equal([1f, 15f], table.AsSpan(0xF1 * 2, 2).ToArray());
        if (format == StorageFormat.Binary) Assert.Equal([1f, -1, -1, 1, 1, 1, -1, 1], table.AsSpan(0xB9 * 8, 8).ToArray());
    }
}
