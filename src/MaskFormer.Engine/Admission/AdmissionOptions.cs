namespace MaskFormer.Engine.Admission;

/// <summary>
/// Admission control for the CPU and memory a request costs outside the model run: decoding,
/// pre-processing, post-processing and encoding the result. Bound from "MaskFormer:Admission".
/// </summary>
public sealed class AdmissionOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "MaskFormer:Admission";

    /// <summary>
    /// Requests decoding, pre-processing, post-processing or encoding at once; 0 means the processor
    /// count. A request gives its slot up while it waits for the model and takes one again, ahead of new
    /// requests, to post-process. Default 0.
    /// </summary>
    public int MaxConcurrency { get; set; }

    /// <summary>
    /// Pixels of requests between decoding and the end of encoding, at once: each request counts the
    /// largest of its image, the model input and the result size. At about 8 bytes per pixel at its peak
    /// the default, 80 megapixels (two images at the 40-megapixel limit), bounds this memory near 640 MB.
    /// A single request larger than the budget is admitted when nothing else is in flight.
    /// </summary>
    public long MaxPixelsInFlight { get; set; } = 80_000_000;

    /// <summary>Most requests waiting to be admitted; beyond it a call is answered RESOURCE_EXHAUSTED at once. Default 256, as the model queue.</summary>
    public int MaxWaiting { get; set; } = 256;

    /// <summary>
    /// How long a unary call waits to be admitted before it is answered RESOURCE_EXHAUSTED. Frames of an
    /// OVERLOAD_POLICY_QUEUE stream wait as long as it takes (their stream stops reading meanwhile).
    /// Default 10 s.
    /// </summary>
    public TimeSpan MaxWait { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The retry delay (RetryInfo) suggested to callers turned away. Default 500 ms.</summary>
    public TimeSpan RetryAfter { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// After this long with no request admitted or waiting, the process gives memory back: the image
    /// decoder's pool, a compacting garbage collection that decommits the free heap, and (glibc)
    /// malloc_trim for native memory freed by ONNX Runtime and ImageSharp. 0 turns it off. Default 5 s.
    /// </summary>
    public TimeSpan ReturnMemoryAfterIdle { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The concurrency in effect: <see cref="MaxConcurrency"/>, or the processor count for 0.</summary>
    public int EffectiveConcurrency => MaxConcurrency > 0 ? MaxConcurrency : Environment.ProcessorCount;
}
