r"""
# Export for devices: one ONNX file that maps a photograph's input to lesion probabilities

    python -m u2net_mini.export --checkpoint runs/mt/best.pt --onnx model.onnx [--fp16 | --int8]
                                [--ort model.ort]

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

## `--int8`

Weights and activations in 8-bit integers (`quantize.py`: post-training static
quantization with ONNX Runtime, calibrated on `--calibration-photos` training photographs
of `--calibration-data`, by default the real data set the project ships). The file is
0.39 MB for XS. Quantizing activations moves single pixels of y_hat by up to ~0.4 (a
logit near a step of its 256-level grid), so the check is on the **mean** |Δy_hat| over
the first two calibration photographs, against torch in fp32: at most 0.01. Measured on the
shipped XS-MT: 1e-4 to 9e-4 on training and test photographs, with AUPR moved by at most
0.003; a wrong scale or a broken graph moves the mean by 0.1 or more.

## `--ort`

Also writes the graph in ONNX Runtime's own format (`.ort`), which ONNX Runtime Mobile
loads on Android and iOS (`quantize.to_ort_bytes`), checked against the ONNX file on the
same inputs.
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

from data_prep.atomic import atomic_write

from .checkpoint import load_model
from .fold import fold_batchnorm
from .inference import METADATA_KEY, OnnxSession, payload_of
from .model import fused_probabilities

OPSET = 17
TOLERANCE = {False: 1e-4, True: 1e-2}  # largest |y_hat(ORT) - y_hat(torch)|, by fp16
INT8_MEAN_TOLERANCE = 1e-2  # mean |y_hat(int8) - y_hat(torch)| on calibration photographs
INT8_CHECK_BATCHES = 2  # how many calibration batches the int8 check runs
ORT_TOLERANCE = 1e-5  # largest |y_hat(.ort) - y_hat(.onnx)|: one runtime, one graph
CHECK_SIZES = ((64, 64), (72, 80))  # (H, W); 72 and 80 pool to odd sizes (9, 5, 3)


class FusedProbability(nn.Module):
    r"""$\hat y = \sigma(z_{\mathrm{fused}})$: the part of the U²-Net a device runs."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return fused_probabilities(self.model(x))  # (B, C, H, W)


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
    """Store every float32 initializer of `graph` as float16 followed by a Cast to float32."""
    from onnx import TensorProto, helper, numpy_helper

    casts, kept = [], []
    for tensor in graph.initializer:
        if tensor.data_type != TensorProto.FLOAT:
            kept.append(tensor)
            continue
        half = numpy_helper.to_array(tensor).astype(np.float16)
        kept.append(numpy_helper.from_array(half, tensor.name + "_fp16"))
        casts.append(helper.make_node("Cast", [tensor.name + "_fp16"], [tensor.name],
                                      to=TensorProto.FLOAT))
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
            return fused_probabilities(model.eval()(torch.from_numpy(x))).numpy()  # (B, C, H, W)
    finally:
        model.train(was_training)


def onnx_bytes(model, payload=None, fp16=False, opset=OPSET, calibration=None):
    """The file's bytes, unchecked: the graph (fp32, fp16 weights, or int8 from
    `calibration`, a `quantize.Calibration`) with the metadata."""
    import onnx

    if fp16 and calibration is not None:
        raise ValueError("fp16 weights and int8 exclude each other: choose one")
    fp32_bytes = to_onnx_bytes(model, opset)
    if calibration is not None:
        from .quantize import quantize_int8

        proto = quantize_int8(fp32_bytes, calibration.batches)
    else:
        proto = onnx.load_from_string(fp32_bytes)
    if fp16:
        weights_to_fp16(proto.graph)
    metadata = payload_of(payload or {"model_config": dict(model.config)})
    if "lesions" in metadata:
        metadata["lesions"] = list(metadata["lesions"])  # JSON has no tuples
    if calibration is not None:
        metadata["int8"] = calibration.record
    onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps(metadata)})
    proto.doc_string = "u2net_mini: y_hat = sigmoid(fused logits) of a U2-Net; x (B, 3, H, W)"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def export_onnx(model, path, payload=None, fp16=False, overwrite=False, opset=OPSET,
                calibration=None, ort_path=None):
    """Export `model` (a U2Net) to the ONNX file `path`, check it with ONNX Runtime, write it.

    `payload`: the checkpoint's (see `checkpoint.py`), stored as metadata without the
    weights; None stores only `model.config` (enough for tests, not for `predict`).
    `calibration`: a `quantize.Calibration` makes the file int8; `fp16` and int8 exclude
    each other. `ort_path`: also write the ONNX Runtime Mobile (.ort) file there.
    Returns a report dict: path, bytes, fp16, int8, opset, max_abs_diff, tolerance, sizes
    (and mean_abs_diff for int8; ort_path, ort_bytes, ort_max_abs_diff with `ort_path`).
    Raises FileExistsError when an output exists and `overwrite` is False, ValueError for a
    wrong suffix or when ONNX Runtime and torch disagree (nothing written).
    """
    path = Path(path)
    outputs = [(path, ".onnx")] + ([(Path(ort_path), ".ort")] if ort_path is not None else [])
    for output, suffix in outputs:
        if output.suffix.lower() != suffix:
            raise ValueError(f"the output must be a {suffix} file, got {output}")
        if output.exists() and not overwrite:
            raise FileExistsError(f"{output} exists; pass overwrite=True (--overwrite) to "
                                  f"replace it")
    data = onnx_bytes(model, payload, fp16, opset, calibration)
    session = OnnxSession(data)
    if calibration is not None:
        inputs = calibration.batches[:INT8_CHECK_BATCHES]
        report = _check_int8(session, model, inputs)
    else:
        rng = np.random.default_rng(0)
        inputs = [rng.standard_normal((2, model.in_ch, h, w), dtype=np.float32)  # (2, 3, H, W)
                  for h, w in CHECK_SIZES]
        report = _check_float(session, model, inputs, fp16)
    report.update(path=str(path), bytes=len(data), fp16=bool(fp16), int8=calibration is not None,
                  opset=opset, sizes=[list(x.shape[2:]) for x in inputs])
    if ort_path is not None:
        from .quantize import to_ort_bytes

        ort_data = to_ort_bytes(data)
        mobile = OnnxSession(ort_data)
        ort_difference = max(float(np.abs(mobile(x) - session(x)).max()) for x in inputs)
        if not ort_difference <= ORT_TOLERANCE:
            raise ValueError(f"the .ort and .onnx files differ by {ort_difference:.3g} > "
                             f"{ORT_TOLERANCE:g}; nothing written")
        with atomic_write(ort_path) as file:
            file.write(ort_data)
        report.update(ort_path=str(ort_path), ort_bytes=len(ort_data),
                      ort_max_abs_diff=ort_difference)
    with atomic_write(path) as file:
        file.write(data)
    return report


def _check_float(session, model, inputs, fp16):
    """{max_abs_diff, tolerance} of fp32 or fp16-weight ONNX Runtime against torch;
    ValueError beyond the tolerance."""
    difference = max(float(np.abs(session(x) - torch_probabilities(model, x)).max())
                     for x in inputs)
    tolerance = TOLERANCE[bool(fp16)]
    if not difference <= tolerance:
        raise ValueError(f"ONNX Runtime and torch differ by {difference:.3g} > {tolerance:g}; "
                         f"nothing written")
    return {"max_abs_diff": difference, "tolerance": tolerance}


def _check_int8(session, model, inputs):
    """{mean_abs_diff, max_abs_diff, tolerance} of int8 against torch in fp32; ValueError
    when the mean difference passes `INT8_MEAN_TOLERANCE` (see the module's docstring)."""
    differences = [np.abs(session(x) - torch_probabilities(model, x)) for x in inputs]
    mean = float(np.mean([d.mean() for d in differences]))  # of (B, C, H, W) each
    if not mean <= INT8_MEAN_TOLERANCE:
        raise ValueError(f"int8 and torch differ by {mean:.3g} on average > "
                         f"{INT8_MEAN_TOLERANCE:g} on the calibration photographs; "
                         f"nothing written")
    return {"mean_abs_diff": mean, "max_abs_diff": float(max(d.max() for d in differences)),
            "tolerance": INT8_MEAN_TOLERANCE}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m u2net_mini.export",
        description="Export a checkpoint to ONNX for devices, checked against torch.",
        epilog="Exit status: 0 written; 2 a bad command line, a missing or unreadable "
               "checkpoint or data folder, an existing output without --overwrite, or a "
               "check that failed (nothing written).")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint from u2net_mini.train")
    parser.add_argument("--onnx", required=True, help="the .onnx file to write")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true",
                           help="store the weights in float16 (half the size)")
    precision.add_argument("--int8", action="store_true",
                           help="int8 weights and activations, calibrated on training "
                                "photographs (under a third of the size)")
    parser.add_argument("--calibration-data", default=None,
                        help="data folder whose train split calibrates --int8 (default: the "
                             "IDRiD copy the project ships)")
    parser.add_argument("--calibration-photos", type=int, default=None,
                        help="how many training photographs calibrate --int8 (default 16)")
    parser.add_argument("--ort", default=None,
                        help="also write the ONNX Runtime Mobile (.ort) file here")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.int8 and (args.calibration_data is not None
                          or args.calibration_photos is not None):
        parser.error("--calibration-data and --calibration-photos go with --int8")
    try:
        model, payload = load_model(args.checkpoint)
        calibration = None
        if args.int8:
            from data_prep.shipped import idrid_root

            from .quantize import calibration_from_data

            # the shipped data is named as the repository names it, not by this machine's path
            if args.calibration_data is None:
                root, label = idrid_root(), "data_prep/shipped/idrid"
            else:
                root, label = Path(args.calibration_data), None
            calibration = calibration_from_data(payload, root, args.calibration_photos,
                                                label=label)
        report = export_onnx(model, args.onnx, payload, args.fp16, args.overwrite, args.opset,
                             calibration, args.ort)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _print_report(report, payload, calibration)
    return 0


def _print_report(report, payload, calibration):
    precision = "int8" if report["int8"] else "fp16 weights" if report["fp16"] else "fp32"
    sizes = ", ".join(f"{h}×{w}" for h, w in report["sizes"])
    print(f"wrote {report['path']}: {report['bytes'] / 1e6:.2f} MB ({precision}), "
          f"lesions {', '.join(payload['lesions'])}")
    if report["int8"]:
        record = calibration.record
        print(f"calibrated on {record['count']} photographs of the {record['split']} split "
              f"of {record['data']}")
        print(f"ONNX Runtime int8 vs torch fp32 on {len(report['sizes'])} of them: "
              f"mean |Δy_hat| = {report['mean_abs_diff']:.2g} "
              f"(tolerance {report['tolerance']:g}), max {report['max_abs_diff']:.2g}")
    else:
        print(f"ONNX Runtime vs torch: max |Δy_hat| = {report['max_abs_diff']:.2g} "
              f"(tolerance {report['tolerance']:g}) at {sizes}")
    if "ort_path" in report:
        print(f"wrote {report['ort_path']}: {report['ort_bytes'] / 1e6:.2f} MB (ONNX Runtime "
              f"Mobile format), max |Δy_hat| vs the .onnx file = "
              f"{report['ort_max_abs_diff']:.2g}")


if __name__ == "__main__":
    sys.exit(main())
