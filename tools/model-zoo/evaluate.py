"""Evaluate mIoU and PQ on the held-out split and write the reference outputs.

    /usr/bin/python3 tools/model-zoo/evaluate.py --model-dir models/tiny-shapes

* heldout_full: held-out split indices 0..num_full-1, generated in memory
* heldout_committed: exactly the images in <model-dir>/heldout (read from the PNG files;
  they are indices 0..23 of the same split)
Writes <model-dir>/eval.json, <model-dir>/heldout/NNNN_pred_semantic.png,
NNNN_pred_panoptic.png, predictions.json and, for two images, the raw
pixel_values / class logits / mask logits as little-endian float32 plus a JSON sidecar.

mIoU: confusion matrix accumulated over ALL evaluated images (GT 255 ignored);
IoU_c = TP_c / (TP_c + FP_c + FN_c) = intersection_c / union_c; mIoU = mean of IoU_c
over the classes whose union > 0.
PQ: panopticapi's pq_compute (match: same category and IoU > 0.5; void = id 0),
PQ = mean over categories with TP + FP + FN > 0 of SQ * RQ.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from typing import Dict, List

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset as D  # noqa: E402
from inference import Predictor  # noqa: E402

OFFSET = 256 * 256 * 256
VOID = 0


def confusion(gt: np.ndarray, pred: np.ndarray, k: int, ignore: int = 255) -> np.ndarray:
    valid = gt != ignore
    idx = gt[valid].astype(np.int64) * k + pred[valid].astype(np.int64)
    return np.bincount(idx, minlength=k * k).reshape(k, k)


def iou_from_confusion(cm: np.ndarray):
    inter = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    return inter, union.astype(np.float64)


class PQStat:
    def __init__(self):
        self.tp, self.fp, self.fn = defaultdict(int), defaultdict(int), defaultdict(int)
        self.iou = defaultdict(float)

    def add_image(self, gt_pan: np.ndarray, gt_segs: List[Dict], pred_pan: np.ndarray, pred_segs: List[Dict]):
        gt_info = {s["id"]: dict(s, area=int((gt_pan == s["id"]).sum()), iscrowd=s.get("iscrowd", 0))
                   for s in gt_segs}
        pred_info = {s["id"]: dict(s, area=int((pred_pan == s["id"]).sum())) for s in pred_segs}
        pair = gt_pan.astype(np.int64) * OFFSET + pred_pan.astype(np.int64)
        labels, counts = np.unique(pair, return_counts=True)
        inter = {(int(l // OFFSET), int(l % OFFSET)): int(c) for l, c in zip(labels, counts)}
        gt_matched, pred_matched = set(), set()
        for (g, p), n in inter.items():
            if g not in gt_info or p not in pred_info:
                continue
            if gt_info[g]["iscrowd"] == 1 or gt_info[g]["category_id"] != pred_info[p]["category_id"]:
                continue
            union = pred_info[p]["area"] + gt_info[g]["area"] - n - inter.get((VOID, p), 0)
            iou = n / union
            if iou > 0.5:
                c = gt_info[g]["category_id"]
                self.tp[c] += 1
                self.iou[c] += iou
                gt_matched.add(g)
                pred_matched.add(p)
        crowd = {}
        for g, info in gt_info.items():
            if g in gt_matched:
                continue
            if info["iscrowd"] == 1:
                crowd[info["category_id"]] = g
                continue
            self.fn[info["category_id"]] += 1
        for p, info in pred_info.items():
            if p in pred_matched:
                continue
            n = inter.get((VOID, p), 0)
            if info["category_id"] in crowd:
                n += inter.get((crowd[info["category_id"]], p), 0)
            if n / max(info["area"], 1) > 0.5:
                continue
            self.fp[info["category_id"]] += 1

    def summary(self, categories: List[int], thing_ids: List[int]) -> Dict:
        per = {}
        for c in categories:
            tp, fp, fn = self.tp[c], self.fp[c], self.fn[c]
            if tp + fp + fn == 0:
                continue
            pq = self.iou[c] / (tp + 0.5 * fp + 0.5 * fn)
            sq = self.iou[c] / tp if tp else 0.0
            rq = tp / (tp + 0.5 * fp + 0.5 * fn)
            per[c] = {"pq": pq, "sq": sq, "rq": rq, "tp": tp, "fp": fp, "fn": fn}

        def avg(cs, key):
            vals = [per[c][key] for c in cs if c in per]
            return float(np.mean(vals)) if vals else 0.0
        allc = list(per)
        return {"pq": avg(allc, "pq"), "sq": avg(allc, "sq"), "rq": avg(allc, "rq"),
                "pq_things": avg([c for c in allc if c in thing_ids], "pq"),
                "pq_stuff": avg([c for c in allc if c not in thing_ids], "pq"),
                "per_class_pq": {D.CLASS_NAMES[c]: {k: (round(v, 4) if isinstance(v, float) else v)
                                                    for k, v in per[c].items()} for c in allc}}


def evaluate(pred: Predictor, samples, names, k: int, thing_ids, on_result=None) -> Dict:
    cm_total = np.zeros((k, k), np.int64)
    pq = PQStat()
    images = []
    for s, name in zip(samples, names):
        r = pred(s.image)
        cm = confusion(s.semantic, r["semantic"], k)
        cm_total += cm
        inter, union = iou_from_confusion(cm)
        pq.add_image(s.panoptic, s.segments, r["panoptic"], r["segments"])
        images.append({"file": name, "height": int(s.image.shape[0]), "width": int(s.image.shape[1]),
                       "intersection": inter.astype(int).tolist(), "union": union.astype(int).tolist(),
                       "pixel_accuracy": round(float(inter.sum() / cm.sum()), 5)})
        if on_result:
            on_result(s, name, r)
    inter, union = iou_from_confusion(cm_total)
    present = union > 0
    ious = np.where(present, inter / np.maximum(union, 1), np.nan)
    out = {"num_images": len(images), "miou": float(np.nanmean(ious)),
           "pixel_accuracy": float(inter.sum() / cm_total.sum()),
           "per_class_iou": {D.CLASS_NAMES[c]: (round(float(ious[c]), 5) if present[c] else None) for c in range(k)},
           "intersection": inter.astype(int).tolist(), "union": union.astype(int).tolist(),
           "confusion_matrix_gt_rows": cm_total.tolist()}
    out.update(pq.summary(list(range(k)), thing_ids))
    out["images"] = images
    return out


def write_raw(folder: str, stem: str, s, r) -> Dict:
    files = {}
    for key, t in (("pixel_values", r["pixel_values"]), ("class_logits", r["class_logits"][None]),
                   ("mask_logits", r["mask_logits"][None])):
        fn = f"{stem}.{key}.f32"
        arr = t.detach().numpy().astype("<f4")
        arr.tofile(os.path.join(folder, fn))
        files[key] = {"file": fn, "shape": list(arr.shape), "dtype": "float32", "byte_order": "little",
                      "layout": "row-major (C order)"}
    meta = {"image": f"{stem}.png", "original_size_hw": list(s.image.shape[:2]),
            "resized_size_hw": list(r["resized"]), "padded_size_hw": list(r["pixel_values"].shape[-2:]),
            "pixel_values_shape": files["pixel_values"]["shape"],
            "class_logits_shape": files["class_logits"]["shape"],
            "mask_logits_shape": files["mask_logits"]["shape"],
            "files": files, "pred_semantic": f"{stem}_pred_semantic.png",
            "pred_panoptic": f"{stem}_pred_panoptic.png", "pred_segments": r["segments"],
            "note": "pixel_values = PyTorch pre-processing output (ONNX input); class_logits = "
                    "class_queries_logits [1,Q,K+1]; mask_logits = masks_queries_logits [1,Q,Hp/4,Wp/4] "
                    "from the PyTorch model (same weights as model.onnx)"}
    with open(os.path.join(folder, f"{stem}.reference.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default="models/tiny-shapes")
    ap.add_argument("--ckpt", default="/tmp/tiny-shapes-work/model.pt")
    ap.add_argument("--num-full", type=int, default=200)
    ap.add_argument("--raw-images", default="0000,0001", help="committed images that get raw logits files")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with open(os.path.join(args.model_dir, "config.json")) as f:
        mcfg = json.load(f)
    thing_ids = mcfg["thing_ids"]
    k = len(mcfg["id2label"])
    pred = Predictor(args.ckpt, os.path.join(args.model_dir, "preprocessor_config.json"), thing_ids)
    t0 = time.time()

    # full held-out set (in memory)
    full = [D.make_sample("heldout", i) for i in range(args.num_full)]
    res_full = evaluate(pred, full, [f"heldout/{i:04d}" for i in range(args.num_full)], k, thing_ids)
    res_full["source"] = f"dataset.make_sample('heldout', i) for i in 0..{args.num_full - 1}"

    # committed subset, read back from the PNG files
    hdir = os.path.join(args.model_dir, "heldout")
    with open(os.path.join(hdir, "annotations.json")) as f:
        ann = json.load(f)
    samples = [D.load_sample(hdir, e) for e in ann["images"]]
    for i, s in enumerate(samples):  # the committed files are the first images of the full set
        assert np.array_equal(s.image, full[i].image) and np.array_equal(s.panoptic, full[i].panoptic)
    raw_stems = set(args.raw_images.split(","))
    preds_meta = []

    def on_result(s, name, r):
        stem = os.path.splitext(name)[0]
        Image.fromarray(r["semantic"], "L").save(os.path.join(hdir, f"{stem}_pred_semantic.png"), optimize=True)
        Image.fromarray(D.id_to_rgb(r["panoptic"]), "RGB").save(os.path.join(hdir, f"{stem}_pred_panoptic.png"),
                                                                optimize=True)
        preds_meta.append({"file_name": name, "pred_semantic_file_name": f"{stem}_pred_semantic.png",
                           "pred_panoptic_file_name": f"{stem}_pred_panoptic.png",
                           "resized_size_hw": list(r["resized"]),
                           "padded_size_hw": list(r["pixel_values"].shape[-2:]),
                           "segments_info": r["segments"]})
        if stem in raw_stems:
            write_raw(hdir, stem, s, r)

    res_com = evaluate(pred, samples, [e["file_name"] for e in ann["images"]], k, thing_ids, on_result)
    with open(os.path.join(hdir, "predictions.json"), "w") as f:
        json.dump({"description": "PyTorch reference predictions (semantic_inference / panoptic_inference of "
                                  "detectron2 MaskFormer, object_mask_threshold 0.8, overlap_threshold 0.8)",
                   "images": preds_meta}, f, indent=1)

    def brief(r):
        return {k2: r[k2] for k2 in ("miou", "pq", "sq", "rq", "pq_things", "pq_stuff", "pixel_accuracy")}
    out = {
        "model": mcfg.get("name", "tiny-shapes"),
        "miou": res_full["miou"], "pq": res_full["pq"], "per_class_iou": res_full["per_class_iou"],
        "num_images": res_full["num_images"],
        "images": res_full.pop("images"),
        "summary": {"heldout_full": brief(res_full), "heldout_committed": brief(res_com)},
        "definitions": {
            "miou": "confusion matrix accumulated over all evaluated images (ground truth 255 ignored); "
                    "IoU_c = intersection_c / union_c with union_c = gt_c + pred_c - intersection_c; "
                    "mIoU = mean of IoU_c over classes with union_c > 0",
            "pq": "panopticapi pq_compute: a predicted and a ground-truth segment of the same category match "
                  "when IoU > 0.5 (void pixels of the prediction excluded from the union); per category "
                  "PQ = sum IoU(TP) / (TP + FP/2 + FN/2); PQ = mean over categories with TP+FP+FN > 0",
            "images[].intersection/union": "per-class arrays (index = label id) of that single image; the "
                                           "top-level miou/pq/per_class_iou/num_images/images are those of "
                                           "heldout_full, heldout_committed has its own images[]",
        },
        "postprocessing": {"semantic": "detectron2 MaskFormer semantic_inference",
                           "panoptic": "detectron2 MaskFormer panoptic_inference",
                           "object_mask_threshold": 0.8, "overlap_threshold": 0.8},
        "heldout_full": res_full,
        "heldout_committed": res_com,
        "eval_time_s": round(time.time() - t0, 1),
    }
    with open(os.path.join(args.model_dir, "eval.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out["summary"], indent=1))
    print("per-class IoU (full):", json.dumps(res_full["per_class_iou"]))


if __name__ == "__main__":
    main()
