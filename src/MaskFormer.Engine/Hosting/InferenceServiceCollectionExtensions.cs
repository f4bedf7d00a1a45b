using MaskFormer.Engine;
using MaskFormer.Engine.Admission;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Hosting;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

#pragma warning disable IDE0130 // Registration lives in the DI namespace, as ASP.NET Core's own extensions do.
namespace Microsoft.Extensions.DependencyInjection;
#pragma warning restore IDE0130

/// <summary>Registers the MaskFormer inference engine.</summary>
public static class InferenceServiceCollectionExtensions
{
    /// <summary>
    /// Adds the engine, its options (bound from "MaskFormer:Models", "MaskFormer:Inference",
    /// "MaskFormer:Images", "MaskFormer:Admission" and validated at start-up) and the hosted service that loads and warms models.
    /// </summary>
    public static IServiceCollection AddMaskFormerInference(this IServiceCollection services)
    {
        services.AddOptions<ModelRepositoryOptions>().BindConfiguration(ModelRepositoryOptions.SectionName).ValidateOnStart();
        services.AddOptions<InferenceOptions>().BindConfiguration(InferenceOptions.SectionName).ValidateOnStart();
        services.AddOptions<ImageDecoderOptions>().BindConfiguration(ImageDecoderOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<InferenceOptions>, InferenceOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ImageDecoderOptions>, InferenceOptionsValidator>());
        services.AddOptions<AdmissionOptions>().BindConfiguration(AdmissionOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<AdmissionOptions>, InferenceOptionsValidator>());
        services.TryAddSingleton<AdmissionGate>();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<ImageDecoder>();
        services.TryAddSingleton(provider =>
        {
            var engine = ActivatorUtilities.CreateInstance<SegmentationEngine>(provider);
            engine.ModelSessionFactory = provider.GetService<IModelSessionFactory>();
            return engine;
        });
        services.AddHostedService<InferenceHostedService>();
        return services;
    }
}
