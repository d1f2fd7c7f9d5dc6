r"""
# Export for devices: one ONNX file that maps a photograph's input to lesion probabilities

    python -m u2net_mini.export --checkpoint runs/mt/best.pt --onnx model.onnx [--fp16]

Not part of the paper, which argues that U²-XS-Net suits mobile screening but publishes no
deployable model. What a device needs is the fused output through the sigmoid,
$\hat y = \sigma(z_{\mathrm{fused}})$, so that is the whole graph: input `x`
(B, 3, H, W) float32, output `y_hat` (B, C, H, W); B, H and W are dynamic (H, W >= 32).
Batch norm is folded into the convolutions first (`fold.fold_batchnorm`), so the file
holds 288 684 weights for XS with four outputs: 1.15 MB of fp32 weights, 1.33 MB in all
with the graph and metadata. The checkpoint's payload (lesions, input size, mean, std,
preprocessing, model config) travels in the file's metadata under the key `u2net_mini`,
as JSON, so that `python -m u2net_mini.predict --onnx model.onnx` needs neither the
checkpoint nor torch's model code (`inference.OnnxSession`).

Before anything is written, ONNX Runtime runs the file on random inputs of two sizes and
its output is compared with torch's (the unfolded model in eval mode): the largest
difference must be at most 1e-4 in fp32. The file is written atomically, and an existing
file is kept unless `overwrite=True` (`--overwrite`).

## Which exporter

Both of torch 2.13's exporters work offline. We use the TorchScript-based one
(`torch.onnx.export(..., dynamo=False)`, opset 17): for XS it takes ~3–5 s and writes one
1.3 MB file, against ~15–18 s and 1.8 MB for `dynamo=True` (which by default also splits
the weights into a side `.data` file). It is deprecated in torch 2.13 and warns so; its
warnings and the tracer's (about the input checks of `U2Net.forward`, which the trace
drops, and `OnnxSession` redoes) are silenced here.

## `--fp16`

Weights are stored in float16 (0.77 MB for XS: the weights halve, the graph does not),
each followed by a `Cast` to float32, so the arithmetic stays fp32: the file runs wherever
the fp32 one does, with nearly the same y_hat, and a runtime that computes in fp16 (a
phone's GPU) converts on its own.
Rounding every weight to 11 significant bits moved y_hat by 1.4e-5 for a randomly
initialised XS; a trained model's larger logits may move more, so the check allows 1e-2
instead of 1e-4.
"""

import argparse
import io
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .atomic import atomic_write
from .checkpoint import load_checkpoint, load_weights
from .fold import fold_batchnorm
from .inference import METADATA_KEY, OnnxSession, payload_of
from .model import model_from_config

OPSET = 17
TOLERANCE = {False: 1e-4, True: 1e-2}  # largest |y_hat(ORT) - y_hat(torch)|, by fp16
CHECK_SIZES = ((64, 64), (72, 80))  # (H, W); 72 and 80 pool to odd sizes (9, 5, 3)


class FusedProbability(nn.Module):
    r"""$\hat y = \sigma(z_{\mathrm{fused}})$: the part of the U²-Net a device runs."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return torch.sigmoid(self.model(x)[0])  # (B, C, H, W)


def to_onnx_bytes(model, opset=OPSET):
    """The serialized ONNX graph of `FusedProbability(fold_batchnorm(model))`, dynamic B, H, W."""
    wrapped = FusedProbability(fold_batchnorm(model)).eval()
    x = torch.zeros(1, model.in_ch, 64, 64)  # (1, 3, 64, 64), a tracing example only
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapped, (x,), buffer, dynamo=False, opset_version=opset,
            input_names=["x"], output_names=["y_hat"],
            dynamic_axes={"x": {0: "B", 2: "H", 3: "W"}, "y_hat": {0: "B", 2: "H", 3: "W"}},
        )
    return buffer.getvalue()


def weights_to_fp16(graph):
    """Store every float32 initializer of `graph` as float16 followed by a Cast back to float32."""
    from onnx import TensorProto, helper, numpy_helper

    casts, kept = [], []
    for tensor in graph.initializer:
        if tensor.data_type != TensorProto.FLOAT:
            kept.append(tensor)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), tensor.name + "_fp16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [tensor.name], to=TensorProto.FLOAT))
    graph.ClearField("initializer")
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)  # the casts first keeps the graph topologically sorted
    graph.ClearField("node")
    graph.node.extend(nodes)


def torch_probabilities(model, x):
    """Reference y_hat of the model as trained: eval mode, no folding, NCHW."""
    was_training = model.training
    try:
        with torch.no_grad():
            return torch.sigmoid(model.eval()(torch.from_numpy(x))[0]).numpy()  # (B, C, H, W)
    finally:
        model.train(was_training)


def export_onnx(model, path, payload=None, fp16=False, overwrite=False, opset=OPSET):
    """Export `model` (a U2Net) to the ONNX file `path`, check it with ONNX Runtime, write it.

    `payload`: the checkpoint's (see `checkpoint.py`), stored as metadata without the
    weights; None stores only `model.config` (enough for tests, not for `predict`).
    Returns a report dict: path, bytes, fp16, opset, max_abs_diff, tolerance, sizes.
    Raises FileExistsError when `path` exists and `overwrite` is False, ValueError for a
    path not ending in .onnx or when ONNX Runtime and torch disagree (nothing written).
    """
    import onnx

    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise ValueError(f"the output must be a .onnx file, got {path}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    proto = onnx.load_from_string(to_onnx_bytes(model, opset))
    if fp16:
        weights_to_fp16(proto.graph)
    metadata = payload_of(payload or {"model_config": dict(model.config)})
    if "lesions" in metadata:
        metadata["lesions"] = list(metadata["lesions"])  # JSON has no tuples
    onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps(metadata)})
    proto.doc_string = "u2net_mini: y_hat = sigmoid(fused logits) of a U2-Net; x (B, 3, H, W) float32"
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()

    session = OnnxSession(data)
    rng = np.random.default_rng(0)
    difference = 0.0
    for height, width in CHECK_SIZES:
        x = rng.standard_normal((2, model.in_ch, height, width)).astype(np.float32)  # (2, 3, H, W)
        difference = max(difference, float(np.abs(session(x) - torch_probabilities(model, x)).max()))
    tolerance = TOLERANCE[bool(fp16)]
    if not difference <= tolerance:
        raise ValueError(f"ONNX Runtime and torch differ by {difference:.3g} > {tolerance:g}; nothing written")
    with atomic_write(path) as file:
        file.write(data)
    return {"path": str(path), "bytes": len(data), "fp16": bool(fp16), "opset": opset,
            "max_abs_diff": difference, "tolerance": tolerance, "sizes": [list(s) for s in CHECK_SIZES]}


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m u2net_mini.export",
                                     description="Export a checkpoint to ONNX for devices, checked against torch.")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint from u2net_mini.train")
    parser.add_argument("--onnx", required=True, help="the .onnx file to write")
    parser.add_argument("--fp16", action="store_true", help="store the weights in float16 (half the size)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        payload = load_checkpoint(args.checkpoint)
        model = model_from_config(dict(payload["model_config"]))
        load_weights(model, payload["state_dict"])
        report = export_onnx(model, args.onnx, payload, args.fp16, args.overwrite, args.opset)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    precision = "fp16 weights" if report["fp16"] else "fp32"
    sizes = ", ".join(f"{h}×{w}" for h, w in report["sizes"])
    print(f"wrote {report['path']}: {report['bytes'] / 1e6:.2f} MB ({precision}), "
          f"lesions {', '.join(payload['lesions'])}")
    print(f"ONNX Runtime vs torch: max |Δy_hat| = {report['max_abs_diff']:.2g} "
          f"(tolerance {report['tolerance']:g}) at {sizes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
