using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using MaskFormer.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;

namespace MaskFormer.Engine.Tests.Sessions;

/// <summary>
/// The session wrapper's output hand-over: the first single-image run at a size copies ONNX Runtime's
/// tensors, later ones have ONNX Runtime write into the pooled buffers, and a batch is split per image;
/// every path gives ONNX Runtime's own outputs exactly.
/// </summary>
public sealed class ModelSessionTests : IDisposable
{
    private readonly ModelFolder _folder = ModelFolder.Read(RepositoryPaths.TinyShapes, "tiny-shapes", null);
    private readonly ImageDecoder _decoder = new(Options.Create(new ImageDecoderOptions()));
    private readonly ModelSession _session;
    private readonly InferenceSession _raw;

    public ModelSessionTests()
    {
        _session = new SessionFactory(new InferenceOptions(), NullLogger.Instance).Create(_folder.ModelPath, DeviceSpec.Cpu, 1);
        using var options = SessionFactory.CreateCpuOptions(new InferenceOptions(), 1, "raw");
        _raw = new InferenceSession(_folder.ModelPath, options);
    }

    [Fact]
    public void Run_RepeatedSingleImagesAndABatch_GiveOnnxRuntimesOutputsExactly()
    {
        using var first = Input("0000");
        using var second = new ModelInput(first.Plan);
        first.Tensor.CopyTo(second.Tensor);
        second.Tensor.Reverse();
        using var otherSize = Input("0001");
        Assert.NotEqual((first.Plan.PaddedHeight, first.Plan.PaddedWidth), (otherSize.Plan.PaddedHeight, otherSize.Plan.PaddedWidth));
        var (firstClasses, firstMasks) = RawOutputs(first);
        var (secondClasses, secondMasks) = RawOutputs(second);
        var (otherClasses, otherMasks) = RawOutputs(otherSize);

        // Copied (size not yet seen), written in place, in place with other pixels, a new size (copied), then in place at it.
        var runs = new[]
        {
            (first, firstClasses, firstMasks), (first, firstClasses, firstMasks), (second, secondClasses, secondMasks),
            (otherSize, otherClasses, otherMasks), (otherSize, otherClasses, otherMasks),
        };
        for (var i = 0; i < runs.Length; i++)
        {
            var (input, classes, masks) = runs[i];
            using var output = _session.Run([input])[0];
            Assert.True(classes.AsSpan().SequenceEqual(output.ClassLogits), $"class logits differ in run {i}");
            Assert.True(masks.AsSpan().SequenceEqual(output.MaskLogits), $"mask logits differ in run {i}");
        }

        var batch = _session.Run([first, second]);
        try
        {
            Assert.Equal(firstClasses, batch[0].ClassLogits.ToArray());
            Assert.Equal(firstMasks, batch[0].MaskLogits.ToArray());
            Assert.Equal(secondClasses, batch[1].ClassLogits.ToArray());
            Assert.Equal(secondMasks, batch[1].MaskLogits.ToArray());
        }
        finally
        {
            DisposeAll(batch);
        }
    }

    [Fact]
    public void Run_PaddedBatchSizes_EachBatchOnTheSmallestSizeThatHoldsItAndOnlyItsOwnOutputsGivenExactly()
    {
        // As a CUDA session runs with PadCudaBatches (sizes 1 and 4); the padding is device-independent, so it is tested here.
        using var padded = FaultInjectingSessionFactory.Padded(_folder, [1, 4], 1);
        using var first = Input("0000");
        using var second = new ModelInput(first.Plan);
        first.Tensor.CopyTo(second.Tensor);
        second.Tensor.Reverse();
        var expected = new[] { RawOutputs(first), RawOutputs(second), RawOutputs(first), RawOutputs(second) };
        ModelInput[] inputs = [first, second, first, second];

        // Counts in an order that moves between the sizes: each ONNX Runtime session only ever sees its own.
        foreach (var (count, expectedRun) in new[] { (1, (0, 1)), (3, (1, 4)), (1, (0, 1)), (2, (1, 4)), (4, (1, 4)), (1, (0, 1)) })
        {
            var outputs = padded.Run(inputs[..count]);
            try
            {
                Assert.Equal(expectedRun, padded.LastRun);
                Assert.Equal(count, outputs.Length);
                for (var i = 0; i < count; i++)
                {
                    Assert.True(expected[i].Classes.AsSpan().SequenceEqual(outputs[i].ClassLogits), $"class logits of image {i} differ in a batch of {count}");
                    Assert.True(expected[i].Masks.AsSpan().SequenceEqual(outputs[i].MaskLogits), $"mask logits of image {i} differ in a batch of {count}");
                }
            }
            finally
            {
                DisposeAll(outputs);
            }
        }

        // One size only: a lone image is padded too. A batch above every size runs as it is on the largest
        // session (the scheduler never makes one), and so does every batch of a session without sizes.
        using var two = FaultInjectingSessionFactory.Padded(_folder, [2], 1);
        foreach (var (session, count, expectedRun) in new[] { (two, 1, (0, 2)), (two, 3, (0, 3)), (_session, 3, (0, 3)) })
        {
            var outputs = session.Run(inputs[..count]);
            try
            {
                Assert.Equal(expectedRun, session.LastRun);
                Assert.Equal(count, outputs.Length);
                Assert.True(expected[count - 1].Masks.AsSpan().SequenceEqual(outputs[count - 1].MaskLogits), $"mask logits of the last image differ in a batch of {count}");
            }
            finally
            {
                DisposeAll(outputs);
            }
        }
    }

    [Fact]
    public void Constructor_SessionsNotOnePerSizeOrSizesNotAscending_Refused()
    {
        var placement = new SessionPlacement(DeviceSpec.Cpu, "CPUExecutionProvider", null);
        using var options = SessionFactory.CreateCpuOptions(new InferenceOptions(), 1, "refused");
        using var a = new InferenceSession(_folder.ModelPath, options);
        using var b = new InferenceSession(_folder.ModelPath, options);

        Assert.Contains("one per size", Assert.Throws<ArgumentException>(() => new ModelSession([a, b], [4], placement)).Message, StringComparison.Ordinal);
        Assert.Contains("one per size", Assert.Throws<ArgumentException>(() => new ModelSession([a, b], [], placement)).Message, StringComparison.Ordinal);
        Assert.Contains("ascending", Assert.Throws<ArgumentException>(() => new ModelSession([a, b], [4, 1], placement)).Message, StringComparison.Ordinal);
        Assert.Contains("ascending", Assert.Throws<ArgumentException>(() => new ModelSession([a, b], [0, 1], placement)).Message, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        _session.Dispose();
        _raw.Dispose();
    }

    private static void DisposeAll(ModelOutput[] outputs)
    {
        foreach (var output in outputs)
        {
            output.Dispose();
        }
    }

    private ModelInput Input(string name)
    {
        using var image = _decoder.Decode(File.ReadAllBytes(Path.Combine(RepositoryPaths.HeldOut, $"{name}.png")));
        return new ImagePreprocessor(_folder.Preprocessor).Process(image);
    }

    private (float[] Classes, float[] Masks) RawOutputs(ModelInput input)
    {
        using var value = OrtValue.CreateTensorValueFromMemory(input.Tensor.ToArray(), [1, 3, input.Plan.PaddedHeight, input.Plan.PaddedWidth]);
        using var runOptions = new RunOptions();
        using var results = _raw.Run(runOptions, [ModelSession.InputName], [value], [ModelSession.ClassOutputName, ModelSession.MaskOutputName]);
        return (results[0].GetTensorDataAsSpan<float>().ToArray(), results[1].GetTensorDataAsSpan<float>().ToArray());
    }
}
