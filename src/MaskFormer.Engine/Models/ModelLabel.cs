namespace MaskFormer.Engine.Models;

/// <summary>A class a model predicts.</summary>
/// <param name="Id">The label id used in label maps.</param>
/// <param name="Name">The label's name.</param>
/// <param name="IsThing">True for countable objects, false for stuff.</param>
public sealed record ModelLabel(int Id, string Name, bool IsThing);
