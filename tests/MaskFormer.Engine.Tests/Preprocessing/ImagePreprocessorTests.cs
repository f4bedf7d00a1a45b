using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Tests.Reference;

namespace MaskFormer.Engine.Tests.Preprocessing;

public sealed class ImagePreprocessorTests
{
    public static TheoryData<int> Seeds => [.. Enumerable.Range(1, 25)];

    private static PreprocessorConfig RandomConfig(int seed, Random random, int minSize, int maxSize, int longestEdge) => new()
    {
        ResizeMode = seed % 3 == 0 ? ResizeMode.Fixed : ResizeMode.ShortestEdge,
        Height = random.Next(minSize, maxSize),
        Width = random.Next(minSize, maxSize),
        ShortestEdge = random.Next(minSize, maxSize),
        LongestEdge = longestEdge,
        SizeDivisor = seed % 2 == 0 ? 32 : 1,
        RescaleFactor = 1f / 255f,
        ImageMean = [0.485f, 0.456f, 0.406f],
        ImageStd = [0.229f, 0.224f, 0.225f],
    };

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Process_RandomImage_MatchesFloat64Reference(int seed)
    {
        var random = new Random(seed);
        var config = RandomConfig(seed, random, minSize: 4, maxSize: 90, longestEdge: 160);
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

    // The separable fill (each source row blended along x once, rows along y vectorised) must give the
    // float32 values of the direct per-pixel formula bit for bit, padding zeroed, on any pooled (dirty) buffer.
    [Theory]
    [MemberData(nameof(Seeds))]
    public void Process_RandomImage_EqualsDirectFormulaBitForBit(int seed)
    {
        var random = new Random(seed);
        var config = RandomConfig(seed, random, minSize: 1, maxSize: 200, longestEdge: 400);
        using var image = RgbImage.Create(random.Next(1, 300), random.Next(1, 300));
        random.NextBytes(image.Pixels);
        var preprocessor = new ImagePreprocessor(config);
        var plan = preprocessor.Plan(image.Height, image.Width);
        var tensor = new float[3 * plan.PaddedHeight * plan.PaddedWidth];
        tensor.AsSpan().Fill(float.NaN);

        preprocessor.Fill(image, plan, tensor);

        Assert.Equal(DirectFormula(image, plan, config), tensor);
    }

    [Fact]
    public void Process_HeldOutImage_EqualsDirectFormulaBitForBit()
    {
        var folder = ModelFolder.Read(RepositoryPaths.TinyShapes, "tiny-shapes", null);
        using var decoder = new ImageDecoder(Microsoft.Extensions.Options.Options.Create(new ImageDecoderOptions()));
        using var image = decoder.Decode(File.ReadAllBytes(Path.Combine(RepositoryPaths.HeldOut, "0000.png")));

        using var input = new ImagePreprocessor(folder.Preprocessor).Process(image);

        Assert.Equal(DirectFormula(image, input.Plan, folder.Preprocessor), input.Tensor.ToArray());
    }

    // The fill as one formula per output value, in float32: x blend of the two source rows, y blend, scale and offset.
    private static float[] DirectFormula(RgbImage image, ResizePlan plan, PreprocessorConfig config)
    {
        var tensor = new float[3 * plan.PaddedHeight * plan.PaddedWidth];
        var planeSize = plan.PaddedHeight * plan.PaddedWidth;
        for (var y = 0; y < plan.ResizedHeight; y++)
        {
            var (y0, wy) = Neighbour(y, image.Height, plan.ResizedHeight);
            var y1 = wy > 0f ? y0 + 1 : y0;
            for (var c = 0; c < 3; c++)
            {
                var scale = config.RescaleFactor / config.ImageStd[c];
                var offset = -config.ImageMean[c] / config.ImageStd[c];
                for (var x = 0; x < plan.ResizedWidth; x++)
                {
                    var (x0, wx) = Neighbour(x, image.Width, plan.ResizedWidth);
                    var x1 = wx > 0f ? x0 + 1 : x0;
                    int At(int row, int column) => image.Pixels[(((row * image.Width) + column) * 3) + c];
                    var top = At(y0, x0) + (wx * (At(y0, x1) - At(y0, x0)));
                    var bottom = At(y1, x0) + (wx * (At(y1, x1) - At(y1, x0)));
                    var value = top + (wy * (bottom - top));
                    tensor[(c * planeSize) + (y * plan.PaddedWidth) + x] = (value * scale) + offset;
                }
            }
        }

        return tensor;
    }

    // PyTorch's half-pixel rule in float32, as BilinearAxis documents it.
    private static (int Lower, float Weight) Neighbour(int index, int inputSize, int outputSize)
    {
        var scale = (float)inputSize / outputSize;
        var source = Math.Max(((index + 0.5f) * scale) - 0.5f, 0f);
        var lower = Math.Min((int)source, inputSize - 1);
        return (lower, lower < inputSize - 1 ? source - lower : 0f);
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
