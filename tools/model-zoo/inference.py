"""Reference inference (detectron2 MaskFormer semantic / panoptic post-processing).

    /usr/bin/python3 tools/model-zoo/inference.py --model-dir models/tiny-shapes IMAGE.png [--out pred.png]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import MaskFormer, ModelConfig  # noqa: E402
from preprocess import load_config, preprocess  # noqa: E402


def load_model(ckpt_path: str) -> MaskFormer:
    ck = torch.load(ckpt_path, map_location="cpu")
    cfg = dict(ck["config"])
    cfg["widths"] = tuple(cfg["widths"])
    m = MaskFormer(ModelConfig(**cfg))
    m.load_state_dict(ck["model"])
    m.eval()
    return m


def upsample_masks(mask_logits: torch.Tensor, padded: Tuple[int, int], resized: Tuple[int, int],
                   original: Tuple[int, int]) -> torch.Tensor:
    """[Q,h/4,w/4] -> bilinear to the padded input size -> crop padding -> bilinear to the original size."""
    m = F.interpolate(mask_logits[None], size=padded, mode="bilinear", align_corners=False)
    m = m[:, :, :resized[0], :resized[1]]
    m = F.interpolate(m, size=original, mode="bilinear", align_corners=False)
    return m[0]


def semantic_inference(class_logits: torch.Tensor, mask_logits_up: torch.Tensor) -> torch.Tensor:
    """class_logits [Q,K+1], mask_logits_up [Q,H,W] -> label map [H,W] (int64)."""
    cls = F.softmax(class_logits, dim=-1)[..., :-1]
    masks = mask_logits_up.sigmoid()
    semseg = torch.einsum("qc,qhw->chw", cls, masks)
    return semseg.argmax(0)


def panoptic_inference(class_logits: torch.Tensor, mask_logits_up: torch.Tensor, thing_ids: List[int],
                       object_mask_threshold: float = 0.8, overlap_threshold: float = 0.8
                       ) -> Tuple[torch.Tensor, List[Dict]]:
    """detectron2 MaskFormer.panoptic_inference. Returns (segment id map int32 (0 = void), segments)."""
    num_classes = class_logits.shape[-1] - 1
    scores, labels = F.softmax(class_logits, dim=-1).max(-1)
    mask_pred = mask_logits_up.sigmoid()
    keep = labels.ne(num_classes) & (scores > object_mask_threshold)
    cur_scores, cur_classes, cur_masks = scores[keep], labels[keep], mask_pred[keep]
    cur_prob_masks = cur_scores.view(-1, 1, 1) * cur_masks
    h, w = cur_masks.shape[-2:]
    panoptic_seg = torch.zeros((h, w), dtype=torch.int32)
    segments: List[Dict] = []
    current_segment_id = 0
    if cur_masks.shape[0] == 0:
        return panoptic_seg, segments
    cur_mask_ids = cur_prob_masks.argmax(0)
    stuff_memory = {}
    for k in range(cur_classes.shape[0]):
        pred_class = int(cur_classes[k])
        isthing = pred_class in thing_ids
        mask = cur_mask_ids == k
        mask_area = int(mask.sum())
        original_area = int((cur_masks[k] >= 0.5).sum())
        if mask_area > 0 and original_area > 0:
            if mask_area / original_area < overlap_threshold:
                continue
            if not isthing:
                if pred_class in stuff_memory:
                    panoptic_seg[mask] = stuff_memory[pred_class]
                    continue
                stuff_memory[pred_class] = current_segment_id + 1
            current_segment_id += 1
            panoptic_seg[mask] = current_segment_id
            segments.append({"id": current_segment_id, "isthing": bool(isthing), "category_id": pred_class,
                             "score": float(cur_scores[k])})
    return panoptic_seg, segments


class Predictor:
    def __init__(self, ckpt_path: str, preprocessor_config: str | None = None, thing_ids=(3, 4, 5)):
        self.model = load_model(ckpt_path)
        self.cfg = load_config(preprocessor_config)
        self.thing_ids = list(thing_ids)

    @torch.no_grad()
    def raw(self, image: np.ndarray):
        x, resized = preprocess(image, self.cfg)
        class_logits, mask_logits = self.model(x)
        return x, resized, class_logits[0], mask_logits[0]

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> Dict:
        x, resized, cl, ml = self.raw(image)
        up = upsample_masks(ml, tuple(x.shape[-2:]), resized, image.shape[:2])
        sem = semantic_inference(cl, up)
        pan, segs = panoptic_inference(cl, up, self.thing_ids)
        return {"pixel_values": x, "resized": resized, "class_logits": cl, "mask_logits": ml,
                "semantic": sem.numpy().astype(np.uint8), "panoptic": pan.numpy(), "segments": segs}


def main():
    from PIL import Image
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("--ckpt", default="/tmp/tiny-shapes-work/model.pt")
    ap.add_argument("--model-dir", default="models/tiny-shapes")
    ap.add_argument("--out", default=None, help="write the semantic label map (8-bit PNG) here")
    args = ap.parse_args()
    torch.set_num_threads(2)
    with open(os.path.join(args.model_dir, "config.json")) as f:
        thing_ids = json.load(f)["thing_ids"]
    p = Predictor(args.ckpt, os.path.join(args.model_dir, "preprocessor_config.json"), thing_ids)
    r = p(np.array(Image.open(args.image).convert("RGB")))
    print(json.dumps(r["segments"], indent=1))
    if args.out:
        Image.fromarray(r["semantic"], "L").save(args.out)


if __name__ == "__main__":
    main()
