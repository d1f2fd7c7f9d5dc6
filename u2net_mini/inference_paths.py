"""
# The inference paths that `bench` compares

Each path is a function of x, a (B, 3, H, W) float32 CPU tensor, returning y_hat, a
(B, C, H, W) NumPy array, for one model: the model as trained (`eager`), the optimized
torch paths of `inference.py` (`folded`, `optimized`, `bf16`, `compile`), and ONNX Runtime
on the graph `export` writes, in fp32 (`onnxruntime`), in int8 (`int8`, `quantize.py`) and
in the mobile format (`mobile`). `build_path` builds one by name; a path that cannot run
here raises RuntimeError with the reason, which `bench` records as "skipped".
"""

import time

import torch

from .inference import OnnxSession, TorchSession, bf16_supported

PATHS = ("eager", "folded", "optimized", "onnxruntime", "compile", "bf16", "int8", "mobile")


def build_path(name, model, device, x):
    """(function, extra figures) for path `name`; raises RuntimeError with the reason to skip.

    `x` (B, 3, H, W): an example input; `compile` compiles for its shape (timed: `compile_s`).
    """
    device = torch.device(device)
    if name == "eager":
        return TorchSession(model, device=device, optimize=False), {}
    if name in ("folded", "optimized"):
        return TorchSession(model, device=device, optimize=True), {}
    if name == "onnxruntime":
        if device.type != "cpu":
            raise RuntimeError("ONNX Runtime runs on the CPU here (no CUDA provider is installed)")
        from .export import to_onnx_bytes

        data = to_onnx_bytes(model)
        return OnnxSession(data), {"onnx_bytes": len(data)}
    if name == "compile":
        return _compiled(model, device, x)
    if name == "bf16":
        return _bfloat16(model, device), {}
    if name in ("int8", "mobile"):
        return _int8(model, device, x, mobile=name == "mobile")
    raise ValueError(f"path must be one of {PATHS}, got {name!r}")


def _compiled(model, device, x):
    session = TorchSession(model, device=device, optimize=True)  # its input checks and layout
    start = time.perf_counter()
    try:
        session.model = torch.compile(session.model)
        session(x)  # compiles
    except Exception as error:  # an inductor failure has many types; all mean "skip"
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        raise RuntimeError(f"torch.compile failed: {type(error).__name__}: {first_line}") from error
    return session, {"compile_s": round(time.perf_counter() - start, 1)}


def _bfloat16(model, device):
    if not bf16_supported(device):
        raise RuntimeError(f"bfloat16 is not supported natively on {device} "
                           f"(a CPU needs AVX-512 BF16 or AMX)")
    return TorchSession(model, device=device, optimize=True, bf16=True)


def _int8(model, device, x, mobile=False):
    if torch.device(device).type != "cpu":
        raise RuntimeError("the int8 graph runs in ONNX Runtime on the CPU here")
    from .export import onnx_bytes
    from .quantize import Calibration, to_ort_bytes

    start = time.perf_counter()
    # Calibrated on the input it is timed on: for speed the ranges matter little, and a
    # random model has no photographs of its own (precision_aupr calibrates on real ones).
    data = onnx_bytes(model, calibration=Calibration([x.numpy()]))
    if mobile:
        data = to_ort_bytes(data)
    seconds = round(time.perf_counter() - start, 1)
    return OnnxSession(data), {"onnx_bytes": len(data), "quantize_s": seconds}

