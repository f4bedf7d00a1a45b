"""Pre-processing contract (re-implemented by the C# service; see README.md).

1. resize (bilinear, half-pixel centres, no antialias, on float 0..255 values,
   no rounding afterwards) so that the shortest edge = shortest_edge unless
   the longest edge would then exceed longest_edge (rule: `resize_output_size`)
2. rescale by 1/255
3. normalise per channel: (x - mean) / std
4. pad bottom/right with 0.0 (after normalisation) to multiples of size_divisor
Layout NCHW float32, channel order RGB.
"""
from __future__ import annotations

import json
import math
from typing import Dict, Tuple

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_CONFIG = {
    "do_resize": True,
    "size": {"shortest_edge": 128, "longest_edge": 256},
    "resample": 2,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
    "size_divisor": 32,
    "do_pad": True,
    "ignore_index": 255,
    "do_reduce_labels": False,
    "image_processor_type": "MaskFormerImageProcessor",
    # MaskFormer Serve's key: this model was trained on tensors resized by F.interpolate (no antialias),
    # not through PIL as HF image processors resize, so the service must not default to PIL for it.
    "resize_method": "interpolate",
    # ... and zero-padded to the divisor after resizing (detectron2), where HF processors instead round
    # the resize target up to the divisor.
    "size_divisor_rule": "pad",
}


def load_config(path: str | None) -> Dict:
    if path is None:
        return dict(DEFAULT_CONFIG)
    with open(path) as f:
        return json.load(f)


def resize_output_size(height: int, width: int, shortest_edge: int, longest_edge: int) -> Tuple[int, int]:
    """(new_height, new_width); all divisions in float64, int() truncates (floor for positives).

    short, long = min(h, w), max(h, w)
    new_short = shortest_edge
    new_long  = floor(shortest_edge * long / short)
    if new_long > longest_edge:
        new_short = floor(longest_edge * new_short / new_long)
        new_long  = longest_edge
    the short side of the output is the side that was short (width when w <= h).
    """
    short, long = (width, height) if width <= height else (height, width)
    new_short = shortest_edge
    new_long = int(shortest_edge * long / short)
    if new_long > longest_edge:
        new_short = int(longest_edge * new_short / new_long)
        new_long = longest_edge
    return (new_long, new_short) if width <= height else (new_short, new_long)


def padded_size(height: int, width: int, divisor: int) -> Tuple[int, int]:
    return int(math.ceil(height / divisor) * divisor), int(math.ceil(width / divisor) * divisor)


def resize_image(image_chw: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """float CHW -> float CHW, plain bilinear (align_corners=False, antialias=False)."""
    return F.interpolate(image_chw[None], size=size, mode="bilinear", align_corners=False,
                         antialias=False)[0]


def preprocess(image: np.ndarray, cfg: Dict = DEFAULT_CONFIG) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """RGB uint8 HxWx3 -> (pixel_values [1,3,Hp,Wp] float32, (resized_h, resized_w))."""
    h, w = image.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
    if cfg.get("do_resize", True):
        size = resize_output_size(h, w, cfg["size"]["shortest_edge"], cfg["size"]["longest_edge"])
        x = resize_image(x, size)
    rh, rw = x.shape[-2:]
    if cfg.get("do_rescale", True):
        x = x * float(cfg["rescale_factor"])
    if cfg.get("do_normalize", True):
        mean = torch.tensor(cfg["image_mean"], dtype=torch.float32)[:, None, None]
        std = torch.tensor(cfg["image_std"], dtype=torch.float32)[:, None, None]
        x = (x - mean) / std
    if cfg.get("do_pad", True):
        ph, pw = padded_size(rh, rw, int(cfg["size_divisor"]))
        x = F.pad(x, (0, pw - rw, 0, ph - rh), value=0.0)
    return x[None].contiguous(), (int(rh), int(rw))
