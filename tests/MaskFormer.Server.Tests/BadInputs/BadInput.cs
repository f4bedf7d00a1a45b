using Grpc.Core;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Server.Tests.BadInputs;

/// <summary>
/// One hostile or malformed input and the status it must get. A unary case sends <see cref="Request"/>
/// to Segment; a stream case sends <see cref="Stream"/> and expects the frame marked bad to be answered
/// with <see cref="Expected"/> while the stream goes on (or, with <see cref="EndsCall"/>, the call ends).
/// </summary>
public sealed record BadInput(string Name, string What, StatusCode Expected, string? Field)
{
    public Func<SegmentRequest>? Request { get; init; }

    public Func<IReadOnlyList<SegmentStreamRequest>>? Stream { get; init; }

    /// <summary>The stream call itself ends with <see cref="Expected"/> (no per-frame answer).</summary>
    public bool EndsCall { get; init; }

    /// <summary>Extra checks on an OK answer.</summary>
    public Action<SegmentResponse>? Check { get; init; }

    public override string ToString() => Name;
}
