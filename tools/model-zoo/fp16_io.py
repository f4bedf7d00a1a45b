"""Writes a float16-input/output variant of an ONNX MaskFormer, like transformers.js' model_fp16.onnx.

The graph keeps its float32 weights; a Cast at the input and one per output make its interface
float16, which is what the service has to convert at the session's edge. Usage:
    /usr/bin/python3 tools/model-zoo/fp16_io.py SOURCE.onnx TARGET.onnx
"""
import sys

import onnx
from onnx import TensorProto, helper


def main(source: str, target: str) -> None:
    model = onnx.load(source)
    graph = model.graph
    for value in graph.input:
        inner = value.name + "_float32"
        for node in graph.node:
            node.input[:] = [inner if name == value.name else name for name in node.input]
        graph.node.insert(0, helper.make_node("Cast", [value.name], [inner], to=TensorProto.FLOAT))
        value.type.tensor_type.elem_type = TensorProto.FLOAT16
    for value in graph.output:
        inner = value.name + "_float32"
        for node in graph.node:
            node.output[:] = [inner if name == value.name else name for name in node.output]
            # the graph may also read its own output (tiny-shapes pools its class features under the masks)
            node.input[:] = [inner if name == value.name else name for name in node.input]
        graph.node.append(helper.make_node("Cast", [inner], [value.name], to=TensorProto.FLOAT16))
        value.type.tensor_type.elem_type = TensorProto.FLOAT16
    onnx.checker.check_model(model)
    onnx.save(model, target)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
