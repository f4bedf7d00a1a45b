using MaskFormer.Engine.Admission;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Options;

namespace MaskFormer.Engine.Hosting;

/// <summary>Rejects settings that cannot work, naming the setting, so the process stops at start-up.</summary>
internal sealed class InferenceOptionsValidator : IValidateOptions<InferenceOptions>, IValidateOptions<ImageDecoderOptions>, IValidateOptions<AdmissionOptions>
{
    public ValidateOptionsResult Validate(string? name, AdmissionOptions options)
    {
        var failures = new List<string>();
        const string Section = AdmissionOptions.SectionName;
        if (options.MaxConcurrency is < 0 or > 1024)
        {
            failures.Add($"{Section}:MaxConcurrency must be between 0 (the processor count) and 1024 (was {options.MaxConcurrency}).");
        }

        if (options.MaxPixelsInFlight < 1)
        {
            failures.Add($"{Section}:MaxPixelsInFlight must be positive (was {options.MaxPixelsInFlight}).");
        }

        if (options.MaxWaiting < 0)
        {
            failures.Add($"{Section}:MaxWaiting must be 0 or more (was {options.MaxWaiting}).");
        }

        if (options.MaxWait < TimeSpan.Zero || options.MaxWait > TimeSpan.FromMinutes(10))
        {
            failures.Add($"{Section}:MaxWait must be between 0 and 10 minutes (was {options.MaxWait}).");
        }

        if (options.ReturnMemoryAfterIdle < TimeSpan.Zero || options.ReturnMemoryAfterIdle > TimeSpan.FromHours(1))
        {
            failures.Add($"{Section}:ReturnMemoryAfterIdle must be between 0 (off) and one hour (was {options.ReturnMemoryAfterIdle}).");
        }

        if (options.RetryAfter <= TimeSpan.Zero || options.RetryAfter > TimeSpan.FromMinutes(10))
        {
            failures.Add($"{Section}:RetryAfter must be positive and at most 10 minutes (was {options.RetryAfter}).");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    public ValidateOptionsResult Validate(string? name, InferenceOptions options)
    {
        var failures = new List<string>();
        const string Section = InferenceOptions.SectionName;
        if (options.QueueFullRetryAfter <= TimeSpan.Zero || options.QueueFullRetryAfter > TimeSpan.FromMinutes(10))
        {
            failures.Add($"{Section}:QueueFullRetryAfter must be positive and at most 10 minutes (was {options.QueueFullRetryAfter}).");
        }

        for (var i = 0; i < options.Devices.Count; i++)
        {
            if (!DeviceSpec.TryParse(options.Devices[i].Name, out _))
            {
                failures.Add($"{Section}:Devices:{i}:Name '{options.Devices[i].Name}' must be 'cpu' or 'cuda:N'.");
            }

            if (options.Devices[i].Sessions is < 1 or > 64)
            {
                failures.Add($"{Section}:Devices:{i}:Sessions must be between 1 and 64 (was {options.Devices[i].Sessions}).");
            }
        }

        if (!Enum.IsDefined(options.CpuMemoryArena))
        {
            failures.Add($"{Section}:CpuMemoryArena must be Keep, Shrink or Off (was {(int)options.CpuMemoryArena}).");
        }

        if (!Enum.IsDefined(options.CudaHostWait))
        {
            failures.Add($"{Section}:CudaHostWait must be Auto, Spin, Yield or BlockingSync (was {(int)options.CudaHostWait}).");
        }

        if (options.MaxBatchSize is < 1 or > 256)
        {
            failures.Add($"{Section}:MaxBatchSize must be between 1 and 256 (was {options.MaxBatchSize}).");
        }

        if (!InferenceOptions.TryParseCudaBatchSizes(options.CudaBatchSizes, out var batchSizes) || batchSizes.Any(size => size < 1 || size > options.MaxBatchSize))
        {
            failures.Add($"{Section}:CudaBatchSizes must be a comma-separated list of batch sizes, each between 1 and MaxBatchSize ({options.MaxBatchSize}) (was '{options.CudaBatchSizes}').");
        }
        else if (batchSizes.Length > 0 && !options.PadCudaBatches)
        {
            failures.Add($"{Section}:CudaBatchSizes is set ('{options.CudaBatchSizes}') but PadCudaBatches is false, which runs every batch as it comes: unset one of them.");
        }
        else if (options.EffectiveCudaBatchSizes().Length > InferenceOptions.MaxCudaBatchSizes)
        {
            failures.Add($"{Section}:CudaBatchSizes may give at most {InferenceOptions.MaxCudaBatchSizes} sizes with MaxBatchSize ({options.MaxBatchSize}), each one more ONNX Runtime session and copy of the weights on the GPU (was '{options.CudaBatchSizes}').");
        }

        if (options.MaxQueueSize < 1)
        {
            failures.Add($"{Section}:MaxQueueSize must be at least 1 (was {options.MaxQueueSize}).");
        }

        if (options.MaxQueueDelay < TimeSpan.Zero || options.MaxQueueDelay > TimeSpan.FromSeconds(10))
        {
            failures.Add($"{Section}:MaxQueueDelay must be between 0 and 10 seconds (was {options.MaxQueueDelay}).");
        }

        if (options.SessionRunTimeout != TimeSpan.Zero && (options.SessionRunTimeout < TimeSpan.FromMilliseconds(100) || options.SessionRunTimeout > TimeSpan.FromHours(1)))
        {
            failures.Add($"{Section}:SessionRunTimeout must be 0 (off) or between 100 ms and 1 hour (was {options.SessionRunTimeout}).");
        }

        if (options.IntraOpThreads < 0)
        {
            failures.Add($"{Section}:IntraOpThreads must be 0 (automatic) or more (was {options.IntraOpThreads}).");
        }

        if (options.PostprocessThreads is < 0 or > 1024)
        {
            failures.Add($"{Section}:PostprocessThreads must be between 0 (the cores, shared among the images) and 1024 (was {options.PostprocessThreads}).");
        }

        if (options.RequestThreadNice is < 0 or > 19)
        {
            failures.Add($"{Section}:RequestThreadNice must be 0 to 19 (was {options.RequestThreadNice}).");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    public ValidateOptionsResult Validate(string? name, ImageDecoderOptions options)
    {
        var failures = new List<string>();
        const string Section = ImageDecoderOptions.SectionName;
        // The warm-up decodes and segments an image this large before the server is ready: under smaller
        // limits it would fail and leave the server NOT_SERVING for good.
        var (warmUpWidth, warmUpHeight) = SegmentationEngine.LargestWarmUpImage;
        if (options.MaxDimension < warmUpWidth || options.MaxPixels < (long)warmUpWidth * warmUpHeight)
        {
            failures.Add($"{Section}:MaxDimension must be at least {warmUpWidth} and MaxPixels at least {warmUpWidth * warmUpHeight}, the warm-up's {warmUpWidth}x{warmUpHeight} image (were {options.MaxDimension} and {options.MaxPixels}).");
        }

        var needed = (options.MaxPixels * ImageDecoderOptions.WidestPixelBytes) >> 20;
        if (options.AllocationLimitMegabytes < needed || options.AllocationLimitMegabytes < 16)
        {
            failures.Add($"{Section}:AllocationLimitMegabytes must be at least 16 and at least MaxPixels x {ImageDecoderOptions.WidestPixelBytes} bytes ({needed} MiB) (was {options.AllocationLimitMegabytes}).");
        }

        if (options.PoolMegabytes < 0)
        {
            failures.Add($"{Section}:PoolMegabytes must be 0 or more (was {options.PoolMegabytes}).");
        }

        if (options.IdleTrimAfter <= TimeSpan.Zero)
        {
            failures.Add($"{Section}:IdleTrimAfter must be positive (was {options.IdleTrimAfter}).");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
