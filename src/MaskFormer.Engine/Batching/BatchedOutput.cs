using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Batching;

/// <summary>One request's share of a batched model run.</summary>
/// <param name="Output">The request's own outputs; the receiver disposes them.</param>
/// <param name="BatchSize">How many requests shared the run.</param>
/// <param name="QueueTime">From enqueue to the start of the run.</param>
/// <param name="InferenceTime">The run itself, for the whole batch.</param>
/// <param name="Device">The device that ran it.</param>
public sealed record BatchedOutput(ModelOutput Output, int BatchSize, TimeSpan QueueTime, TimeSpan InferenceTime, string Device);
