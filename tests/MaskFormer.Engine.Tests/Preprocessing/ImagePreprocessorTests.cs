using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Tests.Reference;

namespace MaskFormer.Engine.Tests.Preprocessing;

public sealed class ImagePreprocessorTests
{
    public static TheoryData<int> Seeds => [.. Enumerable.Range(1, 25)];

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Process_RandomImage_MatchesFloat64Reference(int seed)
    {
        var random = new Random(seed);
        var config = new PreprocessorConfig
        {
            ResizeMode = seed % 3 == 0 ? ResizeMode.Fixed : ResizeMode.ShortestEdge,
            Height = random.Next(4, 90),
            Width = random.Next(4, 90),
            ShortestEdge = random.Next(4, 90),
            LongestEdge = 160,
            SizeDivisor = seed % 2 == 0 ? 32 : 1,
            RescaleFactor = 1f / 255f,
            ImageMean = [0.485f, 0.456f, 0.406f],
            ImageStd = [0.229f, 0.224f, 0.225f],
        };
        using var image = RgbImage.Create(random.Next(1, 120), random.Next(1, 120));
        random.NextBytes(image.Pixels);

        using var input = new ImagePreprocessor(config).Process(image);

        var plan = input.Plan;
        for (var c = 0; c < 3; c++)
        {
            var plane = new double[image.Height, image.Width];
            for (var y = 0; y < image.Height; y++)
            {
                for (var x = 0; x < image.Width; x++)
                {
                    plane[y, x] = image.Pixels[(((y * image.Width) + x) * 3) + c];
                }
            }

            var resized = ReferenceMath.Bilinear(plane, plan.ResizedHeight, plan.ResizedWidth);
            for (var y = 0; y < plan.PaddedHeight; y++)
            {
                for (var x = 0; x < plan.PaddedWidth; x++)
                {
                    var expected = y < plan.ResizedHeight && x < plan.ResizedWidth
                        ? ((resized[y, x] / 255.0) - config.ImageMean[c]) / config.ImageStd[c]
                        : 0.0;
                    var actual = input.Tensor[(c * plan.PaddedHeight * plan.PaddedWidth) + (y * plan.PaddedWidth) + x];
                    Assert.True(Math.Abs(expected - actual) < 2e-4, $"c={c} y={y} x={x}: expected {expected}, got {actual}");
                }
            }
        }
    }

    [Theory]
    [InlineData(145, 149, 128, 131, 128, 160)]
    [InlineData(150, 130, 147, 128, 160, 128)]
    [InlineData(120, 160, 128, 170, 128, 192)]
    [InlineData(97, 199, 125, 256, 128, 256)]
    [InlineData(200, 96, 256, 123, 256, 128)]
    [InlineData(100, 300, 85, 256, 96, 256)]
    [InlineData(128, 128, 128, 128, 128, 128)]
    [InlineData(1080, 1920, 128, 227, 128, 256)]
    public void Plan_ShortestEdge_FollowsHuggingFaceRounding(int height, int width, int resizedHeight, int resizedWidth, int paddedHeight, int paddedWidth)
    {
        var config = new PreprocessorConfig { ResizeMode = ResizeMode.ShortestEdge, ShortestEdge = 128, LongestEdge = 256, SizeDivisor = 32, ImageMean = [0, 0, 0], ImageStd = [1, 1, 1] };

        var plan = ResizePlan.For(height, width, config);

        Assert.Equal(new ResizePlan(height, width, resizedHeight, resizedWidth, paddedHeight, paddedWidth), plan);
    }
}
