"""Writes a harder tracking clip than make_data.py's: objects cross and hide each other in part, two share a
class, one is smaller than any in training, and all move faster. Ground truth in the clip's format.

    /usr/bin/python3 tools/model-zoo/make_hard_clip.py --out models/tiny-shapes/clip-hard

<out>/frame_NNN.png, frame_NNN_panoptic.png, tracks.json (no semantic maps: tracking needs none)
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset as D  # noqa: E402

W, H, FRAMES, SEED = 160, 120, 32, 4
# (track id, class, x0, y0, dx per frame, dy per frame, size); drawn in this order, later over earlier
OBJECTS = [
    (1, 3, 20.0, 36.0, 4.0, 0.0, 15.0),     # circle moving right ...
    (2, 3, 140.0, 50.0, -4.0, 0.0, 15.0),   # ... crosses a circle moving left, in front of it
    (3, 4, 30.0, 95.0, 3.5, -0.5, 14.0),    # rectangle moving right ...
    (4, 5, 130.0, 90.0, -3.0, 0.2, 16.0),   # ... crosses a triangle moving left
    (5, 4, 80.0, 14.0, 0.0, 1.2, 11.0),     # small rectangle moving down through the circles' lanes
]
COLORS = [(220, 40, 40), (250, 140, 30), (250, 210, 30), (200, 60, 220), (240, 240, 240)]
MIN_VISIBLE = 40   # pixels; less and the object is not in that frame's ground truth


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/tiny-shapes/clip-hard")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    stuff = D.stuff_layout(H, W, np.random.default_rng([SEED, 0]))
    colors = [np.array(c, np.float32) for c in COLORS]
    frames = []
    for f in range(FRAMES):
        things = [(cls, x0 + dx * f, y0 + dy * f, s) for (_, cls, x0, y0, dx, dy, s) in OBJECTS]
        s = D.render(H, W, np.random.default_rng([SEED, 1, f]), things=things, stuff=stuff, colors=colors,
                     stuff_rng=np.random.default_rng([SEED, 2]))
        # render draws thing k with rng 1000 + k; its visible part is what later things leave of it
        masks = [D._thing_mask(cls, H, W, cx, cy, sz, np.random.default_rng(1000 + k))
                 for k, (cls, cx, cy, sz) in enumerate(things)]
        visible = [m & ~np.logical_or.reduce(masks[k + 1:]) if k + 1 < len(masks) else m for k, m in enumerate(masks)]
        stem = f"frame_{f:03d}"
        Image.fromarray(s.image, "RGB").save(os.path.join(args.out, f"{stem}.png"), optimize=True)
        Image.fromarray(D.id_to_rgb(s.panoptic), "RGB").save(os.path.join(args.out, f"{stem}_panoptic.png"), optimize=True)
        objects = []
        for g in (g for g in s.segments if g["isthing"]):
            k = next(k for k, v in enumerate(visible) if np.array_equal(v, s.panoptic == g["id"]))
            info = D.segment_info(s.panoptic, g)
            if info["area"] >= MIN_VISIBLE:
                objects.append({"track_id": OBJECTS[k][0], "category_id": OBJECTS[k][1], "segment_id": info["id"],
                                "bbox": info["bbox"], "area": info["area"]})
        frames.append({"frame": f, "file_name": f"{stem}.png", "panoptic_file_name": f"{stem}_panoptic.png",
                       "width": W, "height": H, "objects": objects,
                       "segments_info": [D.segment_info(s.panoptic, g) for g in s.segments]})
    with open(os.path.join(args.out, "tracks.json"), "w") as fh:
        json.dump({"info": {"description": "tiny-shapes harder clip: 5 things, two of one class, crossing and "
                                           "partly hiding each other, one smaller than any in training "
                                           "(tools/model-zoo/make_hard_clip.py)",
                            "bbox_format": "[x, y, width, height] in pixels, inclusive of the mask's extreme pixels",
                            "panoptic_encoding": "id = R + 256*G + 65536*B, 0 = void"},
                   "categories": D.categories(), "num_frames": FRAMES,
                   "tracks": [{"track_id": t, "category_id": c, "name": f"{D.CLASS_NAMES[c]} {t}"}
                              for (t, c, *_) in OBJECTS],
                   "frames": frames}, fh, indent=1)


if __name__ == "__main__":
    main()
