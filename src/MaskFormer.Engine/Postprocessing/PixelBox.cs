namespace MaskFormer.Engine.Postprocessing;

/// <summary>An axis-aligned box in pixels covering every pixel of a mask: COCO's [x, y, width, height].</summary>
public readonly record struct PixelBox(int X, int Y, int Width, int Height)
{
    /// <summary>Tracks the extent of a set of pixels as they are visited.</summary>
    internal struct Builder
    {
        private int _minX;
        private int _minY;
        private int _maxX;
        private int _maxY;
        private bool _any;

        public void Add(int x, int y)
        {
            if (!_any)
            {
                (_minX, _minY, _maxX, _maxY, _any) = (x, y, x, y, true);
                return;
            }

            _minX = Math.Min(_minX, x);
            _maxX = Math.Max(_maxX, x);
            _minY = Math.Min(_minY, y);
            _maxY = Math.Max(_maxY, y);
        }

        public void AddRun(int x0, int x1, int y)
        {
            Add(x0, y);
            Add(x1, y);
        }

        public readonly PixelBox Build() => _any ? new PixelBox(_minX, _minY, _maxX - _minX + 1, _maxY - _minY + 1) : default;
    }
}
