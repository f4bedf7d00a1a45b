using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;

namespace MaskFormer.Server.Tests;

/// <summary>A slim web application for a test's own gRPC server (a scripted service, a telemetry receiver).</summary>
internal static class LoopbackApp
{
    /// <summary>
    /// CreateSlimBuilder without the configuration files of the test folder: it holds the server's
    /// appsettings.json, whose Kestrel endpoint (0.0.0.0:5081) Kestrel would bind beside the test's own, so two
    /// such servers at once, or a MaskFormer server already running on this machine, failed the test.
    /// </summary>
    public static WebApplicationBuilder CreateBuilder()
    {
        var builder = WebApplication.CreateSlimBuilder();
        foreach (var file in builder.Configuration.Sources.OfType<FileConfigurationSource>().ToList())
        {
            builder.Configuration.Sources.Remove(file);
        }

        return builder;
    }
}
