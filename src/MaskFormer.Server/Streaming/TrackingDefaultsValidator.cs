using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Streaming;

/// <summary>Stops start-up on a tracking default out of range, naming the setting.</summary>
internal sealed class TrackingDefaultsValidator : IValidateOptions<StreamingOptions>
{
    public ValidateOptionsResult Validate(string? name, StreamingOptions options) =>
        options.Tracking.Check() is { } error ? ValidateOptionsResult.Fail($"{StreamingOptions.SectionName}:Tracking:{error}") : ValidateOptionsResult.Success;
}
