"""Evaluate train.py's periodic checkpoints (<work-dir>/ckpt_<step>.pt) on the first held-out images.

    /usr/bin/python3 tools/model-zoo/curve.py --work-dir /tmp/tiny-shapes-work [--num 30] [--watch]

Appends one JSON line per checkpoint (step, mIoU, PQ, PQ things / stuff, per-class PQ) to
<work-dir>/curve.jsonl, skipping checkpoints already there; --watch keeps polling for new ones
(while training runs) until interrupted. The training curve in tools/model-zoo/README.md was
measured this way.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset as D  # noqa: E402
from evaluate import evaluate  # noqa: E402
from inference import Predictor  # noqa: E402


def clip_classes(pred, clip_dir: str):
    """Per clip object: frames in which exactly one predicted thing segment matches it (IoU > 0.5) with its
    true class, of the frames it is in (the service's ClipTrackingTests also checks one track id)."""
    import numpy as np
    from PIL import Image
    with open(os.path.join(clip_dir, "tracks.json")) as f:
        tracks = json.load(f)
    right = {t["track_id"]: 0 for t in tracks["tracks"]}
    total = dict(right)
    for fr in tracks["frames"]:
        image = np.array(Image.open(os.path.join(clip_dir, fr["file_name"])).convert("RGB"))
        gt = np.array(Image.open(os.path.join(clip_dir, fr["panoptic_file_name"])).convert("RGB")).astype(np.int64)
        gt = gt[..., 0] + 256 * gt[..., 1] + 65536 * gt[..., 2]
        r = pred(image)
        for o in fr["objects"]:
            m = gt == o["segment_id"]
            hits = [s for s in r["segments"] if s["category_id"] in D.THING_IDS
                    and (m & (r["panoptic"] == s["id"])).sum() / (m | (r["panoptic"] == s["id"])).sum() > 0.5]
            total[o["track_id"]] += 1
            right[o["track_id"]] += int(len(hits) == 1 and hits[0]["category_id"] == o["category_id"])
    return {t["name"]: f"{right[t['track_id']]}/{total[t['track_id']]}" for t in tracks["tracks"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work-dir", default="/tmp/tiny-shapes-work")
    ap.add_argument("--model-dir", default="models/tiny-shapes", help="for preprocessor_config.json")
    ap.add_argument("--num", type=int, default=30, help="held-out images 0..num-1")
    ap.add_argument("--pattern", default="ckpt_*.pt")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--watch", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out_path = os.path.join(args.work_dir, "curve.jsonl")
    samples = [D.make_sample("heldout", i) for i in range(args.num)]
    k = D.NUM_CLASSES
    things = list(D.THING_IDS)
    while True:
        done = set()
        if os.path.exists(out_path):
            with open(out_path) as f:
                done = {json.loads(line)["checkpoint"] for line in f if line.strip()}
        todo = [p for p in glob.glob(os.path.join(args.work_dir, args.pattern)) if os.path.basename(p) not in done]
        todo.sort(key=lambda p: (os.path.getmtime(p), p))
        for p in todo:
            if time.time() - os.path.getmtime(p) < 5:
                continue  # may still be being written
            ck = torch.load(p, map_location="cpu")
            pred = Predictor(p, os.path.join(args.model_dir, "preprocessor_config.json"), things)
            t0 = time.time()
            r = evaluate(pred, samples, [f"heldout/{i:04d}" for i in range(args.num)], k, things)
            line = {"checkpoint": os.path.basename(p), "step": ck.get("step"), "images": args.num,
                    "miou": round(r["miou"], 4), "pq": round(r["pq"], 4), "pq_things": round(r["pq_things"], 4),
                    "pq_stuff": round(r["pq_stuff"], 4),
                    "things": {c: {k2: v[k2] for k2 in ("pq", "tp", "fp", "fn")}
                               for c, v in r["per_class_pq"].items() if D.CLASS_NAMES.index(c) in things},
                    "clip": clip_classes(pred, os.path.join(args.model_dir, "clip")),
                    "eval_s": round(time.time() - t0, 1)}
            with open(out_path, "a") as f:
                f.write(json.dumps(line) + "\n")
            print(json.dumps(line), flush=True)
        if not args.watch:
            break
        time.sleep(30)


if __name__ == "__main__":
    main()
