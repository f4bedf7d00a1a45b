using MaskFormer.Engine.Models;

namespace MaskFormer.Engine.Sessions;

/// <summary>
/// Creates the sessions of a model, at load and when a hung session is replaced. <see cref="SessionFactory"/>
/// is the real one; a test registers its own in the container to inject a session fault.
/// </summary>
internal interface IModelSessionFactory
{
    /// <summary>A session for <paramref name="folder"/> on <paramref name="device"/>.</summary>
    IModelSession Create(ModelFolder folder, DeviceSpec device, int intraOpThreads, bool required);
}
