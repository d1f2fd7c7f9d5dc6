r"""
# Benchmark: how fast each inference path runs, and what bounds it

    python -m u2net_mini.bench --model xs --size 512 --device cpu --batch 1 --json bench.json

Not part of the paper, which reports 44 frames per second for U²-XS-Net on an RTX 2080 Ti
without saying how it was measured. This measures, for one model and input size:

- the model and the machine (`roofline.py`): parameters, size on disk, convolution
  multiply-accumulates (MACs; 1 MAC = 2 FLOP), the bytes its layers read and write, and
  the rates of a large matrix multiply (fp32, bf16, int8) and of a large copy, so that the
  roofline floors $t \ge \mathrm{FLOP} / \mathrm{rate}$ and
  $t \ge \mathrm{bytes} / \mathrm{bandwidth}$ can be set beside the measured times
  (docs/performance.md);
- for each inference path: latency (median and minimum of `--runs` after `--warmup`) and
  frames per second at `--batch`, throughput at `--throughput-batch`, peak memory of one
  call, the minor page faults of one warm call (fresh pages the kernel had to zero and
  map), and the largest difference of its y_hat from eager torch's.

Paths (`--paths`, comma-separated, or `all`; by default all but `compile`, so that a run
at 256 px answers in about a minute):

- `eager`: the model as trained: eval mode, NCHW, `torch.no_grad`;
- `folded`: `inference.optimize_model` (folded batch norm, ReLU in place, channels_last),
  `inference_mode`;
- `optimized`: `folded` plus `inference.reuse_freed_memory()`: what `predict` runs;
- `onnxruntime`: the `export` graph in ONNX Runtime (CPU);
- `compile`: `torch.compile` of the optimized model (skipped, with the reason, where it
  fails); not a default: minutes of compiling;
- `bf16`: the optimized model in bfloat16, `TorchSession(bf16=True)` (skipped where not
  native);
- `int8`: the `export --int8` graph in ONNX Runtime (`quantize.py`), calibrated on the
  benchmark's own input;
- `mobile`: the same int8 graph in ONNX Runtime's mobile format (`export --int8 --ort`),
  as a phone app loads it; not a default (the same kernels as `int8`).

With `--checkpoint C --data D` it also scores a trained model on the test split of D in fp32,
bf16 and int8 (`precisions.py`; int8 calibrated on D's training photographs): the project
uses bfloat16 only for a model whose AUPR it moves by less than 0.005, int8 by at most 0.01.

The runs go round-robin over the paths (one run of each, then the next round), so a
machine shared with other work slows every path alike instead of whichever ran during a
busy minute; the load average before and after is recorded in the JSON.
"""

import argparse
import json
import statistics
import sys

import numpy as np
import torch

from data_prep.atomic import atomic_write
from data_prep.checks import check_positive_flag

from .counting import conv_macs, count_parameters
from .inference import TorchSession, optimize_model, reuse_freed_memory
from .inference_paths import PATHS, build_path
from .measure import PeakMemory, minor_faults, timed
from .model import MODEL_NAMES, build_model
from .precisions import aupr_table, precision_aupr
from .roofline import CPU_FEATURES, disk_bytes, load_average, machine_figures, memory_traffic

# What runs when --paths is not given: every path that starts in seconds. `compile` takes
# minutes to compile on a busy machine and is no faster at batch 1, so it runs only by name.
DEFAULT_PATHS = ("eager", "folded", "optimized", "onnxruntime", "bf16", "int8")
MEMORY_REUSE = {"eager": False, "folded": False}  # every other path runs with it on


def benchmark(model_name="xs", size=512, device="cpu", batch=1, runs=10, warmup=2,
              throughput_batch=None, paths=DEFAULT_PATHS, out_ch=4, seed=0, log=print):
    """Run the benchmark; returns the result dict (the JSON). See the module's docstring."""
    device = _check_arguments(model_name, size, device, batch, runs, warmup, paths)
    throughput_batch = throughput_batch or (16 if device.type == "cuda" else 4)
    torch.manual_seed(seed)
    model = build_model(model_name, out_ch).eval()
    result = {
        "model": model_figures(model, model_name, out_ch, size),
        "input": {"size": size, "batch": batch, "throughput_batch": throughput_batch,
                  "device": str(device), "runs": runs, "warmup": warmup},
        "load_average_before": load_average(),
    }
    log(f"measuring the machine ({device}) ...")
    result["machine"] = dict(machine_figures(str(device)))
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(  # (B, 3, s, s)
        rng.standard_normal((batch, 3, size, size), dtype=np.float32))
    x_big = torch.from_numpy(  # (T, 3, s, s)
        rng.standard_normal((throughput_batch, 3, size, size), dtype=np.float32))

    functions, figures = {}, {}
    for name in paths:
        log(f"building path {name} ...")
        try:
            functions[name], extra = build_path(name, model, device, x)
            figures[name] = {"status": "ok", **extra}
        except RuntimeError as error:
            figures[name] = {"status": "skipped", "reason": str(error)}
            log(f"  skipped: {error}")
    reference = TorchSession(model, device=device, optimize=False)(x)  # (B, C, s, s) eager
    for name, function in functions.items():
        figures[name].update(_first_calls(name, function, x, reference, device, warmup))
    log(f"timing {len(functions)} paths round-robin: {runs} runs at batch {batch}, "
        f"{max(1, runs // 2)} at batch {throughput_batch} ...")
    latencies = _round_robin(functions, x, device, runs)
    for name, function in functions.items():  # one untimed call at the larger batch first
        reuse_freed_memory(MEMORY_REUSE.get(name, True))
        function(x_big)
    big = _round_robin(functions, x_big, device, max(1, runs // 2))
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
            figures[name]["speedup_vs_eager"] = round(
                figures[name]["fps"] / (batch / statistics.median(latencies["eager"])), 2)
    result["paths"] = figures
    result["best"] = max(functions, key=lambda name: figures[name]["fps"]) if functions else None
    result["load_average_after"] = load_average()
    result["floors_ms"] = floors_ms(result["model"], result["machine"], batch)
    return result


def _check_arguments(model_name, size, device, batch, runs, warmup, paths):
    """The torch device, after every argument of `benchmark` is checked (ValueError)."""
    if model_name not in MODEL_NAMES:
        raise ValueError(f"model must be one of {MODEL_NAMES}, got {model_name!r}")
    for label, value, low in (("size", size, 32), ("batch", batch, 1), ("runs", runs, 1),
                              ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{label} must be an int >= {low}, got {value!r}")
    unknown = [name for name in paths if name not in PATHS]
    if unknown or not paths:
        raise ValueError(f"paths must be a non-empty selection of {PATHS}, got {list(paths)}")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA device")
    return device


def model_figures(model, model_name, out_ch, size):
    """What the model asks at size × size: parameters, bytes on disk, MACs, bytes moved."""
    macs = conv_macs(model, size, size)
    traffic = {"eager": memory_traffic(model, size),
               "optimized": memory_traffic(optimize_model(model), size)}
    return {"name": model_name, "out_ch": out_ch, "parameters": count_parameters(model),
            "disk_bytes": disk_bytes(model), "conv_macs": macs, "gflop": round(2 * macs / 1e9, 2),
            "traffic_bytes": {path: sum(ops.values()) for path, ops in traffic.items()},
            "traffic_by_op": traffic}


def floors_ms(model, machine, batch):
    r"""The roofline floors of one batch, in ms: $2 \cdot \mathrm{MACs} / \mathrm{rate}$ in fp32
    and int8, and the optimized path's bytes over the copy bandwidth."""
    floors = {
        "arithmetic": 1000 * 2 * model["conv_macs"] * batch / (machine["matmul_gflops_fp32"] * 1e9),
        "memory_traffic": 1000 * model["traffic_bytes"]["optimized"] * batch
                          / (machine["copy_bandwidth_gbs"] * 1e9),
    }
    if machine.get("matmul_gops_int8"):
        floors["arithmetic_int8"] = (1000 * 2 * model["conv_macs"] * batch
                                     / (machine["matmul_gops_int8"] * 1e9))
    return {name: round(value, 1) for name, value in floors.items()}


def _first_calls(name, function, x, reference, device, warmup):
    """Peak memory and difference from eager of a first call, then warm-up, then the page
    faults of one warm call: what every later call pays."""
    reuse_freed_memory(MEMORY_REUSE.get(name, True))
    with PeakMemory(device) as memory:
        y_hat = function(x)  # (B, C, s, s)
    figures = {"max_abs_diff_vs_eager": float(np.abs(y_hat - reference).max()),
               "peak_memory_mb": None if memory.peak_bytes is None
               else round(memory.peak_bytes / 2**20, 1)}
    for _ in range(warmup):
        function(x)
    faults = minor_faults()
    function(x)
    if faults is not None:
        figures["page_faults"] = minor_faults() - faults
    return figures


def _round_robin(functions, x, device, rounds):
    """{name: [seconds]}: one timed call of each path per round, so that a busy moment
    slows every path alike."""
    seconds = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            reuse_freed_memory(MEMORY_REUSE.get(name, True))
            seconds[name].append(timed(function, x, device))
    return seconds


def table(result):
    """The result as a Markdown table (one row per path) with two header lines."""
    model, machine, shape = result["model"], result["machine"], result["input"]
    disk, traffic, floors = model["disk_bytes"], model["traffic_bytes"], result["floors_ms"]
    features = ", ".join(machine.get("cpu_features", [])) or "none of " + "/".join(CPU_FEATURES)
    lines = [
        f"{model['name']} (out_ch {model['out_ch']}): {model['parameters']:,} parameters, "
        f"{disk['fp32'] / 1e6:.2f} MB fp32 / {disk['fp16'] / 1e6:.2f} MB fp16 on disk, "
        f"{model['conv_macs'] / 1e9:.2f} G MACs = {model['gflop']:.1f} GFLOP and "
        f"{traffic['eager'] / 1e9:.2f} GB (eager) / {traffic['optimized'] / 1e9:.2f} GB "
        f"(optimized) moved per {shape['size']}×{shape['size']} image",
        f"{machine['device']} ({machine['processor']}; {features}; "
        f"{machine['torch_threads']} threads): matmul {machine['matmul_gflops_fp32']} GFLOP/s "
        f"fp32, {machine['matmul_gflops_bf16']} bf16, {machine['matmul_gops_int8']} GOP/s int8; "
        f"copy {machine['copy_bandwidth_gbs']} GB/s; floors {floors['arithmetic']} ms (fp32 "
        f"arithmetic), {floors.get('arithmetic_int8', '-')} ms (int8), "
        f"{floors['memory_traffic']} ms (memory); load average "
        f"{result['load_average_before']} -> {result['load_average_after']}",
        "",
        f"| path | latency median (ms) | min (ms) | fps at batch {shape['batch']} | images/s at "
        f"batch {shape['throughput_batch']} | peak memory (MB) | speed-up vs eager | "
        f"max abs diff vs eager |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in result["paths"].items():
        if row["status"] != "ok":
            lines.append(f"| {name} | skipped: {row['reason']} | | | | | | |")
            continue
        lines.append(
            f"| {name} | {row['latency_ms_median']:.0f} | {row['latency_ms_min']:.0f} | "
            f"{row['fps']:.2f} | {row['throughput_ips']:.2f} | {row['peak_memory_mb']} | "
            f"{row.get('speedup_vs_eager', '')} | {row['max_abs_diff_vs_eager']:.1e} |"
        )
    return "\n".join(lines)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m u2net_mini.bench",
        description="Benchmark the inference paths of a U²-Net (docs/performance.md).")
    parser.add_argument("--model", choices=MODEL_NAMES, default="xs")
    parser.add_argument("--size", type=int, default=512,
                        help="input height and width (default 512)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=1,
                        help="batch of the latency runs (default 1)")
    parser.add_argument("--throughput-batch", type=int, default=None,
                        help="batch of the throughput runs (4 on CPU, 16 on CUDA)")
    parser.add_argument("--out-ch", type=int, default=4,
                        help="output channels (default 4: MA, HE, EX, SE)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per path (default 10)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed runs per path first (default 2)")
    parser.add_argument("--paths", default=",".join(DEFAULT_PATHS),
                        help=f"comma-separated, from {','.join(PATHS)}, or all")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: one per core)")
    parser.add_argument("--json", default=None, help="write the result here")
    parser.add_argument("--checkpoint", default=None,
                        help="with --data: score this model in fp32, bf16 and int8")
    parser.add_argument("--data", default=None,
                        help="with --checkpoint: a data folder in IDRiD's layout")
    parser.add_argument("--split", default="test",
                        help="the split --checkpoint is scored on (default test)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.paths == "all":
        paths = PATHS
    else:
        paths = tuple(name.strip() for name in args.paths.split(",") if name.strip())
    try:
        if args.threads is not None:
            torch.set_num_threads(check_positive_flag("--threads", args.threads))
        if (args.checkpoint is None) != (args.data is None):
            raise ValueError("give --checkpoint and --data together, or neither")
        result = benchmark(args.model, args.size, args.device, args.batch, args.runs, args.warmup,
                           args.throughput_batch, paths, args.out_ch,
                           log=lambda text: print(text, file=sys.stderr))
        if args.checkpoint is not None:
            result["precision_aupr"] = precision_aupr(args.checkpoint, args.data, args.split)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table(result))
    if "precision_aupr" in result:
        check = result["precision_aupr"]
        print(f"\nAUPR on {check['images']} {check['split']} photographs of {args.data}, "
              f"by precision:\n")
        print(aupr_table(check))
    if args.json:
        with atomic_write(args.json, "w") as file:
            json.dump(result, file, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
