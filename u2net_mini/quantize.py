r"""
# int8 for devices: post-training static quantization of the exported graph

    python -m u2net_mini.export --checkpoint C --onnx xs_int8.onnx --int8 [--calibration-photos 16]

Not part of the paper, which argues that U²-XS-Net suits phones but ships no model. A phone
app runs 8-bit integers: weights and activations as int8/uint8, a quarter of fp32's bytes,
on the integer dot-product units of its CPU (ARM's dot-product instructions; VNNI on this
machine's x86). Each tensor $t$ is stored as integers $q$ with a scale $s$ and a zero
point $z$,

$$ t \approx s\,(q - z), \qquad q = \mathrm{clip}(\mathrm{round}(t / s) + z), $$

- **weights**: int8, symmetric ($z = 0$), one scale per output channel
  ($s_o = \max |W_o| / 127$);
- **activations**: uint8, asymmetric, one scale per tensor, from the smallest and largest
  value each tensor takes on **calibration photographs**: training photographs of the
  data set after the checkpoint's own preprocessing (`calibration_batches`).

## Which tool

ONNX Runtime's quantizer (`onnxruntime.quantization.quantize_static`, QDQ format) works on
the file `export` already writes and checks, and its output runs in the same runtime on
a phone (ONNX Runtime Mobile, the `.ort` format of `to_ort_bytes`): one runtime, already
pinned in requirements.txt, from export to device. PyTorch's PT2E flow would quantize the
model in torch and needs a second runtime (ExecuTorch and its XNNPACK backend) to run it
on a phone: a package with some twenty further dependencies whose compiled parts are tied
to one torch release.

## What stays float, and why

Measured on the shipped XS-MT (16 calibration photographs, real test split, 512 px
square; `docs/performance.md` has the table):

| in 8 bits | largest AUPR shift |
|---|---|
| everything, y_hat included | 0.0495 (SE), MA 0.041 |
| everything but the final sigmoid | 0.0071 (EX), MA 0.0058 |
| everything but the fusion convolution and the sigmoid (**this**) | 0.0027 (EX) |

AUPR ranks pixels by $\hat y$. Stored as uint8, $\hat y$ takes 256 values, and the rare
lesion pixels near 1 collapse onto a handful of ties; quantized fused logits
$z_{\mathrm{fused}}$ cost less, but still most for MA, the rarest lesion. So the fusion
convolution (1 × 1, 24 → C: 100 weights for C = 4) and the sigmoid compute in float
(`KEPT_FLOAT_WEIGHTS`, `KEPT_FLOAT_OPS`): $z_{\mathrm{fused}}$ and $\hat y$ are never
rounded to 8 bits. The six side outputs may be: keeping their convolutions in float too
changed no AUPR by more than 0.0003. The fusion's weights are stored as int8 all the same
(dequantized once, when the runtime loads the file), so the file holds every weight in 8 bits.

Activations are unsigned (uint8 × int8): on this x86 CPU, signed activations (int8 × int8,
the usual choice on ARM) ran the graph at half the speed.

## Calibration

MinMax (the range each activation takes) over 16 photographs: percentile calibration
(99.999 %, 8 photographs) gave no better AUPR at five times the calibration time.
Activation ranges are pooled over the calibration photographs; more photographs widen
them. The photographs, their count, the split and the input size are recorded in the
file's metadata (`int8` in the `u2net_mini` JSON).
"""

import tempfile
from pathlib import Path

import numpy as np

CALIBRATION_PHOTOS = 16
# Initializer names of the weights whose convolution computes in float (see above), and
# the op that must not be quantized: the fusion of the side outputs, the final sigmoid.
KEPT_FLOAT_WEIGHTS = ("model.fuse.",)
KEPT_FLOAT_OPS = ("Sigmoid",)
X86_ONLY_OPTIMIZERS = ("NchwcTransformer",)  # rewrites for x86's blocked layout: not for a phone


def calibration_batches(payload, root, count=CALIBRATION_PHOTOS, split="train", cache_dir=None):
    """`(names, batches)`: `count` photographs of `split`, evenly spaced, preprocessed.

    Each batch is one photograph, (1, 3, s, s) float32, exactly as the network sees it in
    evaluation (disc cropped, square, CLAHE, normalized with the checkpoint's mean and std).
    """
    from data_prep.dataset import LesionDataset

    from .checkpoint import preprocessing_arguments

    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(
            f"the number of calibration photographs must be a positive int, got {count!r}"
        )
    data = LesionDataset(root, split, lesions=payload["lesions"], cache_dir=cache_dir,
                         **preprocessing_arguments(payload))
    if count > len(data):
        raise ValueError(
            f"{count} calibration photographs asked for, "
            f"the {split} split of {root} has {len(data)}"
        )
    indices = np.unique(np.linspace(0, len(data) - 1, count).round().astype(int))  # (count,)
    names = [data.names[i] for i in indices]
    batches = [data[int(i)][0][None].numpy() for i in indices]  # count × (1, 3, s, s)
    return names, batches


class Calibration:
    """What int8 quantization calibrates on: `batches` (each (B, 3, H, W) float32) and a
    record.

    `record` (a JSON-able dict: which photographs, split, count, input size) is stored in
    the file's metadata under `int8`.
    """

    def __init__(self, batches, record=None):
        self.batches = list(batches)
        if not self.batches:
            raise ValueError("calibration needs at least one batch, got none")
        self.record = dict(record or {})


def calibration_from_data(payload, root, count=None, split="train", cache_dir=None,
                          label=None):
    """A `Calibration` from `count` photographs (default `CALIBRATION_PHOTOS`) of `split`
    of the data folder `root`. `label`: how the metadata names the folder (default: `root`).
    """
    count = CALIBRATION_PHOTOS if count is None else count
    names, batches = calibration_batches(payload, root, count, split, cache_dir)
    return Calibration(batches, {"data": label or str(root), "split": split,
                                 "photographs": names, "count": len(names),
                                 "input_size": payload["input_size"], "method": "MinMax"})


def kept_float_nodes(graph):
    """Names of the nodes of `graph` that stay float: `KEPT_FLOAT_OPS`, and convolutions whose
    weight is named by `KEPT_FLOAT_WEIGHTS`."""
    return [
        node.name
        for node in graph.node
        if node.op_type in KEPT_FLOAT_OPS
        or (node.op_type == "Conv" and node.input[1].startswith(KEPT_FLOAT_WEIGHTS))
    ]


class _Batches:
    """The calibration reader ONNX Runtime's quantizer asks for: one input dict per call."""

    def __init__(self, input_name, batches):
        self.input_name, self.batches, self.next = input_name, list(batches), 0

    def get_next(self):
        if self.next == len(self.batches):
            return None
        self.next += 1
        return {self.input_name: self.batches[self.next - 1]}


def quantize_int8(fp32_bytes, batches):
    """The int8 (QDQ) graph of the fp32 ONNX graph `fp32_bytes`, calibrated on `batches`, compacted.

    `batches`: arrays (B, 3, H, W) float32 the graph's input takes. Returns an `onnx.ModelProto`.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = list(batches)
    if not batches:
        raise ValueError("int8 quantization needs at least one calibration batch, got none")
    with tempfile.TemporaryDirectory() as folder:
        fp32_path, prepared, int8_path = (
            Path(folder) / name for name in ("fp32.onnx", "prep.onnx", "int8.onnx")
        )
        fp32_path.write_bytes(fp32_bytes)
        # shape inference and graph clean-up, as the quantizer's documentation advises
        quant_pre_process(str(fp32_path), str(prepared))
        graph = onnx.load(str(prepared)).graph
        reader = _Batches(graph.input[0].name, batches)
        quantize_static(
            str(prepared),
            str(int8_path),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=kept_float_nodes(graph),
        )
        proto = onnx.load(str(int8_path))
    compact(proto.graph)
    return proto


# ---------------------------------------------------------------------------------------
# Compacting: the same computation in fewer bytes.


def compact(graph):
    """Shrink the QDQ `graph` in place without changing what it computes.

    1. The weights of the float convolutions become int8 per output channel, followed by
       a DequantizeLinear (the runtime turns them back to float32 once, when it loads).
    2. Zero points that are all 0 are dropped (0 is the default; int8 and int32 inputs
       keep their type).
    3. Tensors get short names (`a`, `b`, …, `9Z`), nodes none (a node's name is optional);
       the graph's input and output keep theirs. The exporter's names
       ("/model/decoders.0/decoder.3/conv/Conv_output_0") were a quarter of the file.
    """
    _float_weights_to_int8(graph)
    _drop_zero_points(graph)
    _short_names(graph)


def _float_weights_to_int8(graph):
    r"""Step 1 of `compact`: each float Conv weight W (O, I, k, k) becomes q int8 and one
    scale per output channel, $s_o = \max |W_o| / 127$, read through a DequantizeLinear."""
    from onnx import TensorProto, helper, numpy_helper

    initializers = {tensor.name: tensor for tensor in graph.initializer}
    new_nodes = []
    for node in graph.node:
        weight = initializers.get(node.input[1]) if node.op_type == "Conv" else None
        if weight is None or weight.data_type != TensorProto.FLOAT:
            continue
        w = numpy_helper.to_array(weight)  # (O, I, k, k)
        scale = np.abs(w).reshape(len(w), -1).max(axis=1) / 127  # (O,)
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)  # (O,)
        q = np.round(w / scale[:, None, None, None])  # (O, I, k, k)
        q = np.clip(q, -127, 127).astype(np.int8)  # (O, I, k, k)
        graph.initializer.append(numpy_helper.from_array(q, weight.name + "_q"))
        graph.initializer.append(numpy_helper.from_array(scale, weight.name + "_s"))
        new_nodes.append(helper.make_node("DequantizeLinear",
                                          [weight.name + "_q", weight.name + "_s"],
                                          [weight.name + "_dq"], axis=0))
        node.input[1] = weight.name + "_dq"
    nodes = new_nodes + list(graph.node)  # the new nodes read only initializers: first is sorted
    graph.ClearField("node")
    graph.node.extend(nodes)


def _drop_zero_points(graph):
    """Step 2 of `compact`: DequantizeLinear without its all-zero zero point, and every
    initializer no node reads any more removed."""
    from onnx import TensorProto, numpy_helper

    zero = {tensor.name for tensor in graph.initializer
            if tensor.data_type in (TensorProto.INT8, TensorProto.INT32)
            and not numpy_helper.to_array(tensor).any()}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and len(node.input) == 3 and node.input[2] in zero:
            del node.input[2]
    used = {name for node in graph.node for name in node.input}
    kept = [tensor for tensor in graph.initializer if tensor.name in used]
    graph.ClearField("initializer")
    graph.initializer.extend(kept)


def _short_names(graph):
    """Step 3 of `compact`: short tensor names, no node names, no inferred shapes."""
    fixed = {value.name for value in list(graph.input) + list(graph.output)}
    short, counter = {}, iter(range(1 << 62))

    def rename(name):
        if not name or name in fixed:
            return name
        while name not in short:
            candidate = _short_name(next(counter))
            if candidate not in fixed:  # never the input's or the output's name ("x", "y_hat")
                short[name] = candidate
        return short[name]

    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
    for node in graph.node:
        node.name = ""
        node.doc_string = ""
        node.input[:] = [rename(name) for name in node.input]
        node.output[:] = [rename(name) for name in node.output]
    graph.ClearField("value_info")  # shapes inferred for calibration; the runtime infers its own


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGITS = "0123456789" + _LETTERS


def _short_name(index):
    """A distinct short name for each index: a letter, then the rest of the index in base 62.

    0 -> "a", 51 -> "Z", 52 -> "a1", 53 -> "b1": index = 52 h + t gives letter t, then h.
    """
    head, tail = divmod(index, len(_LETTERS))
    digits = ""
    while head:
        head, digit = divmod(head, len(_DIGITS))
        digits = _DIGITS[digit] + digits
    return _LETTERS[tail] + digits


# ---------------------------------------------------------------------------------------
# ONNX Runtime Mobile.


def to_ort_bytes(onnx_bytes):
    """The ONNX Runtime (ORT) format of the graph `onnx_bytes`: what ONNX Runtime Mobile loads.

    The graph is optimized once here, as a phone would at every start, with every
    optimization that holds on any CPU: the x86-only blocked layout (NCHWc) is left out,
    so the same file serves an ARM phone.
    """
    return optimized_graph(onnx_bytes, "ORT")


def optimized_graph(onnx_bytes, save_format="ORT"):
    """The graph as ONNX Runtime optimizes it for any CPU, saved as "ORT" or "ONNX" (to inspect)."""
    import onnxruntime

    if save_format not in ("ORT", "ONNX"):
        raise ValueError(f"save_format must be 'ORT' or 'ONNX', got {save_format!r}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"model.{save_format.lower()}"
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(path)
        options.add_session_config_entry("session.save_model_format", save_format)
        onnxruntime.InferenceSession(
            onnx_bytes,
            options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=list(X86_ONLY_OPTIMIZERS),
        )
        return path.read_bytes()
