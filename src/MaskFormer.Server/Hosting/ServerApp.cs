using MaskFormer.Engine.Models;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Hosting;

/// <summary>Builds and runs the server; the tests build it the same way on a free port.</summary>
public static class ServerApp
{
    /// <summary>Builds the application from command-line arguments, appsettings.json and the environment.</summary>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        // appsettings.json ships beside the binaries; relative model paths still resolve against the
        // working directory, so "models" works from a checkout's root.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        builder.Services.AddMaskFormerInference();
        builder.Services.AddMaskFormerGrpc(builder.Configuration);
        configure?.Invoke(builder);

        var app = builder.Build();
        app.MapSegmentation();
        return app;
    }

    /// <summary>Runs until shut down. Returns 1, with the reason on stderr, when start-up fails.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        WebApplication app;
        try
        {
            app = Build(args);
        }
        catch (Exception ex) when (ex is InvalidOperationException or FormatException)
        {
            await Console.Error.WriteLineAsync($"maskformer-server: configuration error: {ex.Message}").ConfigureAwait(false);
            return 1;
        }

        await using (app.ConfigureAwait(false))
        {
            try
            {
                await app.RunAsync().ConfigureAwait(false);
                return 0;
            }
            catch (Exception ex) when (ex is ModelLoadException or DeviceUnavailableException)
            {
                await Console.Error.WriteLineAsync($"maskformer-server: cannot start: {ex.Message}").ConfigureAwait(false);
                return 1;
            }
            catch (OptionsValidationException ex)
            {
                await Console.Error.WriteLineAsync($"maskformer-server: invalid configuration: {string.Join("; ", ex.Failures)}").ConfigureAwait(false);
                return 1;
            }
        }
    }
}
