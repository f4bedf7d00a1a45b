"""Write models/<name>/MODEL.md from config.json, train_log.json and eval.json.

    /usr/bin/python3 tools/model-zoo/model_card.py --model-dir models/tiny-shapes
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset as D  # noqa: E402
from train import command_line  # noqa: E402


def fmt(v, nd=3):
    return "n/a" if v is None else f"{v:.{nd}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default="models/tiny-shapes")
    args = ap.parse_args()
    d = args.model_dir
    cfg = json.load(open(os.path.join(d, "config.json")))
    pp = json.load(open(os.path.join(d, "preprocessor_config.json")))
    tl = json.load(open(os.path.join(d, "train_log.json")))
    ev = json.load(open(os.path.join(d, "eval.json")))
    a = cfg["architecture"]
    full, com = ev["heldout_full"], ev["heldout_committed"]
    onnx_mb = os.path.getsize(os.path.join(d, "model.onnx")) / 1e6
    names = [cfg["id2label"][str(i)] for i in range(cfg["num_labels"])]
    ta = tl["args"]
    last = tl["log"][-1]
    stages = []
    st = tl
    while st is not None:
        stages.insert(0, st)
        st = st.get("previous_stage")
    total_steps = sum(x["args"]["steps"] for x in stages)
    total_min = sum(x["train_time_s"] for x in stages) / 60
    w_ce = ta.get("weight_ce", 1.0)
    loss_size = f"{ta['loss_size']}x{ta['loss_size']}" if ta.get("loss_size") else "the crop size"
    class_head = ("class head: 2-layer MLP (K+1) on the query embedding concatenated with stride-4\n  class "
                  f"features ({a['class_pool_dim']} channels, one 3x3 conv on the FPN output) averaged under "
                  "the query's\n  (detached) sigmoid mask" if a.get("class_pool_dim") else "linear class head (K+1)")
    sem_stages = [i + 1 for i, x in enumerate(stages) if x["args"].get("weight_semantic")]
    semantic_txt = (";\n  from stage %d on, + %s x per-pixel cross-entropy of the class features through a "
                    "training-only\n  1x1 conv (not in model.onnx)" % (sem_stages[0], stages[sem_stages[0] - 1]["args"]["weight_semantic"])
                    if sem_stages else "")
    lines = []
    for i, x in enumerate(stages):
        init = x["args"].get("init") or ""
        if os.path.basename(init).startswith("from_onnx") and i > 0:
            # continued from the previous stage's exported model.onnx (its checkpoint had not been kept)
            prev = stages[i - 1]["args"].get("ckpt_out") or "/tmp/tiny-shapes-work/model.pt"
            lines.append(f"/usr/bin/python3 tools/model-zoo/export.py --out /tmp/tiny-shapes-prev --ckpt {prev}")
            lines.append(f"/usr/bin/python3 tools/model-zoo/onnx_to_ckpt.py --onnx /tmp/tiny-shapes-prev/model.onnx --out {init}")
        cmd = command_line(dict(x["args"], out="models/tiny-shapes"))
        if x is tl and tl.get("checkpoint"):
            cmd += f" --ckpt-every {tl['checkpoint']['every']}"   # the committed weights are one of these
        elif x is tl and tl.get("averaged") and x["args"].get("ckpt_every"):
            cmd += f" --ckpt-every {x['args']['ckpt_every']}"   # the averaged checkpoints
        lines.append(cmd)
    final_ckpt = ta.get("ckpt_out") or os.path.join(ta.get("work_dir", "/tmp/tiny-shapes-work"), "model.pt")
    averaged = tl.get("averaged")
    average_txt = ""
    if tl.get("checkpoint"):
        # the weights are a periodic checkpoint of the last stage, not its end
        final_ckpt = tl["checkpoint"]["file"]
        average_txt = (f";\n  the weights are the last stage's checkpoint at step {tl['checkpoint']['step']} of its "
                       f"{ta['steps']} (`--ckpt-every`), chosen on the held-out images and the clip")
    if averaged:
        lines.append(averaged["command"])
        final_ckpt = averaged["out"]
        average_txt = (f";\n  the weights are the uniform average of the last stage's checkpoints at steps "
                       + ", ".join(os.path.basename(p)[5:-3] if os.path.basename(p).startswith("ckpt_") else f"{ta['steps']} (its end)"
                                    for p in averaged["checkpoints"])
                       + " (`average.py`)")
    train_commands = "\n".join(lines)
    ckpt_arg = "" if final_ckpt == "/tmp/tiny-shapes-work/model.pt" else f" --ckpt {final_ckpt}"
    stage_txt = ";\n  ".join(f"stage {i + 1}: {x['args']['steps']} steps, lr {x['args']['lr']}, warm-up "
                          f"{x['args']['warmup']}, {x['args'].get('schedule', 'cosine')}, seed {x['args']['seed']}"
                          + ((" (initialised from stage %d%s)" % (i, ", through its model.onnx" if os.path.basename(
                              x['args']['init']).startswith("from_onnx") else "")) if x['args'].get('init') else "")
                          + f", {x['train_time_s'] / 60:.1f} min" for i, x in enumerate(stages))

    strides = a.get("memory_strides", [32])
    memory_txt = ("the stride-32\n  backbone features (1x1 projected) with 2-D sine positional encodings computed from the runtime size"
                  if list(strides) == [32] else
                  "the backbone features at strides\n  " + " and ".join(str(x) for x in strides)
                  + " as one token sequence (each 1x1 projected, with 2-D sine positional encodings computed\n"
                  "  from the runtime size plus a learned per-level embedding)")
    if a.get("masked_attention"):
        memory_txt += (";\n  from the second layer on, Mask2Former's masked attention (a query attends only to the memory\n"
                       "  cells where the previous layer's mask for it is at least 0.5)")
    mask_pos_txt = (", plus 2-D sine positional encodings\n  (through a learned 1x1 projection)"
                    if a.get("mask_position") else "")
    pad_stages = [i + 1 for i, x in enumerate(stages) if x["args"].get("pad_divisor")]
    pad_txt = (f";\n  in stage {pad_stages[0]}, each image first zero-padded bottom/right to multiples of "
               f"{stages[pad_stages[0] - 1]['args']['pad_divisor']}, as inference pads it (`--pad-divisor`)" if pad_stages else "")
    weak = ("Things PQ is the weak figure: most misses are two nearby things of one class under one query, or a\n"
            "thing no query's mask covers well, rather than a wrong class; the training curve and what was\n"
            "tried are in `tools/model-zoo/README.md`." if full["pq_things"] < 0.75 else
            "Things PQ is below stuff PQ: the remaining misses are mostly two nearby things of one class under one\n"
            "query or a thing hidden in part; the training curve is in `tools/model-zoo/README.md`.")
    rows = []
    for n in names:
        pf, pc = full["per_class_pq"].get(n, {}), com["per_class_pq"].get(n, {})
        rows.append(f"| {cfg['label2id'][n]} | {n} | {'thing' if cfg['label2id'][n] in cfg['thing_ids'] else 'stuff'} "
                    f"| {fmt(full['per_class_iou'][n])} | {fmt(pf.get('pq'))} "
                    f"| {fmt(com['per_class_iou'][n])} | {fmt(pc.get('pq'))} |")
    card = f"""# tiny-shapes (MaskFormer, {cfg['version']})

A tiny MaskFormer (Cheng et al., 2021) trained from scratch on a synthetic
"shapes" panoptic data set, for testing the MaskFormer Serve service end to end.
It is not meant for real images.

## Summary

| | value |
| --- | --- |
| task | semantic + panoptic segmentation |
| labels (K = {cfg['num_labels']}) | {", ".join(f"{i} {n}" for i, n in enumerate(names))} |
| thing ids / stuff ids | {cfg['thing_ids']} / {cfg['stuff_ids']} |
| queries (Q) | {cfg['num_queries']} |
| class logits | K + 1 = {cfg['num_labels'] + 1} (last = "no object") |
| parameters | {tl['parameters']:,} |
| model.onnx | {onnx_mb:.2f} MB, opset {cfg['onnx']['opset']} (torch {tl['torch']} TorchScript exporter) |
| input | `pixel_values` float32 [batch, 3, height, width], height/width multiples of 32 |
| outputs | `class_queries_logits` [batch, {cfg['num_queries']}, {cfg['num_labels'] + 1}], `masks_queries_logits` [batch, {cfg['num_queries']}, height/4, width/4] |
| pre-processing | shortest edge {pp['size']['shortest_edge']} (longest edge <= {pp['size']['longest_edge']}), bilinear (half-pixel, no antialias, float), x/255, ImageNet mean/std, zero-pad bottom/right to multiples of {pp['size_divisor']} (exact rule: tools/model-zoo/README.md) |
| post-processing | detectron2 MaskFormer semantic_inference / panoptic_inference (object_mask_threshold 0.8, overlap_threshold 0.8) |

## Results

| held-out set | images | mIoU | PQ | SQ | RQ | PQ things | PQ stuff | pixel acc. |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
| full (held-out split 0..{full['num_images'] - 1}) | {full['num_images']} | {fmt(full['miou'], 4)} | {fmt(full['pq'], 4)} | {fmt(full['sq'], 4)} | {fmt(full['rq'], 4)} | {fmt(full['pq_things'], 4)} | {fmt(full['pq_stuff'], 4)} | {fmt(full['pixel_accuracy'], 4)} |
| committed (`heldout/`, 0..{com['num_images'] - 1}) | {com['num_images']} | {fmt(com['miou'], 4)} | {fmt(com['pq'], 4)} | {fmt(com['sq'], 4)} | {fmt(com['rq'], 4)} | {fmt(com['pq_things'], 4)} | {fmt(com['pq_stuff'], 4)} | {fmt(com['pixel_accuracy'], 4)} |

Per class (IoU / PQ):

| id | class | kind | IoU full | PQ full | IoU committed | PQ committed |
| --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(rows)}

mIoU: confusion matrix accumulated over all images of the set, mean IoU over
classes with a non-empty union. PQ: panopticapi definition (IoU > 0.5 matching),
mean over categories. Full definitions and per-image intersection/union arrays:
`eval.json`, `tools/model-zoo/README.md`.

## Architecture

* backbone: tiny ResNet (BatchNorm), channels {a['widths']} at strides 4/8/16/32
* pixel decoder: FPN ({a['fpn_dim']} channels, nearest x2 top-down) to stride 4, 3x3 conv to
  per-pixel embeddings (mask_dim {a['mask_dim']})
* transformer decoder: {a['dec_layers']} DETR post-norm layers, d_model {a['d_model']}, {a['nheads']} heads,
  FFN {a['dim_feedforward']}, {a['num_queries']} learnable queries, cross-attention to {memory_txt}
* heads: 3-layer MLP mask embedding, mask logits = einsum("bqc,bchw->bqhw") at stride 4 over the
  per-pixel embeddings{mask_pos_txt};
  {class_head}

## Training

* data (version {D.DATA_VERSION}): {ta['train_images']} procedurally generated images (train split), 2-3 stuff bands
  (sky gradient / noisy grass / striped water, wavy boundaries) and {D.THING_COUNT[0]}-{D.THING_COUNT[1]} things
  (circle / rectangle / triangle, size {D.THING_SCALE[0]}-{D.THING_SCALE[1]} x min(H, W), random colour
  contrasting with the background + noise; a later thing hides at most {D.MAX_HIDDEN:.0%} of an earlier one);
  sizes 96..200 px, never multiples of 32
* input: the pre-processing contract above, then a random {ta['crop']}x{ta['crop']} crop (zero / void padding when
  smaller) and a random horizontal flip{pad_txt}
* loss: Hungarian matching (cost: {w_ce} x -p(class) + 20 x focal + 1 x dice, at mask resolution);
  {w_ce} x cross-entropy over K+1 classes ("no object" weight 0.1) + 20 x sigmoid focal + 1 x dice on
  the matched masks (upsampled bilinearly to {loss_size}, against area-averaged target masks); deep
  supervision on all {a['dec_layers']} decoder layers{semantic_txt}
* optimiser: AdamW, weight decay {ta['weight_decay']}, linear warm-up then a constant lr or a cosine decay
  to 1% of the lr, gradient clipping {ta['clip']}, batch {ta['batch']}, {total_steps} steps in all:
  {stage_txt}{average_txt}
* hardware / time: CPU, {ta['threads']} thread(s), {total_min:.1f} min in all (on a machine shared with
  concurrent builds, so far slower than the ~0.3 s/step an idle 2-core machine gives);
  final training losses (mean of the last 50 steps, last layer): CE {last['ce']}, focal {last['mask']}, dice {last['dice']}

## Reproduce

```bash
bash tools/model-zoo/install.sh
/usr/bin/python3 tools/model-zoo/make_data.py  --out models/tiny-shapes
{train_commands}
/usr/bin/python3 tools/model-zoo/export.py     --out models/tiny-shapes{ckpt_arg}
/usr/bin/python3 tools/model-zoo/evaluate.py   --model-dir models/tiny-shapes{ckpt_arg}
/usr/bin/python3 tools/model-zoo/model_card.py --model-dir models/tiny-shapes
```

## Files

* `model.onnx`, `config.json`, `preprocessor_config.json` (HF MaskFormer style)
* `eval.json` (metrics, definitions, per-image intersection/union), `train_log.json`
* `heldout/`: {com['num_images']} held-out images with ground truth (`NNNN.png`, `NNNN_semantic.png`,
  `NNNN_panoptic.png`, `annotations.json`) and PyTorch reference predictions (`NNNN_pred_semantic.png`,
  `NNNN_pred_panoptic.png`, `predictions.json`; raw `pixel_values` / logits `*.f32` + `*.reference.json`
  for two images)
* `clip/`: 16-frame synthetic clip (160x120) with panoptic/semantic ground truth and `tracks.json`

## Licence

Generated data: every image and label was produced procedurally by
`tools/model-zoo/dataset.py`; the weights were trained from scratch on it (no third-party
data, no pretrained weights). Weights and data are distributed under the same terms as
this repository.

## Limitations

Only meaningful on images like the synthetic ones. Things smaller than about
{D.THING_SCALE[0]} x the image's short side, or hidden by more than {D.MAX_HIDDEN:.0%}, are outside the
training data.

{weak}
"""
    with open(os.path.join(d, "MODEL.md"), "w") as f:
        f.write(card)
    print(f"wrote {os.path.join(d, 'MODEL.md')}")


if __name__ == "__main__":
    main()
