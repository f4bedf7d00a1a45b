"""Synthetic "shapes" panoptic data set.

Every image has 2-3 STUFF regions (horizontal bands split by wavy boundaries)
and 2-5 THING instances (circles, rectangles, triangles) painted on top of
them, possibly overlapping each other.  Everything is generated from a seed,
so the data set is fully reproducible.

Label ids (also the category ids of the panoptic annotations):
    0 sky        stuff  vertical blue gradient
    1 grass      stuff  green, strong per-pixel noise
    2 water      stuff  dark blue with horizontal wavy stripes
    3 circle     thing
    4 rectangle  thing
    5 triangle   thing
255 is the ignore value (never produced by the generator itself).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

CLASS_NAMES = ["sky", "grass", "water", "circle", "rectangle", "triangle"]
STUFF_IDS = [0, 1, 2]
THING_IDS = [3, 4, 5]
NUM_CLASSES = len(CLASS_NAMES)
IGNORE_INDEX = 255
# Colours used only for visualisation / COCO "categories" metadata.
CLASS_COLORS = [(110, 170, 240), (60, 150, 50), (30, 70, 160),
                (230, 60, 60), (240, 200, 40), (200, 80, 220)]

MIN_SIZE, MAX_SIZE = 96, 200
# Things per image, their size s (circle radius; half side of rectangles, ~circumradius / 1.3 of
# triangles) as a fraction of min(H, W), the largest fraction of an earlier thing a later one may
# hide, and the least L1 distance (sum over RGB) of a thing's colour from its background's mean.
# Version 2 of the data (larger, less occluded, contrasting things): at stride 4 a version-1
# thing of radius 0.10 * 96 px covered only ~3 mask pixels across, too few to tell its shape.
THING_COUNT = (2, 4)
THING_SCALE = (0.13, 0.24)
MAX_HIDDEN = 0.3
MIN_CONTRAST = 90.0
DATA_VERSION = 2

# Seeds of the splits: image i of a split is generated from
# np.random.default_rng([SPLIT_SEEDS[split], i]).
SPLIT_SEEDS = {"train": 1, "heldout": 2, "clip": 3}


@dataclass
class Sample:
    image: np.ndarray          # H x W x 3 uint8 RGB
    semantic: np.ndarray       # H x W uint8 label ids
    panoptic: np.ndarray       # H x W int32 segment ids (0 = void)
    segments: List[Dict] = field(default_factory=list)  # id, category_id, isthing


# --------------------------------------------------------------------------
# textures
# --------------------------------------------------------------------------
def _texture(cls: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if cls == 0:  # sky: vertical gradient, mild noise
        top = np.array([100, 150, 230], np.float32) + rng.uniform(-20, 20, 3)
        bot = np.array([185, 215, 245], np.float32) + rng.uniform(-15, 10, 3)
        t = (yy / max(h - 1, 1))[..., None]
        img = top * (1 - t) + bot * t
        img += rng.normal(0, 4, (h, w, 3))
    elif cls == 1:  # grass: green, strong noise plus blotches
        base = np.array([60, 140, 50], np.float32) + rng.uniform(-15, 15, 3)
        blotch = np.sin(xx / rng.uniform(5, 9) + rng.uniform(0, 6)) * np.cos(yy / rng.uniform(5, 9))
        img = base + 15 * blotch[..., None] + rng.normal(0, 25, (h, w, 1)) * np.array([0.6, 1.0, 0.5])
        img += rng.normal(0, 6, (h, w, 3))
    elif cls == 2:  # water: dark blue with horizontal wavy stripes
        base = np.array([30, 70, 155], np.float32) + rng.uniform(-10, 10, 3)
        period = rng.uniform(5, 9)
        phase = rng.uniform(0, 2 * np.pi)
        stripes = np.sin(2 * np.pi * yy / period + phase + 0.8 * np.sin(xx / rng.uniform(6, 12)))
        img = base + 35 * stripes[..., None] * np.array([0.6, 0.8, 1.0])
        img += rng.normal(0, 6, (h, w, 3))
    else:
        raise ValueError(cls)
    return img


def _thing_mask(cls: int, h: int, w: int, cx: float, cy: float, s: float,
                rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xx += 0.5
    yy += 0.5
    if cls == 3:  # circle
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= s * s
    if cls == 4:  # axis aligned rectangle
        hw = s * rng.uniform(0.7, 1.3)
        hh = s * rng.uniform(0.7, 1.3)
        return (np.abs(xx - cx) <= hw) & (np.abs(yy - cy) <= hh)
    if cls == 5:  # triangle, random rotation, roughly equilateral
        a0 = rng.uniform(0, 2 * np.pi)
        r = 1.3 * s
        ang = a0 + np.arange(3) * 2 * np.pi / 3 + rng.uniform(-0.2, 0.2, 3)
        px = cx + r * np.cos(ang)
        py = cy + r * np.sin(ang)
        inside = np.ones((h, w), bool)
        sgn = None
        for k in range(3):
            x0, y0, x1, y1 = px[k], py[k], px[(k + 1) % 3], py[(k + 1) % 3]
            cross = (x1 - x0) * (yy - y0) - (y1 - y0) * (xx - x0)
            if sgn is None:
                # orientation of the triangle
                sgn = np.sign((x1 - x0) * (py[(k + 2) % 3] - y0) - (y1 - y0) * (px[(k + 2) % 3] - x0))
            inside &= cross * sgn >= 0
        return inside
    raise ValueError(cls)


def _thing_color(rng: np.random.Generator, background: np.ndarray | None = None) -> np.ndarray:
    """Uniformly random colour, redrawn (a few times) while it is too close to the
    mean colour of the background it is painted on, so every thing has a visible outline."""
    for _ in range(8):
        c = rng.uniform(0, 255, 3).astype(np.float32)
        if background is None or float(np.abs(c - background).sum()) >= MIN_CONTRAST:
            break
    return c


# --------------------------------------------------------------------------
# scene composition
# --------------------------------------------------------------------------
def stuff_layout(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Semantic map of the stuff background (bands split by wavy lines)."""
    n = int(rng.integers(2, 4))
    classes = rng.permutation(STUFF_IDS)[:n]
    if n == 2:
        bases = [h * rng.uniform(0.3, 0.7)]
    else:
        bases = [h * rng.uniform(0.2, 0.4), h * rng.uniform(0.6, 0.8)]
    xx = np.arange(w, dtype=np.float32) + 0.5
    yy = np.arange(h, dtype=np.float32)[:, None] + 0.5
    band = np.zeros((h, w), np.int64)
    for b in bases:
        amp = rng.uniform(3, 12)
        lam = rng.uniform(40, 120)
        phi = rng.uniform(0, 2 * np.pi)
        slope = rng.uniform(-0.25, 0.25)
        boundary = b + amp * np.sin(2 * np.pi * xx / lam + phi) + slope * (xx - w / 2)
        band += (yy > boundary[None, :]).astype(np.int64)
    return classes[band].astype(np.uint8)


def render(h: int, w: int, rng: np.random.Generator, things: List[Tuple[int, float, float, float]] | None = None,
           stuff: np.ndarray | None = None, colors: List[np.ndarray] | None = None,
           stuff_rng: np.random.Generator | None = None) -> Sample:
    """Render a scene.

    When `things` is None random things are placed; otherwise each tuple
    (class, cx, cy, s) is drawn in order (used for the video clip)."""
    semantic = stuff_layout(h, w, rng) if stuff is None else stuff.copy()
    trng = rng if stuff_rng is None else stuff_rng
    img = np.zeros((h, w, 3), np.float32)
    for c in STUFF_IDS:
        m = semantic == c
        if m.any():
            img[m] = _texture(c, h, w, trng)[m]
    panoptic = np.zeros((h, w), np.int32)
    segments = []
    next_id = 1
    for c in STUFF_IDS:
        m = semantic == c
        if m.any():
            panoptic[m] = next_id
            segments.append({"id": next_id, "category_id": int(c), "isthing": False})
            next_id += 1

    inst_masks: List[np.ndarray] = []   # visible masks of placed things
    inst_area0: List[int] = []          # full (unoccluded) area
    if things is None:
        n_things = int(rng.integers(THING_COUNT[0], THING_COUNT[1] + 1))
        placed = []
        for _ in range(n_things):
            for _attempt in range(20):
                cls = int(rng.choice(THING_IDS))
                s = rng.uniform(*THING_SCALE) * min(h, w)
                cx = rng.uniform(s, w - s)
                cy = rng.uniform(s, h - s)
                mask = _thing_mask(cls, h, w, cx, cy, s, rng)
                area = int(mask.sum())
                if area < 40:
                    continue
                # the new shape may hide at most MAX_HIDDEN of any earlier one, so every
                # instance keeps enough of its outline to tell its shape
                ok = all(((m & ~mask).sum() >= (1 - MAX_HIDDEN) * a0) for m, a0 in zip(inst_masks, inst_area0))
                if ok:
                    placed.append((cls, mask, _thing_color(rng, img[mask].mean(0))))
                    inst_masks = [m & ~mask for m in inst_masks] + [mask]
                    inst_area0.append(area)
                    break
    else:
        placed = []
        for k, (cls, cx, cy, s) in enumerate(things):
            mask = _thing_mask(cls, h, w, cx, cy, s, np.random.default_rng(1000 + k))
            placed.append((cls, mask, colors[k] if colors is not None else _thing_color(rng)))
    for cls, mask, color in placed:
        tex = color[None, None, :] + rng.normal(0, 10, (h, w, 3))
        img[mask] = tex[mask]
        semantic[mask] = cls
        panoptic[mask] = next_id
        segments.append({"id": next_id, "category_id": int(cls), "isthing": True})
        next_id += 1
    # drop segments that ended up fully hidden (can only happen with explicit things)
    segments = [s for s in segments if (panoptic == s["id"]).any()]
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return Sample(image=image, semantic=semantic, panoptic=panoptic, segments=segments)


def random_size(rng: np.random.Generator) -> Tuple[int, int]:
    """Random (h, w) in [96, 200], neither a multiple of 32."""
    while True:
        h, w = (int(v) for v in rng.integers(MIN_SIZE, MAX_SIZE + 1, 2))
        if h % 32 and w % 32:
            return h, w


def make_sample(split: str, index: int) -> Sample:
    rng = np.random.default_rng([SPLIT_SEEDS[split], index])
    h, w = random_size(rng)
    return render(h, w, rng)


# --------------------------------------------------------------------------
# files (COCO-panoptic style)
# --------------------------------------------------------------------------
def id_to_rgb(panoptic: np.ndarray) -> np.ndarray:
    """COCO panoptic encoding: id = R + 256 * G + 65536 * B."""
    p = panoptic.astype(np.int64)
    return np.stack([p % 256, (p // 256) % 256, (p // 65536) % 256], -1).astype(np.uint8)


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]).astype(np.int32)


def segment_info(panoptic: np.ndarray, seg: Dict) -> Dict:
    m = panoptic == seg["id"]
    ys, xs = np.nonzero(m)
    x0, y0 = int(xs.min()), int(ys.min())
    return {"id": int(seg["id"]), "category_id": int(seg["category_id"]), "iscrowd": 0,
            "area": int(m.sum()),
            "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]}


def categories() -> List[Dict]:
    return [{"id": i, "name": n, "isthing": int(i in THING_IDS), "color": list(CLASS_COLORS[i])}
            for i, n in enumerate(CLASS_NAMES)]


def write_sample(folder: str, stem: str, s: Sample) -> Dict:
    """Writes <stem>.png, <stem>_semantic.png, <stem>_panoptic.png; returns the annotation entry."""
    Image.fromarray(s.image, "RGB").save(os.path.join(folder, f"{stem}.png"), optimize=True)
    Image.fromarray(s.semantic, "L").save(os.path.join(folder, f"{stem}_semantic.png"), optimize=True)
    Image.fromarray(id_to_rgb(s.panoptic), "RGB").save(os.path.join(folder, f"{stem}_panoptic.png"), optimize=True)
    h, w = s.semantic.shape
    return {"file_name": f"{stem}.png", "semantic_file_name": f"{stem}_semantic.png",
            "panoptic_file_name": f"{stem}_panoptic.png", "width": w, "height": h,
            "segments_info": [segment_info(s.panoptic, g) for g in s.segments]}


def load_sample(folder: str, entry: Dict) -> Sample:
    image = np.array(Image.open(os.path.join(folder, entry["file_name"])).convert("RGB"))
    semantic = np.array(Image.open(os.path.join(folder, entry["semantic_file_name"])))
    panoptic = rgb_to_id(np.array(Image.open(os.path.join(folder, entry["panoptic_file_name"])).convert("RGB")))
    segs = [{"id": g["id"], "category_id": g["category_id"], "isthing": g["category_id"] in THING_IDS}
            for g in entry["segments_info"]]
    return Sample(image=image, semantic=semantic, panoptic=panoptic, segments=segs)


def write_heldout(folder: str, count: int) -> None:
    os.makedirs(folder, exist_ok=True)
    entries = []
    for i in range(count):
        entries.append(write_sample(folder, f"{i:04d}", make_sample("heldout", i)))
    with open(os.path.join(folder, "annotations.json"), "w") as f:
        json.dump({"info": {"description": "tiny-shapes held-out images (heldout split, indices 0..%d)" % (count - 1),
                            "panoptic_encoding": "id = R + 256*G + 65536*B, 0 = void"},
                   "categories": categories(), "images": entries}, f, indent=1)
