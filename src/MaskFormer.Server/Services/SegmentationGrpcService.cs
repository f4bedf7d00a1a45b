using Grpc.Core;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine;
using MaskFormer.Server.Mapping;
using MaskFormer.Server.Streaming;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Services;

/// <summary>The gRPC face of the engine: maps messages, and engine errors to statuses.</summary>
internal sealed class SegmentationGrpcService(
    SegmentationEngine engine,
    IFrameSegmenter segmenter,
    IOptions<StreamingOptions> streaming,
    OpenStreams openStreams,
    IHostApplicationLifetime lifetime,
    TimeProvider time,
    FrameTelemetry frames,
    StreamBuffers buffers) : SegmentationService.SegmentationServiceBase
{
    public override async Task<SegmentResponse> Segment(SegmentRequest request, ServerCallContext context)
    {
        var startedAt = time.GetTimestamp();
        try
        {
            var engineRequest = RequestMapper.ToEngineRequest(request, context.Deadline);
            using var result = await engine.SegmentAsync(engineRequest, context.CancellationToken).ConfigureAwait(false);
            return ResponseMapper.ToResponse(result, request, time, startedAt);
        }
        catch (SegmentationException ex)
        {
            throw RpcErrors.ToRpcException(ex);
        }
        catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
        {
            throw new RpcException(new Status(StatusCode.Cancelled, "The call was cancelled before it was answered."));
        }
    }

    public override async Task SegmentStream(IAsyncStreamReader<SegmentStreamRequest> requestStream, IServerStreamWriter<SegmentStreamResponse> responseStream, ServerCallContext context)
    {
        // The stream counts as open until its response, trailers included, has been sent: the drain lets
        // Kestrel close connections only after that, so a client still sending reads its status.
        context.GetHttpContext().Response.RegisterForDispose(openStreams.Open());

        // A stream opened while the models load would answer each of its frames with a frame error, which
        // clients count as failed frames; the call itself refused UNAVAILABLE is reconnected by every client
        // (the CLI and the examples), which sends its frames again once the server is ready.
        try
        {
            engine.ThrowIfNotReady();
        }
        catch (SegmentationException ex)
        {
            throw RpcErrors.ToRpcException(ex);
        }

        using var session = new StreamSession(segmenter, streaming.Value, time, requestStream, responseStream, context, frames, buffers, lifetime.ApplicationStopping);
        await session.RunAsync().ConfigureAwait(false);
    }

    public override Task<ListModelsResponse> ListModels(ListModelsRequest request, ServerCallContext context)
    {
        var response = new ListModelsResponse();
        response.Models.AddRange(engine.Models.Select(ModelInfoMapper.ToModelInfo));
        return Task.FromResult(response);
    }

    public override Task<GetModelStatisticsResponse> GetModelStatistics(GetModelStatisticsRequest request, ServerCallContext context)
    {
        var models = engine.Models
            .Where(m => (request.Model.Length == 0 || m.Name == request.Model) && (request.ModelVersion.Length == 0 || m.Version == request.ModelVersion))
            .ToArray();
        if (models.Length == 0 && request.Model.Length > 0)
        {
            try
            {
                engine.Resolve(request.Model, request.ModelVersion);
            }
            catch (SegmentationException exception)
            {
                throw RpcErrors.ToRpcException(exception);
            }
        }
        else if (models.Length == 0 && request.ModelVersion.Length > 0)
        {
            // A version of every model that no model has is a mistake to report, not an empty answer.
            throw RpcErrors.ToRpcException(new SegmentationException(
                SegmentationErrorKind.ModelNotFound,
                $"No served model has version '{ClientText.Shorten(request.ModelVersion)}'."));
        }

        var response = new GetModelStatisticsResponse();
        response.ModelStats.AddRange(models.Select(m => StatisticsMapper.ToProto(m.Telemetry.Snapshot())));
        return Task.FromResult(response);
    }
}
