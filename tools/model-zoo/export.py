"""Export the trained checkpoint to ONNX and write config.json / preprocessor_config.json.

    /usr/bin/python3 tools/model-zoo/export.py --out models/tiny-shapes

ONNX: input  pixel_values          [batch, 3, height, width] float32 (height, width multiples of 32)
      output class_queries_logits  [batch, num_queries, num_labels + 1]
      output masks_queries_logits  [batch, num_queries, height / 4, width / 4]
Checks: no TracerWarning during tracing, onnx.checker (full), and the graph
exported with two different dummy input sizes must be identical (so nothing
size dependent was baked in as a constant).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import warnings

import onnx
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset as D  # noqa: E402
from inference import load_model  # noqa: E402
from preprocess import DEFAULT_CONFIG  # noqa: E402

INPUT = "pixel_values"
OUTPUTS = ["class_queries_logits", "masks_queries_logits"]


class OnnxWrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        class_logits, mask_logits = self.model(pixel_values)
        return class_logits, mask_logits


def export_bytes(model: nn.Module, shape, opset: int) -> bytes:
    f = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.onnx.export(
            OnnxWrapper(model), torch.randn(*shape), f, opset_version=opset,
            input_names=[INPUT], output_names=OUTPUTS, do_constant_folding=True,
            dynamic_axes={INPUT: {0: "batch", 2: "height", 3: "width"},
                          OUTPUTS[0]: {0: "batch"},
                          OUTPUTS[1]: {0: "batch", 2: "mask_height", 3: "mask_width"}})
    bad = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    for w in caught:
        print(f"  warning during export: {w.category.__name__} at {os.path.basename(w.filename)}:{w.lineno}: {str(w.message)[:160]}")
    if bad:
        raise SystemExit("TracerWarning(s) during export: the graph may have size-dependent constants")
    return f.getvalue()


def graph_signature(m: onnx.ModelProto):
    g = m.graph
    return [(n.op_type, list(n.input), list(n.output), [onnx.helper.printable_attribute(a) for a in n.attribute])
            for n in g.node], sorted((i.name, bytes(i.raw_data) if i.raw_data else str(onnx.numpy_helper.to_array(i).tolist()))
                                     for i in g.initializer)


def write_configs(out: str, ckpt_cfg: dict, opset: int):
    id2label = {str(i): n for i, n in enumerate(D.CLASS_NAMES)}
    config = {
        "model_type": "maskformer",
        "architectures": ["MaskFormerForInstanceSegmentation"],
        "name": "tiny-shapes",
        "version": "1.0.0",
        "id2label": id2label,
        "label2id": {n: i for i, n in enumerate(D.CLASS_NAMES)},
        "num_labels": len(D.CLASS_NAMES),
        "num_queries": ckpt_cfg["num_queries"],
        "thing_ids": D.THING_IDS,
        "stuff_ids": D.STUFF_IDS,
        "no_object_label": len(D.CLASS_NAMES),
        "mask_feature_stride": 4,
        "size_divisibility": 32,
        "metadata": {"class_names": D.CLASS_NAMES, "thing_ids": D.THING_IDS,
                     "colors": [list(c) for c in D.CLASS_COLORS]},
        "postprocessing": {"object_mask_threshold": 0.8, "overlap_threshold": 0.8},
        "onnx": {"file": "model.onnx", "opset": opset, "input": INPUT,
                 "input_shape": ["batch", 3, "height", "width"],
                 "outputs": {OUTPUTS[0]: ["batch", ckpt_cfg["num_queries"], len(D.CLASS_NAMES) + 1],
                             OUTPUTS[1]: ["batch", ckpt_cfg["num_queries"], "height/4", "width/4"]}},
        "architecture": ckpt_cfg,
        "license": "generated data; weights trained from scratch on it; same terms as this repository",
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    pp = dict(DEFAULT_CONFIG)
    pp["rescale_factor"] = 0.00392156862745098
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(pp, f, indent=2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/tiny-shapes")
    ap.add_argument("--ckpt", default="/tmp/tiny-shapes-work/model.pt")
    ap.add_argument("--opset", type=int, default=17)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.ckpt)
    ck = torch.load(args.ckpt, map_location="cpu")

    data_a = export_bytes(model, (1, 3, 128, 192), args.opset)
    data_b = export_bytes(model, (2, 3, 160, 256), args.opset)
    ma, mb = onnx.load_from_string(data_a), onnx.load_from_string(data_b)
    if graph_signature(ma) != graph_signature(mb):
        raise SystemExit("graphs exported at two input sizes differ: something size dependent was baked in")
    print("graphs exported at 1x3x128x192 and 2x3x160x256 are identical")
    ma.producer_name = "tiny-shapes model zoo (torch.onnx.export)"
    onnx.checker.check_model(ma, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(ma)
    for o in inferred.graph.output:
        dims = [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]
        print(f"output {o.name}: {dims}")
    ops = sorted({n.op_type for n in ma.graph.node})
    print(f"opset {args.opset}, {len(ma.graph.node)} nodes, ops: {', '.join(ops)}")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "model.onnx")
    onnx.save(ma, path)
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB)")
    write_configs(args.out, ck["config"], args.opset)


if __name__ == "__main__":
    main()
