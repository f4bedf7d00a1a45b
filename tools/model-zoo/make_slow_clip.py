"""Writes a slow-motion version of the committed clip: the same scene and objects, moving SLOW times
slower over SLOW times as many frames (images only, no ground truth). Used to measure delta results
(README, "Streaming"): at walking pace most of a frame's label map repeats the one before.

    /usr/bin/python3 tools/model-zoo/make_slow_clip.py --slow 4 --out /tmp/slow-clip

<out>/frame_NNN.png for NNN in 0 .. 16*SLOW-1; frame k shows the committed clip's frame k/SLOW (objects
at fractional positions), with fresh texture noise on the objects every frame as a camera would give.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset as D  # noqa: E402
import make_data as M  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--slow", type=int, default=4, help="how many times slower than the committed clip")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.slow < 1:
        ap.error("--slow must be 1 or more")
    os.makedirs(args.out, exist_ok=True)
    seed = D.SPLIT_SEEDS["clip"]
    stuff = D.stuff_layout(M.CLIP_H, M.CLIP_W, np.random.default_rng([seed, 0]))
    colors = [np.array(c, np.float32) for c in M.CLIP_COLORS]
    count = M.CLIP_FRAMES * args.slow
    for k in range(count):
        t = k / args.slow
        things = [(cls, x0 + dx * t, y0 + dy * t, s) for (_, cls, x0, y0, dx, dy, s) in M.CLIP_OBJECTS]
        s = D.render(M.CLIP_H, M.CLIP_W, np.random.default_rng([seed, 1, k]), things=things, stuff=stuff,
                     colors=colors, stuff_rng=np.random.default_rng([seed, 2]))
        Image.fromarray(s.image, "RGB").save(os.path.join(args.out, f"frame_{k:03d}.png"), optimize=True)
    print(f"wrote {count} frames to {args.out}")


if __name__ == "__main__":
    main()
