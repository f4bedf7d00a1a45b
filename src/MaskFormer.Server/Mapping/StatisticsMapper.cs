using MaskFormer.Contracts.V1;
using EngineStatistics = MaskFormer.Engine.Diagnostics;

namespace MaskFormer.Server.Mapping;

/// <summary>The engine's per-model totals as the contract's <see cref="ModelStatistics"/>.</summary>
internal static class StatisticsMapper
{
    public static ModelStatistics ToProto(EngineStatistics.ModelStatistics statistics)
    {
        var proto = new ModelStatistics
        {
            Name = statistics.Name,
            Version = statistics.Version,
            LastInferenceUnixMs = statistics.LastInference?.ToUnixTimeMilliseconds() ?? 0,
            InferenceCount = (ulong)statistics.InferenceCount,
            ExecutionCount = (ulong)statistics.ExecutionCount,
            Success = ToProto(statistics.Success),
            Failure = ToProto(statistics.Failure),
            Queue = ToProto(statistics.Queue),
            ComputeInfer = ToProto(statistics.ComputeInfer),
        };
        proto.BatchStats.AddRange(statistics.Batches.Select(b => new BatchStatistics { BatchSize = (uint)b.BatchSize, ComputeInfer = ToProto(b.ComputeInfer) }));
        return proto;
    }

    private static StatisticDuration ToProto(EngineStatistics.StatisticDuration duration) =>
        new() { Count = (ulong)duration.Count, TotalNs = (ulong)(duration.Total.Ticks * 100) };
}
