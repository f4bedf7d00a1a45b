using System.Diagnostics;
using MaskFormer.Engine.Admission;
using MaskFormer.Engine.Batching;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Diagnostics;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MaskFormer.Engine;

/// <summary>
/// The inference engine: loads every model of the repository into session pools, and runs requests
/// through decode → pre-process → batch → session → post-process, timing each stage.
/// </summary>
public sealed partial class SegmentationEngine(
    IOptions<ModelRepositoryOptions> repositoryOptions,
    IOptions<InferenceOptions> inferenceOptions,
    ImageDecoder decoder,
    TimeProvider time,
    ILogger<SegmentationEngine> logger,
    IEnumerable<Hosting.IResultWarmUp>? resultWarmUps = null,
    AdmissionGate? admission = null) : IAsyncDisposable
{
    private readonly InferenceOptions _inference = inferenceOptions.Value;
    private IdleThreadScheduler? _postprocessThreads;
    private static readonly TimeSpan s_loadingRetryAfter = TimeSpan.FromSeconds(1);

    // How long disposal waits for a terminated warm-up run to return before leaving its sessions be.
    private static readonly TimeSpan s_hungWarmUpGrace = TimeSpan.FromSeconds(5);
    private readonly AdmissionGate _admission = admission ?? new AdmissionGate(Options.Create(new AdmissionOptions()), time);
    private IReadOnlyList<ServedModel> _models = [];
    private volatile bool _ready;
    private volatile string? _warmUpFailure;
    private Task? _hungWarmUp;

    /// <summary>
    /// Where sessions come from; null for ONNX Runtime sessions (<see cref="SessionFactory"/>). The
    /// container sets it when an <see cref="IModelSessionFactory"/> is registered: only tests do, to make
    /// a session throw or hang.
    /// </summary>
    internal IModelSessionFactory? ModelSessionFactory { get; set; }

    /// <summary>The served models, default first.</summary>
    public IReadOnlyList<ServedModel> Models => _models;

    /// <summary>Admission control for decoding, pre-processing, post-processing and encoding.</summary>
    public AdmissionGate Admission => _admission;

    /// <summary>True once every model is loaded and warmed up.</summary>
    public bool IsReady => _ready;

    /// <summary>
    /// Reads the repository and creates every session; later calls do nothing, so a host can load before
    /// it starts and report a failure itself. Throws <see cref="ModelLoadException"/>, or
    /// <see cref="DeviceUnavailableException"/> when a required device cannot be used.
    /// </summary>
    public void Load()
    {
        if (_models.Count > 0)
        {
            return;
        }

        var options = repositoryOptions.Value;
        var root = ModelRepositoryLocator.Locate(options.Path, AppContext.BaseDirectory, Environment.CurrentDirectory);
        var folders = ModelFolder.Discover(root, options);
        var defaultName = string.IsNullOrEmpty(options.DefaultModel) ? folders[0].Name : options.DefaultModel;
        var defaultFolder = ModelVersionComparer.Newest(folders.Where(f => f.Name == defaultName), f => f.Version)
            ?? throw ModelLoadException.DefaultModelNotFound(Path.Combine(root, defaultName), $"The configured default model '{defaultName}' is not in the model repository '{root}' (found: {string.Join(", ", folders.Select(f => f.Name).Distinct())}).");
        LogRepository(logger, root);

        // Before any session exists: ONNX Runtime's threads take the priority of the thread creating them.
        ModelThreadPriority.Configure(_inference.RequestThreadNice, logger);
        if (_inference.IdlePostprocessing && OperatingSystem.IsLinux())
        {
            _postprocessThreads = IdleThreadScheduler.Shared(logger);
        }

        RowParallelism.Configure(_inference.PostprocessThreads);

        var devices = _inference.Devices.Count > 0 ? _inference.Devices : [new DeviceOptions()];
        int Share(int sessions) => _inference.IntraOpThreads > 0 ? _inference.IntraOpThreads : Math.Max(1, Environment.ProcessorCount / Math.Max(1, sessions * folders.Count));
        var threads = Share(devices.Where(d => !DeviceSpec.TryParse(d.Name, out var spec) || !spec.IsCuda).Sum(d => d.Sessions));

        // What a CUDA session gets if its device falls back to the CPU: a CPU session's share, counting
        // every session as a CPU one (a CUDA session itself runs with one thread).
        var fallbackThreads = Share(devices.Sum(d => d.Sessions));
        var factory = ModelSessionFactory ?? new SessionFactory(_inference, logger);

        var models = new List<ServedModel>();
        var created = new List<IModelSession>();
        try
        {
            foreach (var folder in folders)
            {
                var sessions = new List<IModelSession>();
                var slots = new List<(DeviceSpec Device, int Threads, bool Required)>();
                foreach (var device in devices)
                {
                    var spec = DeviceSpec.TryParse(device.Name, out var parsed) ? parsed : DeviceSpec.Cpu;
                    for (var i = 0; i < device.Sessions; i++)
                    {
                        (DeviceSpec Device, int Threads, bool Required) slot = (spec, spec.IsCuda ? fallbackThreads : threads, device.Required);
                        var session = factory.Create(folder, slot.Device, slot.Threads, slot.Required);
                        created.Add(session);
                        sessions.Add(session);
                        slots.Add(slot);
                    }
                }

                IModelSession Replace(int slot) => factory.Create(folder, slots[slot].Device, slots[slot].Threads, slots[slot].Required);
                var warmUpPlan = new ImagePreprocessor(folder.Preprocessor).Plan(WarmUpSide(folder.Preprocessor), WarmUpSide(folder.Preprocessor));
                var scheduler = new BatchScheduler([.. sessions], Replace, _inference, time, logger)
                {
                    Telemetry = new ModelTelemetry(folder.Name, folder.Version, _inference.MaxBatchSize),
                    WarmUpInputs = _inference.WarmUp ? batchSize => ZeroInputs(warmUpPlan, batchSize) : null,
                };
                models.Add(new ServedModel(folder, scheduler, folder.Config.NumQueries, ReferenceEquals(folder, defaultFolder)));
                LogModelLoaded(logger, folder.Name, folder.Version, folder.Config.Labels.Count, sessions.Count);
                if (!folder.Config.DeclaresThings)
                {
                    LogNoThingStuffSplit(logger, folder.Name, PanopticCategories.FileName);
                }
            }
        }
        catch
        {
            // No scheduler has started yet, so releasing the sessions made so far is all there is to undo.
            foreach (var session in created)
            {
                session.Dispose();
            }

            throw;
        }

        EngineMetrics.Track(_admission);
        StartMemoryReturn();
        _models = [.. models.OrderByDescending(m => m.IsDefault).ThenBy(m => m.Name, StringComparer.Ordinal).ThenByDescending(m => m.Version, ModelVersionComparer.Instance)];
        foreach (var model in _models)
        {
            model.Scheduler.Start();
        }
    }

    /// <summary>
    /// Runs every session once per batch size (a session that pads: once per padded size), then the whole request path (see
    /// SegmentationEngine.WarmUp.cs), then reports ready.
    /// </summary>
    public async Task WarmUpAsync(CancellationToken cancellationToken)
    {
        try
        {
            await WarmUpModelsAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The service stays NOT_SERVING for good: calls are told so, not to retry shortly.
            _warmUpFailure = $"{ex.GetType().Name}: {ex.Message}";
            throw;
        }
    }

    private async Task WarmUpModelsAsync(CancellationToken cancellationToken)
    {
        if (_inference.WarmUp)
        {
            foreach (var model in _models)
            {
                var started = time.GetTimestamp();
                foreach (var session in model.Scheduler.Sessions)
                {
                    // A session that pads runs to a few sizes needs one run at each.
                    foreach (var batch in model.Scheduler.WarmUpBatchSizes(session))
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        await WarmUpRunAsync(model, session, batch).ConfigureAwait(false);
                    }
                }

                model.Scheduler.SkipsQueueDelay = true;
                try
                {
                    await WarmUpRequestPathAsync(model, cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    model.Scheduler.SkipsQueueDelay = false;
                }

                model.Scheduler.ResetTotals();
                var elapsed = time.GetElapsedTime(started);
                LogWarmedUp(logger, model.Name, elapsed.TotalMilliseconds);
            }
        }

        foreach (var model in _models)
        {
            model.Telemetry.Start();
        }

        _ready = true;
    }

    // One warm-up run, under the same limit as a run in service: a first run that hangs (a CUDA
    // device's first run builds its plans) is terminated and fails the warm-up, so the service stays
    // NOT_SERVING with the reason logged instead of waiting for ever, and shutdown is not held up.
    private async Task WarmUpRunAsync(ServedModel model, IModelSession session, int batch)
    {
        var inputs = model.Scheduler.WarmUpInputs!(batch);
        var run = Task.Run(() => DisposeAll(session.Run(inputs)), CancellationToken.None);
        try
        {
            await (_inference.SessionRunTimeout > TimeSpan.Zero ? run.WaitAsync(_inference.SessionRunTimeout, time) : run).ConfigureAwait(false);
        }
        catch (TimeoutException) when (!run.IsCompleted)
        {
            session.Terminate();

            // The run may still read its inputs: they are released when it returns.
            _ = run.ContinueWith(_ => DisposeAll(inputs), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
            _hungWarmUp = run;
            throw new TimeoutException(
                $"Model {model.Name} version {model.Version}: the warm-up run of {batch} image(s) on {session.Placement.Requested} did not finish within " +
                $"{_inference.SessionRunTimeout.TotalSeconds:0.###} s (MaskFormer:Inference:SessionRunTimeout); it was terminated and the service stays NOT_SERVING.");
        }
        finally
        {
            if (run.IsCompleted)
            {
                DisposeAll(inputs);
            }
        }
    }

    /// <summary>Finds a model by name (empty for the default) and version (empty for the newest).</summary>
    /// <exception cref="SegmentationException">No such model.</exception>
    public ServedModel Resolve(string name, string version)
    {
        // No name means the default model, in any of its versions; the default itself is its newest.
        var wanted = string.IsNullOrEmpty(name) ? _models.FirstOrDefault(m => m.IsDefault)?.Name : name;
        var candidates = _models.Where(m => m.Name == wanted);
        var match = string.IsNullOrEmpty(version)
            ? ModelVersionComparer.Newest(candidates, m => m.Version)
            : candidates.FirstOrDefault(m => m.Version == version);
        return match ?? throw new SegmentationException(
            SegmentationErrorKind.ModelNotFound,
            string.IsNullOrEmpty(version) ? $"Model '{ClientText.Shorten(wanted ?? string.Empty)}' is not served." : $"Model '{ClientText.Shorten(wanted ?? string.Empty)}' version '{ClientText.Shorten(version)}' is not served.")
        {
            Field = "model",
        };
    }

    /// <summary>
    /// Throws UNAVAILABLE ("still loading", with a retry delay) until the models are loaded and warm: what a
    /// call made before then is answered, so that a client tries it again.
    /// </summary>
    public void ThrowIfNotReady()
    {
        if (_ready)
        {
            return;
        }

        throw _warmUpFailure is { } failure
            ? new SegmentationException(SegmentationErrorKind.Unavailable, $"The server's warm-up failed and it will not serve until restarted ({ClientText.Shorten(failure)}); see its log.")
            : new SegmentationException(SegmentationErrorKind.Unavailable, "The models are still loading; retry shortly.") { RetryAfter = s_loadingRetryAfter };
    }

    /// <summary>Segments one image.</summary>
    public async Task<SegmentationResult> SegmentAsync(SegmentationRequest request, CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        using var span = MaskFormerTelemetry.ActivitySource.StartActivity(EngineSpans.Segment);
        span?.SetTag(TelemetryTags.Tasks, TelemetryTags.Label(request.Tasks));
        ServedModel? model = null;
        try
        {
            ThrowIfNotReady();
            model = Resolve(request.Model, request.ModelVersion);
            span?.SetTag(TelemetryTags.ModelName, model.Name).SetTag(TelemetryTags.ModelVersion, model.Version);
            var result = await RunAsync(model, request, cancellationToken).ConfigureAwait(false);
            span?.SetTag(TelemetryTags.ImageWidth, result.Width).SetTag(TelemetryTags.ImageHeight, result.Height)
                .SetTag(TelemetryTags.Device, result.Device).SetTag(TelemetryTags.BatchSize, result.Timings.BatchSize);
            model.Telemetry.RecordRequest(request.Tasks, time.GetElapsedTime(started), null);
            return result;
        }
        catch (Exception ex)
        {
            var errorType = TelemetryTags.ErrorTypeOf(ex);
            model?.Telemetry.RecordRequest(request.Tasks, time.GetElapsedTime(started), errorType);
            span?.SetStatus(ActivityStatusCode.Error, ex.Message).SetTag(TelemetryTags.ErrorType, errorType);
            throw;
        }
    }

    private async Task<SegmentationResult> RunAsync(ServedModel model, SegmentationRequest request, CancellationToken cancellationToken)
    {
        var unsupported = request.Tasks & ~model.SupportedTasks;
        if (unsupported != SegmentationTasks.None)
        {
            throw new SegmentationException(SegmentationErrorKind.Unimplemented, $"Task(s) {unsupported} are not implemented yet for model '{model.Name}'.") { Field = "tasks" };
        }

        if (request.Postprocess.LabelIdsToFuse?.Where(id => id < 0 || id >= model.Labels.Count).Select(id => (int?)id).FirstOrDefault() is { } badLabel)
        {
            throw SegmentationException.Invalid("options.label_ids_to_fuse", $"Label id {badLabel} is not a label of model '{model.Name}' (0..{model.Labels.Count - 1}).");
        }

        // Weighed by its declared size before any pixel buffer exists: the image, the model input and
        // the result (an output size may be larger than the image).
        ModelThreadPriority.LowerCurrentThread();
        var probed = Probe(request.Image);
        var sizes = request.Postprocess.Output.Apply(model.Preprocessor.Plan(probed.Height, probed.Width));
        var pixels = Math.Max(probed.Pixels, Math.Max((long)sizes.PaddedWidth * sizes.PaddedHeight, (long)sizes.OriginalWidth * sizes.OriginalHeight));
        var ticket = await _admission.EnterAsync(pixels, request.WaitForCapacity, cancellationToken).ConfigureAwait(false);
        try
        {
            var stamp = time.GetTimestamp();
            ModelInput input;
            TimeSpan decodeTime;
            using (var image = Decode(probed))
            {
                decodeTime = time.GetElapsedTime(stamp);
                model.Telemetry.RecordImage(image.Width, image.Height);

                stamp = time.GetTimestamp();
                using (EngineSpans.Start(EngineSpans.Preprocess))
                {
                    input = model.Preprocessor.Process(image);
                }
            }

            using var ownedInput = input;
            var preprocessTime = time.GetElapsedTime(stamp);

            // Checked before the model runs: a bad output size fails without costing a batch slot.
            var plan = request.Postprocess.Output.Apply(input.Plan);
            ticket.LeaveSlot();
            var enqueuedAt = DateTime.UtcNow;
            var batched = await model.Scheduler.RunAsync(input, request.Deadline, request.WaitForCapacity, cancellationToken).ConfigureAwait(false);
            using var output = batched.Output;
            EngineSpans.RecordQueue(enqueuedAt, batched);
            model.Telemetry.RecordQueued(batched.QueueTime, batched.InferenceTime);

            await ticket.ResumeAsync(cancellationToken).ConfigureAwait(false);
            ModelThreadPriority.LowerCurrentThread();
            stamp = time.GetTimestamp();
            var (semantic, instances, panoptic) = _postprocessThreads is { } threads
                ? threads.Run(() => Postprocess(model, request, output, plan))
                : Postprocess(model, request, output, plan);
            var postprocessTime = time.GetElapsedTime(stamp);

            // The ticket goes with the result: its slot and pixels are held until the host has encoded it.
            return new SegmentationResult
            {
                Model = model,
                Width = plan.OriginalWidth,
                Height = plan.OriginalHeight,
                Semantic = semantic,
                Instances = instances,
                Panoptic = panoptic,
                Device = batched.Device,
                Timings = new StageTimings
                {
                    Decode = decodeTime,
                    Preprocess = preprocessTime,
                    Queue = batched.QueueTime,
                    Inference = batched.InferenceTime,
                    Postprocess = postprocessTime,
                    BatchSize = batched.BatchSize,
                },
                Admission = ticket,
            };
        }
        catch
        {
            ticket.Dispose();
            throw;
        }
    }

    private static (LabelMap? Semantic, IReadOnlyList<InstanceMask>? Instances, PanopticResult? Panoptic) Postprocess(ServedModel model, SegmentationRequest request, ModelOutput output, ResizePlan plan)
    {
        model.ObserveQueries(output.Queries);
        var config = model.Folder.Config;
        var options = request.Postprocess;
        var labels = options.LabelIdsToFuse is { } fuse
            ? [.. config.Labels.Select(l => l with { IsThing = !fuse.Contains(l.Id) })]
            : config.Labels;
        var thingsOnly = options.InstanceThingsOnly ?? (config.DeclaresThings || options.LabelIdsToFuse is not null);

        // Counted while it runs, so that a large image's passes take only the cores the others leave.
        using var counted = RowParallelism.Enter();
        if (options.Convention == PostprocessConvention.HuggingFace)
        {
            using var span = EngineSpans.StartPostprocess(TelemetryTags.Label(request.Tasks));
            return PostprocessHuggingFace(config, request.Tasks, options, output, plan);
        }

        // One pass of mask bounds, shared by every requested mode.
        using var tiles = new MaskTiles(output, plan);
        return Detectron2Tasks.Run(tiles, request.Tasks, labels, thingsOnly, config.IsMask2Former, options);
    }

    // transformers' rules: without label_ids_to_fuse in the call, the model's stuff labels are fused
    // (transformers itself fuses nothing then); instance results keep every class, as transformers'
    // do, unless asked, or unless the call names labels to fuse (those are not instances).
    private static (LabelMap? Semantic, IReadOnlyList<InstanceMask>? Instances, PanopticResult? Panoptic) PostprocessHuggingFace(ModelConfig config, SegmentationTasks tasks, PostprocessOptions options, ModelOutput output, ResizePlan plan)
    {
        var fuse = options.LabelIdsToFuse ?? (config.DeclaresThings ? config.Labels.Where(l => !l.IsThing).Select(l => l.Id).ToHashSet() : new HashSet<int>());
        var hfOptions = options with { LabelIdsToFuse = fuse };
        var labels = config.Labels.Select(l => l with { IsThing = !fuse.Contains(l.Id) }).ToArray();
        var (height, width) = (plan.OriginalHeight, plan.OriginalWidth);
        LabelMap? semantic = null;
        IReadOnlyList<InstanceMask>? instances = null;
        try
        {
            semantic = (tasks & SegmentationTasks.Semantic) != 0 ? HuggingFaceInference.Semantic(output, height, width, config.IsMask2Former) : null;
            instances = (tasks & SegmentationTasks.Instance) != 0
                ? HuggingFaceInference.Instance(output, height, width, config.IsMask2Former, labels, options.InstanceThingsOnly ?? options.LabelIdsToFuse is not null, hfOptions)
                : null;
            var panoptic = (tasks & SegmentationTasks.Panoptic) != 0
                ? HuggingFaceInference.Panoptic(output, height, width, config.IsMask2Former, labels, hfOptions)
                : null;
            return (semantic, instances, panoptic);
        }
        catch
        {
            semantic?.Dispose();
            foreach (var instance in instances ?? [])
            {
                instance.Dispose();
            }

            throw;
        }
    }

    private ProbedImage Probe(ImageSource source)
    {
        try
        {
            return decoder.Probe(source);
        }
        catch (SegmentationException ex) when (ex.Kind == SegmentationErrorKind.InvalidArgument)
        {
            // The header is part of decoding: a failure here is a failed decode, with its span.
            using var span = EngineSpans.Start(EngineSpans.Decode);
            span?.SetStatus(ActivityStatusCode.Error, ex.Message);
            EngineSpans.RecordDecodeFailure(source, span);
            throw;
        }
    }

    private RgbImage Decode(ProbedImage probed)
    {
        using var span = EngineSpans.Start(EngineSpans.Decode);
        try
        {
            return decoder.Decode(probed);
        }
        catch (SegmentationException ex) when (ex.Kind == SegmentationErrorKind.InvalidArgument)
        {
            EngineSpans.RecordDecodeFailure(probed.Source, span);
            throw;
        }
    }

    /// <summary>Images of zeros (the normalised mean colour) at a size, for warm-up runs.</summary>
    private static ModelInput[] ZeroInputs(ResizePlan plan, int batchSize)
    {
        var inputs = Enumerable.Range(0, batchSize).Select(_ => new ModelInput(plan)).ToArray();
        foreach (var input in inputs)
        {
            input.Tensor.Clear();
        }

        return inputs;
    }

    private static int WarmUpSide(PreprocessorConfig config) => config.ResizeMode switch
    {
        ResizeMode.Fixed => Math.Max(config.Height, config.Width),
        ResizeMode.ShortestEdge => config.ShortestEdge,
        _ => 64,
    };

    private static void DisposeAll(IEnumerable<IDisposable> items)
    {
        foreach (var item in items)
        {
            item.Dispose();
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        _ready = false;
        EngineMetrics.Untrack(_admission);
        StopMemoryReturn();
        if (_hungWarmUp is { IsCompleted: false } hung)
        {
            try
            {
                await hung.WaitAsync(s_hungWarmUpGrace, time).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // A run that ignored Terminate is still inside its session: releasing the sessions under it
                // could bring the process down on its way out, so they are left to the process's end.
                LogHungWarmUpLeft(logger);
                _models = [];
                return;
            }
            catch (Exception)
            {
                // Terminated runs throw; it has returned, which is all that matters here.
            }
        }

        foreach (var model in _models)
        {
            await model.DisposeAsync().ConfigureAwait(false);
        }

        _models = [];
    }

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "A warm-up run terminated for hanging has not returned; the model sessions are not released before the process ends")]
    private static partial void LogHungWarmUpLeft(ILogger logger);

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Model {Model} version {Version} loaded: {Labels} labels, {Sessions} sessions")]
    private static partial void LogModelLoaded(ILogger logger, string model, string version, int labels, int sessions);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "Serving the model repository {Path}")]
    private static partial void LogRepository(ILogger logger, string path);

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning, Message = "Model {Model} does not say which labels are things: every label is treated as a thing (no stuff merging in panoptic results). Add {Sidecar} next to its config.json, set MaskFormer:Models:Overrides:{Model}:ThingIds, or pass label_ids_to_fuse per call")]
    private static partial void LogNoThingStuffSplit(ILogger logger, string model, string sidecar);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Model {Model} warmed up in {Milliseconds:F0} ms")]
    private static partial void LogWarmedUp(ILogger logger, string model, double milliseconds);
}
