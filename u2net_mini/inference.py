r"""
# Fast inference: one callable from a checkpoint (torch) or an ONNX file (ONNX Runtime)

Not part of the paper, which reports 44 frames per second for U²-XS-Net on an RTX 2080 Ti
and argues that the net suits a phone, without saying how it was run. This module is how
this project runs it on a CPU. Both backends give the same callable:

    session = load_session("runs/mt/best.pt")        # or "model.onnx" (from u2net_mini.export)
    y_hat = session(x)                               # (B, 3, H, W) float32 -> (B, C, H, W) float32

$\hat y = \sigma(z_{\mathrm{fused}})$: only the fused output, through the sigmoid; the six
side outputs matter for training only. `session.payload` holds what preprocessing needs
(`lesions`, `input_size`, `mean`, `std`, `preprocessing`, `model_config`), read from the
checkpoint or from the ONNX file's metadata, so that an ONNX file alone is enough.

## What makes the torch path fast (`optimize_model`), and why

Measured with `python -m u2net_mini.bench` (docs/performance.md). At 512 × 512 XS does
26.3 GFLOP and reads and writes at least 1.85 GB; with good kernels that is bound by
arithmetic, but eager PyTorch spends most of its time elsewhere (allocation, extra passes,
slow kernels). Each step below removes one of those costs and changes no result beyond
float rounding (~1e-7 on y_hat):

1. **Batch norm folded into the convolution** (`fold.fold_batchnorm`): one read and one
   write of every block's output less (0.43 GB per 512 × 512 image for XS).
2. **ReLU in place** (`ConvReLU`): the folded block is a convolution then a ReLU; the ReLU
   overwrites the convolution's output instead of allocating and writing a new map.
3. **channels_last** (NHWC) weights and input: oneDNN's convolutions are fastest in this
   layout when a map has few channels; in NCHW, `torch.profiler` shows PyTorch sending
   the dilated convolutions and many others to its slower reference kernels.
4. **`torch.inference_mode`**: no autograd bookkeeping at all (stronger than `no_grad`).
5. **Freed memory kept for reuse** (`reuse_freed_memory`, Linux with glibc only). A
   32-channel map at 512 × 512 is 32 MiB, and glibc's malloc takes blocks that large
   straight from the kernel and gives them back on free. So every such map got fresh
   pages, which the kernel zeroed and mapped, 4 KiB at a time, as the convolution first
   wrote them: 194 548 page faults (760 MiB) per eager forward pass. Raising glibc's
   thresholds keeps freed maps in the heap, where the next layer finds them (0 faults).
   ONNX Runtime has its own arena and does not need this. It is process-wide, so
   `TorchSession` turns it on only on the CPU and only when `optimize=True`; the price
   is that the process keeps its peak memory.
6. **Threads**: PyTorch and ONNX Runtime both use one thread per physical core by
   default, which is what a 2-core machine wants; `threads=` overrides it (for PyTorch
   this sets the process-wide `torch.set_num_threads`).

**bfloat16** (`bf16=True`, opt-in): weights and maps in bfloat16, where the CPU has
bf16 instructions (AVX-512 BF16 or AMX; `bf16_supported`) or on CUDA. It keeps fp32's
exponent range but only 8 significant bits, so y_hat moves by ~1e-4–1e-3; the project's
rule is to use it only for a model whose test AUPR it moves by less than 0.005
(docs/performance.md has the measurement). Left out on purpose: `torch.compile` (minutes
of compilation before the first image, and no faster at batch 1; `bench` measures it).
"""

import ctypes
import json
import platform
from pathlib import Path

import numpy as np
import torch
from torch import nn

from data_prep.checks import check_positive_int

from .checkpoint import INFERENCE_KEYS, load_model
from .fold import fold_batchnorm
from .model import MIN_SIZE, fused_probabilities
from .rsu import REBNCONV

# The ONNX metadata key under which `export` stores the payload as JSON.
METADATA_KEY = "u2net_mini"
# What inference needs from a checkpoint: everything but the weights.
PAYLOAD_KEYS = tuple(key for key in INFERENCE_KEYS if key != "state_dict")


# glibc's mallopt parameters (malloc.h) and the values we set.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
REUSE_LIMIT = 1 << 30  # 1 GiB: maps below it come from (and return to) the heap
GLIBC_STEADY = (32 << 20, 64 << 20)  # the mmap and trim thresholds glibc settles at on 64-bit


def reuse_freed_memory(enabled=True):
    """Keep freed blocks up to 1 GiB in the heap (True) or give them back as glibc does (False).

    Returns True when applied, False where malloc is not glibc's (macOS, Windows, musl),
    where this is a no-op. `enabled=False` restores glibc's thresholds as they stand after
    the first large free (mmap 32 MiB, trim 64 MiB) and trims the heap.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL("libc.so.6")
    mmap_threshold, trim_threshold = (REUSE_LIMIT, REUSE_LIMIT) if enabled else GLIBC_STEADY
    applied = libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1
    applied = libc.mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1 and applied
    if not enabled:
        libc.malloc_trim(0)
    return applied


class ConvReLU(nn.Module):
    """A folded REBNCONV: $\\max(0, W' *_d x + b')$, the ReLU written over the conv's output."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        return torch.relu_(self.conv(x))  # (B, out_ch, H, W), no second map allocated


def optimize_model(model):
    """A copy of `model` for inference: batch norm folded, ReLU in place, channels_last, eval.

    Computes the same function as `model.eval()` (up to float rounding, ~1e-6 on logits);
    the original is untouched. Not for training: folding uses the running statistics.
    """
    optimized = fold_batchnorm(model)  # a copy, in eval mode
    for parent in list(optimized.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, REBNCONV):
                setattr(parent, name, ConvReLU(child.conv))  # bn is nn.Identity after folding
    return optimized.to(memory_format=torch.channels_last)


def bf16_supported(device="cpu"):
    """Whether bfloat16 convolutions run natively on `device` (oneDNN on the CPU, or CUDA)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def check_batch(x, in_ch=3):
    """x as a float32 tensor on the CPU; ValueError unless it is (B, in_ch, H, W), H, W >= 32."""
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"x must be a float array (B, {in_ch}, H, W), got dtype {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))  # (B, C, H, W)
    elif isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise ValueError(f"x must be a float tensor (B, {in_ch}, H, W), got dtype {x.dtype}")
        x = x.detach().to("cpu", torch.float32)  # (B, C, H, W)
    else:
        raise ValueError(f"x must be a NumPy array or a torch tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != in_ch:
        hint = " (add the batch axis: x[None])" if x.ndim == 3 else ""
        raise ValueError(f"x must have shape (B, {in_ch}, H, W), got {tuple(x.shape)}{hint}")
    if x.shape[2] < MIN_SIZE or x.shape[3] < MIN_SIZE:
        raise ValueError(f"x must have H and W >= {MIN_SIZE}, got {x.shape[2]}×{x.shape[3]}")
    return x


def payload_of(payload):
    """The inference payload without the weights (and without resume state)."""
    return {key: payload[key] for key in PAYLOAD_KEYS if key in payload}


class TorchSession:
    """The optimized torch path: `session(x)` maps (B, 3, H, W) to y_hat (B, C, H, W), NumPy
    float32.

    `optimize=False` runs the model as trained (eval mode, NCHW, `no_grad`): the baseline.
    `optimize=True` on the CPU also calls `reuse_freed_memory()` (process-wide).
    `bf16=True` (with `optimize`) computes in bfloat16; y_hat is still float32.
    """

    backend = "torch"

    def __init__(self, model, payload=None, device="cpu", optimize=True, threads=None, bf16=False):
        if threads is not None:
            check_positive_int("threads", threads, " or None")
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.in_ch = model.in_ch
        self.optimized = optimize
        self.memory_format = torch.channels_last if optimize else torch.contiguous_format
        self.model = (optimize_model(model) if optimize else model.eval()).to(self.device)
        self.dtype = torch.bfloat16 if bf16 else torch.float32
        if bf16:
            if not optimize:
                raise ValueError("bf16=True needs optimize=True (the baseline stays fp32)")
            if not bf16_supported(self.device):
                raise ValueError(f"bfloat16 is not supported natively on {self.device} "
                                 f"(a CPU needs AVX-512 BF16 or AMX); use bf16=False")
            self.model = self.model.to(torch.bfloat16)
        self.payload = payload_of(payload or {"model_config": dict(model.config)})
        if optimize and self.device.type == "cpu":
            reuse_freed_memory()

    @classmethod
    def from_checkpoint(cls, path, device="cpu", optimize=True, threads=None, bf16=False):
        model, payload = load_model(path)
        return cls(model, payload, device, optimize, threads, bf16)

    def __call__(self, x):
        x = check_batch(x, self.in_ch)  # (B, 3, H, W)
        context = torch.inference_mode() if self.optimized else torch.no_grad()
        with context:
            x = x.to(self.device, self.dtype, memory_format=self.memory_format)  # (B, 3, H, W)
            y_hat = fused_probabilities(self.model(x))  # (B, C, H, W)
            return y_hat.contiguous().cpu().numpy()  # (B, C, H, W), NCHW again


# What ONNX Runtime loads: the ONNX file, and its own (mobile) format from `export --ort`.
ONNX_SUFFIXES = (".onnx", ".ort")


class OnnxSession:
    """The ONNX Runtime path, with no torch model code: same call as `TorchSession`.

    `model` is a path to a `.onnx` or `.ort` file from `u2net_mini.export` (fp32, fp16
    weights or int8), or its bytes. The file computes y_hat itself (the sigmoid is in the graph).
    """

    backend = "onnxruntime"

    def __init__(self, model, threads=None, providers=("CPUExecutionProvider",)):
        import onnxruntime

        if threads is not None:
            check_positive_int("threads", threads, " or None")
        if isinstance(model, (str, Path)):
            if not Path(model).is_file():
                raise FileNotFoundError(f"no ONNX file at {model}")
            source = str(model)
        elif isinstance(model, bytes):
            source = model
        else:
            raise ValueError("model must be a path to a .onnx file or its bytes, got "
                             f"{type(model).__name__}")
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or 0  # 0: one thread per physical core
        try:
            self.session = onnxruntime.InferenceSession(source, options, providers=list(providers))
        except Exception as error:
            raise ValueError("ONNX Runtime cannot load "
                             f"{model if isinstance(model, (str, Path)) else 'the model'}: "
                             f"{type(error).__name__}: {str(error).strip()[:300]}") from error
        inputs = self.session.get_inputs()
        self.input_name = inputs[0].name
        channels = inputs[0].shape[1]
        self.in_ch = channels if isinstance(channels, int) else 3
        metadata = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        self.payload = json.loads(metadata) if metadata else {}
        if "lesions" in self.payload:
            self.payload["lesions"] = tuple(self.payload["lesions"])

    def __call__(self, x):
        x = check_batch(x, self.in_ch).numpy()  # (B, 3, H, W) float32
        return self.session.run(None, {self.input_name: x})[0]  # (B, C, H, W) y_hat


def load_session(path, device="cpu", threads=None, bf16=False):
    """A session from a checkpoint (optimized torch) or a `.onnx` file (ONNX Runtime).

    `bf16`: False (fp32), True (bfloat16; ValueError where it is not native) or "auto"
    (bfloat16 for a checkpoint on a CPU with native bf16, else fp32).
    Raises FileNotFoundError for a missing file, ValueError for a file that is neither,
    an ONNX file without the metadata that preprocessing needs, or bf16 where it cannot run.
    """
    if bf16 not in (False, True, "auto"):
        raise ValueError(f"bf16 must be False, True or 'auto', got {bf16!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint or ONNX file at {path}")
    if path.suffix.lower() not in ONNX_SUFFIXES:
        if bf16 == "auto":
            bf16 = torch.device(device).type == "cpu" and bf16_supported("cpu")
        return TorchSession.from_checkpoint(path, device, threads=threads, bf16=bf16)
    if torch.device(device).type != "cpu":
        raise ValueError(f"an ONNX file runs on the CPU here (onnxruntime), got device {device!r}")
    if bf16 is True:
        raise ValueError("bf16 is an option of the torch path; an ONNX file runs in fp32")
    session = OnnxSession(path, threads)
    missing = [key for key in PAYLOAD_KEYS if key not in session.payload]
    if missing:
        raise ValueError(f"{path} lacks the metadata {missing} that prediction needs; "
                         f"export it from a checkpoint with python -m u2net_mini.export")
    return session


def load_for_prediction(path, device="cpu", bf16=False):
    """`(session, payload)`: the contract of `checkpoint.load_model`, for `predict.Predictor`'s
    `loader=` (its default)."""
    session = load_session(path, device, bf16=bf16)
    return session, session.payload
