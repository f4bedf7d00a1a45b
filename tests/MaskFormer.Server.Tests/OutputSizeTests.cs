using Grpc.Core;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Server.Tests;

[Collection(ServerTestGroup.Name)]
public sealed class OutputSizeTests(ServerFixture server)
{
    private static readonly SegmentationTask[] s_allTasks = [SegmentationTask.Semantic, SegmentationTask.Instance, SegmentationTask.Panoptic];

    [Fact]
    public async Task Segment_ExactOutputSize_EveryResultHasThatSize()
    {
        var response = await SegmentAsync(new OutputSize { Exact = new OutputDimensions { Width = 37, Height = 23 } });

        Assert.Equal((37u, 23u), (response.Width, response.Height));
        Assert.Equal((37u, 23u), (response.Semantic.LabelMap.Width, response.Semantic.LabelMap.Height));
        Assert.Equal(37 * 23, SegmentTests.DecodeLabels(response).Length);
        Assert.Equal(37UL * 23, response.Semantic.Classes.Aggregate(0UL, (sum, c) => sum + c.Area));
        Assert.All(response.Instance.Instances, i => Assert.Equal((37u, 23u), (i.Mask.Width, i.Mask.Height)));
        Assert.All(response.Instance.Instances, i => Assert.True(i.Bbox.X + i.Bbox.Width <= 37 && i.Bbox.Y + i.Bbox.Height <= 23));
        Assert.Equal(37 * 23, HeldOutSet.DecodeLabels(response.Panoptic.SegmentIdPng.ToByteArray()).Length);
    }

    [Fact]
    public async Task Segment_OutputSizeEqualToTheOriginal_SameResultsAsUnset()
    {
        var unset = await SegmentAsync(null);
        var same = await SegmentAsync(new OutputSize { Exact = new OutputDimensions { Width = unset.Width, Height = unset.Height } });
        var scaleOne = await SegmentAsync(new OutputSize { Scale = 1f });

        foreach (var response in new[] { same, scaleOne })
        {
            Assert.Equal(Strip(unset), Strip(response));
        }
    }

    [Fact]
    public async Task Segment_ModelInputAndScale_SizesFollowTheModelAndTheImage()
    {
        var models = await server.Client.ListModelsAsync(new ListModelsRequest());
        var original = await SegmentAsync(null);

        var modelInput = await SegmentAsync(new OutputSize { ModelInput = true });
        var half = await SegmentAsync(new OutputSize { Scale = 0.5f });

        var input = models.Models.Single(m => m.IsDefault).InputSize;
        if (input.Width > 0)
        {
            Assert.Equal((input.Width, input.Height), (modelInput.Width, modelInput.Height));
        }
        else
        {
            Assert.Equal(input.ShortestEdge, Math.Min(modelInput.Width, modelInput.Height));
        }
        Assert.Equal(((uint)Math.Round(original.Width * 0.5), (uint)Math.Round(original.Height * 0.5)), (half.Width, half.Height));
        Assert.Equal((int)(half.Width * half.Height), SegmentTests.DecodeLabels(half).Length);
    }

    [Theory]
    [InlineData(0u, 10u, 0f, "options.output_size.exact")]
    [InlineData(10u, 0u, 0f, "options.output_size.exact")]
    [InlineData(9000u, 10u, 0f, "options.output_size.exact")]
    [InlineData(0u, 0u, -1f, "options.output_size.scale")]
    [InlineData(0u, 0u, 100f, "options.output_size.scale")]
    [InlineData(0u, 0u, 0.0001f, "options.output_size.scale")]
    public async Task Segment_EmptyOrOversizedOutputSize_InvalidArgumentNamingTheField(uint width, uint height, float scale, string field)
    {
        var size = scale != 0f ? new OutputSize { Scale = scale } : new OutputSize { Exact = new OutputDimensions { Width = width, Height = height } };

        var error = await Assert.ThrowsAsync<RpcException>(() => SegmentAsync(size));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Equal(field, error.GetRpcStatus()!.GetDetail<Google.Rpc.BadRequest>().FieldViolations.Single().Field);
    }

    [Fact]
    public async Task SegmentStream_ConfigWithOutputSize_FramesAnsweredAtThatSize()
    {
        using var call = server.Client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(2));
        var config = new StreamConfig { Options = new SegmentationOptions { OutputSize = new OutputSize { Exact = new OutputDimensions { Width = 40, Height = 30 } } } };
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = config });
        for (var i = 0; i < 3; i++)
        {
            await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = (ulong)i, Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[i]) } });
        }

        await call.RequestStream.CompleteAsync();
        var results = new List<SegmentResponse>();
        await foreach (var response in call.ResponseStream.ReadAllAsync())
        {
            results.Add(response.Result);
        }

        Assert.Equal(3, results.Count);
        Assert.All(results, r => Assert.Equal((40u, 30u, 40u, 30u), (r.Width, r.Height, r.Semantic.LabelMap.Width, r.Semantic.LabelMap.Height)));
    }

    [Fact]
    public async Task Segment_1920x1080Output_MapsAndMasksEncodedSideBySideAgreeWithTheirAreas()
    {
        // Over a megapixel the server encodes the three results and the instances in parallel.
        var response = await SegmentAsync(new OutputSize { Exact = new OutputDimensions { Width = 1920, Height = 1080 } });

        var labels = SegmentTests.DecodeLabels(response);
        Assert.Equal(1920 * 1080, labels.Length);
        var labelAreas = labels.GroupBy(l => (uint)l).ToDictionary(g => g.Key, g => (ulong)g.LongCount());
        Assert.Equal(labelAreas, response.Semantic.Classes.ToDictionary(c => c.LabelId, c => c.Area));

        Assert.NotEmpty(response.Instance.Instances);
        foreach (var instance in response.Instance.Instances)
        {
            Assert.Equal(instance.Mask.Compressed, Engine.Encoding.CocoRle.Compress([.. instance.Mask.Counts]));
            using var mask = Engine.Encoding.CocoRle.Decode([.. instance.Mask.Counts], 1080, 1920);
            Assert.Equal(instance.Area, (ulong)mask.Pixels.Count((byte)1));
            for (var y = 0; y < 1080; y++)
            {
                var row = mask.Row(y);
                var inside = y >= instance.Bbox.Y && y < instance.Bbox.Y + instance.Bbox.Height;
                Assert.Equal(inside ? 0 : -1, inside ? 0 : row.IndexOf((byte)1));
                if (inside)
                {
                    Assert.Equal(-1, row[..(int)instance.Bbox.X].IndexOf((byte)1));
                    Assert.Equal(-1, row[(int)(instance.Bbox.X + instance.Bbox.Width)..].IndexOf((byte)1));
                }
            }
        }

        using var panoptic = SixLabors.ImageSharp.Image.Load<SixLabors.ImageSharp.PixelFormats.Rgb24>(response.Panoptic.SegmentIdPng.ToByteArray());
        var segmentAreas = new Dictionary<uint, ulong>();
        panoptic.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                foreach (var pixel in rows.GetRowSpan(y))
                {
                    var id = (uint)(pixel.R + (256 * pixel.G) + (65536 * pixel.B));
                    segmentAreas[id] = segmentAreas.GetValueOrDefault(id) + 1;
                }
            }
        });
        segmentAreas.Remove(0);
        Assert.Equal(segmentAreas, response.Panoptic.Segments.ToDictionary(s => s.Id, s => s.Area));
    }

    private async Task<SegmentResponse> SegmentAsync(OutputSize? size)
    {
        var request = new SegmentRequest { Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[2]), Tasks = { s_allTasks }, Options = new SegmentationOptions { OutputSize = size } };
        return await server.Client.SegmentAsync(request);
    }

    private static SegmentResponse Strip(SegmentResponse response)
    {
        var copy = response.Clone();
        copy.Timings = null;
        copy.Device = string.Empty;
        return copy;
    }
}
