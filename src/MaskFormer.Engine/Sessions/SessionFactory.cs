using System.Collections.Concurrent;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Preprocessing;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;

namespace MaskFormer.Engine.Sessions;

/// <summary>
/// Creates ONNX Runtime sessions on the configured devices. A CUDA device whose provider cannot be
/// loaded falls back to the CPU once: the first failure is logged and remembered, later sessions for
/// that device go straight to the CPU, and every placement reports the reason. A required device never
/// falls back: its failure is thrown as <see cref="DeviceUnavailableException"/>.
/// </summary>
internal sealed partial class SessionFactory(InferenceOptions options, ILogger logger) : IModelSessionFactory
{
    // A CUDA session's own CPU work is copies and a few small operators: one thread, whatever the CPU sessions get.
    private const int CudaIntraOpThreads = 1;

    // Read and written by the scheduler's workers too (a replacement session after a hung run).
    private readonly ConcurrentDictionary<DeviceSpec, string> _failedDevices = new();

    /// <summary>A session for a model folder; logs name the model and its version, not the folder.</summary>
    public ModelSession Create(ModelFolder folder, DeviceSpec device, int intraOpThreads, bool required = false) =>
        Create(folder.ModelPath, device, intraOpThreads, required, folder.Name, folder.Version, folder.Config.Labels.Count, folder.Preprocessor);

    IModelSession IModelSessionFactory.Create(ModelFolder folder, DeviceSpec device, int intraOpThreads, bool required) =>
        Create(folder, device, intraOpThreads, required);

    public ModelSession Create(string modelPath, DeviceSpec device, int intraOpThreads, bool required = false, string? modelName = null, string? version = null, int labels = 0, PreprocessorConfig? preprocessor = null)
    {
        var model = new ModelId(modelName ?? Path.GetFileName(Path.GetDirectoryName(modelPath)) ?? modelPath, version ?? string.Empty, labels, preprocessor);
        string? fallbackReason = null;
        if (required && device.IsCuda && _failedDevices.TryGetValue(device, out var known))
        {
            throw new DeviceUnavailableException(device.ToString(), known);
        }

        if (device.IsCuda && !_failedDevices.TryGetValue(device, out fallbackReason))
        {
            SetHostWait(device);
            try
            {
                var session = CreateCuda(modelPath, model, device, CudaIntraOpThreads);
                if (session.BatchSizes.Count > 0)
                {
                    LogPaddedBatches(logger, model.Name, device, session.BatchSizes);
                }

                return session;
            }
            catch (Exception ex) when (IsCudaLoadFailure(ex))
            {
                fallbackReason = CudaLoadFailureReason(ex);
                _failedDevices[device] = fallbackReason;
                if (required)
                {
                    throw new DeviceUnavailableException(device.ToString(), fallbackReason, ex);
                }

                LogCudaFallback(logger, device.ToString(), fallbackReason);
            }
        }

        // A CUDA device that fell back gets the threads of a CPU session: the caller passes them for that case.
        return new ModelSession(Build(modelPath, model, device, intraOpThreads, useCuda: false), new SessionPlacement(device, "CPUExecutionProvider", fallbackReason) { IntraOpThreads = intraOpThreads }, ShrinkArena);
    }

    // The device's primary context is shared by all its sessions (and the process's models), so its wait
    // mode is set once, before the first. A refusal is not the device's failure: the provider's load decides that.
    private void SetHostWait(DeviceSpec device)
    {
        if (options.CudaHostWait == CudaHostWait.Auto || !CudaDriver.SetHostWaitOnce(device.DeviceId, options.CudaHostWait, out var refusal))
        {
            return;
        }

        if (refusal is not null)
        {
            LogHostWaitNotSet(logger, device, options.CudaHostWait, refusal);
        }
        else
        {
            LogHostWaitSet(logger, device, options.CudaHostWait);
        }
    }

    /// <summary>Whether <paramref name="ex"/> says a CUDA session cannot be had here (provider, driver or library missing), rather than a bug.</summary>
    internal static bool IsCudaLoadFailure(Exception ex) =>
        ex is OnnxRuntimeException or DllNotFoundException or EntryPointNotFoundException or TypeInitializationException;

    /// <summary>The reason of such a failure, in one line (ONNX Runtime's messages run on with the provider's log).</summary>
    internal static string CudaLoadFailureReason(Exception ex) => ex.Message.Split('\n')[0].Trim();

    private bool ShrinkArena => options.CpuMemoryArena == CpuArenaMode.Shrink;

    /// <summary>A CUDA session: one ONNX Runtime session per padded batch size (<see cref="InferenceOptions.PadCudaBatches"/>), or one for batches as they come.</summary>
    private ModelSession CreateCuda(string modelPath, ModelId model, DeviceSpec device, int intraOpThreads)
    {
        var batchSizes = options.EffectiveCudaBatchSizes();

        // The first session's failure says whether CUDA can be used here at all (the caller's fallback);
        // a later one's (the GPU's memory full with the copies before it, say) is not the device's verdict.
        List<InferenceSession> sessions = [Build(modelPath, model, device, intraOpThreads, useCuda: true)];
        try
        {
            while (sessions.Count < batchSizes.Length)
            {
                try
                {
                    sessions.Add(Build(modelPath, model, device, intraOpThreads, useCuda: true));
                }
                catch (Exception ex) when (IsCudaLoadFailure(ex))
                {
                    throw new InvalidOperationException($"The session of model {model.Name} on {device} for batches of {batchSizes[sessions.Count]} (MaskFormer:Inference:CudaBatchSizes) could not be created: {CudaLoadFailureReason(ex)}", ex);
                }
            }

            return new ModelSession(sessions, batchSizes, new SessionPlacement(device, "CUDAExecutionProvider", null) { IntraOpThreads = intraOpThreads }, ShrinkArena);
        }
        catch
        {
            foreach (var session in sessions)
            {
                session.Dispose();
            }

            throw;
        }
    }

    /// <summary>
    /// The session options every session starts from (threads, spinning, graph optimisation); the
    /// benchmarks' raw ONNX Runtime runs use them too, so the two compare like with like.
    /// </summary>
    internal static SessionOptions CreateCpuOptions(InferenceOptions options, int intraOpThreads, string logId)
    {
        var sessionOptions = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            IntraOpNumThreads = intraOpThreads,
            InterOpNumThreads = 1,
            LogId = logId,
            EnableCpuMemArena = options.CpuMemoryArena != CpuArenaMode.Off,
        };

        sessionOptions.AddSessionConfigEntry("session.intra_op.allow_spinning", options.AllowSpinning ? "1" : "0");
        sessionOptions.AddSessionConfigEntry("session.inter_op.allow_spinning", options.AllowSpinning ? "1" : "0");
        return sessionOptions;
    }

    /// <summary>
    /// <see cref="CreateCpuOptions"/> plus, on a CUDA device, its execution provider with the configured
    /// provider options; the benchmarks' raw runs on a GPU use it too. Throws where the provider cannot load.
    /// </summary>
    internal static SessionOptions CreateOptions(InferenceOptions options, DeviceSpec device, int intraOpThreads, string logId)
    {
        var sessionOptions = CreateCpuOptions(options, intraOpThreads, logId);
        if (!device.IsCuda)
        {
            return sessionOptions;
        }

        try
        {
            using var cudaOptions = new OrtCUDAProviderOptions();
            cudaOptions.UpdateOptions(CudaProviderOptions(options, device));
            sessionOptions.AppendExecutionProvider_CUDA(cudaOptions);
            return sessionOptions;
        }
        catch
        {
            sessionOptions.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The CUDA provider's options for <paramref name="device"/>: the service's defaults, then the configured
    /// ones over them, then the device id. The one default is <c>use_tf32=0</c>: ONNX Runtime's TF32 matrix
    /// products moved labels off the CPU's (1 pixel in 22,509 on a held-out image, on an H200), while with
    /// full float32 the GPU's label maps equalled the CPU's; configure <c>use_tf32=1</c> to trade that for speed.
    /// </summary>
    internal static Dictionary<string, string> CudaProviderOptions(InferenceOptions options, DeviceSpec device)
    {
        var providerOptions = new Dictionary<string, string>(StringComparer.Ordinal) { ["use_tf32"] = "0" };
        foreach (var (key, value) in options.CudaProviderOptions)
        {
            providerOptions[key] = value;
        }

        providerOptions["device_id"] = device.DeviceId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return providerOptions;
    }

    private InferenceSession Build(string modelPath, ModelId model, DeviceSpec device, int intraOpThreads, bool useCuda)
    {
        using var sessionOptions = CreateOptions(options, useCuda ? device : DeviceSpec.Cpu, intraOpThreads, model.Version.Length > 0 ? $"{model.Name}:{model.Version}" : model.Name);
        InferenceSession session;
        try
        {
            session = new InferenceSession(modelPath, sessionOptions);
        }
        catch (OnnxRuntimeException ex) when (!useCuda)
        {
            throw new ModelLoadException(modelPath, $"ONNX Runtime cannot load it ({ex.Message.Split('\n')[0].Trim()}).", ex);
        }

        try
        {
            ValidateSignature(session, modelPath, model.Labels);
            ValidateInputShape(session, modelPath, model.Preprocessor, options.MaxBatchSize);
        }
        catch
        {
            session.Dispose();
            throw;
        }

        LogSessionCreated(logger, model.Name, model.Version, device, useCuda, intraOpThreads);
        return session;
    }

    private static void ValidateSignature(InferenceSession session, string modelPath, int labels)
    {
        if (!session.InputMetadata.TryGetValue(ModelSession.InputName, out var input) || input.Dimensions.Length != 4)
        {
            throw new ModelLoadException(modelPath, $"has no 4-D input '{ModelSession.InputName}' (inputs: {string.Join(", ", session.InputMetadata.Keys)}).");
        }

        foreach (var (name, rank) in new[] { (ModelSession.ClassOutputName, 3), (ModelSession.MaskOutputName, 4) })
        {
            if (!session.OutputMetadata.TryGetValue(name, out var output) || output.Dimensions.Length != rank)
            {
                throw new ModelLoadException(modelPath, $"has no {rank}-D output '{name}' (outputs: {string.Join(", ", session.OutputMetadata.Keys)}).");
            }
        }

        // A model whose class scores do not match config.json's labels would be served misread: labels it
        // never gives listed, or class ids past the list. Checked where the model fixes the dimension.
        var classes = session.OutputMetadata[ModelSession.ClassOutputName].Dimensions[2];
        if (labels > 0 && classes > 0 && classes != labels + 1)
        {
            throw new ModelLoadException(
                modelPath,
                $"gives scores for {classes} classes ({classes - 1} labels and \"no object\"), but config.json lists {labels} labels: they must be the same model's.");
        }
    }

    // An export without dynamic axes fixes the batch and the image size: every run of another shape would
    // fail, and the warm-up with it, leaving the service NOT_SERVING with a stack trace. Said at load instead.
    private static void ValidateInputShape(InferenceSession session, string modelPath, PreprocessorConfig? preprocessor, int maxBatchSize)
    {
        var dimensions = session.InputMetadata[ModelSession.InputName].Dimensions;
        if (dimensions[0] > 0 && dimensions[0] < maxBatchSize)
        {
            throw new ModelLoadException(
                modelPath,
                $"takes batches of {dimensions[0]} image(s) only (input '{ModelSession.InputName}' has a fixed batch axis), but MaskFormer:Inference:MaxBatchSize is {maxBatchSize}: export it with a dynamic batch axis, or set MaxBatchSize to {dimensions[0]}.");
        }

        if (preprocessor is null || (dimensions[2] <= 0 && dimensions[3] <= 0))
        {
            return;
        }

        // Two images of different shapes: a preprocessor that resizes and pads every image to the model's size gives it both.
        foreach (var (height, width) in new[] { (333, 517), (517, 333) })
        {
            var plan = ResizePlan.For(height, width, preprocessor);
            if ((dimensions[2] > 0 && plan.PaddedHeight != dimensions[2]) || (dimensions[3] > 0 && plan.PaddedWidth != dimensions[3]))
            {
                throw new ModelLoadException(
                    modelPath,
                    $"takes {Side(dimensions[3])}x{Side(dimensions[2])} inputs only (input '{ModelSession.InputName}' has fixed sides), but preprocessor_config.json makes a {width}x{height} image {plan.PaddedWidth}x{plan.PaddedHeight}: export it with dynamic height and width axes, or make the preprocessor resize to that size.");
            }
        }

        static string Side(int dimension) => dimension > 0 ? $"{dimension}" : "any";
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Warning, Message = "CUDA device {Device} cannot be used; falling back to the CPU: {Reason}")]
    private static partial void LogCudaFallback(ILogger logger, string device, string reason);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Session for model {Model} version {Version} created for {Device} (CUDA provider: {UsesCuda}; {Threads} intra-op threads)")]
    private static partial void LogSessionCreated(ILogger logger, string model, string version, DeviceSpec device, bool usesCuda, int threads);

    [LoggerMessage(EventId = 102, Level = LogLevel.Information, Message = "Model {Model} on {Device}: runs padded to {BatchSizes} images, one ONNX Runtime session each (MaskFormer:Inference:PadCudaBatches, CudaBatchSizes)")]
    private static partial void LogPaddedBatches(ILogger logger, string model, DeviceSpec device, IReadOnlyList<int> batchSizes);

    [LoggerMessage(EventId = 103, Level = LogLevel.Information, Message = "CUDA device {Device}: threads waiting for it wait by {HostWait} (MaskFormer:Inference:CudaHostWait)")]
    private static partial void LogHostWaitSet(ILogger logger, DeviceSpec device, CudaHostWait hostWait);

    [LoggerMessage(EventId = 104, Level = LogLevel.Warning, Message = "CUDA device {Device}: MaskFormer:Inference:CudaHostWait={HostWait} not applied, the device waits as CUDA decides: {Reason}")]
    private static partial void LogHostWaitNotSet(ILogger logger, DeviceSpec device, CudaHostWait hostWait, string reason);

    // Labels: the labels config.json lists (0: unknown, not checked against the model); Preprocessor: what
    // makes its inputs (null: not checked against the model's input shape).
    private readonly record struct ModelId(string Name, string Version, int Labels = 0, PreprocessorConfig? Preprocessor = null);
}
