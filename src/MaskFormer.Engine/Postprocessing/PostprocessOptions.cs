namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// Thresholds of the inference rules. Defaults are detectron2's; <see cref="HuggingFace"/> gives
/// transformers' post_process_* defaults.
/// </summary>
public sealed record PostprocessOptions
{
    /// <summary>detectron2's defaults.</summary>
    public static PostprocessOptions Detectron2 { get; } = new();

    /// <summary>HuggingFace transformers' defaults (threshold 0.5, overlap 0.8, instance score 0.5).</summary>
    public static PostprocessOptions HuggingFace { get; } = new() { Convention = PostprocessConvention.HuggingFace, ObjectMaskThreshold = 0.5f, OverlapThreshold = 0.8f, InstanceScoreThreshold = 0.5f, InstanceTopK = 0 };

    /// <summary>Whose rules apply: detectron2's (default) or transformers' <c>post_process_*</c>.</summary>
    public PostprocessConvention Convention { get; init; }

    /// <summary>HuggingFace panoptic: a query's own area counts pixels whose weighted probability is at least this.</summary>
    public float MaskThreshold { get; init; } = 0.5f;

    /// <summary>Panoptic: keep a query when its best class is not "no object" and scores above this.</summary>
    public float ObjectMaskThreshold { get; init; } = 0.8f;

    /// <summary>Panoptic: drop a segment whose visible area over its mask area is below this.</summary>
    public float OverlapThreshold { get; init; } = 0.8f;

    /// <summary>Instance: (query, class) pairs kept, best first; 0 (the HuggingFace default, in either convention) keeps as many as the model has queries, as transformers' <c>topk(num_queries)</c>.</summary>
    public int InstanceTopK { get; init; } = 100;

    /// <summary>The (query, class) pairs instance inference keeps for a model of <paramref name="queries"/> queries.</summary>
    public int TopK(int queries) => InstanceTopK > 0 ? InstanceTopK : queries;

    /// <summary>Instance: drop instances scoring at or below this (0 drops only empty masks).</summary>
    public float InstanceScoreThreshold { get; init; }

    /// <summary>Instance: keep only thing classes; null means "when the model names its things".</summary>
    public bool? InstanceThingsOnly { get; init; }

    /// <summary>
    /// Label ids treated as stuff for this call, as HuggingFace's <c>label_ids_to_fuse</c>: null keeps
    /// the model's own split; otherwise every other label is a thing.
    /// </summary>
    public IReadOnlySet<int>? LabelIdsToFuse { get; init; }

    /// <summary>The size results are produced at; the original image size by default.</summary>
    public OutputSize Output { get; init; } = OutputSize.Original;
}

/// <summary>Which reference implementation's inference rules apply.</summary>
public enum PostprocessConvention
{
    /// <summary>detectron2's <c>semantic_inference</c>, <c>panoptic_inference</c>, <c>instance_inference</c>.</summary>
    Detectron2,

    /// <summary>transformers' <c>post_process_semantic/instance/panoptic_segmentation</c>.</summary>
    HuggingFace,
}
