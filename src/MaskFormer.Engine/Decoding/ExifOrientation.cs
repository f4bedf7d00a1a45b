namespace MaskFormer.Engine.Decoding;

/// <summary>
/// The EXIF Orientation tag (0x0112): where the stored rows and columns go when the image is displayed.
/// Named as the EXIF specification names them (row 0 on the ..., column 0 on the ...).
/// </summary>
public enum ExifOrientation
{
    /// <summary>1: stored as displayed.</summary>
    TopLeft = 1,

    /// <summary>2: mirrored left to right.</summary>
    TopRight = 2,

    /// <summary>3: rotated 180°.</summary>
    BottomRight = 3,

    /// <summary>4: mirrored top to bottom.</summary>
    BottomLeft = 4,

    /// <summary>5: transposed (mirrored across the main diagonal).</summary>
    LeftTop = 5,

    /// <summary>6: displayed after a 90° clockwise turn.</summary>
    RightTop = 6,

    /// <summary>7: transversed (mirrored across the anti-diagonal).</summary>
    RightBottom = 7,

    /// <summary>8: displayed after a 90° counter-clockwise turn.</summary>
    LeftBottom = 8,
}
