using MaskFormer.Engine;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Sessions;
using MaskFormer.Server.Limits;
using MaskFormer.Server.Security;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Hosting;

/// <summary>Builds and runs the server; the tests build it the same way on a free port.</summary>
public static class ServerApp
{
    private const string Name = "maskformer-server";

    /// <summary>Builds the application from command-line arguments, appsettings.json and the environment.</summary>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        // appsettings.json ships beside the binaries, wherever `dotnet run` or a container starts the
        // process; the model repository is found as ModelRepositoryLocator says.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        builder.Services.AddMaskFormerInference();
        builder.Services.AddMaskFormerGrpc(builder.Configuration);
        builder.Services.AddMaskFormerTelemetry(builder.Configuration);
        configure?.Invoke(builder);

        var app = builder.Build();
        app.UseMaskFormerDrainingConnections();
        app.UseMaskFormerMetricsEndpoint();

        // Calls answered by the middlewares below, or by gRPC before its interceptors, are counted here.
        app.UseMaskFormerCallTelemetry();

        // Before anything reads a request body: an unauthenticated call is answered at once.
        app.UseMaskFormerAuthentication();

        // Before gRPC reads a request: a call over the limit is answered without its upload being read.
        app.UseMaskFormerCallLimit();
        app.UseMaskFormerDefaultDeadline();
        app.UseMaskFormerRequestBytesBudget();
        app.MapSegmentation();
        return app;
    }

    /// <summary>
    /// Runs until shut down. Returns 1 when start-up fails for an expected reason (a bad setting, a
    /// missing or corrupt model), with one line on stderr naming what was wrong where and the setting
    /// that changes it.
    /// </summary>
    public static async Task<int> RunAsync(string[] args)
    {
        WebApplication app;
        try
        {
            app = Build(args);
        }
        catch (OptionsValidationException ex)
        {
            // Settings read while the host is built (Kestrel's limits, TLS, the streams' drain time)
            // are validated there, before the ones checked at start.
            return await FailAsync($"invalid configuration: {string.Join(" ", ex.Failures)} {SettingsHint}").ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is InvalidOperationException or FormatException)
        {
            return await FailAsync($"configuration error: {ex.Message} {SettingsHint}").ConfigureAwait(false);
        }

        // Read before the host runs: a host that failed to start has disposed its services, this with them.
        var configuration = app.Configuration;
        await using (app.ConfigureAwait(false))
        {
            try
            {
                // Checked before the host starts, so an expected failure is this one line rather than
                // the host's "Hosting failed to start" log with a stack trace.
                if (HostSettingsCheck.EndpointProblem(configuration) is { } endpointProblem)
                {
                    return await FailAsync($"invalid configuration: {endpointProblem} {SettingsHint}").ConfigureAwait(false);
                }

                HostSettingsCheck.BindListElements(configuration);
                app.Services.GetService<IStartupValidator>()?.Validate();
                app.Services.GetRequiredService<SegmentationEngine>().Load();
                await app.RunAsync().ConfigureAwait(false);
                return 0;
            }
            catch (ModelLoadException ex)
            {
                return await FailAsync($"cannot start: {ex.Message} Change it with {ex.Setting} ({Forms(ex.Setting)}).").ConfigureAwait(false);
            }
            catch (IOException ex) when (ex.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
            {
                // The host's own "Hosting failed to start" error log is filtered out in appsettings.json
                // (category Microsoft.Extensions.Hosting.Internal.Host at Critical), so this line is all
                // that is printed; an unexpected start-up exception still ends the process with its trace.
                var setting = HostSettingsCheck.SettingOfAddress(configuration, ex.Message);
                return await FailAsync($"cannot start: {ex.Message} Change it with {setting} ({Forms(setting)}).").ConfigureAwait(false);
            }
            catch (DeviceUnavailableException ex)
            {
                return await FailAsync($"cannot start: {ex.Message} MaskFormer:Inference:Devices chooses the devices; a device not marked Required falls back to the CPU.").ConfigureAwait(false);
            }
            catch (OptionsValidationException ex)
            {
                return await FailAsync($"invalid configuration: {string.Join(" ", ex.Failures)} {SettingsHint}").ConfigureAwait(false);
            }
            catch (InvalidOperationException ex) when (ex.InnerException is FormatException or InvalidOperationException or ArgumentException)
            {
                // A value the configuration binder cannot convert, e.g. "MaxBatchSize=four".
                return await FailAsync($"configuration error: {ex.Message} {ex.InnerException.Message} {SettingsHint}").ConfigureAwait(false);
            }
        }
    }

    private const string SettingsHint = "Settings come from appsettings.json beside the server, environment variables (MaskFormer__Section__Key) and --MaskFormer:Section:Key=value arguments.";

    private static string Forms(string setting) => $"--{setting}=... or {setting.Replace(":", "__", StringComparison.Ordinal)}=...";

    private static async Task<int> FailAsync(string message)
    {
        await Console.Error.WriteLineAsync($"{Name}: {message.ReplaceLineEndings(" ")}").ConfigureAwait(false);
        return 1;
    }
}
