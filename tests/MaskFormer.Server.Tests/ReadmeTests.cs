using System.Diagnostics.Metrics;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Security.Cryptography.X509Certificates;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine.Admission;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Diagnostics;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Sessions;
using MaskFormer.Server.Diagnostics;
using MaskFormer.Server.Hosting;
using MaskFormer.Server.Security;
using MaskFormer.Server.Streaming;
using MaskFormer.Testing;

namespace MaskFormer.Server.Tests;

/// <summary>
/// The README's configuration and metrics tables against the code: every setting an options class binds has
/// a row, and every instrument of the service's meter, with the values of its enumerated attributes, is listed.
/// </summary>
public sealed class ReadmeTests
{
    private static readonly string[] s_readme = File.ReadAllLines(Path.Combine(RepositoryPaths.Root, "README.md"));

    [Fact]
    public void ConfigurationTable_NamesEverySettingTheServerBinds()
    {
        var documented = TableNames("| setting | default | meaning |", ':');
        var settings = new List<string>();
        Collect(typeof(ModelRepositoryOptions), ModelRepositoryOptions.SectionName, settings);
        Collect(typeof(InferenceOptions), InferenceOptions.SectionName, settings);
        Collect(typeof(ImageDecoderOptions), ImageDecoderOptions.SectionName, settings);
        Collect(typeof(AdmissionOptions), AdmissionOptions.SectionName, settings);
        Collect(typeof(GrpcServerOptions), GrpcServerOptions.SectionName, settings);
        Collect(typeof(SecurityOptions), SecurityOptions.SectionName, settings);
        Collect(typeof(StreamingOptions), StreamingOptions.SectionName, settings);
        Collect(typeof(TelemetryOptions), TelemetryOptions.SectionName, settings);

        var missing = settings.Where(setting => !documented.ContainsKey(setting) && !InParentRow(setting, documented)).ToList();
        Assert.True(missing.Count == 0, "README's configuration table lacks:\n" + string.Join('\n', missing));
    }

    [Fact]
    public void MetricsTable_ListsEveryInstrumentOfTheServicesMeter()
    {
        var instruments = new List<string>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, _) =>
            {
                if (instrument.Meter.Name == MaskFormerTelemetry.Name)
                {
                    lock (instruments)
                    {
                        instruments.Add(instrument.Name);
                    }
                }
            },
        };
        RuntimeHelpers.RunClassConstructor(typeof(EngineMetrics).TypeHandle);
        RuntimeHelpers.RunClassConstructor(typeof(RpcTelemetry).TypeHandle);
        listener.Start();

        var documented = TableNames("| metric | type | unit | attributes |", '.');
        Assert.NotEmpty(instruments);
        var missing = instruments.Distinct().Where(name => !documented.ContainsKey(name)).ToList();
        Assert.True(missing.Count == 0, "README's metrics table lacks:\n" + string.Join('\n', missing));
    }

    [Fact]
    public void MetricsTable_NamesEveryClientCertificateRefusalReason()
    {
        string[] reasons =
        [
            ClientCertificateRefusals.NoCertificate,
            ClientCertificateRefusals.ReasonTag(X509ChainStatusFlags.PartialChain),
            ClientCertificateRefusals.ReasonTag(X509ChainStatusFlags.NotTimeValid),
            ClientCertificateRefusals.ReasonTag(X509ChainStatusFlags.NotValidForUsage),
            ClientCertificateRefusals.ReasonTag(X509ChainStatusFlags.NoError),
        ];
        var row = TableNames("| metric | type | unit | attributes |", '.')["maskformer.tls.client_certificate_refusals"];

        Assert.All(reasons, reason => Assert.Contains($"`{reason}`", row, StringComparison.Ordinal));
    }

    [Fact]
    public void MetricsTable_NamesEverySkipReason()
    {
        var row = TableNames("| metric | type | unit | attributes |", '.')["maskformer.stream.frames"];

        Assert.All(
            Enum.GetValues<SkipReason>().Where(reason => reason != SkipReason.Unspecified),
            reason => Assert.Contains($"`{FrameTelemetry.SkipLabel(reason)}`", row, StringComparison.Ordinal));
    }

    // A setting bound as a list or map element (Devices:N:Name) may be described in its parent's row.
    private static bool InParentRow(string setting, Dictionary<string, string> documented)
    {
        var element = setting.LastIndexOf(":N:", StringComparison.Ordinal);
        return element > 0 && documented.TryGetValue(setting[..element], out var row)
            && row.Contains($"`{setting[(element + 3)..]}`", StringComparison.Ordinal);
    }

    private static void Collect(Type options, string prefix, List<string> settings)
    {
        foreach (var property in options.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.SetMethod is { IsPublic: true }))
        {
            var key = $"{prefix}:{property.Name}";
            var type = property.PropertyType;
            if (type == typeof(Engine.Tracking.TrackingOptions))
            {
                Collect(type, key, settings);
            }
            else if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>) && type.GetGenericArguments()[0].IsClass && type.GetGenericArguments()[0] != typeof(string))
            {
                settings.Add(key);
                Collect(type.GetGenericArguments()[0], $"{key}:N", settings);
            }
            else if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(Dictionary<,>) && type.GetGenericArguments()[1] != typeof(string))
            {
                Collect(type.GetGenericArguments()[1], $"{key}:{{name}}", settings);
            }
            else
            {
                settings.Add(key);
            }
        }
    }

    /// <summary>
    /// The names in the first column of the table under <paramref name="header"/>, each with its row; a cell
    /// "`a.b.c` / `.d`" names a.b.c and a.b.d (<paramref name="separator"/> '.'), "`A:B:C` / `:D`" A:B:C and A:B:D.
    /// </summary>
    private static Dictionary<string, string> TableNames(string header, char separator)
    {
        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        var start = Array.IndexOf(s_readme, header);
        Assert.True(start >= 0, $"README has no table headed {header}");
        foreach (var row in s_readme.Skip(start + 2).TakeWhile(line => line.StartsWith('|')))
        {
            var cell = row.Split('|', StringSplitOptions.TrimEntries)[1];
            string? first = null;
            foreach (var part in cell.Split(" / ").Select(p => p.Trim('`')))
            {
                var name = first is not null && part.StartsWith(separator) ? first[..first.LastIndexOf(separator)] + part : part;
                first ??= name;
                names[name] = row;
            }
        }

        return names;
    }
}
