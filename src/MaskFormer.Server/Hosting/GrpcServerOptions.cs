namespace MaskFormer.Server.Hosting;

/// <summary>gRPC transport limits. Bound from "MaskFormer:Grpc".</summary>
public sealed class GrpcServerOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "MaskFormer:Grpc";

    /// <summary>Largest request message in bytes (an encoded image or raw frame). Default 64 MiB.</summary>
    public int MaxReceiveMessageSize { get; set; } = 64 * 1024 * 1024;

    /// <summary>Largest response message in bytes. Default 256 MiB.</summary>
    public int MaxSendMessageSize { get; set; } = 256 * 1024 * 1024;
}
