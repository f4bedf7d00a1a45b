using MaskFormer.Contracts.V1;
using MaskFormer.Engine.Encoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Server.Mapping;
using Xunit;

namespace MaskFormer.Server.Tests;

public sealed class ResponseMapperTests
{
    [Fact]
    public void Masks_of_many_runs_in_all_are_encoded_side_by_side_few_are_not()
    {
        // A hundred 512x512 masks of 700 runs each (70,000 in all, as a realistic-width model's instances
        // hold several times over): side by side. Ten of them (7,000): on the caller's thread.
        var many = Enumerable.Range(0, 100).Select(_ => Striped(512, 512, runsPerRow: 7, rows: 100)).ToArray();
        try
        {
            Assert.All(many, instance => Assert.Equal(700, instance.RunCount));
            Assert.True(ResponseMapper.EncodesSideBySide(many));
            Assert.False(ResponseMapper.EncodesSideBySide(many[..10]));
            Assert.False(ResponseMapper.EncodesSideBySide([]));
        }
        finally
        {
            foreach (var instance in many)
            {
                instance.Dispose();
            }
        }
    }

    [Theory]
    [InlineData(RleFormat.Unspecified, false)]
    [InlineData(RleFormat.Unspecified, true)]
    [InlineData(RleFormat.Counts, false)]
    [InlineData(RleFormat.Compressed, true)]
    public void Instances_of_one_query_share_one_encoding_of_its_mask_others_are_encoded_each(RleFormat format, bool parallel)
    {
        // Queries 3 and 7 each kept under two classes (the same mask twice); two instances whose query is
        // not known (-1), with equal masks that are still encoded each.
        var instances = new[]
        {
            Striped(64, 32, runsPerRow: 3, rows: 10, label: 0, query: 3),
            Striped(64, 32, runsPerRow: 5, rows: 4, label: 1),
            Striped(64, 32, runsPerRow: 3, rows: 10, label: 1, query: 3),
            Striped(64, 32, runsPerRow: 5, rows: 4, label: 0),
            Striped(64, 32, runsPerRow: 7, rows: 2, label: 0, query: 7),
            Striped(64, 32, runsPerRow: 7, rows: 2, label: 1, query: 7),
        };
        try
        {
            ModelLabel[] labels = [new(0, "a", true), new(1, "b", true)];
            var encoded = ResponseMapper.ToInstances(instances, labels, format, trackIds: null, parallel).Instances;

            Assert.Equal(instances.Length, encoded.Count);
            for (var i = 0; i < instances.Length; i++)
            {
                // Each instance's RLE is its own mask's, whichever instance encoded it.
                var counts = CocoRle.Encode(instances[i]);
                Assert.Equal(format == RleFormat.Compressed ? [] : counts, encoded[i].Mask.Counts);
                Assert.Equal(format == RleFormat.Counts ? "" : CocoRle.Compress(counts), encoded[i].Mask.Compressed);
                Assert.Equal((labels[instances[i].LabelId].Name, instances[i].Score, (ulong)instances[i].Area), (encoded[i].LabelName, encoded[i].Score, encoded[i].Area));
            }

            if (format != RleFormat.Counts)
            {
                // One string per query, made once; each instance without a query has its own.
                Assert.Same(encoded[0].Mask.Compressed, encoded[2].Mask.Compressed);
                Assert.Same(encoded[4].Mask.Compressed, encoded[5].Mask.Compressed);
                Assert.NotSame(encoded[1].Mask.Compressed, encoded[3].Mask.Compressed);
            }
        }
        finally
        {
            foreach (var instance in instances)
            {
                instance.Dispose();
            }
        }
    }

    // A mask whose first `rows` rows hold `runsPerRow` runs of two set pixels each, four pixels apart.
    private static InstanceMask Striped(int width, int height, int runsPerRow, int rows, int label = 0, int query = -1)
    {
        var mask = new BinaryMask(width, height);
        for (var y = 0; y < rows; y++)
        {
            for (var r = 0; r < runsPerRow; r++)
            {
                mask.Row(y)[(4 * r) + 1] = 1;
                mask.Row(y)[(4 * r) + 2] = 1;
            }
        }

        return new InstanceMask(label, 1f - (0.1f * label), 2L * runsPerRow * rows, new PixelBox(1, 0, (4 * runsPerRow) - 2, rows), mask) { Query = query };
    }
}
