"""A MaskFormer of realistic width with seeded random weights, for benchmarks (never committed).

    /usr/bin/python3 tools/model-zoo/make_realistic.py --out /tmp/maskformer-bench/models/realistic-width

The zoo's architecture (model.py) at the sizes of MaskFormer's published configurations where they
decide post-processing cost: 100 queries, 150 classes (ADE20K), mask and transformer width 256,
6 decoder layers, FFN 2048, a ResNet-18-wide backbone, and a fixed 512x512 input (so any image is
resized to it and masks come out at 128x128). Weights are random but seeded, and the class head is
scaled so that queries are confident, as trained ones are: about as many pass panoptic's 0.8
threshold as in a real model, so every post-processing path does real work. Its outputs are a worst
case for post-processing, not a trained model's: all 100 queries are confident and their masks broad,
rough and overlapping (each covers about 59 % of the image), so the panoptic argmax stays open almost
everywhere and every query is then dropped by the overlap rule (an empty panoptic result), and instance
inference averages sigmoids over a hundred near-image-sized masks (BENCHMARKS.md, notes). Writes
model.onnx, config.json and preprocessor_config.json in the layout the service reads.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import MaskFormer, ModelConfig  # noqa: E402

INPUT = "pixel_values"
OUTPUTS = ["class_queries_logits", "masks_queries_logits"]
CLASSES = 150
THINGS = 100  # ADE20K panoptic: 100 thing classes, 50 stuff
SIDE = 512


def build(seed: int) -> MaskFormer:
    """Seeded random weights, scaled so the outputs look like a trained model's to post-processing.

    Plain random initialisation makes every query the same (attention averages the memory, LayerNorm
    removes what is left) and every mask nearly all-positive. So: no biases in the decoder, sharper
    cross-attention and larger query embeddings (each query reads its own part of the image), a
    confident class head (most queries pass panoptic's 0.8), and mask features centred and scaled on a
    calibration input, so masks have logits of a few units with their own shapes and boundaries.
    """
    torch.manual_seed(seed)
    sizes = dict(num_classes=CLASSES, num_queries=100, widths=(64, 128, 256, 512), fpn_dim=256,
                 mask_dim=256, d_model=256, nheads=8, dim_feedforward=2048, dec_layers=6)
    if "class_pool_dim" in {f.name for f in dataclasses.fields(ModelConfig)}:
        sizes["class_pool_dim"] = 0  # MaskFormer's own head: class from the query embedding alone
    cfg = ModelConfig(**sizes)
    model = MaskFormer(cfg).eval()
    with torch.no_grad():
        for module in model.layers.modules():
            if isinstance(module, torch.nn.Linear):
                module.bias.zero_()
        for layer in model.layers:
            layer.cross_attn.q.weight.mul_(6.0)
            layer.cross_attn.k.weight.mul_(6.0)
        model.query_embed.weight.mul_(10.0)
        model.class_embed.weight.mul_(40.0)
        calibration = calibration_image()
        features = model.pixel_decoder(model.backbone(calibration))
        if isinstance(features, tuple):  # (mask features, FPN output) in later versions of model.py
            features = features[0]
        mask_features = model.pixel_decoder.mask_features
        mask_features.bias.sub_(features.mean((0, 2, 3)))
        scale = features.std()
        mask_features.weight.div_(scale)
        mask_features.bias.div_(scale)
        model.mask_embed.layers[-1].weight.mul_(8.0)
    return model


def calibration_image() -> torch.Tensor:
    """The committed held-out image 0000 of tiny-shapes, pre-processed for this model."""
    import numpy as np
    from PIL import Image

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "tiny-shapes", "heldout", "0000.png")
    rgb = np.asarray(Image.open(path).convert("RGB").resize((SIDE, SIDE), Image.BILINEAR), dtype=np.float32) / 255.0
    normalised = (rgb - np.array([0.485, 0.456, 0.406], dtype=np.float32)) / np.array([0.229, 0.224, 0.225], dtype=np.float32)
    return torch.from_numpy(normalised).permute(2, 0, 1)[None].contiguous()


class Wrapper(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model(pixel_values)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--opset", type=int, default=17)
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    model = build(args.seed)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "model.onnx")
    with torch.no_grad():
        torch.onnx.export(
            Wrapper(model), torch.randn(1, 3, SIDE, SIDE), path, opset_version=args.opset,
            input_names=[INPUT], output_names=OUTPUTS, do_constant_folding=True,
            dynamic_axes={INPUT: {0: "batch", 2: "height", 3: "width"},
                          OUTPUTS[0]: {0: "batch"},
                          OUTPUTS[1]: {0: "batch", 2: "mask_height", 3: "mask_width"}})
    labels = [f"class_{i:03d}" for i in range(CLASSES)]
    config = {
        "model_type": "maskformer",
        "architectures": ["MaskFormerForInstanceSegmentation"],
        "name": "realistic-width",
        "version": "1.0.0",
        "id2label": {str(i): n for i, n in enumerate(labels)},
        "label2id": {n: i for i, n in enumerate(labels)},
        "num_labels": CLASSES,
        "num_queries": model.cfg.num_queries,
        "thing_ids": list(range(THINGS)),
        "stuff_ids": list(range(THINGS, CLASSES)),
        "no_object_label": CLASSES,
        "mask_feature_stride": 4,
        "size_divisibility": 32,
        "architecture": model.cfg.to_dict(),
        "license": "random weights (seed %d), for benchmarks only" % args.seed,
    }
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    preprocessor = {
        "do_resize": True,
        "size": {"height": SIDE, "width": SIDE},
        "resample": 2,
        "do_rescale": True,
        "rescale_factor": 0.00392156862745098,
        "do_normalize": True,
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "size_divisor": 32,
        "do_pad": True,
        "ignore_index": 255,
        "do_reduce_labels": False,
        "image_processor_type": "MaskFormerImageProcessor",
    }
    with open(os.path.join(args.out, "preprocessor_config.json"), "w") as f:
        json.dump(preprocessor, f, indent=2)
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB, {params / 1e6:.1f} M parameters)")


if __name__ == "__main__":
    main()
