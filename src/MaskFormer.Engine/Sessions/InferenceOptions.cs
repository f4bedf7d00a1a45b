namespace MaskFormer.Engine.Sessions;

/// <summary>Where models run and how requests are batched. Bound from the "MaskFormer:Inference" section.</summary>
public sealed class InferenceOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "MaskFormer:Inference";

    /// <summary>The devices and how many sessions each gets. Default: one CPU session.</summary>
    public List<DeviceOptions> Devices { get; set; } = [];

    /// <summary>
    /// Intra-op threads per CPU session; 0 means the processor count divided by the number of CPU
    /// sessions (at least 1), so sessions do not oversubscribe the cores.
    /// </summary>
    public int IntraOpThreads { get; set; }

    /// <summary>
    /// Let ONNX Runtime's intra-op threads spin while waiting for work. Off by default: in a server the
    /// same cores decode, post-process and encode, and spinning threads starve that work.
    /// </summary>
    public bool AllowSpinning { get; set; }

    /// <summary>
    /// ONNX Runtime's CPU memory arena: <see cref="CpuArenaMode.Keep"/> (default, ONNX Runtime's own) keeps
    /// what the largest run needed; <see cref="CpuArenaMode.Shrink"/> returns what a run no longer uses when
    /// it ends, so resident memory comes back down after large images, but every run then allocates its
    /// tensors afresh (2.3x the realistic-width model's run time); <see cref="CpuArenaMode.Off"/> allocates
    /// every tensor on its own. RELIABILITY.md compares their cost.
    /// </summary>
    public CpuArenaMode CpuMemoryArena { get; set; } = CpuArenaMode.Keep;

    /// <summary>
    /// Linux: how many nice levels below the process's the thread-pool threads that decode, pre-process,
    /// post-process and encode requests run, so that the model's threads (the session workers and ONNX
    /// Runtime's intra-op threads, at the process's priority) take the cores first and the request work
    /// fills the gaps between model runs. 0 leaves every thread at the process's priority. Default 10;
    /// 0 to 19. Ignored on other systems.
    /// </summary>
    public int RequestThreadNice { get; set; } = 10;

    /// <summary>
    /// Linux: post-processing runs on threads of the engine's own, one per core, in the <c>SCHED_IDLE</c>
    /// policy, so that it takes a core only while the model's threads leave it free and gives it back the
    /// moment one of them wakes (<c>IdleThreadScheduler</c>). Default true. False: post-processing
    /// runs on the request's thread-pool thread, at <see cref="RequestThreadNice"/>. Ignored on other systems.
    /// </summary>
    public bool IdlePostprocessing { get; set; } = true;

    /// <summary>
    /// Most threads one post-processing pass of a large image may use (its two or three tasks may run side
    /// by side, each with its own passes). 0 (default): the cores shared among the images being
    /// post-processed at that moment (alone, every core; under load, its own thread); N: that, but never
    /// more than N. Process-wide, like <see cref="RequestThreadNice"/>.
    /// </summary>
    public int PostprocessThreads { get; set; }

    /// <summary>Most images in one model run. Default 4.</summary>
    public int MaxBatchSize { get; set; } = 4;

    /// <summary>
    /// On CUDA sessions, every model run is padded with zero images (their outputs dropped) to one of
    /// <see cref="CudaBatchSizes"/>, and each of those sizes runs on its own ONNX Runtime session. ONNX
    /// Runtime's CUDA convolutions (cuDNN 9) keep the execution plan of the last input shape only and
    /// rebuild it whenever the shape changes (a new input shape's first call took 0.32-0.47 s on an H200),
    /// so one session fed batch sizes that vary with the load rebuilds them run after run (at 4 callers
    /// on an H200: 7.9 images/s against 75.0 padded); a session per size sees one shape per image size.
    /// Costs the padding images' work, on the GPU and in copying their outputs back, and one copy of the
    /// weights per size on the GPU. Default true; CPU sessions (and a CUDA device that fell back to the
    /// CPU) always run the batch as it is.
    /// </summary>
    public bool PadCudaBatches { get; set; } = true;

    /// <summary>
    /// The batch sizes CUDA sessions pad to (<see cref="PadCudaBatches"/>), comma-separated ("1,4,8"), each
    /// between 1 and <see cref="MaxBatchSize"/>, at most <see cref="MaxCudaBatchSizes"/> with
    /// <see cref="MaxBatchSize"/>, which is always one of them. Default (empty): 1 and <see cref="MaxBatchSize"/>,
    /// so a lone request runs unpadded and any other batch as a full one. One string rather than a list, so
    /// that a value that is not a size fails at start-up instead of being dropped by the binder.
    /// </summary>
    public string CudaBatchSizes { get; set; } = string.Empty;

    /// <summary>Most padded batch sizes: each is one more ONNX Runtime session, with its own copy of the weights on the GPU.</summary>
    internal const int MaxCudaBatchSizes = 4;

    /// <summary>The batch sizes a CUDA session pads to, ascending; empty when it runs batches as they come.</summary>
    internal int[] EffectiveCudaBatchSizes()
    {
        if (!PadCudaBatches)
        {
            return [];
        }

        if (!TryParseCudaBatchSizes(CudaBatchSizes, out var configured))
        {
            throw new InvalidOperationException($"{SectionName}:CudaBatchSizes '{CudaBatchSizes}' is not a comma-separated list of batch sizes.");
        }

        return [.. (configured.Length == 0 ? [1] : configured).Append(MaxBatchSize).Distinct().Order()];
    }

    /// <summary>Parses "1, 4,8" (empty: none); false when an item is not a whole number.</summary>
    internal static bool TryParseCudaBatchSizes(string? text, out int[] sizes)
    {
        sizes = [];
        if (string.IsNullOrWhiteSpace(text))
        {
            return true;
        }

        var items = text.Split(',', StringSplitOptions.TrimEntries);
        var parsed = new int[items.Length];
        for (var i = 0; i < items.Length; i++)
        {
            if (!int.TryParse(items[i], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out parsed[i]))
            {
                return false;
            }
        }

        sizes = parsed;
        return true;
    }

    /// <summary>How long the first request of a batch may wait for others. Default 2 ms.</summary>
    public TimeSpan MaxQueueDelay { get; set; } = TimeSpan.FromMilliseconds(2);

    /// <summary>Most requests waiting per model; beyond it callers get "queue full" at once. Default 256.</summary>
    public int MaxQueueSize { get; set; } = 256;

    /// <summary>The retry delay suggested to callers turned away by a full queue, and to those whose model run hung. Default 100 ms.</summary>
    public TimeSpan QueueFullRetryAfter { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// How long one model run may take before its session is taken out of the pool and replaced: the
    /// run's requests are answered UNAVAILABLE with RetryInfo at once, ONNX Runtime is asked to
    /// terminate the run, and a new session is created for the slot. Default 60 s; 0 turns the watchdog
    /// off. Set it well above the slowest batch the devices run (MaxBatchSize images of the largest size).
    /// </summary>
    public TimeSpan SessionRunTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Run every session once per batch size before reporting ready. Default true.</summary>
    public bool WarmUp { get; set; } = true;

    /// <summary>
    /// How threads waiting for a CUDA device (a run's copies back, its stream's end) wait: the device's
    /// primary-context scheduling flag, set through the CUDA driver once per device and process, before
    /// its first session. Default <see cref="CudaHostWait.Auto"/>: CUDA's heuristic, which on a one-GPU
    /// machine spins a core per waiting thread; <see cref="CudaHostWait.BlockingSync"/> sleeps instead.
    /// A driver that refuses it is logged and the device is used as it is.
    /// </summary>
    public CudaHostWait CudaHostWait { get; set; } = CudaHostWait.Auto;

    /// <summary>CUDA execution provider options, passed to ONNX Runtime as they are
    /// (for example cudnn_conv_algo_search, arena_extend_strategy, gpu_mem_limit), over the service's one
    /// default, use_tf32=0 (full float32 products, so the GPU's labels match the CPU's).</summary>
    public Dictionary<string, string> CudaProviderOptions { get; set; } = [];
}

/// <summary>One device and its sessions.</summary>
public sealed class DeviceOptions
{
    /// <summary>"cpu" or "cuda:N".</summary>
    public string Name { get; set; } = "cpu";

    /// <summary>Sessions (each with its own worker) on this device. Default 1.</summary>
    public int Sessions { get; set; } = 1;

    /// <summary>
    /// When true, a CUDA device that cannot be used stops start-up (exit code 1, the reason on stderr)
    /// instead of falling back to the CPU. Default false: fall back, log and report the reason.
    /// </summary>
    public bool Required { get; set; }
}
