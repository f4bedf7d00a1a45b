namespace MaskFormer.Engine;

/// <summary>The tasks a request asks for; all come from one model run.</summary>
[Flags]
public enum SegmentationTasks
{
    /// <summary>None.</summary>
    None = 0,

    /// <summary>A class per pixel.</summary>
    Semantic = 1,

    /// <summary>Scored object masks.</summary>
    Instance = 2,

    /// <summary>Non-overlapping thing and stuff segments.</summary>
    Panoptic = 4,
}
