namespace MaskFormer.Engine.Postprocessing;

/// <summary>One query's binary mask as row runs, its area, box and the sum of its sigmoids inside.</summary>
internal readonly record struct MeasuredMask(MaskRuns Runs, long Area, double SigmoidSum, PixelBox Box);
