"""Exports a PyTorch MaskFormer into the folder layout HuggingFace exports have, and checks it.

    /usr/bin/python3 tools/model-zoo/export_hf.py --out DIR [--checkpoint model.pt | --seed N] [--check IMAGE.png]

The folder holds only what transformers and transformers.js / onnx-community write, so the service
loads it exactly as it loads an export of a hub checkpoint:

    DIR/config.json                 model_type, architectures, id2label, label2id (transformers' keys only)
    DIR/preprocessor_config.json    as MaskFormerImageProcessor.save_pretrained writes it
    DIR/onnx/model.onnx             input pixel_values [batch, 3, height, width]; outputs
                                    class_queries_logits [batch, queries, labels + 1] and
                                    masks_queries_logits [batch, queries, height / 4, width / 4], the
                                    names and shapes of MaskFormerForInstanceSegmentation's outputs
    DIR/panoptic_categories.json    the thing/stuff sidecar (transformers' config has no such key)

With --check, the image is pre-processed the way MaskFormerImageProcessor does (shortest edge, the
target rounded up to size_divisor, Pillow BILINEAR on the 8-bit image, rescale, normalise; no padding
for one image) and the PyTorch model run on it; pixel_values and both outputs are written next to the
folder's files as check.*.f32 with check.json (their shapes), for the service's tests to compare.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import MaskFormer, ModelConfig  # noqa: E402

INPUT = "pixel_values"
OUTPUTS = ["class_queries_logits", "masks_queries_logits"]
LABELS = ["sky", "grass", "water", "circle", "rectangle", "triangle"]
THINGS = [3, 4, 5]
PROCESSOR = {
    "do_normalize": True,
    "do_reduce_labels": False,
    "do_rescale": True,
    "do_resize": True,
    "ignore_index": 255,
    "image_mean": [0.485, 0.456, 0.406],
    "image_processor_type": "MaskFormerImageProcessor",
    "image_std": [0.229, 0.224, 0.225],
    "num_labels": len(LABELS),
    "resample": 2,
    "rescale_factor": 0.00392156862745098,
    "size": {"longest_edge": 256, "shortest_edge": 128},
    "size_divisor": 32,
}


def load(checkpoint: str | None, seed: int) -> MaskFormer:
    if checkpoint:
        from inference import load_model  # the zoo's checkpoint format (train.py)
        return load_model(checkpoint)
    torch.manual_seed(seed)
    return MaskFormer(ModelConfig(num_classes=len(LABELS), num_queries=12)).eval()


def hf_preprocess(path: str) -> np.ndarray:
    """MaskFormerImageProcessor for one 8-bit RGB image (image_processing_maskformer.py)."""
    image = Image.open(path).convert("RGB")
    width, height = image.size
    shortest, longest = PROCESSOR["size"]["shortest_edge"], PROCESSOR["size"]["longest_edge"]
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = shortest, int(shortest * long / short)
    if new_long > longest:
        new_short, new_long = int(longest * new_short / new_long), longest
    new_height, new_width = (new_long, new_short) if width <= height else (new_short, new_long)
    divisor = PROCESSOR["size_divisor"]
    new_height = int(math.ceil(new_height / divisor) * divisor)
    new_width = int(math.ceil(new_width / divisor) * divisor)
    resized = np.asarray(image.resize((new_width, new_height), resample=Image.BILINEAR), dtype=np.float64)
    pixels = resized * PROCESSOR["rescale_factor"]
    pixels = (pixels - np.array(PROCESSOR["image_mean"])) / np.array(PROCESSOR["image_std"])
    return pixels.transpose(2, 0, 1)[None].astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--checkpoint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check")
    args = parser.parse_args()

    model = load(args.checkpoint, args.seed)
    os.makedirs(os.path.join(args.out, "onnx"), exist_ok=True)
    torch.onnx.export(
        model, torch.randn(1, 3, 128, 160), os.path.join(args.out, "onnx", "model.onnx"), opset_version=17,
        input_names=[INPUT], output_names=OUTPUTS, do_constant_folding=True,
        dynamic_axes={INPUT: {0: "batch", 2: "height", 3: "width"}, OUTPUTS[0]: {0: "batch"},
                      OUTPUTS[1]: {0: "batch", 2: "mask_height", 3: "mask_width"}})
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump({"model_type": "maskformer", "architectures": ["MaskFormerForInstanceSegmentation"],
                   "id2label": {str(i): n for i, n in enumerate(LABELS)},
                   "label2id": {n: i for i, n in enumerate(LABELS)}}, f, indent=2)
    with open(os.path.join(args.out, "preprocessor_config.json"), "w") as f:
        json.dump(PROCESSOR, f, indent=2)
    with open(os.path.join(args.out, "panoptic_categories.json"), "w") as f:
        json.dump([{"id": i, "name": n, "isthing": int(i in THINGS)} for i, n in enumerate(LABELS)], f, indent=2)

    if args.check:
        pixels = hf_preprocess(args.check)
        with torch.no_grad():
            class_logits, mask_logits = model(torch.from_numpy(pixels))
        for name, array in (("pixel_values", pixels), ("class_logits", class_logits.numpy()), ("mask_logits", mask_logits.numpy())):
            array.astype("<f4").tofile(os.path.join(args.out, f"check.{name}.f32"))
        with open(os.path.join(args.out, "check.json"), "w") as f:
            json.dump({"pixel_values": list(pixels.shape), "class_logits": list(class_logits.shape),
                       "mask_logits": list(mask_logits.shape)}, f)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
