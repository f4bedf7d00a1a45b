"""Average the weights of several train.py checkpoints (a uniform "checkpoint soup" / SWA of one run).

    /usr/bin/python3 tools/model-zoo/average.py --out /tmp/tiny-shapes-work/model.pt CKPT [CKPT ...] \
        [--log models/tiny-shapes/train_log.json]

Every floating-point tensor (weights and BatchNorm running statistics) is the mean over the checkpoints;
integer ones (num_batches_tracked) come from the last. The checkpoints must share one config. With --log,
the train_log.json of the run gets an "averaged" entry (checkpoints and this command) for the model card.
"""
from __future__ import annotations

import argparse
import json
import os

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--log", default=None)
    ap.add_argument("checkpoints", nargs="+")
    args = ap.parse_args()
    cks = [torch.load(p, map_location="cpu") for p in args.checkpoints]
    if any(c["config"] != cks[0]["config"] for c in cks):
        raise SystemExit("checkpoints have different configs")
    avg = {}
    for k, v in cks[-1]["model"].items():
        avg[k] = (sum(c["model"][k] for c in cks) / len(cks)) if v.dtype.is_floating_point else v
    out = dict(cks[-1], model=avg, averaged=list(args.checkpoints))
    torch.save(out, args.out)
    if args.log:
        with open(args.log) as f:
            log = json.load(f)
        log["averaged"] = {"checkpoints": list(args.checkpoints), "out": args.out,
                           "command": "/usr/bin/python3 tools/model-zoo/average.py --out " + args.out + " "
                                      + " ".join(args.checkpoints)}
        with open(args.log, "w") as f:
            json.dump(log, f, indent=1)
    print(f"wrote {args.out} (mean of {len(cks)} checkpoints)")


if __name__ == "__main__":
    main()
