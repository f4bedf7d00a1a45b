"""Why things are missed: sorts every ground-truth thing of the first N images of a split by what the
model did with it (the breakdown in tools/model-zoo/README.md).

    /usr/bin/python3 tools/model-zoo/misses.py --ckpt CKPT [--split heldout|train] [--num 50] [--verbose]

A thing is found when a panoptic segment of its class overlaps it with IoU > 0.5 (PQ's rule). Otherwise,
looking at the query whose binary mask (logit > 0) overlaps it best:
  A  no query's mask covers it (best IoU <= 0.5): typically one query's mask covers two things of one class
  B  a query's mask covers it but that query's class is another one, or "no object"
  C  right class, but a probability <= object_mask_threshold (0.8)
  D  a kept query with a good mask whose pixels went to other queries in the panoptic merge (or that
     the overlap threshold dropped)
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset as D  # noqa: E402
from inference import Predictor, upsample_masks  # noqa: E402


def classify(pred: Predictor, sample):
    r = pred(sample.image)
    x, resized, class_logits, mask_logits = pred.raw(sample.image)
    up = upsample_masks(mask_logits, tuple(x.shape[-2:]), resized, sample.image.shape[:2])
    prob = F.softmax(class_logits, -1)
    binary = (up > 0).numpy()
    for seg in sample.segments:
        if seg["category_id"] not in D.THING_IDS:
            continue
        gt = sample.panoptic == seg["id"]
        found = any(((gt & (r["panoptic"] == p["id"])).sum() / max(1, (gt | (r["panoptic"] == p["id"])).sum())) > 0.5
                    for p in r["segments"] if p["category_id"] == seg["category_id"])
        if found:
            yield "found", seg, None
            continue
        ious = [(gt & binary[q]).sum() / max(1, (gt | binary[q]).sum()) for q in range(binary.shape[0])]
        q = int(np.argmax(ious))
        label, p = int(prob[q].argmax()), float(prob[q].max())
        if ious[q] <= 0.5:
            kind = "A"
        elif label != seg["category_id"]:
            kind = "B"
        elif p <= 0.8:
            kind = "C"
        else:
            kind = "D"
        yield kind, seg, {"query": q, "iou": round(float(ious[q]), 3), "label": label, "probability": round(p, 3)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--model-dir", default="models/tiny-shapes", help="for preprocessor_config.json")
    ap.add_argument("--split", default="heldout", choices=["heldout", "train"])
    ap.add_argument("--num", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pred = Predictor(args.ckpt, os.path.join(args.model_dir, "preprocessor_config.json"), list(D.THING_IDS))
    counts = {k: 0 for k in ("found", "A", "B", "C", "D")}
    for i in range(args.num):
        for kind, seg, detail in classify(pred, D.make_sample(args.split, i)):
            counts[kind] += 1
            if args.verbose and detail:
                print(json.dumps({"image": i, "class": D.CLASS_NAMES[seg["category_id"]], "kind": kind, **detail}))
    print(json.dumps({"split": args.split, "images": args.num, "things": sum(counts.values()), **counts}))


if __name__ == "__main__":
    main()
