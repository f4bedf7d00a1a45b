using Grpc.Core;

namespace MaskFormer.Server.Diagnostics;

internal sealed partial class CallTelemetryInterceptor
{
    [LoggerMessage(EventId = 300, EventName = "Call", Message = "{Method} {StatusCode} in {DurationMs:F1} ms; model {Model}, tasks {Tasks}; {RequestBytes} bytes in {RequestMessages} request(s), {ResponseBytes} bytes in {ResponseMessages} response(s)")]
    private static partial void LogCall(ILogger logger, LogLevel level, string method, StatusCode statusCode, double durationMs, string model, string tasks, long requestBytes, long responseBytes, int requestMessages, int responseMessages);

    [LoggerMessage(EventId = 301, EventName = "CallFailed", Level = LogLevel.Error, Message = "{Method} failed unexpectedly (model {Model}, tasks {Tasks}); answered INTERNAL")]
    private static partial void LogUnexpected(ILogger logger, Exception exception, string method, string model, string tasks);

    [LoggerMessage(EventId = 302, EventName = "ClientGone", Level = LogLevel.Debug, Message = "{Method} ended by the client ({StatusCode}): {Reason}")]
    private static partial void LogClientGone(ILogger logger, string method, StatusCode statusCode, string reason);
}
