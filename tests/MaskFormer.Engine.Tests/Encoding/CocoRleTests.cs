using MaskFormer.Engine.Encoding;
using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tests.Encoding;

public sealed class CocoRleTests
{
    // A mask pycocotools encoded (mask.encode on a 50x70 np.asfortranarray), published in the README of
    // github.com/armengot/COCOtoolsFORK, python/README.md (commit 3b137b9b3e2f20988d72badfa97ca2f7358f6ea9).
    private const string PublishedCounts = "0g05b08J4M2N2NA^O1`0OCO=0E090H080IO68DH;>@C>a0_O_O`0j0OWOF<:CM72I24NL43JM92FN;1ENKO72L0LO91J0MO92INO0NO122OO0M031O000NO31OO11MO40N011MO41MO21L06OL021L06OL021L06OL021L060J040L060J040L060J040L060J040L060J040L060J040L060KO31L060KO31L06OL021L06OL021L06OL021MO41MO21MO40N100NO310O00M0310O00NO1220NO92IONO91KOMO72M0<1EO:2GN63KM34OLM73JF<;=1G_O_Ob0=AC`07EH=1IO71H090F0:1DO>1_O1b0>2N2N3L6H]O";

    public static TheoryData<int> Seeds => [.. Enumerable.Range(1, 30)];

    [Theory]
    [MemberData(nameof(Seeds))]
    public void EncodeCompressDecompressDecode_RandomMask_RoundTrips(int seed)
    {
        var random = new Random(seed);
        var (height, width) = (random.Next(1, 60), random.Next(1, 60));
        using var mask = new BinaryMask(width, height);
        var density = random.NextDouble();
        for (var i = 0; i < mask.Pixels.Length; i++)
        {
            mask.Pixels[i] = random.NextDouble() < density ? (byte)1 : (byte)0;
        }

        var counts = CocoRle.Encode(mask);
        var decompressed = CocoRle.Decompress(CocoRle.Compress(counts));
        using var decoded = CocoRle.Decode(decompressed, height, width);

        Assert.Equal(counts, decompressed);
        Assert.Equal(mask.Pixels.ToArray(), decoded.Pixels.ToArray());
        Assert.Equal((long)height * width, counts.Sum(c => (long)c));
        Assert.All(counts.Skip(1), c => Assert.NotEqual(0u, c));
    }

    [Fact]
    public void Encode_ThreeByTwoMask_RunsAreColumnMajorFromAZeroRun()
    {
        // Rows [0 1] [1 1] [0 0]; column by column that reads 0 1 0 | 1 1 0.
        using var mask = Mask(3, 2, [0, 1, 1, 1, 0, 0]);

        Assert.Equal([1u, 1u, 1u, 2u, 1u], CocoRle.Encode(mask));
    }

    [Fact]
    public void Encode_FirstPixelSet_StartsWithEmptyZeroRun()
    {
        // Rows [1 0] [0 0]; column-major 1 0 | 0 0.
        using var mask = Mask(2, 2, [1, 0, 0, 0]);

        Assert.Equal([0u, 1u, 3u], CocoRle.Encode(mask));
    }

    [Fact]
    public void Encode_AllOnes_IsAnEmptyZeroRunThenEveryPixel()
    {
        using var mask = Mask(4, 5, [.. Enumerable.Repeat((byte)1, 20)]);

        Assert.Equal([0u, 20u], CocoRle.Encode(mask));
    }

    [Fact]
    public void Encode_Empty_IsOneZeroRun()
    {
        using var mask = new BinaryMask(7, 3);

        Assert.Equal([21u], CocoRle.Encode(mask));
    }

    // Pairs worked by hand from maskApi.c's rleToString: 5-bit groups, 0x20 = more follows, 0x10 of the
    // last group = sign, +48; counts from the fourth on are stored as the difference from two before.
    [Theory]
    [InlineData(new uint[] { 0, 6 }, "06")]
    [InlineData(new uint[] { 1, 1, 1, 2, 1 }, "11110")]
    [InlineData(new uint[] { 0, 6, 1, 3 }, "061M")] // 3 - 6 = -3: one group 0b11101 (sign set) → 'M'.
    [InlineData(new uint[] { 5, 3, 2, 1 }, "532N")] // 1 - 3 = -2 → 0b11110 → 'N'.
    [InlineData(new uint[] { 16 }, "`0")] // 16 has bit 0x10 set, so a 0 group must follow to keep it positive.
    [InlineData(new uint[] { 0, 1024 }, "0PP1")] // 1024 = 1 << 10: groups 0, 0, 1.
    public void Compress_KnownCounts_GivesMaskApiString(uint[] counts, string expected)
    {
        Assert.Equal(expected, CocoRle.Compress(counts));
        Assert.Equal(counts, CocoRle.Decompress(expected));
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Compress_CountsOfEverySize_SameStringAsMaskApiLoop(int seed)
    {
        // Counts around every group boundary (2^(5k-1)) and the extremes, so the differences two back
        // take every length and sign.
        var random = new Random(seed);
        var counts = Enumerable.Range(0, 200).Select(_ =>
        {
            var bits = random.Next(0, 33);
            var value = bits == 0 ? 0L : (1L << (bits - 1)) + random.Next(-2, 3);
            return (uint)Math.Clamp(value, 0L, uint.MaxValue);
        }).Concat([0u, uint.MaxValue, 0u, 0u, uint.MaxValue, 1u, 16u, 15u, 17u]).ToArray();

        Assert.Equal(MaskApiToString(counts), CocoRle.Compress(counts));
        Assert.Equal(counts, CocoRle.Decompress(CocoRle.Compress(counts)));
    }

    // maskApi.c's rleToString, transcribed: a group at a time until what is left is the sign of the last.
    private static string MaskApiToString(uint[] counts)
    {
        var text = new System.Text.StringBuilder();
        for (var i = 0; i < counts.Length; i++)
        {
            long x = counts[i];
            if (i > 2)
            {
                x -= counts[i - 2];
            }

            var more = true;
            while (more)
            {
                var c = x & 0x1f;
                x >>= 5;
                more = (c & 0x10) != 0 ? x != -1 : x != 0;
                if (more)
                {
                    c |= 0x20;
                }

                text.Append((char)(c + 48));
            }
        }

        return text.ToString();
    }

    [Fact]
    public void Decompress_PycocotoolsString_CoversTheMaskAndRecompressesIdentically()
    {
        var counts = CocoRle.Decompress(PublishedCounts);
        using var mask = CocoRle.Decode(counts, 50, 70);

        Assert.Equal(3500L, counts.Sum(c => (long)c));
        Assert.Equal(PublishedCounts, CocoRle.Compress(counts));
        Assert.Equal(counts, CocoRle.Encode(mask));
        Assert.Equal(1, mask.Row(0)[0]);
    }

    [Fact]
    public void Decompress_CharacterOutsideAlphabet_Throws()
    {
        Assert.Throws<FormatException>(() => CocoRle.Decompress("06 1"));
    }

    [Fact]
    public void Decompress_StringEndsMidNumber_Throws()
    {
        // 'P' (0x20 set) promises another group.
        Assert.Throws<FormatException>(() => CocoRle.Decompress("0P"));
    }

    [Fact]
    public void Decode_RunsNotCoveringTheMask_Throws()
    {
        Assert.Throws<FormatException>(() => CocoRle.Decode([1u, 2u], 2, 2));
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Encode_BlobsInTheirBox_SameRunsAsTheColumnMajorReference(int seed)
    {
        var (mask, box) = RandomBlob(seed);
        using var owned = mask;
        var expected = ReferenceEncode(mask);

        Assert.Equal(expected, CocoRle.Encode(mask, box.Build()));
        Assert.Equal(expected, CocoRle.Encode(mask));
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Encode_RowRuns_SameRunsAsTheColumnMajorReferenceAndDecodesToTheMask(int seed)
    {
        var (mask, box) = RandomBlob(seed);
        using var owned = mask;
        var (height, width) = (mask.Height, mask.Width);

        using var runs = MaskRuns.FromBinary(mask);
        using var instance = new InstanceMask(0, 1f, 0, box.Build(), runs.Copy());
        var counts = CocoRle.Encode(instance);
        using var decoded = CocoRle.Decode(counts, height, width);

        Assert.Equal(ReferenceEncode(mask), counts);
        Assert.Equal(mask.Pixels.ToArray(), decoded.Pixels.ToArray());
        Assert.Equal(mask.Pixels.ToArray(), instance.Mask.Pixels.ToArray());
        Assert.Equal((width, height), (instance.Width, instance.Height));

        // An instance that came with pixels reads its runs inside its box.
        using var copy = new BinaryMask(width, height);
        mask.Pixels.CopyTo(copy.Pixels);
        using var fromPixels = new InstanceMask(0, 1f, 0, box.Build(), copy);
        Assert.Equal(counts, CocoRle.Encode(fromPixels));
    }

    // Heights around the 64-row words the flips are kept in (a run's end marks its row and the row below,
    // across a word's edge), a box whose last row is or is not the image's, and a mask over 64 words tall.
    [Theory]
    [InlineData(1, 63, 5)]
    [InlineData(2, 64, 9)]
    [InlineData(3, 65, 17)]
    [InlineData(4, 127, 33)]
    [InlineData(5, 128, 64)]
    [InlineData(6, 129, 70)]
    [InlineData(7, 300, 41)]
    [InlineData(8, 4160, 3)]
    public void Encode_MasksAcrossWordsOfRows_SameRunsAsTheColumnMajorReference(int seed, int height, int width)
    {
        var random = new Random(seed);
        using var mask = new BinaryMask(width, height);
        var box = new PixelBox.Builder();

        // Rows of a few runs that drift from row to row, some rows empty, inside a box that leaves the
        // image's first and last rows and columns empty in odd seeds.
        var margin = seed % 2;
        for (var y = margin; y < height - margin; y++)
        {
            for (var x = margin; x < width - margin; x++)
            {
                var inside = ((x * 7) + (y * 3) + random.Next(4)) % 11 < 5 + (y / 17 % 3);
                if (inside && y % 23 != 5)
                {
                    mask.Row(y)[x] = 1;
                    box.Add(x, y);
                }
            }
        }

        var expected = ReferenceEncode(mask);
        using var runs = MaskRuns.FromBinary(mask);
        using var instance = new InstanceMask(0, 1f, 0, box.Build(), runs.Copy());

        Assert.Equal(expected, CocoRle.Encode(instance));
        Assert.Equal(expected, CocoRle.Encode(mask));
        Assert.Equal(expected, CocoRle.Encode(mask, box.Build()));
    }

    [Fact]
    public void Encode_RunOutsideItsBox_Throws()
    {
        using var mask = Mask(3, 4, [0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
        using var runs = MaskRuns.FromBinary(mask);

        // The set pixels are at (1, 1) and (2, 1); a box of columns 0 and 1 leaves (2, 1) outside.
        Assert.Throws<IndexOutOfRangeException>(() => CocoRle.Encode(new InstanceMask(0, 1f, 0, new PixelBox(0, 0, 2, 2), runs.Copy())));
    }

    [Fact]
    public void Encode_InstanceWithPixelMask_ReadsItsRuns()
    {
        // Rows [0 1] [1 1] [0 0]; column by column that reads 0 1 0 | 1 1 0.
        using var instance = new InstanceMask(0, 1f, 3, new PixelBox(0, 0, 2, 2), Mask(3, 2, [0, 1, 1, 1, 0, 0]));

        Assert.Equal([1u, 1u, 1u, 2u, 1u], CocoRle.Encode(instance));
    }

    // A speckled disc (or, for seeds that are multiples of 5, the whole image) at a seeded size and place.
    private static (BinaryMask Mask, PixelBox.Builder Box) RandomBlob(int seed)
    {
        var random = new Random(seed);
        var (height, width) = (random.Next(1, 40), random.Next(1, 40));
        var mask = new BinaryMask(width, height);
        var box = new PixelBox.Builder();
        var (cx, cy, r) = (random.Next(width), random.Next(height), random.Next(1, 20));
        var density = random.NextDouble();
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                // Seeds that are multiples of 5 fill the whole image, so runs cross column ends.
                var inside = seed % 5 == 0 || (((x - cx) * (x - cx)) + ((y - cy) * (y - cy)) <= r * r);
                if (inside && random.NextDouble() < density + 0.3)
                {
                    mask.Row(y)[x] = 1;
                    box.Add(x, y);
                }
            }
        }

        return (mask, box);
    }

    // pycocotools' rleEncode in plain loops: walk the pixels column by column and count runs.
    private static uint[] ReferenceEncode(BinaryMask mask)
    {
        var counts = new List<uint>();
        byte current = 0;
        uint run = 0;
        for (var x = 0; x < mask.Width; x++)
        {
            for (var y = 0; y < mask.Height; y++)
            {
                var value = mask.Row(y)[x] != 0 ? (byte)1 : (byte)0;
                if (value != current)
                {
                    counts.Add(run);
                    run = 0;
                    current = value;
                }

                run++;
            }
        }

        counts.Add(run);
        return [.. counts];
    }

    private static BinaryMask Mask(int height, int width, byte[] rowMajor)
    {
        var mask = new BinaryMask(width, height);
        rowMajor.CopyTo(mask.Pixels);
        return mask;
    }
}
