using System.Diagnostics;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;

namespace MaskFormer.Benchmarks;

/// <summary>Each post-processing mode's time per image beside one model run, on the same output.</summary>
internal static class PostprocessReport
{
    /// <summary>The first image's logits out of ONNX Runtime's tensors (class, mask), to post-process repeatedly.</summary>
    internal static ModelOutput CopyOutput(IReadOnlyList<OrtValue> results)
    {
        var classShape = results[0].GetTensorTypeAndShape().Shape;
        var maskShape = results[1].GetTensorTypeAndShape().Shape;
        var output = new ModelOutput((int)classShape[1], (int)classShape[2], (int)maskShape[2], (int)maskShape[3]);
        results[0].GetTensorDataAsSpan<float>().CopyTo(output.ClassLogits);
        results[1].GetTensorDataAsSpan<float>().CopyTo(output.MaskLogits);
        return output;
    }

    /// <summary>One untimed model run of a batch of one on a fresh CPU session: the output to post-process repeatedly.</summary>
    internal static ModelOutput RunOnce(ModelFolder folder, ModelInput input)
    {
        using var session = new InferenceSession(folder.ModelPath);
        using var value = OrtValue.CreateTensorValueFromMemory(input.Tensor.ToArray(), [1, 3, input.Plan.PaddedHeight, input.Plan.PaddedWidth]);
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, ["pixel_values"], [value], ["class_queries_logits", "masks_queries_logits"]);
        return CopyOutput(results);
    }

    public static void Run(ModelFolder folder, byte[] imageBytes)
    {
        using var image = new ImageDecoder(Options.Create(new ImageDecoderOptions())).Decode(imageBytes);
        var preprocessor = new ImagePreprocessor(folder.Preprocessor);
        using var input = preprocessor.Process(image);
        using var session = new InferenceSession(folder.ModelPath);
        using var value = OrtValue.CreateTensorValueFromMemory(input.Tensor.ToArray(), [1, 3, input.Plan.PaddedHeight, input.Plan.PaddedWidth]);
        using var runOptions = new RunOptions();
        string[] inputs = ["pixel_values"];
        string[] outputs = ["class_queries_logits", "masks_queries_logits"];

        ModelOutput? output = null;
        var inference = Time(() =>
        {
            using var results = session.Run(runOptions, inputs, [value], outputs);
            output ??= CopyOutput(results);
        });

        using var modelOutput = output!;
        var labels = folder.Config.Labels;
        var preprocess = Time(() => preprocessor.Process(image).Dispose());
        var semantic = Time(() => SemanticInference.Run(modelOutput, input.Plan).Dispose());
        var panoptic = Time(() => PanopticInference.Run(modelOutput, input.Plan, labels, false, PostprocessOptions.Detectron2).Dispose());
        var instance = Time(() =>
        {
            foreach (var instanceMask in InstanceInference.Run(modelOutput, input.Plan, labels, true, PostprocessOptions.Detectron2))
            {
                instanceMask.Dispose();
            }
        });

        Console.WriteLine($"per image ({image.Width}x{image.Height}, model input {input.Plan.PaddedWidth}x{input.Plan.PaddedHeight}), mean of 50 runs after 5 warm-ups, single-threaded caller:");
        Console.WriteLine("| stage | ms |");
        Console.WriteLine("| --- | ---: |");
        Console.WriteLine($"| pre-process | {preprocess:F3} |");
        Console.WriteLine($"| model run (ONNX Runtime, batch 1) | {inference:F3} |");
        Console.WriteLine($"| semantic post-process | {semantic:F3} |");
        Console.WriteLine($"| panoptic post-process | {panoptic:F3} |");
        Console.WriteLine($"| instance post-process | {instance:F3} |");
    }

    private static double Time(Action action)
    {
        for (var i = 0; i < 5; i++)
        {
            action();
        }

        var clock = Stopwatch.StartNew();
        for (var i = 0; i < 50; i++)
        {
            action();
        }

        return clock.Elapsed.TotalMilliseconds / 50;
    }
}
