using Google.Protobuf;
using Grpc.Core;
using MaskFormer.Contracts.V1;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Server.Tests;

[Collection(ServerTestGroup.Name)]
public sealed class SegmentTests(ServerFixture server, Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly DateTime s_noDeadline = DateTime.MaxValue;

    [Fact]
    public async Task Segment_HeldOutImages_MeanIouMatchesPythonEvaluation()
    {
        using var evaluation = HeldOutSet.ReadEvaluation();
        var pythonMiou = evaluation.RootElement.GetProperty("heldout_committed").GetProperty("miou").GetDouble();
        var models = await server.Client.ListModelsAsync(new ListModelsRequest());
        var meanIou = new MeanIou(models.Models[0].Labels.Count);

        foreach (var file in HeldOutSet.ImageFiles)
        {
            var response = await SegmentFileAsync(file);
            meanIou.Add(HeldOutSet.ReadLabels(Path.Combine(RepositoryPaths.HeldOut, Path.ChangeExtension(file, null) + "_semantic.png")), DecodeLabels(response));
        }

        var cardMiou = HeldOutSet.ReadCardMiou();
        output.WriteLine($"service mIoU {meanIou.Value:F4} on {HeldOutSet.ImageFiles.Count} held-out images; Python evaluation {pythonMiou:F4}; MODEL.md {cardMiou:F4}");
        Assert.InRange(meanIou.Value, pythonMiou - 0.01, pythonMiou + 0.01);
        Assert.InRange(meanIou.Value, cardMiou - 0.02, cardMiou + 0.02);
    }

    [Theory]
    [InlineData(PostProcessingConvention.Detectron2)]
    [InlineData(PostProcessingConvention.Huggingface)]
    public async Task Segment_LabelIdsToFuse_FusedLabelsAreNotInstancesUnlessThingsOnlyIsOff(PostProcessingConvention convention)
    {
        // Fuse sky (0) and grass (1) on the held-out images: neither comes back as an instance, in
        // either convention; with instance_things_only off they do.
        var labels = new HashSet<uint>();
        var labelsWhenAsked = new HashSet<uint>();
        foreach (var file in HeldOutSet.ImageFiles.Take(4))
        {
            var options = new SegmentationOptions { Convention = convention, InstanceScoreThreshold = 0f, LabelIdsToFuse = { 0, 1 } };
            var request = new SegmentRequest { Image = EncodedImage(file), Tasks = { SegmentationTask.Instance }, Options = options };
            labels.UnionWith((await server.Client.SegmentAsync(request, deadline: DateTime.UtcNow.AddMinutes(1))).Instance.Instances.Select(i => i.LabelId));
            options.InstanceThingsOnly = false;
            labelsWhenAsked.UnionWith((await server.Client.SegmentAsync(request, deadline: DateTime.UtcNow.AddMinutes(1))).Instance.Instances.Select(i => i.LabelId));
        }

        Assert.DoesNotContain(0u, labels);
        Assert.DoesNotContain(1u, labels);
        Assert.True(labelsWhenAsked.Overlaps([0u, 1u]), $"no fused label as an instance with instance_things_only off: {string.Join(",", labelsWhenAsked)}");
    }

    [Fact]
    public async Task Segment_HeldOutImages_AgreesWithPyTorchPixelByPixel()
    {
        foreach (var file in HeldOutSet.ImageFiles)
        {
            var response = await SegmentFileAsync(file);
            var expected = HeldOutSet.ReadLabels(Path.Combine(RepositoryPaths.HeldOut, Path.ChangeExtension(file, null) + "_pred_semantic.png"));
            var actual = DecodeLabels(response);
            var agreeing = expected.Zip(actual).Count(pair => pair.First == pair.Second);
            Assert.True(agreeing >= expected.Length * 0.995, $"{file}: {agreeing} of {expected.Length} pixels agree with PyTorch");
        }
    }

    [Fact]
    public async Task Segment_EncodedImage_EchoesFrameIdAndReportsTimings()
    {
        var response = await server.Client.SegmentAsync(new SegmentRequest { Image = EncodedImage(HeldOutSet.ImageFiles[0]), FrameId = 9_007_199_254_740_993UL });

        Assert.Equal(9_007_199_254_740_993UL, response.FrameId);
        Assert.Equal("tiny-shapes", response.Model);
        Assert.Equal("cpu", response.Device);
        Assert.True(response.Timings.InferenceMs > 0);
        Assert.True(response.Timings.TotalMs >= response.Timings.InferenceMs);
        Assert.True(response.Timings.BatchSize >= 1);
        Assert.Equal(LabelMapEncoding.Png, response.Semantic.LabelMap.Encoding);
        Assert.Equal(8u, response.Semantic.LabelMap.BitsPerPixel);
        Assert.Equal(response.Width * (ulong)response.Height, response.Semantic.Classes.Aggregate(0UL, (sum, c) => sum + c.Area));
    }

    [Theory]
    [InlineData(PixelFormat.Rgb24)]
    [InlineData(PixelFormat.Bgr24)]
    [InlineData(PixelFormat.Rgba32)]
    public async Task Segment_RawFrameWithPaddedStride_SameAsEncoded(PixelFormat format)
    {
        var file = HeldOutSet.ImageFiles[1];
        using var image = SixLabors.ImageSharp.Image.Load<Rgba32>(Path.Combine(RepositoryPaths.HeldOut, file));
        var bytesPerPixel = format == PixelFormat.Rgba32 ? 4 : 3;
        var stride = (image.Width * bytesPerPixel) + 13;
        var data = new byte[stride * image.Height];
        for (var y = 0; y < image.Height; y++)
        {
            for (var x = 0; x < image.Width; x++)
            {
                var pixel = image[x, y];
                var at = (y * stride) + (x * bytesPerPixel);
                (data[at], data[at + 1], data[at + 2]) = format == PixelFormat.Bgr24 ? (pixel.B, pixel.G, pixel.R) : (pixel.R, pixel.G, pixel.B);
            }
        }

        var raw = await server.Client.SegmentAsync(new SegmentRequest
        {
            Image = new Contracts.V1.Image { Raw = new RawFrame { Width = (uint)image.Width, Height = (uint)image.Height, Stride = (uint)stride, PixelFormat = format, Data = ByteString.CopyFrom(data) } },
        });
        var encoded = await SegmentFileAsync(file);

        Assert.Equal(DecodeLabels(encoded), DecodeLabels(raw));
    }

    [Fact]
    public async Task Segment_RawLabelMapEncoding_MatchesPng()
    {
        var request = new SegmentRequest { Image = EncodedImage(HeldOutSet.ImageFiles[2]), Options = new SegmentationOptions { LabelMapEncoding = LabelMapEncoding.Raw } };

        var raw = await server.Client.SegmentAsync(request);
        var png = await SegmentFileAsync(HeldOutSet.ImageFiles[2]);

        Assert.Equal(LabelMapEncoding.Raw, raw.Semantic.LabelMap.Encoding);
        Assert.Equal(DecodeLabels(png), raw.Semantic.LabelMap.Data.ToByteArray());
    }

    [Fact]
    public async Task Segment_NoImage_InvalidArgumentNamingTheField()
    {
        var error = await Assert.ThrowsAsync<RpcException>(() => server.Client.SegmentAsync(new SegmentRequest()).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        var badRequest = error.GetRpcStatus()!.GetDetail<Google.Rpc.BadRequest>();
        Assert.Equal("image", badRequest.FieldViolations.Single().Field);
    }

    [Theory]
    [InlineData(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 })]
    [InlineData(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0 })]
    public async Task Segment_UndecodableBytes_InvalidArgument(byte[] bytes)
    {
        var request = new SegmentRequest { Image = new Contracts.V1.Image { Encoded = ByteString.CopyFrom(bytes) } };

        var error = await Assert.ThrowsAsync<RpcException>(() => server.Client.SegmentAsync(request).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
    }

    [Fact]
    public async Task Segment_RawFrameShorterThanItsSize_InvalidArgument()
    {
        var request = new SegmentRequest
        {
            Image = new Contracts.V1.Image { Raw = new RawFrame { Width = 64, Height = 64, PixelFormat = PixelFormat.Rgb24, Data = ByteString.CopyFrom(new byte[100]) } },
        };

        var error = await Assert.ThrowsAsync<RpcException>(() => server.Client.SegmentAsync(request).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("12288", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Segment_UnknownModel_NotFoundNamingIt()
    {
        var request = new SegmentRequest { Model = "no-such-model", Image = EncodedImage(HeldOutSet.ImageFiles[0]) };

        var error = await Assert.ThrowsAsync<RpcException>(() => server.Client.SegmentAsync(request).ResponseAsync);

        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        Assert.Contains("no-such-model", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Segment_ThresholdOutOfRange_InvalidArgument()
    {
        var request = new SegmentRequest { Image = EncodedImage(HeldOutSet.ImageFiles[0]), Options = new SegmentationOptions { OverlapThreshold = 1.5f } };

        var error = await Assert.ThrowsAsync<RpcException>(() => server.Client.SegmentAsync(request).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("overlap_threshold", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ListModels_CommittedModel_DescribedFromItsConfig()
    {
        var response = await server.Client.ListModelsAsync(new ListModelsRequest());

        var model = Assert.Single(response.Models);
        Assert.Equal("tiny-shapes", model.Name);
        Assert.True(model.IsDefault);
        Assert.Equal(["sky", "grass", "water", "circle", "rectangle", "triangle"], model.Labels.Select(l => l.Name));
        Assert.Equal([false, false, false, true, true, true], model.Labels.Select(l => l.IsThing));
        Assert.Equal(128u, model.InputSize.ShortestEdge);
        Assert.Equal(16u, model.NumQueries);
        Assert.Equal(32u, model.InputSize.SizeDivisor);
        Assert.Contains(SegmentationTask.Semantic, model.SupportedTasks);
        var device = Assert.Single(model.Devices);
        Assert.Equal("cpu", device.Name);
        Assert.Equal("CPUExecutionProvider", device.ExecutionProvider);
    }

    private Task<SegmentResponse> SegmentFileAsync(string file) =>
        server.Client.SegmentAsync(new SegmentRequest { Image = EncodedImage(file), Tasks = { SegmentationTask.Semantic } }, deadline: s_noDeadline).ResponseAsync;

    internal static Contracts.V1.Image EncodedImage(string file) =>
        new() { Encoded = ByteString.CopyFrom(File.ReadAllBytes(Path.Combine(RepositoryPaths.HeldOut, file))) };

    internal static byte[] DecodeLabels(SegmentResponse response)
    {
        var labels = HeldOutSet.DecodeLabels(response.Semantic.LabelMap.Data.ToByteArray());
        Assert.Equal((int)(response.Width * response.Height), labels.Length);
        return labels;
    }
}
