r"""
# The roofline: what the model asks of a machine, and what the machine gives

Two floors under the time of one forward pass (docs/performance.md),

$$ t \ge \frac{\mathrm{operations}}{\mathrm{arithmetic\ rate}}, \qquad
   t \ge \frac{\mathrm{bytes\ moved}}{\mathrm{memory\ bandwidth}}, $$

and the figures that set them:

- the model's side: its size on disk (`disk_bytes`), its multiply-accumulates
  (`counting.conv_macs`; 1 MAC = 2 operations) and the bytes its layers read and write
  (`memory_traffic`);
- the machine's side (`machine_figures`): the rate of a large matrix multiply in fp32 and
  bf16 (torch, GFLOP/s) and in int8 (`int8_matmul_gops`: uint8 × int8 → int32 in ONNX
  Runtime, `MatMulInteger`, the kernels its int8 convolutions use; GOP/s), the bandwidth of
  a large copy (GB/s), and the processor with the instruction sets that decide these
  rates (`cpu_features`: AVX2, AVX-512, VNNI, bf16, AMX).

Not part of the paper, which reports 44 frames per second on a GPU without saying how.
`bench.py` sets these floors beside the measured times.
"""

import functools
import io
import os
import platform
import statistics
import time

import numpy as np
import torch
from torch.func import functional_call
from torch.utils._pytree import tree_leaves

# The instruction sets that decide the figures: wide fp32 (AVX2, AVX-512), int8 dot
# products (VNNI, AMX int8) and bfloat16 (AVX-512 BF16, AMX bf16), as /proc/cpuinfo names
# them.
CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16",
                "amx_int8")


# ---------------------------------------------------------------------------------------
# The model's side.


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
            returns = func._schema.returns
            if any(r.alias_info is not None and not r.alias_info.is_write for r in returns):
                return out  # a view moves no data (an in-place op, which also aliases, does)
            tensors = [t for t in tree_leaves((args, kwargs, out)) if isinstance(t, torch.Tensor)]
            name = func.overloadpacket.__name__
            moved = sum(t.numel() * t.element_size() for t in tensors)
            traffic[name] = traffic.get(name, 0) + moved
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


# ---------------------------------------------------------------------------------------
# The machine's side.


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
    """GOP/s of an (n × n) uint8 by (n × n) int8 matrix multiply into int32, ONNX Runtime (CPU)."""
    import onnxruntime
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["c"])], "int8_matmul",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n]),
         helper.make_tensor_value_info("b", TensorProto.INT8, [n, n])],
        [helper.make_tensor_value_info("c", TensorProto.INT32, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
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
