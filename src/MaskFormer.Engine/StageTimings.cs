namespace MaskFormer.Engine;

/// <summary>How long each stage of one request took.</summary>
public sealed record StageTimings
{
    /// <summary>Decoding or converting the image.</summary>
    public TimeSpan Decode { get; init; }

    /// <summary>Resize, normalise, pad.</summary>
    public TimeSpan Preprocess { get; init; }

    /// <summary>Waiting for a batch and a session.</summary>
    public TimeSpan Queue { get; init; }

    /// <summary>The model run (whole batch).</summary>
    public TimeSpan Inference { get; init; }

    /// <summary>Semantic, instance and panoptic inference.</summary>
    public TimeSpan Postprocess { get; init; }

    /// <summary>Images in the model run.</summary>
    public int BatchSize { get; init; }
}
