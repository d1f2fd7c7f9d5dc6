r"""
# Benchmark: how fast each inference path runs, and what bounds it

    python -m u2net_mini.bench --model xs --size 512 --device cpu --batch 1 --json bench.json

Not part of the paper, which reports 44 frames per second for U²-XS-Net on an RTX 2080 Ti
without saying how it was measured. This measures, for one model and input size:

- the model: parameters, size on disk (state_dict saved in fp32 and in fp16), convolution
  multiply-accumulates (MACs; 1 MAC = 2 FLOP) and the bytes its layers read and write;
- the machine: the rate of a large fp32 matrix multiply (GFLOP/s, the best the CPU does
  on arithmetic) and of a large copy (GB/s, the memory bandwidth), so that the roofline
  floors $t \ge \mathrm{FLOP} / \mathrm{rate}$ and $t \ge \mathrm{bytes} / \mathrm{bandwidth}$
  can be set beside the measured times (docs/performance.md);
- for each inference path: latency (median and minimum of `--runs` after `--warmup`) and
  frames per second at `--batch`, throughput at `--throughput-batch`, peak memory of one
  call, the minor page faults of one warm call (fresh pages the kernel had to zero and
  map), and the largest difference of its y_hat from eager torch's.

Paths (`--paths`, comma-separated, or `all`; by default all but `compile`, so that a run
at 256 px answers in about a minute):

| path | what |
|---|---|
| `eager` | the model as trained: eval mode, NCHW, `torch.no_grad` |
| `folded` | `inference.optimize_model` (folded batch norm, ReLU in place, channels_last), `inference_mode` |
| `optimized` | `folded` plus `inference.reuse_freed_memory()`: what `predict` runs |
| `onnxruntime` | the `export` graph in ONNX Runtime (CPU) |
| `compile` | `torch.compile` of the optimized model (skipped, with the reason, where it fails); not a default: minutes of compiling |
| `bf16` | the optimized model in bfloat16, `TorchSession(bf16=True)` (skipped where not native) |
| `int8` | the `export --int8` graph in ONNX Runtime (`quantize.py`), calibrated on the benchmark's own input |
| `mobile` | the same int8 graph in ONNX Runtime's mobile format (`export --int8 --ort`), as a phone app loads it; not a default (the same kernels as `int8`) |

With `--checkpoint C --data D` it also scores a trained model on the test split of D in fp32,
bf16 and int8 (`precision_aupr`; int8 calibrated on D's training photographs): the project
uses bfloat16 only for a model whose AUPR it moves by less than 0.005, int8 by at most 0.01
(`AUPR_LIMITS`).

The machine's figures include the rate of an 8-bit matrix multiply (uint8 × int8 → int32,
ONNX Runtime's `MatMulInteger`, the kernels its int8 convolutions use), in GOP/s (one
multiply-add = 2 operations), and of a bfloat16 one (torch), beside fp32's.

The runs go round-robin over the paths (one run of each, then the next round), so a
machine shared with other work slows every path alike instead of whichever ran during a
busy minute; the load average before and after is recorded in the JSON.
"""

import argparse
import functools
import gc
import io
import json
import os
import platform
import statistics
import sys
import threading
import time

import numpy as np
import torch
from torch.func import functional_call
from torch.utils._pytree import tree_leaves

from .atomic import atomic_write
from .counting import conv_macs, count_parameters
from .inference import OnnxSession, TorchSession, bf16_supported, optimize_model, reuse_freed_memory
from .model import MODEL_NAMES, build_model

PATHS = ("eager", "folded", "optimized", "onnxruntime", "compile", "bf16", "int8", "mobile")
# What runs when --paths is not given: every path that starts in seconds. `compile` takes
# minutes to compile on a busy machine and is no faster at batch 1, so it runs only by name.
DEFAULT_PATHS = ("eager", "folded", "optimized", "onnxruntime", "bf16", "int8")
# The instruction sets that decide the figures: wide fp32 (AVX2, AVX-512), int8 dot
# products (VNNI, AMX int8) and bfloat16 (AVX-512 BF16, AMX bf16), as /proc/cpuinfo names them.
CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
MEMORY_REUSE = {"eager": False, "folded": False}  # every other path runs with it on
AUPR_LIMITS = {"bf16": 0.005, "int8": 0.01}  # the largest AUPR shift from fp32 a precision may cause


# ---------------------------------------------------------------------------------------
# The model and the machine.


def disk_bytes(model):
    """Bytes of `torch.save(state_dict)` in fp32 and with every float tensor in fp16."""
    sizes = {}
    for name, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        state = {key: value.to(dtype) if value.is_floating_point() else value
                 for key, value in model.state_dict().items()}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        sizes[name] = buffer.getbuffer().nbytes
    return sizes


def memory_traffic(model, size):
    """Bytes each kind of operation reads and writes in one forward pass at size × size.

    Every operation is taken to read its inputs once and write its output once (the best
    a kernel can do; caches only help within a layer). Counted on PyTorch's "meta" device,
    which computes shapes and no numbers. Returns {aten op name: bytes}.
    """
    traffic = {}

    class Counter(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if any(r.alias_info is not None and not r.alias_info.is_write for r in func._schema.returns):
                return out  # a view moves no data (an in-place op, which also aliases, does)
            tensors = [t for t in tree_leaves((args, kwargs, out)) if isinstance(t, torch.Tensor)]
            name = func.overloadpacket.__name__
            traffic[name] = traffic.get(name, 0) + sum(t.numel() * t.element_size() for t in tensors)
            return out

    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    meta = {name: torch.empty_like(tensor, device="meta") for name, tensor in tensors.items()}
    x = torch.empty(1, model.in_ch, size, size, device="meta")  # (1, 3, s, s)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), Counter():
            functional_call(model, meta, (x,))
    finally:
        model.train(was_training)
    return dict(sorted(traffic.items(), key=lambda item: -item[1]))


def median_seconds(function, repeats=5):
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@functools.lru_cache(maxsize=None)
def machine_figures(device):
    """Matrix-multiply rate (GFLOP/s, fp32) and copy bandwidth (GB/s) on `device`, and context.

    Measured once per process and device (a few seconds).
    """
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    n = 4096 if device.type == "cuda" else 1536
    a = torch.randn(n, n, device=device)  # (n, n)
    b = torch.randn(n, n, device=device)  # (n, n)
    seconds = median_seconds(lambda: (a @ b, sync()))
    gflops = 2 * n**3 / seconds / 1e9  # n³ multiply-adds = 2 n³ FLOP
    a, b = a.bfloat16(), b.bfloat16()
    gflops_bf16 = 2 * n**3 / median_seconds(lambda: (a @ b, sync())) / 1e9
    source = torch.empty(64 << 20, device=device)  # 256 MiB of fp32, far beyond the caches
    target = torch.empty_like(source)
    seconds = median_seconds(lambda: (target.copy_(source), sync()))
    bandwidth = 2 * source.numel() * 4 / seconds / 1e9  # each byte read once, written once
    figures = {
        "device": str(device),
        "matmul_gflops_fp32": round(gflops, 1),
        "matmul_gflops_bf16": round(gflops_bf16, 1),
        "matmul_gops_int8": round(int8_matmul_gops(n), 1) if device.type == "cpu" else None,
        "copy_bandwidth_gbs": round(bandwidth, 1),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "processor": processor_name(),
        "cpu_features": cpu_features(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        figures["gpu"] = torch.cuda.get_device_name(device)
    return figures


def int8_matmul_gops(n=1536):
    """GOP/s of an (n × n) uint8 by (n × n) int8 matrix multiply into int32 in ONNX Runtime (CPU)."""
    import onnxruntime
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["c"])], "int8_matmul",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n]),
         helper.make_tensor_value_info("b", TensorProto.INT8, [n, n])],
        [helper.make_tensor_value_info("c", TensorProto.INT32, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    inputs = {"a": rng.integers(0, 256, (n, n), dtype=np.uint8),  # (n, n)
              "b": rng.integers(-127, 128, (n, n), dtype=np.int8)}  # (n, n)
    return 2 * n**3 / median_seconds(lambda: session.run(None, inputs)) / 1e9


def _cpuinfo_field(key):
    """The value of the first `key` line of /proc/cpuinfo ("model name", "flags"), or None."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def processor_name():
    """The CPU's model name ("AMD EPYC ..."), or what `platform` knows where /proc has none."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_features(flags=None):
    """Which of `CPU_FEATURES` this CPU has (a list, in that order); `flags`: /proc/cpuinfo's
    flag words, read when None (empty where there is no /proc/cpuinfo)."""
    if flags is None:
        flags = (_cpuinfo_field("flags") or "").split()
    return [name for name in CPU_FEATURES if name in set(flags)]


def load_average():
    return [round(value, 2) for value in os.getloadavg()] if hasattr(os, "getloadavg") else None


# ---------------------------------------------------------------------------------------
# The paths: each a function x (B, 3, H, W) float32 CPU tensor -> y_hat (B, C, H, W) NumPy.


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
        raise RuntimeError(f"bfloat16 is not supported natively on {device} (a CPU needs AVX-512 BF16 or AMX)")
    return TorchSession(model, device=device, optimize=True, bf16=True)


def _int8(model, device, x, mobile=False):
    if torch.device(device).type != "cpu":
        raise RuntimeError("the int8 graph runs in ONNX Runtime on the CPU here")
    from .export import Calibration, onnx_bytes
    from .quantize import to_ort_bytes

    start = time.perf_counter()
    # Calibrated on the input it is timed on: for speed the ranges matter little, and a
    # random model has no photographs of its own (precision_aupr calibrates on real ones).
    data = onnx_bytes(model, calibration=Calibration([x.numpy()]))
    if mobile:
        data = to_ort_bytes(data)
    return OnnxSession(data), {"onnx_bytes": len(data), "quantize_s": round(time.perf_counter() - start, 1)}


# ---------------------------------------------------------------------------------------
# Measuring.


class PeakMemory:
    """Peak extra memory during a block: CUDA's allocator, or the process's sampled RSS (Linux)."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.peak_bytes = None

    def __enter__(self):
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
        elif os.path.exists("/proc/self/statm"):
            reuse_freed_memory(False)  # trims the heap: the baseline holds no freed maps
            self.start = self._rss()
            self.peak = self.start
            self.running = True
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device) - self.start
        elif os.path.exists("/proc/self/statm"):
            self.running = False
            self.thread.join()
            self.peak_bytes = max(self.peak, self._rss()) - self.start
        return False

    @staticmethod
    def _rss():
        with open("/proc/self/statm") as file:
            return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self._rss())
            time.sleep(0.0005)


def _minor_faults():
    """Minor page faults of this process so far (pages the kernel had to map); None off Unix."""
    try:
        import resource
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _timed(function, x, device):
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    start = time.perf_counter()
    function(x)
    sync()
    return time.perf_counter() - start


def benchmark(model_name="xs", size=512, device="cpu", batch=1, runs=10, warmup=2,
              throughput_batch=None, paths=DEFAULT_PATHS, out_ch=4, seed=0, log=print):
    """Run the benchmark; returns the result dict (the JSON). See the module's docstring."""
    if model_name not in MODEL_NAMES:
        raise ValueError(f"model must be one of {MODEL_NAMES}, got {model_name!r}")
    for label, value, low in (("size", size, 32), ("batch", batch, 1), ("runs", runs, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{label} must be an int >= {low}, got {value!r}")
    unknown = [name for name in paths if name not in PATHS]
    if unknown or not paths:
        raise ValueError(f"paths must be a non-empty selection of {PATHS}, got {list(paths)}")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA device")
    throughput_batch = throughput_batch or (16 if device.type == "cuda" else 4)

    torch.manual_seed(seed)
    model = build_model(model_name, out_ch).eval()
    macs = conv_macs(model, size, size)
    traffic = {"eager": memory_traffic(model, size), "optimized": memory_traffic(optimize_model(model), size)}
    result = {
        "model": {"name": model_name, "out_ch": out_ch, "parameters": count_parameters(model),
                  "disk_bytes": disk_bytes(model), "conv_macs": macs, "gflop": round(2 * macs / 1e9, 2),
                  "traffic_bytes": {path: sum(ops.values()) for path, ops in traffic.items()},
                  "traffic_by_op": traffic},
        "input": {"size": size, "batch": batch, "throughput_batch": throughput_batch,
                  "device": str(device), "runs": runs, "warmup": warmup},
        "load_average_before": load_average(),
    }
    log(f"measuring the machine ({device}) ...")
    result["machine"] = dict(machine_figures(str(device)))
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.standard_normal((batch, 3, size, size), dtype=np.float32))  # (B, 3, s, s)
    x_big = torch.from_numpy(rng.standard_normal((throughput_batch, 3, size, size), dtype=np.float32))  # (T, 3, s, s)

    functions, figures = {}, {}
    for name in paths:
        log(f"building path {name} ...")
        try:
            functions[name], extra = build_path(name, model, device, x)
            figures[name] = {"status": "ok", **extra}
        except RuntimeError as error:
            figures[name] = {"status": "skipped", "reason": str(error)}
            log(f"  skipped: {error}")

    reference = TorchSession(model, device=device, optimize=False)(x)  # (B, C, s, s) eager y_hat
    for name, function in functions.items():
        reuse_freed_memory(MEMORY_REUSE.get(name, True))
        with PeakMemory(device) as memory:
            y_hat = function(x)  # (B, C, s, s)
        figures[name]["max_abs_diff_vs_eager"] = float(np.abs(y_hat - reference).max())
        figures[name]["peak_memory_mb"] = None if memory.peak_bytes is None else round(memory.peak_bytes / 2**20, 1)
        for _ in range(warmup):
            function(x)
        faults = _minor_faults()
        function(x)  # warm: what every later call pays
        if faults is not None:
            figures[name]["page_faults"] = _minor_faults() - faults
    log(f"timing {len(functions)} paths round-robin: {runs} runs at batch {batch}, "
        f"{max(1, runs // 2)} at batch {throughput_batch} ...")
    latencies = {name: [] for name in functions}
    big = {name: [] for name in functions}
    for run in range(runs):
        for name, function in functions.items():
            reuse_freed_memory(MEMORY_REUSE.get(name, True))
            latencies[name].append(_timed(function, x, device))
    for name, function in functions.items():  # one untimed call at the larger batch first
        reuse_freed_memory(MEMORY_REUSE.get(name, True))
        function(x_big)
    for run in range(max(1, runs // 2)):
        for name, function in functions.items():
            reuse_freed_memory(MEMORY_REUSE.get(name, True))
            big[name].append(_timed(function, x_big, device))
    reuse_freed_memory(True)

    for name in functions:
        median = statistics.median(latencies[name])
        figures[name].update({
            "latency_ms_median": round(1000 * median, 2),
            "latency_ms_min": round(1000 * min(latencies[name]), 2),
            "latency_ms_all": [round(1000 * t, 2) for t in latencies[name]],
            "fps": round(batch / median, 3),
            "throughput_ips": round(throughput_batch / statistics.median(big[name]), 3),
        })
    if "eager" in functions:
        for name in functions:
            figures[name]["speedup_vs_eager"] = round(figures[name]["fps"] / figures["eager"]["fps"], 2)
    result["paths"] = figures
    timed = [name for name in functions]
    result["best"] = max(timed, key=lambda name: figures[name]["fps"]) if timed else None
    result["load_average_after"] = load_average()
    seconds_floor = 2 * macs * batch / (result["machine"]["matmul_gflops_fp32"] * 1e9)
    bandwidth = result["machine"]["copy_bandwidth_gbs"] * 1e9
    bytes_floor = result["model"]["traffic_bytes"]["optimized"] * batch / bandwidth
    result["floors_ms"] = {"arithmetic": round(1000 * seconds_floor, 1), "memory_traffic": round(1000 * bytes_floor, 1)}
    if result["machine"].get("matmul_gops_int8"):
        int8_floor = 2 * macs * batch / (result["machine"]["matmul_gops_int8"] * 1e9)
        result["floors_ms"]["arithmetic_int8"] = round(1000 * int8_floor, 1)
    return result


def precision_aupr(checkpoint, data, split="test", cache_dir=None, precisions=("fp32", "bf16", "int8"),
                   calibration_photos=None):
    """AUPR per lesion of a checkpoint on `split` of the data folder `data`, in each precision.

    fp32 is the optimized torch path (the model as trained), bf16 the same in bfloat16
    (skipped where the CPU lacks it), int8 the `export --int8` graph calibrated on
    `calibration_photos` training photographs of `data` (default 16, or all there are).
    Every precision scores the same inputs (`metrics.LesionScores`): the checkpoint's
    preprocessing, no augmentation. Returns {"split", "images", "aupr" {precision: {lesion}},
    "shift" and "max_shift" (|difference| from fp32; a lesion without positive pixels scores
    nan and is left out), "limit", "within_limit", "skipped" {precision: reason}}.
    """
    from data_prep.dataset import LesionDataset
    from data_prep.idrid import IDRiD

    from .checkpoint import load_model, preprocessing_arguments
    from .evaluate import score_dataset
    from .export import calibration_from_data, onnx_bytes
    from .metrics import LesionScores
    from .quantize import CALIBRATION_PHOTOS

    unknown = [name for name in precisions if name not in ("fp32", "bf16", "int8")]
    if unknown or "fp32" not in precisions:
        raise ValueError(f"precisions must include fp32 and be some of fp32, bf16, int8, "
                         f"got {list(precisions)}")
    fp32 = TorchSession.from_checkpoint(checkpoint)
    payload = fp32.payload
    sessions, skipped = {"fp32": fp32}, {}
    if "bf16" in precisions:
        if bf16_supported("cpu"):
            sessions["bf16"] = TorchSession.from_checkpoint(checkpoint, bf16=True)
        else:
            skipped["bf16"] = "this CPU has no native bfloat16 (AVX-512 BF16 or AMX)"
    if "int8" in precisions:
        count = calibration_photos
        if count is None:
            count = min(CALIBRATION_PHOTOS, len(IDRiD(data, "train")))
        calibration = calibration_from_data(payload, data, count, cache_dir=cache_dir)
        model, _ = load_model(checkpoint)
        sessions["int8"] = OnnxSession(onnx_bytes(model, payload, calibration=calibration))
    dataset = LesionDataset(data, split, lesions=payload["lesions"], cache_dir=cache_dir,
                            **preprocessing_arguments(payload))
    aupr = {}
    for name, session in sessions.items():  # evaluate's own scoring, one precision at a time
        def predict(x, y, indices, session=session):
            return torch.from_numpy(session(x))  # (B, C, s, s)

        scores = score_dataset(predict, dataset, {"square": LesionScores(payload["lesions"])})
        aupr[name] = scores["square"].aupr()
    result = {"split": split, "images": len(dataset), "aupr": aupr, "shift": {}, "max_shift": {},
              "limit": {}, "within_limit": {}, "skipped": skipped}
    for name in sessions:
        if name == "fp32":
            continue
        shift = {lesion: abs(aupr[name][lesion] - aupr["fp32"][lesion]) for lesion in payload["lesions"]}
        finite = [value for value in shift.values() if np.isfinite(value)]
        result["shift"][name] = shift
        result["max_shift"][name] = max(finite) if finite else float("nan")
        result["limit"][name] = AUPR_LIMITS[name]
        result["within_limit"][name] = bool(result["max_shift"][name] <= AUPR_LIMITS[name])
    return result


def aupr_table(check):
    """`precision_aupr`'s result as a Markdown table: one row per precision, its shift from fp32."""
    from .metrics import lesion_mean

    lesions = list(check["aupr"]["fp32"])
    lines = [f"| precision | {' | '.join(lesions)} | mean | largest shift from fp32 |",
             "|---|" + "---|" * (len(lesions) + 2)]
    for name, values in check["aupr"].items():
        mean = lesion_mean([values[lesion] for lesion in lesions])
        shift = "" if name == "fp32" else (f"{check['max_shift'][name]:.4f} "
                                           f"({'within' if check['within_limit'][name] else 'beyond'} "
                                           f"{check['limit'][name]})")
        lines.append(f"| {name} | " + " | ".join(f"{values[lesion]:.4f}" for lesion in lesions)
                     + f" | {mean:.4f} | {shift} |")
    for name, reason in check["skipped"].items():
        lines.append(f"| {name} | skipped: {reason} |" + " |" * (len(lesions) + 1))
    return "\n".join(lines)


def table(result):
    """The result as a Markdown table (one row per path) with a header line."""
    model, machine, shape = result["model"], result["machine"], result["input"]
    features = ", ".join(machine.get("cpu_features", [])) or "none of " + "/".join(CPU_FEATURES)
    lines = [
        f"{model['name']} (out_ch {model['out_ch']}): {model['parameters']:,} parameters, "
        f"{model['disk_bytes']['fp32'] / 1e6:.2f} MB fp32 / {model['disk_bytes']['fp16'] / 1e6:.2f} MB fp16 on disk, "
        f"{model['conv_macs'] / 1e9:.2f} G MACs = {model['gflop']:.1f} GFLOP and "
        f"{model['traffic_bytes']['eager'] / 1e9:.2f} GB (eager) / {model['traffic_bytes']['optimized'] / 1e9:.2f} GB "
        f"(optimized) moved per {shape['size']}×{shape['size']} image",
        f"{machine['device']} ({machine['processor']}; {features}; {machine['torch_threads']} threads): "
        f"matmul {machine['matmul_gflops_fp32']} GFLOP/s fp32, {machine['matmul_gflops_bf16']} bf16, "
        f"{machine['matmul_gops_int8']} GOP/s int8; copy {machine['copy_bandwidth_gbs']} GB/s; "
        f"floors {result['floors_ms']['arithmetic']} ms (fp32 arithmetic), "
        f"{result['floors_ms'].get('arithmetic_int8', '-')} ms (int8), {result['floors_ms']['memory_traffic']} ms "
        f"(memory); load average {result['load_average_before']} -> {result['load_average_after']}",
        "",
        f"| path | latency median (ms) | min (ms) | fps at batch {shape['batch']} | images/s at batch "
        f"{shape['throughput_batch']} | peak memory (MB) | speed-up vs eager | max abs diff vs eager |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in result["paths"].items():
        if row["status"] != "ok":
            lines.append(f"| {name} | skipped: {row['reason']} | | | | | | |")
            continue
        lines.append(
            f"| {name} | {row['latency_ms_median']:.0f} | {row['latency_ms_min']:.0f} | {row['fps']:.2f} | "
            f"{row['throughput_ips']:.2f} | {row['peak_memory_mb']} | {row.get('speedup_vs_eager', '')} | "
            f"{row['max_abs_diff_vs_eager']:.1e} |"
        )
    return "\n".join(lines)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m u2net_mini.bench",
                                     description="Benchmark the inference paths of a U²-Net (docs/performance.md).")
    parser.add_argument("--model", choices=MODEL_NAMES, default="xs")
    parser.add_argument("--size", type=int, default=512, help="input height and width (default 512)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=1, help="batch of the latency runs (default 1)")
    parser.add_argument("--throughput-batch", type=int, default=None,
                        help="batch of the throughput runs (4 on CPU, 16 on CUDA)")
    parser.add_argument("--out-ch", type=int, default=4, help="output channels (default 4: MA, HE, EX, SE)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per path (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per path first (default 2)")
    parser.add_argument("--paths", default=",".join(DEFAULT_PATHS),
                        help=f"comma-separated, from {','.join(PATHS)}, or all")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: one per core)")
    parser.add_argument("--json", default=None, help="write the result here")
    parser.add_argument("--checkpoint", default=None, help="with --data: score this model in fp32, bf16 and int8")
    parser.add_argument("--data", default=None, help="with --checkpoint: a data folder in IDRiD's layout")
    parser.add_argument("--split", default="test", help="the split --checkpoint is scored on (default test)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    paths = PATHS if args.paths == "all" else tuple(name.strip() for name in args.paths.split(",") if name.strip())
    try:
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"threads must be >= 1, got {args.threads}")
            torch.set_num_threads(args.threads)
        if (args.checkpoint is None) != (args.data is None):
            raise ValueError("give --checkpoint and --data together, or neither")
        result = benchmark(args.model, args.size, args.device, args.batch, args.runs, args.warmup,
                           args.throughput_batch, paths, args.out_ch, log=lambda text: print(text, file=sys.stderr))
        if args.checkpoint is not None:
            result["precision_aupr"] = precision_aupr(args.checkpoint, args.data, args.split)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table(result))
    if "precision_aupr" in result:
        check = result["precision_aupr"]
        print(f"\nAUPR on {check['images']} {check['split']} photographs of {args.data}, by precision:\n")
        print(aupr_table(check))
    if args.json:
        with atomic_write(args.json, "w") as file:
            json.dump(result, file, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
