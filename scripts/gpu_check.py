r"""
# GPU figures in one run: CUDA tests, inference speed of XS, small and full, training speed

    .venv/bin/python scripts/gpu_check.py --json gpu_check.json      # on a CUDA machine, < 8 min
    .venv/bin/python scripts/gpu_check.py --dry-run --json dry.json   # the same steps, tiny,
                                                                      # on the CPU

Not part of the paper, which reports 44 frames per second for U²-XS-Net on an RTX 2080 Ti.
Four steps, each timed, each recorded in the JSON even when it fails:

1. **environment**: torch, CUDA, the GPU, its memory.
2. **tests**: `pytest -m cuda` (the CUDA-marked tests, e.g. CUDA forward equals CPU forward).
3. **inference** of XS, small and full (four outputs) at 512 × 512, each variant's latency
   (median of `runs`), frames per second, peak memory and largest |Δy_hat| from fp32 eager:
   fp32 eager (NCHW); fp32 optimized (folded batch norm, channels_last,
   `inference.optimize_model`); bf16 autocast on the optimized model; both optimized ones
   captured in a CUDA graph at batch 1 (one launch replays the kernels of all ~365
   operations); and images per second at a large batch (bf16, optimized).
4. **training** XS multi-task (MA, HE, EX, SE) at 512 × 512 on synthetic photographs
   (`data_prep.synthetic.make_fundus`, through the training preprocessing) for a fixed
   number of Adam steps with the paper's deep-supervision loss
   (`losses.deep_supervision_loss`), in fp32 and in bf16 autocast (both channels_last):
   images per second, peak memory, first and last loss. It measures speed; a few dozen
   steps on 16 photographs teach the model little.

Peak memory (`peak_memory_mib`) is what a call or the training steps allocate on top of
what was already there (model, optimizer state, inputs); `peak_allocated_mib` of training
is the whole. PyTorch's defaults are kept, so the "fp32" convolutions use TF32 on GPUs
that have it (recorded in `environment`).

A time budget (`--budget`, 420 s) is checked before every model and training run; what
does not fit is recorded as skipped, so the script ends in time on a slower GPU.
`--dry-run` runs every step on the CPU at 64 × 64 with tiny counts: CUDA graphs are
skipped there (they need CUDA), and pytest runs only tests/test_inference.py's CUDA tests,
which skip. The test suite runs the dry run.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from data_prep.atomic import atomic_write  # noqa: E402
from data_prep.pipeline import enhance_square, prepare_example, to_input  # noqa: E402
from data_prep.synthetic import make_fundus  # noqa: E402
from u2net_mini.inference import optimize_model  # noqa: E402
from u2net_mini.losses import deep_supervision_loss  # noqa: E402
from u2net_mini.model import build_model, fused_probabilities  # noqa: E402

FULL = {"size": 512, "models": ("xs", "small", "full"), "runs": 20, "warmup": 3,
        "large_batch": {"xs": 32, "small": 32, "full": 16}, "train_images": 16,
        "train_batch": 8, "train_steps": 60, "train_warmup": 5,
        "pytest": ["tests"], "device": "cuda"}
DRY = {"size": 64, "models": ("xs", "small"), "runs": 2, "warmup": 1,
       "large_batch": {"xs": 2, "small": 2, "full": 2}, "train_images": 4,
       "train_batch": 2, "train_steps": 2, "train_warmup": 1,
       "pytest": ["tests/test_inference.py"], "device": "cpu"}
OUT_CH = 4


class Clock:
    """Seconds since the start, against a budget."""

    def __init__(self, budget):
        self.start = time.perf_counter()
        self.budget = budget

    def elapsed(self):
        return time.perf_counter() - self.start

    def over(self):
        return self.elapsed() > self.budget


def environment(device):
    info = {"torch": torch.__version__, "device": str(device),
            "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        info.update({"cuda": torch.version.cuda, "gpu": properties.name,
                     "gpu_memory_gib": round(properties.total_memory / 2**30, 1),
                     "bf16_supported": torch.cuda.is_bf16_supported(),
                     # TF32 on: the "fp32" convolutions round their inputs to 10 mantissa bits
                     "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                     "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32})
    return info


def run_cuda_tests(paths):
    """`pytest -m cuda PATHS` in a subprocess: exit code, its last line, seconds."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
               "-m", "cuda", *paths]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        return {"command": " ".join(command[1:]), "returncode": None, "summary": "timed out after "
                                                                                 "240 s",
                "seconds": round(time.perf_counter() - start, 1)}
    lines = [line for line in done.stdout.strip().splitlines() if line.strip()]
    return {"command": " ".join(command[1:]), "returncode": done.returncode,
            "summary": lines[-1] if lines else done.stderr.strip()[-300:],
            "seconds": round(time.perf_counter() - start, 1)}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_start(device):
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    return None


def _peak_mib(device, start):
    if device.type != "cuda":
        return None  # the CPU has no allocator statistics; bench.py samples RSS instead
    torch.cuda.synchronize()
    return round((torch.cuda.max_memory_allocated() - start) / 2**20, 1)


def time_call(function, x, device, runs, warmup):
    """(median seconds, peak MiB, output) of `function(x)` over `runs` after `warmup`."""
    for _ in range(warmup):
        function(x)
    start_bytes = _peak_start(device)
    output = function(x)
    peak = _peak_mib(device, start_bytes)
    times = []
    for _ in range(runs):
        _sync(device)
        start = time.perf_counter()
        function(x)
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), peak, output


def probability_function(model, device, bf16=False, channels_last=False):
    """x -> y_hat (fused output through the sigmoid), float32, without autograd."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def call(x):
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            outputs = model(x.contiguous(memory_format=memory_format))  # 7 × (B, C, H, W)
        return fused_probabilities(outputs)  # (B, C, H, W)

    return call


def cuda_graph_function(function, x_example):
    """`function` captured in a CUDA graph for inputs shaped like `x_example`; x is copied in."""
    static_x = x_example.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # warm-up on a side stream, as capture requires
            function(static_x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = function(static_x)

    def replay(x):
        static_x.copy_(x)
        graph.replay()
        return static_y

    return replay


def inference_figures(name, settings, device, clock):
    """Every inference variant of model `name`; a dict per variant."""
    size, runs, warmup = settings["size"], settings["runs"], settings["warmup"]
    torch.manual_seed(0)
    model = build_model(name, OUT_CH).eval().to(device)
    optimized = optimize_model(model).to(device)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, size, size, generator=generator).to(device)  # (1, 3, s, s)
    variants = {
        "fp32_eager": probability_function(model, device),
        "fp32_channels_last": probability_function(optimized, device, channels_last=True),
        "bf16_channels_last": probability_function(optimized, device, bf16=True,
                                                   channels_last=True),
    }
    results = {}
    reference = None
    for variant in (*variants, "fp32_cuda_graph", "bf16_cuda_graph"):
        if clock.over():
            results[variant] = {"status": "skipped", "reason": "time budget"}
            continue
        if variant.endswith("cuda_graph"):
            if device.type != "cuda":
                results[variant] = {"status": "skipped", "reason": "CUDA graphs need CUDA"}
                continue
            function = cuda_graph_function(variants[variant.replace("cuda_graph",
                                                                    "channels_last")], x)
        else:
            function = variants[variant]
        seconds, peak, y_hat = time_call(function, x, device, runs, warmup)
        reference = y_hat if reference is None else reference
        results[variant] = {"status": "ok", "latency_ms": round(1000 * seconds, 3),
                            "fps": round(1 / seconds, 1), "peak_memory_mib": peak,
                            "max_abs_diff_vs_fp32_eager": float((y_hat - reference).abs().max())}
    batch = settings["large_batch"][name]
    if clock.over():
        results["bf16_large_batch"] = {"status": "skipped", "reason": "time budget"}
    else:
        x_big = torch.randn(batch, 3, size, size, generator=generator).to(device)  # (B, 3, s, s)
        seconds, peak, _ = time_call(variants["bf16_channels_last"], x_big, device,
                                     max(2, runs // 4), 1)
        results["bf16_large_batch"] = {"status": "ok", "batch": batch,
                                       "images_per_s": round(batch / seconds, 1),
                                       "peak_memory_mib": peak}
    del model, optimized
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return results


def synthetic_batch(count, size):
    """x (N, 3, s, s) and y (N, 4, s, s) float32 from `count` synthetic photographs."""
    xs, ys = [], []
    for seed in range(count):
        image, masks = make_fundus(seed, size)  # (s, s, 3) uint8, (4, s, s) bool
        example = prepare_example(image, masks, size)
        xs.append(to_input(enhance_square(example.image)))  # (3, s, s), scaled to 0..1
        ys.append(example.masks.astype(np.float32))  # (4, s, s)
    # (N, 3, s, s), (N, 4, s, s)
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def training_figures(x_all, y_all, settings, device, bf16):
    """Adam steps of XS (four outputs) on random batches of (x_all, y_all): speed, memory, loss."""
    torch.manual_seed(0)
    model = build_model("xs", OUT_CH).to(device).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x_all, y_all = x_all.to(device), y_all.to(device)
    rng = np.random.default_rng(0)
    batch = settings["train_batch"]
    losses = []

    def step():
        index = torch.from_numpy(rng.choice(len(x_all), batch, replace=False)).to(device)
        x = x_all[index].contiguous(memory_format=torch.channels_last)  # (b, 3, s, s)
        y = y_all[index]  # (b, 4, s, s)
        if rng.random() < 0.5:  # a horizontal flip, the cheapest augmentation
            x, y = x.flip(-1), y.flip(-1)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)  # 7 × (b, 4, s, s)
        loss = deep_supervision_loss(y, [z.float() for z in logits])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())  # no float() here: that would wait for the GPU every step

    for _ in range(settings["train_warmup"]):
        step()
    start_bytes = _peak_start(device)
    _sync(device)
    start = time.perf_counter()
    for _ in range(settings["train_steps"]):
        step()
    _sync(device)
    seconds = time.perf_counter() - start
    peak_total = (round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.type == "cuda"
                  else None)
    return {"status": "ok", "steps": settings["train_steps"], "batch": batch,
            "images_per_s": round(settings["train_steps"] * batch / seconds, 1),
            "peak_memory_mib": _peak_mib(device, start_bytes), "peak_allocated_mib": peak_total,
            "loss_first": round(float(losses[0]), 4), "loss_last": round(float(losses[-1]), 4)}


def gpu_check(dry_run=False, budget=420.0, run_tests=True, log=print):
    """Run every step; returns the result dict (the JSON)."""
    settings = DRY if dry_run else FULL
    device = torch.device(settings["device"])
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("no CUDA device: run on a GPU machine, or pass --dry-run for the CPU "
                         "version")
    clock = Clock(budget)
    result = {"dry_run": dry_run, "size": settings["size"], "out_ch": OUT_CH,
              "environment": environment(device), "budget_s": budget}
    if run_tests:
        log("CUDA-marked tests ...")
        result["tests"] = run_cuda_tests(settings["pytest"])
    else:
        result["tests"] = {"status": "skipped", "reason": "--skip-tests"}
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
    result["inference"] = {}
    for name in settings["models"]:
        log(f"inference {name} at {settings['size']}×{settings['size']} ...")
        result["inference"][name] = inference_figures(name, settings, device, clock)
    result["training"] = {}
    log(f"training data: {settings['train_images']} synthetic photographs at {settings['size']} "
        "...")
    x_all, y_all = synthetic_batch(settings["train_images"], settings["size"])
    for label, bf16 in (("fp32", False), ("bf16_autocast", True)):
        if clock.over():
            result["training"][label] = {"status": "skipped", "reason": "time budget"}
            continue
        log(f"training XS ({label}) ...")
        result["training"][label] = training_figures(x_all, y_all, settings, device, bf16)
    result["seconds"] = round(clock.elapsed(), 1)
    return result


def summary(result):
    tests = result["tests"].get("summary", result["tests"].get("reason"))
    lines = [f"{result['environment'].get('gpu', result['environment']['device'])}, "
             f"{result['size']}×{result['size']}, {result['seconds']} s; tests: {tests}"]
    for name, variants in result["inference"].items():
        cells = []
        for variant, row in variants.items():
            if row["status"] != "ok":
                cells.append(f"{variant} skipped")
            elif "fps" in row:
                cells.append(f"{variant} {row['fps']} fps")
            else:
                cells.append(f"{variant} {row['images_per_s']} img/s (batch {row['batch']})")
        lines.append(f"{name}: " + ", ".join(cells))
    for label, row in result["training"].items():
        lines.append(f"train XS {label}: " + (f"{row['images_per_s']} img/s, peak "
                                              f"{row['peak_memory_mib']} MiB, "
                                               f"loss {row['loss_first']} -> {row['loss_last']}"
                                               if row["status"] == "ok" else row["reason"]))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description="GPU figures for docs/performance.md")
    parser.add_argument("--json", default="gpu_check.json", help="where to write the result")
    parser.add_argument("--dry-run", action="store_true", help="a tiny version on the CPU")
    parser.add_argument("--budget", type=float, default=420.0,
                        help="seconds before later steps are skipped")
    parser.add_argument("--skip-tests", action="store_true", help="do not run pytest -m cuda")
    args = parser.parse_args(argv)
    try:
        result = gpu_check(args.dry_run, args.budget, not args.skip_tests,
                           log=lambda text: print(text, file=sys.stderr, flush=True))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with atomic_write(args.json, "w") as file:
        json.dump(result, file, indent=2)
    print(summary(result))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
