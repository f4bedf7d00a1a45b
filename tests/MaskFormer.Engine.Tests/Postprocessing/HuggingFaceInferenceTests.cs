using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using MaskFormer.Engine.Tests.Reference;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace MaskFormer.Engine.Tests.Postprocessing;

/// <summary>
/// The HUGGINGFACE convention: panoptic against transformers.js itself (npm @huggingface/transformers,
/// installed in tests/hf by the test command) on random and real logits, to the pixel; semantic and
/// instance against float64 transcriptions of Python transformers' functions.
/// </summary>
public sealed class HuggingFaceInferenceTests
{
    private static readonly ModelLabel[] s_labels = [.. Enumerable.Range(0, 16).Select(i => new ModelLabel(i, $"c{i}", true))];

    [Fact]
    public void Panoptic_RandomAndRealLogits_EqualsTransformersJs()
    {
        // The large cases take the bands of rows a large output is produced in.
        var cases = RandomCases(30).Concat(RealCases()).Concat(LargeCases()).ToList();
        var folder = Directory.CreateTempSubdirectory("hf-panoptic-");
        try
        {
            var requests = new List<object>();
            for (var i = 0; i < cases.Count; i++)
            {
                var (output, height, width) = cases[i];
                File.WriteAllBytes(Path.Combine(folder.FullName, $"{i}.class"), MemoryMarshal.AsBytes(output.ClassLogits).ToArray());
                File.WriteAllBytes(Path.Combine(folder.FullName, $"{i}.mask"), MemoryMarshal.AsBytes(output.MaskLogits).ToArray());
                requests.Add(new
                {
                    classFile = Path.Combine(folder.FullName, $"{i}.class"),
                    maskFile = Path.Combine(folder.FullName, $"{i}.mask"),
                    queries = output.Queries,
                    classes = output.ClassesWithNoObject,
                    maskHeight = output.MaskHeight,
                    maskWidth = output.MaskWidth,
                    height,
                    width,
                    threshold = 0.5,
                    maskThreshold = 0.5,
                    overlap = 0.8,
                    outFile = Path.Combine(folder.FullName, $"{i}.out"),
                });
            }

            var lines = RunTransformersJs(JsonSerializer.Serialize(requests));
            Assert.Equal(cases.Count, lines.Length);
            var totalSegments = 0;
            for (var i = 0; i < cases.Count; i++)
            {
                var (output, height, width) = cases[i];
                using var ours = HuggingFaceInference.Panoptic(output, height, width, mask2Former: false, s_labels, PostprocessOptions.HuggingFace with { LabelIdsToFuse = new HashSet<int>() });
                var theirs = JsonSerializer.Deserialize<JsonElement[]>(lines[i])!;
                var theirMap = MemoryMarshal.Cast<byte, int>(File.ReadAllBytes(Path.Combine(folder.FullName, $"{i}.out"))).ToArray();

                Assert.Equal(theirs.Select(s => (s.GetProperty("id").GetInt32(), s.GetProperty("label_id").GetInt32())), ours.Segments.Select(s => (s.Id, s.CategoryId)));
                Assert.All(theirs.Zip(ours.Segments), pair => Assert.Equal(pair.First.GetProperty("score").GetDouble(), pair.Second.Score, 1e-6));
                var ourMap = ours.SegmentIds.Values.ToArray();
                var mismatches = Enumerable.Range(0, theirMap.Length).Count(p => Math.Max(theirMap[p], 0) != ourMap[p]);
                Assert.True(mismatches == 0, $"case {i} ({height}x{width}): {mismatches} pixels differ from transformers.js");
                totalSegments += theirs.Length;
                output.Dispose();
            }

            Assert.True(totalSegments > cases.Count, $"only {totalSegments} segments over {cases.Count} cases: the cases test too little");
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Semantic_RandomLogits_MatchesPythonTransformersInFloat64(bool mask2Former)
    {
        foreach (var (output, height, width) in RandomCases(mask2Former ? 4 : 12))
        {
            using (output)
            {
                using var map = HuggingFaceInference.Semantic(output, height, width, mask2Former);
                var (masks, maskHeight, maskWidth) = mask2Former ? Resize384(output) : (output.MaskLogits.ToArray(), output.MaskHeight, output.MaskWidth);
                var scores = ReferenceHuggingFace.SemanticScores(output.ClassLogits.ToArray(), masks, output.Queries, output.ClassesWithNoObject, maskHeight, maskWidth, height, width);
                var labels = map.Values;
                var decided = 0;
                for (var y = 0; y < height; y++)
                {
                    for (var x = 0; x < width; x++)
                    {
                        var ranked = Enumerable.Range(0, scores.GetLength(0)).OrderByDescending(c => scores[c, y, x]).ToArray();
                        if (scores[ranked[0], y, x] - scores[ranked[1], y, x] < 1e-4)
                        {
                            continue; // too close to a tie for float32 to call
                        }

                        decided++;
                        Assert.Equal(ranked[0], labels[(y * width) + x]);
                    }
                }

                Assert.True(decided > height * width * 0.98, $"only {decided} of {height * width} pixels were clear of ties");
            }
        }
    }

    [Fact]
    public void Instance_RandomLogits_MatchesPythonTransformersInFloat64()
    {
        var compared = 0;
        foreach (var (output, height, width) in RandomCases(15))
        {
            using (output)
            {
                var ours = HuggingFaceInference.Instance(output, height, width, mask2Former: false, s_labels, thingsOnly: false, PostprocessOptions.HuggingFace with { InstanceScoreThreshold = 0.3f });
                try
                {
                    var expected = ReferenceHuggingFace.Instances(output.ClassLogits.ToArray(), output.MaskLogits.ToArray(), output.Queries, output.ClassesWithNoObject, output.MaskHeight, output.MaskWidth, height, width, 0.3);
                    Assert.Equal(expected.Count, ours.Count);

                    // Highest score first, as the contract says (transformers' own order is topk's, unspecified).
                    Assert.Equal(ours.Select(o => o.Score).OrderDescending(), ours.Select(o => o.Score));
                    foreach (var (label, score, mask) in expected)
                    {
                        var match = Assert.Single(ours, o => o.LabelId == label && Math.Abs(o.Score - score) < 1e-5);
                        for (var y = 0; y < height; y++)
                        {
                            for (var x = 0; x < width; x++)
                            {
                                Assert.Equal(mask[y, x], match.Mask.Row(y)[x] == 1);
                            }
                        }
                    }

                    compared += expected.Count;
                }
                finally
                {
                    InstanceMasks.DisposeAll(ours);
                }
            }
        }

        Assert.True(compared > 10, $"only {compared} instances compared");
    }

    [Fact]
    public void Instance_TopK_KeepsOnlyTheInstancesOfTheBestPairs()
    {
        var limited = 0;
        foreach (var (output, height, width) in RandomCases(15))
        {
            using (output)
            {
                var options = PostprocessOptions.HuggingFace with { InstanceScoreThreshold = 0.3f };
                var all = HuggingFaceInference.Instance(output, height, width, mask2Former: false, s_labels, thingsOnly: false, options);
                var top = HuggingFaceInference.Instance(output, height, width, mask2Former: false, s_labels, thingsOnly: false, options with { InstanceTopK = 2 });
                try
                {
                    Assert.InRange(top.Count, 0, 2);
                    Assert.All(top, t => Assert.Single(all, a => a.LabelId == t.LabelId && a.Score == t.Score));
                    limited += all.Count > 2 ? 1 : 0;
                }
                finally
                {
                    InstanceMasks.DisposeAll(all, top);
                }
            }
        }

        Assert.True(limited > 0, "no case had more than two instances to limit");
    }

    [Fact]
    public void Instance_EveryPairKept_EachQuerysClassesShareItsMask()
    {
        // With every (query, class) pair kept, a query's mask is built once and copied for its other
        // classes: each of those instances equals the one built for it, pixel for pixel.
        var (shared, namedTwice) = (0, 0);
        foreach (var (output, height, width) in RandomCases(6))
        {
            using (output)
            {
                var options = PostprocessOptions.HuggingFace with { InstanceScoreThreshold = 0f };
                var one = HuggingFaceInference.Instance(output, height, width, mask2Former: false, s_labels, thingsOnly: false, options);
                var all = HuggingFaceInference.Instance(output, height, width, mask2Former: false, s_labels, thingsOnly: false, options with { InstanceTopK = output.Queries * (output.ClassesWithNoObject - 1) });
                try
                {
                    Assert.True(all.Count >= one.Count);
                    foreach (var instance in one)
                    {
                        var twin = Assert.Single(all, a => a.LabelId == instance.LabelId && a.Score == instance.Score);
                        Assert.Equal((instance.Area, instance.Box), (twin.Area, twin.Box));
                        for (var y = 0; y < height; y++)
                        {
                            Assert.True(instance.Mask.Row(y).SequenceEqual(twin.Mask.Row(y)), $"row {y} differs");
                        }
                    }

                    // Instances of one query have the same area and box: there are more instances than masks.
                    shared += all.Count - all.Select(a => (a.Area, a.Box)).Distinct().Count();

                    // Each names its query (encoding reads a query's mask once); one query's instances have one mask.
                    Assert.All(all, a => Assert.InRange(a.Query, 0, output.Queries - 1));
                    foreach (var group in all.GroupBy(a => a.Query))
                    {
                        var first = group.First();
                        foreach (var other in group.Skip(1))
                        {
                            Assert.Equal((first.Area, first.Box), (other.Area, other.Box));
                            for (var y = 0; y < height; y++)
                            {
                                Assert.True(first.Mask.Row(y).SequenceEqual(other.Mask.Row(y)), $"query {group.Key}, row {y} differs");
                            }
                        }
                    }

                    namedTwice += all.Count - all.Select(a => a.Query).Distinct().Count();
                }
                finally
                {
                    InstanceMasks.DisposeAll(one, all);
                }
            }
        }

        Assert.True(shared > 0, "no query kept more than one class");
        Assert.True(namedTwice > 0, "no query named by more than one instance");
    }

    [Fact]
    public void Panoptic_FusedLabelSeenAgain_NumbersSegmentsAsPythonTransformers()
    {
        // Four queries in four quarters: labels 0 (fused), 3, 0 (fused), 4. Python's compute_segments
        // gives ids 1, 2, then 1 again for the fused label, and resumes counting from 1, so 4 gets id 2.
        int[] labelOfQuery = [0, 3, 0, 4];
        using var output = new ModelOutput(4, 6, 8, 8);
        output.ClassLogits.Fill(-10);
        output.MaskLogits.Fill(-10);
        for (var q = 0; q < 4; q++)
        {
            output.ClassLogits[(q * 6) + labelOfQuery[q]] = 10;
            var (top, left) = (q / 2 * 4, q % 2 * 4);
            for (var y = top; y < top + 4; y++)
            {
                output.MaskLogits.Slice((q * 64) + (y * 8) + left, 4).Fill(10);
            }
        }

        using var result = HuggingFaceInference.Panoptic(output, 8, 8, mask2Former: false, s_labels, PostprocessOptions.HuggingFace with { LabelIdsToFuse = new HashSet<int> { 0 } });

        Assert.Equal([(1, 0, false), (2, 3, true), (1, 0, false), (2, 4, true)], result.Segments.Select(s => (s.Id, s.CategoryId, s.IsThing)));
    }

    [Fact]
    public void Semantic_OutputOfManyBands_EqualsTheWholeOutputResizedAtOnce()
    {
        foreach (var (output, height, width) in LargeCases())
        {
            using (output)
            {
                using var map = HuggingFaceInference.Semantic(output, height, width, mask2Former: false);

                // Transformers' order: every class's score plane at mask size, resized whole, argmax.
                var (classes, plane) = (output.ClassesWithNoObject - 1, output.MaskHeight * output.MaskWidth);
                var sums = new double[classes * plane];
                var probabilities = new float[output.ClassesWithNoObject];
                for (var q = 0; q < output.Queries; q++)
                {
                    HuggingFaceResize.Softmax(output.ClassLogits.Slice(q * output.ClassesWithNoObject, output.ClassesWithNoObject), probabilities);
                    for (var p = 0; p < plane; p++)
                    {
                        var probability = HuggingFaceResize.Sigmoid(output.MaskLogits[(q * plane) + p]);
                        for (var c = 0; c < classes; c++)
                        {
                            sums[(c * plane) + p] += probabilities[c] * probability;
                        }
                    }
                }

                var resized = new float[classes * height * width];
                HuggingFaceResize.Bilinear(sums.Select(v => (float)v).ToArray(), classes, output.MaskHeight, output.MaskWidth, resized, height, width);
                var outPlane = height * width;
                var band = new HuggingFaceResize.BilinearRows(output.MaskHeight, output.MaskWidth, height, width).BandRows(classes);
                Assert.True(band < height, $"one band of {band} rows covers all {height}");
                for (var p = 0; p < outPlane; p++)
                {
                    var best = 0;
                    for (var c = 1; c < classes; c++)
                    {
                        best = resized[(c * outPlane) + p] > resized[(best * outPlane) + p] ? c : best;
                    }

                    Assert.True(best == map.Values[p], $"{height}x{width}, pixel {p}: {map.Values[p]}, whole output {best}");
                }
            }
        }
    }

    // Outputs of a few megapixels: produced in several bands of rows.
    private static IEnumerable<(ModelOutput Output, int Height, int Width)> LargeCases()
    {
        var random = new Random(77);
        foreach (var (height, width) in new[] { (1500, 1400), (900, 2100) })
        {
            var plan = new ResizePlan(height, width, height, width, 32, 40);
            yield return (PeakyModelOutput.Create(random, 12, 8, plan), height, width);
        }
    }

    private static IEnumerable<(ModelOutput Output, int Height, int Width)> RandomCases(int count)
    {
        var random = new Random(2024);
        for (var i = 0; i < count; i++)
        {
            var (height, width) = (random.Next(8, 140), random.Next(8, 140));
            var plan = new ResizePlan(height, width, height, width, random.Next(2, 12) * 4, random.Next(2, 12) * 4);
            yield return (PeakyModelOutput.Create(random, random.Next(3, 16), random.Next(3, 9), plan), height, width);
        }
    }

    // The committed model's outputs on held-out images, at their original sizes.
    private static List<(ModelOutput Output, int Height, int Width)> RealCases()
    {
        var folder = ModelFolder.Read(RepositoryPaths.TinyShapes, "tiny-shapes", null);
        var decoder = new ImageDecoder(Options.Create(new ImageDecoderOptions()));
        using var session = new SessionFactory(new InferenceOptions(), NullLogger.Instance).Create(folder.ModelPath, DeviceSpec.Cpu, 2);
        var results = new List<(ModelOutput Output, int Height, int Width)>();
        for (var i = 0; i < 4; i++)
        {
            using var image = decoder.Decode(File.ReadAllBytes(Path.Combine(RepositoryPaths.HeldOut, $"{i:D4}.png")));
            using var input = new ImagePreprocessor(folder.Preprocessor).Process(image);
            results.Add((session.Run([input])[0], image.Height, image.Width));
        }

        return results;
    }

    private static (float[] Masks, int Height, int Width) Resize384(ModelOutput output)
    {
        var side = HuggingFaceResize.Mask2FormerSide;
        var masks = new float[output.Queries * side * side];
        HuggingFaceResize.Bilinear(output.MaskLogits, output.Queries, output.MaskHeight, output.MaskWidth, masks, side, side);
        return (masks, side, side);
    }

    private static string[] RunTransformersJs(string input)
    {
        var oracle = Path.Combine(RepositoryPaths.Root, "tests", "hf");
        Assert.True(Directory.Exists(Path.Combine(oracle, "node_modules", "@huggingface", "transformers")), "tests/hf has no node_modules: run `npm ci --ignore-scripts` there (tools/test-all.sh does)");
        var start = new ProcessStartInfo("node", ["panoptic.mjs"])
        {
            WorkingDirectory = oracle,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var stderrTask = process.StandardError.ReadToEndAsync();
        process.StandardInput.Write(input);
        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"transformers.js oracle failed: {stderrTask.Result}");
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }
}
