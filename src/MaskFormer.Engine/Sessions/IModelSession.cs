using MaskFormer.Engine.Preprocessing;

namespace MaskFormer.Engine.Sessions;

/// <summary>
/// A model session as the scheduler drives it: one worker thread owns it and runs batches on it. The
/// real one is <see cref="ModelSession"/> (ONNX Runtime); a fake belongs only in tests that need a run
/// which throws or hangs, swapped in through <see cref="IModelSessionFactory"/>.
/// </summary>
internal interface IModelSession : IDisposable
{
    /// <summary>Where the session runs.</summary>
    SessionPlacement Placement { get; }

    /// <summary>Runs the model on inputs that share one padded size and returns one output each.</summary>
    ModelOutput[] Run(IReadOnlyList<ModelInput> inputs);

    /// <summary>The batch sizes runs are padded to, ascending (<see cref="InferenceOptions.PadCudaBatches"/>); empty when a run takes the batch as it is.</summary>
    IReadOnlyList<int> BatchSizes => [];

    /// <summary>
    /// Asks the run in progress to stop (ONNX Runtime's <c>RunOptions.Terminate</c>); called from another
    /// thread when the run is past <see cref="InferenceOptions.SessionRunTimeout"/>. The session is not
    /// used again afterwards.
    /// </summary>
    void Terminate();
}
