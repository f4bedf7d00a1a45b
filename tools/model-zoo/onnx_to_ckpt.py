"""Turn an exported model.onnx of this zoo back into a train.py checkpoint, to continue training it.

    /usr/bin/python3 tools/model-zoo/onnx_to_ckpt.py --onnx models/tiny-shapes/model.onnx \
        --out /tmp/tiny-shapes-work/from_onnx.pt [--check models/tiny-shapes/heldout/0000]

The export folds each BatchNorm into the convolution before it and stores Linear weights transposed
(MatMul); the architecture comes from config.json next to the ONNX file. Unfolding: the Conv and MatMul
nodes are matched, in graph order, to the Conv2d (followed by a BatchNorm) and Linear modules in the
order the model calls them; the other initialisers keep their parameter names. Each BatchNorm gets
running statistics measured on training crops and weight / bias chosen so that it is exactly the
folded function in eval mode (weight = sqrt(var + eps), bias = mean + folded bias) and about the same
in training mode. The training-only per-pixel head (`semantic_aux`) is not in the ONNX file and starts
fresh. --check compares the model's outputs with the reference logits of a committed held-out image.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset as D  # noqa: E402
from model import MaskFormer, ModelConfig  # noqa: E402


def call_order(model: nn.Module, kinds, x) -> list:
    seen = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: seen.append(n))
             for n, m in model.named_modules() if isinstance(m, kinds)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", default="models/tiny-shapes/model.onnx")
    ap.add_argument("--out", default="/tmp/tiny-shapes-work/from_onnx.pt")
    ap.add_argument("--calibration", default="/tmp/tiny-shapes-work/train_v2_4000.pkl",
                    help="train.py's image cache; BatchNorm statistics come from 64 of its crops")
    ap.add_argument("--check", default=None, help="held-out stem with reference .f32 files, e.g. models/tiny-shapes/heldout/0000")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with open(os.path.join(os.path.dirname(args.onnx), "config.json")) as f:
        arch = dict(json.load(f)["architecture"])
    arch["widths"] = tuple(arch["widths"])
    if "memory_strides" in arch:
        arch["memory_strides"] = tuple(arch["memory_strides"])
    cfg = ModelConfig(**arch)
    model = MaskFormer(cfg).eval()
    g = onnx.load(args.onnx).graph
    inits = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in g.initializer}
    state = model.state_dict()
    new = {}
    for name, t in inits.items():
        if name.startswith("model.") and name[6:] in state:
            new[name[6:]] = t
    # Conv nodes whose weight is a folded initialiser, in graph order <-> Conv2d modules followed by BatchNorm
    modules = dict(model.named_modules())
    conv_bn = []
    names = list(modules)
    for i, n in enumerate(names):
        if isinstance(modules[n], nn.Conv2d) and i + 1 < len(names) and isinstance(modules[names[i + 1]], nn.BatchNorm2d):
            conv_bn.append((n, names[i + 1]))
    bn_of = dict(conv_bn)
    x = torch.randn(1, 3, 128, 160)
    conv_calls = [n for n in call_order(model, nn.Conv2d, x) if n in bn_of]
    folded = [(nd.input[1], nd.input[2]) for nd in g.node if nd.op_type == "Conv" and not nd.input[1].startswith("model.")]
    assert len(folded) == len(conv_calls), (len(folded), len(conv_calls))
    folded_bias = {}
    for (w, b), n in zip(folded, conv_calls):
        assert inits[w].shape == state[n + ".weight"].shape, (n, inits[w].shape)
        new[n + ".weight"] = inits[w]
        folded_bias[bn_of[n]] = inits[b]
    lin_calls = call_order(model, nn.Linear, x)
    matmuls = [nd.input[1] for nd in g.node if nd.op_type == "MatMul" and nd.input[1] in inits]
    assert len(matmuls) == len(lin_calls), (len(matmuls), len(lin_calls))
    for w, n in zip(matmuls, lin_calls):
        assert inits[w].t().shape == state[n + ".weight"].shape, (n, inits[w].shape)
        new[n + ".weight"] = inits[w].t().contiguous()
    expands = [i for n, i in inits.items() if n.startswith("onnx::Expand")]
    assert len(expands) == 1 and expands[0].shape[-2:] == state["query_embed.weight"].shape
    new["query_embed.weight"] = expands[0].reshape(state["query_embed.weight"].shape)
    # BatchNorm: identity in eval mode first (conv output + folded bias)
    eps = {bn: modules[bn].eps for bn in folded_bias}
    for bn, b in folded_bias.items():
        new[bn + ".running_mean"] = torch.zeros_like(b)
        new[bn + ".running_var"] = torch.full_like(b, 1.0 - eps[bn])
        new[bn + ".weight"] = torch.ones_like(b)
        new[bn + ".bias"] = b
        new[bn + ".num_batches_tracked"] = torch.tensor(0)
    missing = [k for k in state if k not in new]
    assert all(k.startswith("semantic_aux.") for k in missing), missing
    model.load_state_dict(new, strict=False)
    # statistics of each BatchNorm's input on training crops
    with open(args.calibration, "rb") as f:
        data = pickle.load(f)
    import train as T
    rng = np.random.default_rng(0)
    xb = torch.stack([T.make_example(data[i], 128, rng)[0] for i in range(64)])
    stats = {}
    hooks = [modules[bn].register_forward_hook(
        lambda mod, i, o, bn=bn: stats.__setitem__(bn, (i[0].mean((0, 2, 3)), i[0].var((0, 2, 3), unbiased=False))))
        for bn in folded_bias]
    with torch.no_grad():
        model(xb)
    for h in hooks:
        h.remove()
    for bn, b in folded_bias.items():
        m, v = stats[bn]
        new[bn + ".running_mean"] = m
        new[bn + ".running_var"] = v
        new[bn + ".weight"] = torch.sqrt(v + eps[bn])
        new[bn + ".bias"] = m + b
    model.load_state_dict(new, strict=False)
    model.eval()
    if args.check:
        ref = json.load(open(args.check + ".reference.json"))
        pv = torch.from_numpy(np.fromfile(args.check + ".pixel_values.f32", "<f4").reshape(ref["pixel_values_shape"]))
        with torch.no_grad():
            c, mk = model(pv)
        for name, got in (("class_logits", c), ("mask_logits", mk)):
            want = np.fromfile(args.check + f".{name}.f32", "<f4").reshape(got.shape)
            print(f"{name}: max |difference| from the reference {np.abs(got.numpy() - want).max():.2e}")
    torch.save({"model": model.state_dict(), "config": cfg.to_dict(),
                "args": {"weight_semantic": 0.0, "from_onnx": args.onnx}}, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
