"""Train the tiny MaskFormer on the synthetic shapes data set (CPU, deterministic).

    /usr/bin/python3 tools/model-zoo/train.py --out models/tiny-shapes

Writes the checkpoint to <work-dir>/model.pt (not committed) and a small
<out>/train_log.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import sys
import time
from multiprocessing import Pool

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset as D  # noqa: E402
from losses import SetCriterion  # noqa: E402
from model import MaskFormer, ModelConfig, num_parameters  # noqa: E402
from preprocess import DEFAULT_CONFIG, padded_size, preprocess  # noqa: E402


def _gen(i):
    s = D.make_sample("train", i)
    return s.image, s.panoptic.astype(np.uint8), {g["id"]: g["category_id"] for g in s.segments}


def build_cache(n: int, path: str, workers: int):
    if os.path.exists(path):
        with open(path, "rb") as f:
            data = pickle.load(f)
        if len(data) == n:
            return data
    t = time.time()
    with Pool(workers) as p:
        data = p.map(_gen, range(n), chunksize=32)
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=4)
    print(f"generated {n} training images in {time.time() - t:.1f}s", flush=True)
    return data


def make_example(item, crop: int, rng: np.random.Generator, pad_divisor: int = 0):
    """Pre-process exactly like inference, then a random crop (padding with 0 / void) and flip.

    With pad_divisor, the image is first zero-padded bottom/right to multiples of it, as inference pads
    to the processor's size_divisor, so crops that reach the right or bottom edge show the model the
    padding it meets at inference (void: no loss there)."""
    image, pan, seg2cat = item
    x, (rh, rw) = preprocess(image, DEFAULT_CONFIG)
    x = x[0, :, :rh, :rw]
    p = F.interpolate(torch.from_numpy(pan.astype(np.float32))[None, None], size=(rh, rw), mode="nearest")[0, 0]
    p = p.to(torch.int64)
    ph, pw = (padded_size(rh, rw, pad_divisor) if pad_divisor else (rh, rw))
    ph, pw = max(ph, crop), max(pw, crop)
    if (ph, pw) != (rh, rw):
        x = F.pad(x, (0, pw - rw, 0, ph - rh), value=0.0)
        p = F.pad(p, (0, pw - rw, 0, ph - rh), value=0)   # 0 = void
    y0 = int(rng.integers(0, ph - crop + 1))
    x0 = int(rng.integers(0, pw - crop + 1))
    x = x[:, y0:y0 + crop, x0:x0 + crop]
    p = p[y0:y0 + crop, x0:x0 + crop]
    if rng.random() < 0.5:
        x = x.flip(-1)
        p = p.flip(-1)
    labels, masks = [], []
    semantic = torch.full_like(p, D.IGNORE_INDEX)
    for sid in torch.unique(p).tolist():
        if sid == 0:
            continue
        m = p == sid
        semantic[m] = seg2cat[sid]
        if int(m.sum()) < 8:
            continue
        labels.append(seg2cat[sid])
        masks.append(m)
    tgt = {"labels": torch.tensor(labels, dtype=torch.int64), "semantic": semantic,
           "masks": torch.stack(masks) if masks else torch.zeros(0, crop, crop, dtype=torch.bool)}
    return x, tgt


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/tiny-shapes")
    ap.add_argument("--work-dir", default="/tmp/tiny-shapes-work")
    ap.add_argument("--train-images", type=int, default=4000)
    ap.add_argument("--steps", type=int, default=3600)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--pad-divisor", type=int, default=0,
                    help="zero-pad each training image bottom/right to multiples of this before cropping, as "
                         "inference pads to size_divisor (32), so the model sees that padding; 0 = off")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weight-ce", type=float, default=2.0, help="class loss (and matching cost) weight")
    ap.add_argument("--class-pool-dim", type=int, default=64, help="mask-pooled class features; 0 = off")
    ap.add_argument("--memory-strides", default="32",
                    help="comma-separated backbone strides the queries cross-attend to (32 first), e.g. 32,16")
    ap.add_argument("--masked-attention", action="store_true",
                    help="Mask2Former's masked cross-attention from the second decoder layer on")
    ap.add_argument("--mask-locality", action="store_true",
                    help="each query's mask logits fall off with the squared distance to a centre it predicts")
    ap.add_argument("--new-lr-scale", type=float, default=1.0,
                    help="learning-rate factor for parameters the --init checkpoint does not have")
    ap.add_argument("--mask-position", action="store_true",
                    help="positional encodings added to the mask features (new parameters start at zero with --init)")
    ap.add_argument("--weight-semantic", type=float, default=1.0,
                    help="per-pixel cross-entropy on the class features (training-only head); 0 = off")
    ap.add_argument("--ckpt-every", type=int, default=0,
                    help="also save <work-dir>/ckpt_<step>.pt and train_log_<step>.json every N steps")
    ap.add_argument("--schedule", choices=["cosine", "constant"], default="cosine",
                    help="after the warm-up: cosine decay to 1%% of --lr, or constant --lr (then the checkpoint "
                         "at step N equals a run with --steps N, so a long run can be cut short)")
    ap.add_argument("--loss-size", type=int, default=64,
                    help="mask losses on target masks area-averaged to this size (crop = full resolution)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init", default=None, help="checkpoint to continue from (stage 2)")
    ap.add_argument("--ckpt-out", default=None, help="default: <work-dir>/model.pt")
    return ap


def command_line(args: dict) -> str:
    """The train.py command that reproduces a run with these arguments (only non-default ones)."""
    defaults = vars(build_parser().parse_args([]))
    parts = [f"/usr/bin/python3 tools/model-zoo/train.py --out {args['out']}"]
    for k, v in args.items():
        if k in defaults and v != defaults[k] and k not in ("ckpt_every", "out"):
            # store_true switches take no value
            parts.append(f"--{k.replace('_', '-')}" if v is True else f"--{k.replace('_', '-')} {v}")
    return " ".join(parts)


def main():
    args = build_parser().parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.work_dir, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)

    data = build_cache(args.train_images, os.path.join(args.work_dir, f"train_v{D.DATA_VERSION}_{args.train_images}.pkl"),
                       args.threads)
    cfg = ModelConfig(num_classes=D.NUM_CLASSES, class_pool_dim=args.class_pool_dim,
                      memory_strides=tuple(int(v) for v in args.memory_strides.split(",")),
                      masked_attention=args.masked_attention, mask_position=args.mask_position,
                      mask_locality=args.mask_locality)
    model = MaskFormer(cfg)
    previous = None
    new_names = []   # parameters the --init checkpoint does not have (trained at --new-lr-scale x the rate)
    if args.init:
        init = torch.load(args.init, map_location="cpu")
        state = init["model"]
        if not init.get("args", {}).get("weight_semantic"):
            # an untrained training-only head starts fresh, as if the checkpoint never had it
            state = {k: v for k, v in state.items() if not k.startswith("semantic_aux.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        # a model that attends to more feature levels than the checkpoint (--memory-strides 32,16 from a
        # 32-only model): the new projections and level embeddings start at zero, so the added memory
        # carries nothing at first and the checkpoint's behaviour is the starting point
        new_levels = [k for k in missing if k.startswith(("extra_proj.", "level_embed.", "mask_position."))]
        new_params = [k for k in missing if k.startswith("mask_locality.")]   # keep their own initialisation
        with torch.no_grad():
            for k in new_levels:
                model.get_parameter(k).zero_()
        new_names = new_levels + new_params
        missing = [k for k in missing if k not in new_levels and k not in new_params]
        if unexpected or any(not k.startswith("semantic_aux.") for k in missing):
            raise SystemExit(f"--init checkpoint does not fit: missing {missing}, unexpected {unexpected}")
        if new_levels:
            print(f"--init: new memory levels, zero-initialised: {new_levels}", flush=True)
        if new_params:
            print(f"--init: new parameters: {new_params}", flush=True)
        if missing:
            print(f"--init: new training-only parameters {missing}", flush=True)
        prev_log = os.path.join(args.out, "train_log.json")
        if os.path.exists(prev_log):
            with open(prev_log) as f:
                previous = json.load(f)
    print(f"parameters: {num_parameters(model)}", flush=True)
    criterion = SetCriterion(D.NUM_CLASSES, eos_coef=0.1, weight_ce=args.weight_ce, weight_mask=20.0, weight_dice=1.0,
                             loss_size=args.loss_size)
    fresh = set(new_names)
    groups = []
    for is_new in (False, True):
        named = [(n, p) for n, p in model.named_parameters() if (n in fresh) == is_new]
        scale = args.new_lr_scale if is_new else 1.0
        groups += [{"params": [p for n, p in named if p.ndim > 1 and "query_embed" not in n],
                    "weight_decay": args.weight_decay, "lr_scale": scale},
                   {"params": [p for n, p in named if not (p.ndim > 1 and "query_embed" not in n)],
                    "weight_decay": 0.0, "lr_scale": scale}]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=args.lr)

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        if args.schedule == "constant":
            return args.lr
        t = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))

    log = []
    # its own generator, so the image order (and the crops drawn from `rng`) do not depend on --steps
    order_rng = np.random.default_rng([args.seed, 1])
    order = np.concatenate([order_rng.permutation(len(data)) for _ in range(
        math.ceil(args.steps * args.batch / len(data)) + 1)])
    t0 = time.time()
    model.train()
    run = {}
    for step in range(args.steps):
        idx = order[step * args.batch:(step + 1) * args.batch]
        xs, tgts = zip(*(make_example(data[i], args.crop, rng, args.pad_divisor) for i in idx))
        x = torch.stack(xs)
        for g in opt.param_groups:
            g["lr"] = lr_at(step) * g["lr_scale"]
        outs, sem_logits = model(x, aux=True)
        total, last = criterion(outs, list(tgts))
        if args.weight_semantic and sem_logits is not None:
            sem_logits = F.interpolate(sem_logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
            last["semantic"] = F.cross_entropy(sem_logits, torch.stack([t["semantic"] for t in tgts]),
                                               ignore_index=D.IGNORE_INDEX)
            total = total + args.weight_semantic * last["semantic"]
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        for k, v in [("total", total)] + list(last.items()):
            run[k] = run.get(k, 0.0) + float(v)
        if (step + 1) % 50 == 0:
            entry = {"step": step + 1, "lr": lr_at(step), "time_s": round(time.time() - t0, 1)}
            entry.update({k: round(v / 50, 4) for k, v in run.items()})
            log.append(entry)
            run = {}
            print(json.dumps(entry), flush=True)
        if args.ckpt_every and (step + 1) % args.ckpt_every == 0 and step + 1 < args.steps:
            torch.save({"model": model.state_dict(), "config": cfg.to_dict(), "args": vars(args), "step": step + 1},
                       os.path.join(args.work_dir, f"ckpt_{step + 1}.pt"))
            # what a run with --steps <step + 1> would have logged (exact only for --schedule constant)
            with open(os.path.join(args.work_dir, f"train_log_{step + 1}.json"), "w") as f:
                json.dump({"args": dict(vars(args), steps=step + 1, ckpt_every=0), "parameters": num_parameters(model),
                           "train_time_s": round(time.time() - t0, 1), "torch": torch.__version__, "log": log,
                           "previous_stage": previous}, f, indent=1)
    train_time = time.time() - t0
    torch.save({"model": model.state_dict(), "config": cfg.to_dict(), "args": vars(args)},
               args.ckpt_out or os.path.join(args.work_dir, "model.pt"))
    with open(os.path.join(args.out, "train_log.json"), "w") as f:
        json.dump({"args": vars(args), "parameters": num_parameters(model), "train_time_s": round(train_time, 1),
                   "torch": torch.__version__, "log": log, "previous_stage": previous}, f, indent=1)
    print(f"done in {train_time:.0f}s", flush=True)


if __name__ == "__main__":
    main()
