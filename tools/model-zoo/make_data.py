"""Writes the committed ground-truth files: the held-out subset and the video clip.

    /usr/bin/python3 tools/model-zoo/make_data.py --out models/tiny-shapes

<out>/heldout/NNNN.png, NNNN_semantic.png, NNNN_panoptic.png, annotations.json
    (held-out split, indices 0..count-1, identical to the first images of the
    full held-out set used by evaluate.py)
<out>/clip/frame_NNN.png, frame_NNN_panoptic.png, frame_NNN_semantic.png, tracks.json
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

CLIP_W, CLIP_H, CLIP_FRAMES = 160, 120, 16
# (track id, class, x0, y0, dx per frame, dy per frame, size); lanes never overlap;
# sizes within the training range (dataset.THING_SCALE of min(H, W) = 120 px)
CLIP_OBJECTS = [
    (1, 3, 28.0, 24.0, 3.0, 0.25, 17.0),     # circle moving right
    (2, 4, 128.0, 62.0, -2.5, 0.0, 15.0),    # rectangle moving left
    (3, 5, 40.0, 100.0, 2.0, -0.25, 16.0),    # triangle moving right
]
CLIP_COLORS = [(220, 40, 40), (250, 210, 30), (200, 60, 220)]   # clearly visible on every stuff texture


def write_clip(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    rng0 = np.random.default_rng([D.SPLIT_SEEDS["clip"], 0])
    stuff = D.stuff_layout(CLIP_H, CLIP_W, rng0)
    colors = [np.array(c, np.float32) for c in CLIP_COLORS]
    frames = []
    for f in range(CLIP_FRAMES):
        things = [(cls, x0 + dx * f, y0 + dy * f, s) for (_, cls, x0, y0, dx, dy, s) in CLIP_OBJECTS]
        s = D.render(CLIP_H, CLIP_W, np.random.default_rng([D.SPLIT_SEEDS["clip"], 1, f]), things=things,
                     stuff=stuff, colors=colors, stuff_rng=np.random.default_rng([D.SPLIT_SEEDS["clip"], 2]))
        stem = f"frame_{f:03d}"
        entry = D.write_sample(folder, stem, s)
        things_segs = [g for g in s.segments if g["isthing"]]
        objects = []
        for (tid, cls, *_), g in zip(CLIP_OBJECTS, things_segs):
            assert g["category_id"] == cls
            info = D.segment_info(s.panoptic, g)
            objects.append({"track_id": tid, "category_id": cls, "segment_id": info["id"],
                            "bbox": info["bbox"], "area": info["area"]})
        frames.append({"frame": f, "file_name": entry["file_name"], "panoptic_file_name": entry["panoptic_file_name"],
                       "semantic_file_name": entry["semantic_file_name"], "width": CLIP_W, "height": CLIP_H,
                       "objects": objects,
                       "segments_info": entry["segments_info"]})
    with open(os.path.join(folder, "tracks.json"), "w") as fh:
        json.dump({"info": {"description": "tiny-shapes synthetic clip: static stuff background, 3 things moving "
                                           "linearly in separate lanes (they never touch)",
                            "bbox_format": "[x, y, width, height] in pixels, inclusive of the mask's extreme pixels",
                            "panoptic_encoding": "id = R + 256*G + 65536*B, 0 = void"},
                   "categories": D.categories(), "num_frames": CLIP_FRAMES,
                   "tracks": [{"track_id": t, "category_id": c, "name": D.CLASS_NAMES[c]}
                              for (t, c, *_) in CLIP_OBJECTS],
                   "frames": frames}, fh, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/tiny-shapes")
    ap.add_argument("--count", type=int, default=24)
    args = ap.parse_args()
    D.write_heldout(os.path.join(args.out, "heldout"), args.count)
    write_clip(os.path.join(args.out, "clip"))


if __name__ == "__main__":
    main()
