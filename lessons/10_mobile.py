# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 10 — Mobile: parameters, megabytes and speed
#
# **At a glance**
#
# - **You will learn to**
#   - count the shipped model's parameters and megabytes in fp32, fp16 and int8
#   - set its multiply-accumulates against a measured matrix-multiply rate
#   - fold batch norm in NumPy, export to ONNX and compare the speed of the inference paths
#   - run the int8 model the project ships and compare its maps with the fp32 model's
# - **Prerequisites**: lesson 4 (P(b, k) and MACs); lesson 3 for batch norm.
# - **Time on a laptop CPU**: < 1 min to run top to bottom; about 100 min for the six exercises,
#   plus the reading.
# - **Difficulty**: intermediate.
# - **Paper**:
#   [Siebert & Rostalski, MIDL 2021](https://openreview.net/group?id=MIDL.io/2021/Conference),
#   U²-XS-Net's 0.29 M parameters and its 44 fps on a GPU.
#
# Diabetic retinopathy screening happens where the patients are: in a clinic far from a
# hospital, with a hand-held fundus camera and, often, a phone. Siebert & Rostalski
# (MIDL 2021) shrink U²-Net to **U²-XS-Net** so that the lesion maps could be computed
# right there, on a phone-class processor, without a server. Whether a network fits such
# a device is a matter of four numbers, and of the software that runs it:
#
# 1. **Storage**: how many megabytes its weights take (fp32, fp16, int8).
# 2. **Arithmetic**: how many multiply-accumulates (MACs) one photograph costs, and what
#    the processor's best arithmetic rate makes of them: a floor under the time.
# 3. **Memory at run time**: the feature maps (activations), which, as we will see, weigh
#    far more than the weights.
# 4. **Speed as measured**: the same network runs several times faster or slower
#    depending on how it is executed (eager PyTorch, an optimized PyTorch path, ONNX
#    Runtime).
#
# This lesson computes each one for XS with four outputs (MA, HE, EX, SE), derives
# batch-norm folding (the first step of every inference optimization) in NumPy, exports
# the network to an ONNX file, and times three inference paths on this CPU.
#
# You will need: lesson 3 (REBNCONV: convolution, batch norm, ReLU) and lesson 4 (the XS
# width $b = 8$, the parameter count $P(b, k)$, MACs per stage).

# %%
import copy
import tempfile
import time
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import onnx
import torch

from data_prep.shipped import idrid_root
from u2net_mini import counting, export, fold, inference, model, reference, roofline
from u2net_mini.checkpoint import load_model
from u2net_mini.lesions import LESIONS
from u2net_mini.quantize import calibration_batches
from u2net_mini.shipped import WEIGHTS_DIR, provenance, shipped_checkpoints

torch.set_num_threads(1)  # one thread: every timing below is one core's, on a busy machine too
torch.manual_seed(0)
rng = np.random.default_rng(0)
np.set_printoptions(precision=5, suppress=True)
began = time.perf_counter()
workspace = tempfile.TemporaryDirectory(prefix="lesson10-")  # deleted when the kernel stops
work = Path(workspace.name)  # every file of this lesson goes here
print("files of this lesson go to", work)

# %% [markdown]
# ## The paper's claim
#
# The paper's U²-XS-Net has **0.29 M parameters**, about 150 times fewer than U²-Net's
# 44 M, with an AUPR close to the larger models' (lesson 9), and runs at **44 frames per
# second on an NVIDIA RTX 2080 Ti**, a desktop GPU. The paper does not say at which batch
# size, precision or input size it timed (its photographs go into the network at
# 512 × 512). From the size and that speed it argues that the network suits mobile
# screening.
#
# A desktop GPU is not a phone. The rest of this lesson turns the claim into numbers
# that can be checked on any machine: bytes, MACs, the memory of the feature maps, and
# time as measured here.
#
# Our model is the one the project ships: U²-XS-Net with $k = 4$ outputs, trained on the
# real IDRiD training photographs (`u2net_mini.shipped`; lesson 9 scores it). Its trained
# batch norm matters below: a fresh batch norm is the identity, a trained one is not.

# %%
K = len(LESIONS)  # 4 outputs: MA, HE, EX, SE
[shipped_file] = shipped_checkpoints("mt")
xs, shipped_payload = load_model(shipped_file)  # eval mode
print(xs.config, "from", shipped_file.name, f"({shipped_file.stat().st_size / 1e6:.2f} MB on disk)")

# %% [markdown]
# ## 1. Parameters and megabytes
#
# A parameter is one number; its storage is 4 bytes in float32 (fp32), 2 in float16
# (fp16), 1 in int8. Counting them needs only the shapes of the weight tensors:

# %%
shapes = [tuple(p.shape) for p in xs.parameters()]  # e.g. (32, 3, 3, 3) for En_1's first conv
sizes = np.array([np.prod(shape) for shape in shapes])  # (number of tensors,)
parameters = int(sizes.sum())
print(f"{len(shapes)} parameter tensors, {parameters:,} parameters")
print("library count_parameters    :", counting.count_parameters(xs))
print("formula P(8, 4) (lesson 4)  :", counting.parameter_formula(8, K))
print("largest difference:", max(abs(parameters - counting.count_parameters(xs)),
                                 abs(parameters - counting.parameter_formula(8, K))))
assert parameters == counting.count_parameters(xs) == counting.parameter_formula(8, K)

# %% [markdown]
# **Bytes per precision.** fp16 keeps 11 significant bits and fp32's range down to
# about $6 \cdot 10^{-5}$ (weights of a trained network are far larger), so storing the
# weights in fp16 halves the file at almost no cost; the export below does that on request.
#
# **int8, in principle.** An int8 weight is an integer $q \in [-127, 127]$ standing for
# $q \cdot s$, with a scale $s$ stored beside it in fp32. The simplest choice, one scale
# per tensor, $s = \max |W| / 127$, rounds each weight to the nearest multiple of $s$, an
# error of at most $s / 2$. After folding (section 3), batch norm has multiplied every
# output channel of a convolution by its own factor, so the weights of one tensor span
# channels of very different magnitude, and a single scale wastes most of the 255 levels
# on the small channels. Here is one folded convolution, the first of De_1:

# %%
folded_xs = fold.fold_batchnorm(xs)  # a copy, batch norm merged into the convolutions
weight = folded_xs.decoders[0].conv_in.conv.weight.detach().numpy()  # (32, 64, 3, 3)
# $s = \max |W| / 127$, one scale for the whole tensor
scale = np.abs(weight).max() / 127  # ()
q = np.round(weight / scale).astype(np.int8)  # (32, 64, 3, 3), integers in [-127, 127]
restored = q.astype(np.float32) * scale  # (32, 64, 3, 3)
error = np.abs(restored - weight)  # (32, 64, 3, 3)
channel_range = np.abs(weight).max(axis=(1, 2, 3))  # (32,): largest |W| of each output channel
print(f"scale {scale:.3g}; largest rounding error {error.max():.3g} <= s/2 = {scale / 2:.3g}")
print(f"largest |W| per output channel: from {channel_range.min():.3f} to {channel_range.max():.3f}")
print(f"levels used by the smallest channel: {2 * int(np.abs(q[channel_range.argmin()]).max()) + 1} of 255")
print(f"relative error of that channel: {error[channel_range.argmin()].max() / channel_range.min():.2%}")

# %% [markdown]
# Running int8 weights takes more than storing them: the feature maps must be quantized
# too (with scales calibrated on real photographs), and the device needs integer
# convolution kernels. Section 4 runs the int8 file the project ships; exercise 4 improves
# the scales of one tensor. What each precision would take, for the three sizes of lesson 4:

# %%
networks = {"XS (b = 8)": xs, "small (b = 16)": model.u2net_small(K), "full U²-Net": model.u2net_full(K)}
counts = {name: counting.count_parameters(network) for name, network in networks.items()}
bytes_per_value = {"fp32": 4, "fp16": 2, "int8": 1}
print(f"{'':>15} {'parameters':>12}" + "".join(f" {p:>9}" for p in bytes_per_value))
for name, count in counts.items():
    print(f"{name:>15} {count:12,}" + "".join(f" {count * v / 1e6:6.2f} MB" for v in bytes_per_value.values()))

disk = roofline.disk_bytes(xs)  # what torch.save(state_dict) writes, fp32 and fp16
buffers = sum(b.numel() * b.element_size() for b in xs.buffers())  # running mean, variance, counters
print(f"\nXS state_dict on disk: {disk['fp32'] / 1e6:.2f} MB fp32 = {parameters * 4 / 1e6:.2f} MB of "
      f"parameters + {buffers / 1e6:.2f} MB of batch-norm buffers + the names and the file format")

fig, ax = plt.subplots(figsize=(8, 3.6))
width = 0.25
for i, (precision, size) in enumerate(bytes_per_value.items()):
    ax.bar(np.arange(len(counts)) + (i - 1) * width, [c * size / 1e6 for c in counts.values()], width,
           label=precision)
ax.set_xticks(np.arange(len(counts)), list(counts))
ax.set_yscale("log")
ax.set(ylabel="weights (MB, log scale)", title="storage of the weights, four outputs")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# XS in fp32 is 1.17 MB of weights, smaller than one JPEG of a fundus photograph; the
# original U²-Net needs 176 MB. Storage was never XS's problem.
#
# ## 2. MACs, FLOPs and the arithmetic floor
#
# A 3 × 3 convolution from $a$ to $c$ channels on an $h \times w$ map makes
# $c\,h\,w$ outputs, each a sum of $9a$ products: $9\,a\,c\,h\,w$ multiply-accumulates.
# One MAC is two floating-point operations (FLOP), a multiply and an add. For the first
# convolution of En_1 (3 → 32 channels) at 512 × 512, by hand:

# %%
first = xs.encoders[0].conv_in.conv  # 3 -> 32 channels, 3 × 3
by_hand = 9 * first.in_channels * first.out_channels * 512 * 512  # 9 a c h w
per_layer = counting.conv_macs_per_layer(xs, 512, 512)  # {conv name: MACs}, in running order
print(f"first convolution: by hand {by_hand:,} MACs, library {per_layer['encoders.0.conv_in.conv']:,}")
macs_512 = sum(per_layer.values())
print(f"all {len(per_layer)} convolutions at 512 × 512: {macs_512 / 1e9:.2f} G MACs = {2 * macs_512 / 1e9:.1f} GFLOP")

# %% [markdown]
# The cost grows with the area of the input. For a side that is a multiple of 32 (each
# of the five poolings then halves it exactly) the MACs scale exactly as
# $(\text{size} / 512)^2$; this lesson times the network at 160 × 160:

# %%
SIZE = 160  # small enough for a lesson; 5 × 32
macs = counting.conv_macs(xs, SIZE, SIZE)
predicted = macs_512 * (SIZE / 512) ** 2
print(f"{SIZE} × {SIZE}: counted {macs:,} MACs, predicted from 512 × 512 {predicted:,.0f}; "
      f"largest difference {abs(macs - predicted):.0f}")

# %% [markdown]
# **The floor.** No implementation can run faster than its arithmetic at the best rate
# the processor reaches. A large matrix multiply is the most favourable work there is
# (each number loaded is used hundreds of times), so its rate is a fair "best": time
# $n^3$ MACs of an $n \times n$ product on this core.
#
# Timings on a shared machine vary with what else runs: read every figure below as one
# sample. We keep the fastest of several tries, since the floor asks what the core *can*
# do, and load only slows it down.

# %%
n = 512
a = torch.randn(n, n)  # (n, n)
b = torch.randn(n, n)  # (n, n)
a @ b  # warm-up
tries = []
for _ in range(7):
    start = time.perf_counter()
    a @ b  # (n, n): n³ MACs = 2 n³ FLOP
    tries.append(time.perf_counter() - start)
matmul_gflops = 2 * n**3 / min(tries) / 1e9
print(f"{n} × {n} matrix multiply, 1 thread: {matmul_gflops:.0f} GFLOP/s at best")
# $t \ge \mathrm{FLOP} / \mathrm{rate}$
floor_ms = {size: 1000 * 2 * m / (matmul_gflops * 1e9) for size, m in ((SIZE, macs), (512, macs_512))}
for size, ms in floor_ms.items():
    print(f"arithmetic floor at {size} × {size}: {ms:.0f} ms, at most {1000 / ms:.1f} frames per second")

# %% [markdown]
# **The other floor: memory traffic.** Every layer also reads its inputs from memory and
# writes its output. `roofline.memory_traffic` counts those bytes (each operation reading its
# inputs and writing its output once, on PyTorch's "meta" device, which computes shapes
# only), and a large copy measures how fast this machine moves bytes:

# %%
source = torch.empty(16 << 20)  # (16 Mi,) float32 = 64 MiB, far beyond the caches
target = torch.empty_like(source)  # (16 Mi,)
target.copy_(source)
tries = []
for _ in range(5):
    start = time.perf_counter()
    target.copy_(source)
    tries.append(time.perf_counter() - start)
bandwidth_gbs = 2 * source.numel() * 4 / min(tries) / 1e9  # each byte read once and written once
del source, target
traffic = sum(roofline.memory_traffic(inference.optimize_model(xs), SIZE).values())  # bytes, folded model
print(f"copy: {bandwidth_gbs:.0f} GB/s; XS at {SIZE} × {SIZE} moves {traffic / 1e6:.0f} MB: "
      f"memory floor {1000 * traffic / (bandwidth_gbs * 1e9):.1f} ms")
print(f"arithmetic intensity of XS: {2 * macs / traffic:.1f} FLOP per byte; "
      f"this machine's balance: {matmul_gflops / bandwidth_gbs:.1f} FLOP per byte")

# %% [markdown]
# XS does more FLOP per byte it moves than the machine's balance point (the rate of
# arithmetic divided by the rate of memory), so a perfect implementation would be bound
# by arithmetic: the arithmetic floor is the one to compare with.
#
# ## 3. Folding batch norm into the convolution
#
# At inference, batch norm uses fixed running statistics $\mu_o$, $\sigma^2_o$: it is an
# affine map per output channel $o$, and an affine map after a convolution is another
# convolution. With $z = W * x + b$:
#
# $$\mathrm{BN}(z)_o = \gamma_o \frac{z_o - \mu_o}{\sqrt{\sigma_o^2 + \epsilon}} + \beta_o
#   = s_o\,(W_o * x) + s_o (b_o - \mu_o) + \beta_o, \qquad s_o = \frac{\gamma_o}{\sqrt{\sigma_o^2 + \epsilon}}$$
#
# so $W'_o = s_o W_o$ and $b'_o = s_o (b_o - \mu_o) + \beta_o$. One layer and one pass
# over the map disappear, and $\gamma$, $\beta$ with them. In NumPy, float64, for the first
# REBNCONV of En_1:

# %%
block = xs.encoders[0].conv_in  # REBNCONV: conv 3 -> 32, bn, relu
conv64, bn64 = copy.deepcopy(block.conv).double(), copy.deepcopy(block.bn).double()
W = conv64.weight.detach().numpy()  # (32, 3, 3, 3)
bias = conv64.bias.detach().numpy()  # (32,)
gamma, beta = bn64.weight.detach().numpy(), bn64.bias.detach().numpy()  # (32,), (32,)
mean, var = bn64.running_mean.numpy(), bn64.running_var.numpy()  # (32,), (32,)

# $s_o = \gamma_o / \sqrt{\sigma_o^2 + \epsilon}$
s = gamma / np.sqrt(var + bn64.eps)  # (32,)
# $W'_o = s_o W_o$
W_folded = s[:, None, None, None] * W  # (32, 3, 3, 3)
# $b'_o = s_o (b_o - \mu_o) + \beta_o$
b_folded = s * (bias - mean) + beta  # (32,)

x_small = rng.standard_normal((2, 3, 24, 24))  # (B, 3, H, W)
two_layers = reference.batchnorm_eval(reference.conv2d(x_small, W, bias, padding=1), gamma, beta, mean, var)  # (2, 32, 24, 24)
one_layer = reference.conv2d(x_small, W_folded, b_folded, padding=1)  # (2, 32, 24, 24)
print("largest difference, BN(conv(x)) vs folded conv(x):", np.abs(two_layers - one_layer).max())

# %% [markdown]
# ### Compare with the library
#
# `fold.fold_conv_bn` does the same in torch; `fold.fold_batchnorm` applies it to every
# REBNCONV of the network (and `inference.optimize_model` starts with it).

# %%
library = fold.fold_conv_bn(conv64, bn64)  # nn.Conv2d, float64
difference = max(np.abs(W_folded - library.weight.detach().numpy()).max(),
                 np.abs(b_folded - library.bias.detach().numpy()).max())
print("largest difference, our W', b' vs fold.fold_conv_bn:", difference)
assert difference < 1e-12

x_64 = torch.from_numpy(rng.standard_normal((1, 3, 64, 64), dtype=np.float32))  # (1, 3, 64, 64)
with torch.no_grad():
    whole = (xs(x_64)[0] - folded_xs(x_64)[0]).abs().max().item()  # fused logits, float32
print(f"largest difference of the fused logits, XS vs folded XS (float32): {whole:.1e}")
print(f"parameters: {counting.count_parameters(xs):,} -> {counting.count_parameters(folded_xs):,} "
      f"(gamma and beta of {sum(m.num_features for m in xs.modules() if isinstance(m, torch.nn.BatchNorm2d))} "
      f"batch-norm channels gone)")

# %% [markdown]
# ## 4. Export: one file for a device
#
# A device needs neither PyTorch nor the side outputs: only the map of probabilities,
# $\hat y = \sigma(z_{\mathrm{fused}})$. `export.export_onnx` folds batch norm, wraps the
# fused output in the sigmoid, writes an ONNX graph (dynamic batch, height and width) and,
# before writing, runs it in ONNX Runtime against torch on random inputs. On the command
# line: `python -m u2net_mini.export --checkpoint C --onnx model.onnx [--fp16]`.

# %%
reports = {
    "fp32": export.export_onnx(xs, work / "xs.onnx"),
    "fp16 weights": export.export_onnx(xs, work / "xs_fp16.onnx", fp16=True),
}
for name, report in reports.items():
    print(f"{name:>12}: {report['bytes'] / 1e6:.2f} MB, ONNX Runtime vs torch: "
          f"max |Δy_hat| = {report['max_abs_diff']:.1e} (allowed {report['tolerance']:g})")

graph = onnx.load(work / "xs.onnx").graph
operations = Counter(node.op_type for node in graph.node)
convolutions = sum(isinstance(m, torch.nn.Conv2d) for m in xs.modules())
print("operations in the graph:", dict(operations.most_common()))
print(f"Conv nodes {operations['Conv']} = nn.Conv2d modules {convolutions}; "
      f"BatchNormalization nodes: {operations['BatchNormalization']} (folded away)")

# %% [markdown]
# **int8, in practice.** `export --int8` quantizes weights (one scale per output channel,
# as in exercise 4) *and* feature maps (one scale per tensor, set from the range each map
# takes on 16 real training photographs), with ONNX Runtime's quantizer; the fusion and the
# sigmoid stay in float, so that $\hat y$ keeps its fine ranking (`u2net_mini/quantize.py`
# says why). The project ships the result for our model. Its maps beside the fp32 model's,
# on the first test photograph:

# %%
int8_file = WEIGHTS_DIR / "xs_mt_int8.onnx"
int8_session = inference.OnnxSession(int8_file, threads=1)
_, [photo_x] = calibration_batches(shipped_payload, idrid_root(), count=1, split="test")  # (1, 3, 512, 512)
y_hat_fp32 = export.torch_probabilities(xs, photo_x)  # (1, 4, 512, 512)
y_hat_int8 = int8_session(photo_x)  # (1, 4, 512, 512)
difference = np.abs(y_hat_int8 - y_hat_fp32)  # (1, 4, 512, 512)
print(f"int8 file: {int8_file.stat().st_size / 1e6:.2f} MB (fp32 ONNX: {reports['fp32']['bytes'] / 1e6:.2f} MB)")
print(f"|Δy_hat| int8 vs fp32 on IDRiD_55: mean {difference.mean():.1e}, "
      f"99.9th percentile {np.quantile(difference, 0.999):.3f}, largest {difference.max():.2f}")
recorded = provenance("xs_mt_int8")["test_512px_square"]
for precision in ("fp32", "int8"):
    aupr = recorded["aupr"][precision]
    print(f"AUPR {precision:>4} on the 27 test photographs: "
          + ", ".join(f"{lesion} {aupr[lesion]:.3f}" for lesion in LESIONS))

# %% [markdown]
# Under a third of the fp32 file, maps that differ by a few $10^{-4}$ on average, and an AUPR
# that moves in the third decimal (the record was scored by `scripts/ship_int8.py`).
# The largest difference is not small: a pixel whose logit sits on a step of the 256-level
# grid of a feature map can jump by tenths. That is why the export checks the *mean*
# difference, and why the AUPR, not one pixel, decides whether int8 ships.
#
# The fp32 file is the folded weights (1.15 MB) plus the graph; with fp16 weights the
# weights halve and the graph does not. `inference.OnnxSession` runs the file without any
# of this project's model code, as `python -m u2net_mini.predict --onnx model.onnx` does.
#
# ## 5. Speed on this CPU
#
# Three ways to run the same network, all taking `(B, 3, H, W)` and returning $\hat y$
# `(B, 4, H, W)`:
#
# - **eager**: the model as trained, in eval mode, `torch.no_grad`, NCHW
#   (`inference.TorchSession(xs, optimize=False)`).
# - **optimized**: `TorchSession(xs)`: batch norm folded, ReLU in place, `channels_last`,
#   `torch.inference_mode`, and freed memory kept for reuse (a process-wide setting of
#   glibc's `malloc`; `docs/performance.md` explains each step).
# - **ONNX Runtime**: the exported file, `inference.OnnxSession`, one thread like torch.
#
# First, do they compute the same thing?

# %%
paths = {
    "eager": inference.TorchSession(xs, optimize=False),
    "optimized": inference.TorchSession(xs),
    "ONNX Runtime": inference.OnnxSession(work / "xs.onnx", threads=1),
}
x = rng.standard_normal((1, 3, SIZE, SIZE), dtype=np.float32)  # (1, 3, 160, 160)
y_hat = {name: session(x) for name, session in paths.items()}  # each (1, 4, 160, 160)
for name in ("optimized", "ONNX Runtime"):
    print(f"largest difference, {name} vs eager: {np.abs(y_hat[name] - y_hat['eager']).max():.1e}")
assert all(np.abs(y - y_hat["eager"]).max() < 1e-4 for y in y_hat.values())

# %% [markdown]
# Then time them: each path once untimed (the first call sets things up), then five runs
# of each, round-robin, so that a busy moment on the shared machine slows all three
# alike. Four sizes, to see how the time follows the area. Your numbers will differ from
# run to run and from machine to machine; nothing later depends on them.


# %%
def time_paths(paths, x, runs):
    """{name: [seconds, …]}: `runs` calls of every path, round-robin, after one untimed call each."""
    for session in paths.values():
        session(x)
    seconds = {name: [] for name in paths}
    for _ in range(runs):
        for name, session in paths.items():
            start = time.perf_counter()
            session(x)
            seconds[name].append(time.perf_counter() - start)
    return seconds


sizes = (64, 96, 128, SIZE)
timings = {}  # size -> {path: [seconds, …]}
for size in sizes:
    timings[size] = time_paths(paths, rng.standard_normal((1, 3, size, size), dtype=np.float32), runs=5)
floor_by_size = {size: 1000 * 2 * macs * (size / SIZE) ** 2 / (matmul_gflops * 1e9) for size in sizes}  # ms

print(f"{SIZE} × {SIZE}, batch 1, 1 thread (arithmetic floor {floor_by_size[SIZE]:.1f} ms):")
for name, seconds in timings[SIZE].items():
    median = 1000 * np.median(seconds)
    print(f"{name:>13}: median {median:6.1f} ms, fastest {1000 * min(seconds):6.1f} ms, "
          f"{1000 / median:5.1f} fps, {median / floor_by_size[SIZE]:4.1f}× the floor")

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
names = list(paths)
medians = [1000 * np.median(timings[SIZE][name]) for name in names]
spread = np.array([[m - 1000 * min(timings[SIZE][name]), 1000 * max(timings[SIZE][name]) - m]
                   for m, name in zip(medians, names)]).T  # (2, paths): down to the fastest, up to the slowest
left.bar(names, medians, yerr=spread, capsize=4, color=["tab:gray", "tab:blue", "tab:green"])
left.axhline(floor_by_size[SIZE], color="tab:red", label="arithmetic floor")
left.set(ylabel="ms per image", title=f"{SIZE} × {SIZE}, batch 1, one thread (median, fastest–slowest)")
left.legend()
for name, colour in zip(names, ["tab:gray", "tab:blue", "tab:green"]):
    right.plot(np.square(sizes) / 1e3, [1000 * np.median(timings[s][name]) for s in sizes], "o-", color=colour,
               label=name)
right.plot(np.square(sizes) / 1e3, [floor_by_size[s] for s in sizes], "--", color="tab:red", label="arithmetic floor")
right.set(xlabel="thousands of pixels (64², 96², 128², 160²)", ylabel="median ms per image",
          title="time follows the area")
right.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# How to read it (with your own numbers in mind):
#
# - All paths grow roughly in proportion to the pixels, like the MACs; at the smallest
#   sizes a fixed cost per call (hundreds of small operations, each with its own
#   overhead) weighs more.
# - The optimized path and ONNX Runtime usually come closer to the floor than eager does.
#   ONNX Runtime rewrites the graph (convolution and ReLU fused, a blocked channel layout
#   for its kernels); the optimized torch path removes batch norm's extra pass and
#   allocations.
# - A path may even dip under the "floor". The floor is set by one matrix multiply of one
#   size as torch runs it, not by the peak of the silicon: ONNX Runtime's convolution
#   kernels can keep the core busier than that product does. It is a yardstick, not a law.
# - At 512 × 512 the gaps are wider. The project's benchmark (`python -m u2net_mini.bench`,
#   2 threads, a quiet minute, `docs/performance.md`) measured eager 448 ms, optimized
#   158 ms, ONNX Runtime 127 ms at a floor of about 130 ms, and bf16 99 ms on a CPU that
#   computes bfloat16 natively. There, a 32-channel map is 32 MiB, and eager PyTorch
#   spends about half its time having the kernel hand it fresh memory for maps that large
#   (page faults), which the optimized path avoids by reusing freed memory. At 160 × 160
#   a map is 3.1 MiB and that cost is much smaller.

# %% [markdown]
# ## 6. What an edge device needs
#
# **Memory for activations.** Every stage writes a map of $4b$ channels at its own
# resolution: at stride $t$ (En_1 and De_1: 1, En_2 and De_2: 2, …, En_6: 32) a map of
# $4b \cdot (\text{size}/t)^2$ numbers. By hand, and from the stages' actual outputs:

# %%
b_xs = 8
strides = {f"En_{l}": 2 ** (l - 1) for l in range(1, 7)} | {f"De_{l}": 2 ** (l - 1) for l in range(1, 6)}
stage_bytes = {stage: 4 * b_xs * (SIZE // t) ** 2 * 4 for stage, t in strides.items()}  # fp32: 4 bytes

recorded = {}
hooks = [module.register_forward_hook(lambda m, i, out, stage=stage: recorded.update({stage: out.numel() * 4}))
         for stage, module in zip([f"En_{l}" for l in range(1, 7)] + [f"De_{l}" for l in range(1, 6)],
                                  list(xs.encoders) + list(xs.decoders))]
with torch.no_grad():
    xs(torch.from_numpy(x))
for hook in hooks:
    hook.remove()
print(f"stage outputs at {SIZE} × {SIZE} (fp32):",
      {stage: f"{value / 1e6:.2f} MB" for stage, value in stage_bytes.items()})
print("largest difference, by hand vs recorded:", max(abs(stage_bytes[s] - recorded[s]) for s in strides))

# %% [markdown]
# At 512 × 512, one full-resolution stage output is $32 \cdot 512^2 \cdot 4$ bytes =
# 33.6 MB (32 MiB), about **29 times all the weights**, and it is not alone: when De_1
# begins, En_1's output (kept for this moment), De_2's output upsampled to full size, and
# their concatenation (64 channels) are all in memory, $4b + 4b + 8b = 16b$ channels at
# full size, 134 MB in fp32: a lower bound on the peak. The benchmark measured a peak of
# about 285 MB for the optimized path at 512 × 512 (`docs/performance.md`). Weights are
# fixed; activations grow with the area of the input:

# %%
sizes_plot = np.arange(64, 1025, 32)  # (S,) input sides
weights_mb = parameters * 4 / 1e6
full_map_mb = 4 * b_xs * sizes_plot.astype(float) ** 2 * 4 / 1e6  # (S,) one 4b-channel map, fp32
at_de1_mb = 16 * b_xs * sizes_plot.astype(float) ** 2 * 4 / 1e6  # (S,) the 16b channels alive when De_1 begins

fig, ax = plt.subplots(figsize=(7, 4))
ax.loglog(sizes_plot, np.full(len(sizes_plot), weights_mb), label="all weights, fp32")
ax.loglog(sizes_plot, full_map_mb, label="one full-size stage output (32 channels), fp32")
ax.loglog(sizes_plot, full_map_mb / 2, ":", label="the same in fp16")
ax.loglog(sizes_plot, at_de1_mb, label="alive when De_1 begins (128 channels), fp32")
ax.axvline(512, color="gray", lw=0.5)
ax.set(xlabel="input side (px)", ylabel="MB", title="XS: weights against activations")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# **Arithmetic.** The paper's 44 frames per second, if they were single images at
# 512 × 512, mean $44 \times 26.3$ GFLOP ≈ 1.16 TFLOP per second of convolution arithmetic,
# sustained. Set that against the rate measured above:

# %%
gflop_512 = 2 * macs_512 / 1e9
print(f"44 fps × {gflop_512:.1f} GFLOP = {44 * gflop_512:.0f} GFLOP/s sustained")
print(f"this core's matrix multiply: {matmul_gflops:.0f} GFLOP/s -> at most {matmul_gflops / gflop_512:.1f} fps at 512 × 512; "
      f"44 fps would need {44 * gflop_512 / matmul_gflops:.0f} such cores running at their best")

macs_32 = {name: counting.conv_macs(network, 32, 32) for name, network in networks.items()}  # scale by (size/32)^2
fig, ax = plt.subplots(figsize=(7, 4))
for name, m32 in macs_32.items():
    ceiling = matmul_gflops * 1e9 / (2 * m32 * (sizes_plot / 32) ** 2)  # (S,) fps at the floor
    ax.loglog(sizes_plot, ceiling, label=name)
ax.axhline(44, color="black", ls="--", lw=1, label="the paper's 44 fps (RTX 2080 Ti)")
ax.axhline(1, color="tab:red", ls=":", lw=1, label="1 photograph per second")
ax.axvline(512, color="gray", lw=0.5)
ax.set(xlabel="input side (px)", ylabel="frames per second, at best",
       title=f"ceiling at this core's {matmul_gflops:.0f} GFLOP/s, batch 1")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# What this says about a phone, by reasoning rather than by measurement (we have no phone
# here):
#
# - A phone's CPU has a few cores, runs on a battery and slows down when it heats up; it
#   does not sustain more arithmetic per core than the server core measured here. So 44
#   fps at 512 × 512 is out of reach of a phone's CPU by a wide margin; the paper's figure
#   says the network is cheap for a desktop GPU, not what a phone does.
# - **Screening does not need 44 fps.** A photograph per eye, analysed in a second or
#   two, is enough. That needs of the order of 10–30 GFLOP per second, sustained, at
#   512 × 512: in reach of one good core running close to its floor, which is why the
#   software path matters as much as the network (compare eager with ONNX Runtime above).
# - The levers, each measurable with this project's tools: a smaller input (time falls
#   with the area, at a cost to the microaneurysms, lesson 2); fp16 or bf16 arithmetic,
#   or int8 on a device with a neural accelerator; cheaper full-resolution stages
#   (lesson 4: De_1 alone is half of the MACs).
# - **Memory**: ~1 MB of weights, but a few hundred MB of activations at 512 × 512 in
#   fp32. A runtime that frees each map as soon as its last reader has run, and fp16
#   maps, keep a phone's memory budget within reach.

# %%
print(f"lesson run time: {time.perf_counter() - began:.0f} s")

# %% [markdown]
# ## Summary
#
# - **Storage**: XS has 291,532 parameters (288,684 after folding): 1.17 MB in fp32,
#   0.58 MB in fp16, about 0.3 MB in int8; the ONNX file is 1.33 MB (0.77 MB with fp16
#   weights, 0.39 MB in int8, shipped as `u2net_mini/weights/xs_mt_int8.onnx`). The
#   original U²-Net needs 176 MB in fp32.
# - **Arithmetic**: 13.13 G MACs = 26.3 GFLOP per 512 × 512 image, scaling with the
#   area. Divided by the best rate of a matrix multiply it gives a floor under the
#   time; XS moves few enough bytes per FLOP that this floor, not memory traffic, binds.
# - **Folding**: $W'_o = s_o W_o$, $b'_o = s_o (b_o - \mu_o) + \beta_o$ with
#   $s_o = \gamma_o / \sqrt{\sigma_o^2 + \epsilon}$; our NumPy lines agree with
#   `fold.fold_conv_bn` to rounding.
# - **Speed**: the same network, same results (to ~1e-7), runs at different speeds
#   depending on the path; the optimized torch path and ONNX Runtime come close to the
#   arithmetic floor, eager stays above it. Timings on a shared machine vary: compare
#   paths measured together, round-robin.
# - **An edge device** needs memory for the activations (tens of MB per map at 512 ×
#   512, more than 100× the weights at the peak) more than for the weights, and an arithmetic rate
#   that a phone's CPU reaches for a photograph every second or two, not for the paper's
#   44 fps, which were measured on a desktop GPU.

# %% [markdown]
# ## Exercises
#
# 1. **Implementation, about 20 min.** Batch norm can also come *before* a convolution. Write
#    `fold_bn_into_next_conv(gamma, beta, mean, var, weight, bias, eps)`: NumPy arrays of a batch
#    norm on $C$ channels and a **1 × 1** convolution $C \to O$ after it (`weight` `(O, C, 1,
#    1)`, `bias` `(O,)`); return `(weight', bias')` of one convolution equal to `conv(bn(x))`.
# 2. **Implementation, about 20 min.** Write `largest_tensor_bytes(network, size,
#    bytes_per_value=4)`: the bytes of the largest single tensor that any module of `network`
#    (the network itself included) takes as input or returns, for one `(1, 3, size, size)` input.
#    Use forward hooks. Print its value for `xs` at 512 × 512 next to the weights' bytes.
# 3. **Experiment, about 20 min.** Write `predicted_macs(network, size)`: the MACs of
#    `network` at size × size for a size that is a multiple of 32, predicted from one count at 32
#    × 32; and `largest_size_for(network, fps, gflops_per_s)`: the largest multiple of 32 (0 if
#    none) at which the arithmetic floor allows `fps` frames per second at a rate of
#    `gflops_per_s`. Print the answer for XS at 1 fps and at 44 fps with this core's
#    `matmul_gflops`.
# 4. **Experiment, about 20 min.** Write `quantize_per_channel(weight)`: int8 with one scale
#    per output channel, returning `(q, scale)` with `q` int8 of the shape of `weight` and
#    `scale` of shape `(O,)`. Apply it to the folded De_1 weight `weight` of section 1 and set
#    `per_channel_error` to the relative error of its smallest channel (as printed in section 1
#    for one scale per tensor). What changes, and why?
# 5. **Concept, about 10 min.** The paper reports 44 fps on an RTX 2080 Ti. List what you
#    would need to know to compare that figure with the table of section 5, and say what you
#    would measure to decide whether XS suits a particular phone.
# 6. **Concept, about 10 min.** At 512 × 512 the weights of XS are about 1 MB, its activations
#    a few hundred MB. Why is it the activations that decide whether the model fits a small
#    device, and what could you change to shrink them, without retraining and with it?

# %% [markdown]
# Some checks below compare a fingerprint of your answer with a stored one
# (`answer_digest`: the numbers rounded, then hashed), so they can tell a right answer
# from a wrong one without showing it.

# %%
from lessons.exercises import answer_digest  # the fingerprint the checks were stored with


# %% tags=["solution"] exercise=1
def fold_bn_into_next_conv(gamma, beta, mean, var, weight, bias, eps=1e-5):
    """(weight', bias') of a 1×1 convolution equal to conv(bn(x)), bn in eval mode; NumPy arrays."""
    ### BEGIN SOLUTION
    # bn(x)_c = s_c x_c + t_c with s = γ / sqrt(σ² + ε), t = β − s μ
    s_c = gamma / np.sqrt(var + eps)  # (C,)
    t_c = beta - s_c * mean  # (C,)
    # conv(bn(x))_o = Σ_c W_oc (s_c x_c + t_c) + b_o = Σ_c (W_oc s_c) x_c + (b_o + Σ_c W_oc t_c)
    new_weight = weight * s_c[None, :, None, None]  # (O, C, 1, 1)
    new_bias = bias + weight[:, :, 0, 0] @ t_c  # (O,)
    return new_weight, new_bias
    ### END SOLUTION


# %% tags=["check"] exercise=1
_rng = np.random.default_rng(1)
_g, _be, _mu = _rng.uniform(0.5, 1.5, 5), _rng.normal(size=5), _rng.normal(size=5)  # (5,) each
_var = _rng.uniform(0.5, 2.0, 5)  # (5,)
_W, _b = _rng.normal(size=(3, 5, 1, 1)), _rng.normal(size=3)  # (3, 5, 1, 1), (3,)
_x = _rng.normal(size=(2, 5, 4, 6))  # (2, 5, 4, 6)
_Wf, _bf = fold_bn_into_next_conv(_g, _be, _mu, _var, _W, _b, 1e-5)
assert np.shape(_Wf) == (3, 5, 1, 1) and np.shape(_bf) == (3,), f"shapes (3, 5, 1, 1) and (3,) expected, got {np.shape(_Wf)}, {np.shape(_bf)}"
_expected = reference.conv2d(reference.batchnorm_eval(_x, _g, _be, _mu, _var), _W, _b)  # (2, 3, 4, 6)
_got = reference.conv2d(_x, np.asarray(_Wf), np.asarray(_bf))  # (2, 3, 4, 6)
assert np.allclose(_got, _expected, atol=1e-10), f"conv(bn(x)) differs from the folded conv by {np.abs(_got - _expected).max():.3g}"
# a batch norm that is the identity (γ = sqrt(σ² + ε), β = μ) must leave the convolution as it is
_same_W, _same_b = fold_bn_into_next_conv(np.sqrt(_var + 1e-5), _mu, _mu, _var, _W, _b, 1e-5)
assert np.allclose(_same_W, _W) and np.allclose(_same_b, _b), "an identity batch norm changed the convolution"
print("exercise 1: correct")

# %% tags=["solution"] exercise=2
def largest_tensor_bytes(network, size, bytes_per_value=4):
    """Bytes of the largest tensor any module of `network` reads or returns for a (1, 3, size, size) input."""
    ### BEGIN SOLUTION
    # Why: a forward hook on every module sees that module's inputs and output; the largest
    # element count times the bytes per value is the largest tensor the device must hold at once.
    largest = [0]

    def record(module, inputs, output):
        outputs = output if isinstance(output, (tuple, list)) else (output,)
        for tensor in (*inputs, *outputs):
            if isinstance(tensor, torch.Tensor):
                largest[0] = max(largest[0], tensor.numel())

    hooks = [module.register_forward_hook(record) for module in network.modules()]
    try:
        with torch.no_grad():
            network.eval()(torch.zeros(1, 3, size, size))  # (1, 3, size, size)
    finally:
        for hook in hooks:
            hook.remove()
    return largest[0] * bytes_per_value
    ### END SOLUTION


print(f"XS at 512 × 512: largest tensor {largest_tensor_bytes(xs, 512) / 1e6:.0f} MB in fp32, "
      f"all weights {parameters * 4 / 1e6:.2f} MB")

# %% tags=["check"] exercise=2
for _k, _b, _size in ((4, 8, 64), (4, 1, 96), (1, 2, 64)):
    _net = model.U2Net(_k, _b).eval()
    # De_1 reads 8b channels at full size (the upsampled De_2 and En_1's skip), the fused
    # head 6k channels: the largest tensor is whichever is wider
    _expected = max(8 * _b, 6 * _k, 3) * _size * _size
    for _bytes in (4, 2):
        _got = largest_tensor_bytes(_net, _size, _bytes)
        assert _got == _expected * _bytes, f"U2Net(k={_k}, b={_b}) at {_size}, {_bytes} bytes per value: got {_got}"
print("exercise 2: correct")

# %% tags=["solution"] exercise=3
def predicted_macs(network, size):
    """MACs at size × size (a multiple of 32), from one count at 32 × 32."""
    ### BEGIN SOLUTION
    # every pooling halves a multiple of 32 exactly, so each map's area is (size / 32)² times
    return counting.conv_macs(network, 32, 32) * (size // 32) ** 2
    ### END SOLUTION


def largest_size_for(network, fps, gflops_per_s):
    """The largest multiple of 32 at which 2 MACs(size) / rate <= 1 / fps, or 0."""
    ### BEGIN SOLUTION
    per_32 = 2 * counting.conv_macs(network, 32, 32)  # FLOP at 32 × 32
    # fps · per_32 · m² <= rate, with size = 32 m
    m = int(np.sqrt(gflops_per_s * 1e9 / (fps * per_32)))
    while m > 0 and fps * per_32 * m**2 > gflops_per_s * 1e9:  # guard against rounding in the square root
        m -= 1
    while fps * per_32 * (m + 1) ** 2 <= gflops_per_s * 1e9:
        m += 1
    return 32 * m
    ### END SOLUTION


for _fps in (1, 44):
    print(f"XS at {_fps} fps on {matmul_gflops:.0f} GFLOP/s: at most {largest_size_for(xs, _fps, matmul_gflops)} px")

# %% tags=["check"] exercise=3
for _size in (96, 320):
    assert predicted_macs(xs, _size) == counting.conv_macs(xs, _size, _size), \
        f"predicted MACs at {_size} differ from counting.conv_macs: {predicted_macs(xs, _size)}"
for _fps, _rate in ((44, 1160.0), (1, 50.0), (10, 100.0), (1000, 1.0)):
    _s = largest_size_for(xs, _fps, _rate)
    assert isinstance(_s, (int, np.integer)) and _s % 32 == 0 and _s >= 0, f"a multiple of 32 expected, got {_s!r}"
    # FLOP = 2 MACs
    _fits = _s == 0 or _fps * 2 * counting.conv_macs(xs, int(_s), int(_s)) <= _rate * 1e9
    assert _fits, f"{_fps} fps at {_rate} GFLOP/s: {_s} px is too large"
    _next = int(_s) + 32
    assert _fps * 2 * counting.conv_macs(xs, _next, _next) > _rate * 1e9, (
        f"{_fps} fps at {_rate} GFLOP/s: {_next} px would fit too"
    )
print("exercise 3: correct")


# %% tags=["solution"] exercise=4
def quantize_per_channel(weight):
    """Symmetric int8 with one scale per output channel: (q int8 like weight, scale (O,))."""
    ### BEGIN SOLUTION
    scale_o = np.abs(weight).max(axis=tuple(range(1, weight.ndim))) / 127  # (O,)
    scale_o = np.where(scale_o > 0, scale_o, 1.0)  # an all-zero channel: any scale will do
    shape = (-1,) + (1,) * (weight.ndim - 1)
    q_o = np.round(weight / scale_o.reshape(shape)).astype(np.int8)  # (O, …)
    return q_o, scale_o
    ### END SOLUTION


### BEGIN SOLUTION
q_channel, scale_channel = quantize_per_channel(weight)  # (32, 64, 3, 3), (32,)
restored_channel = q_channel * scale_channel[:, None, None, None]  # (32, 64, 3, 3)
smallest = channel_range.argmin()
per_channel_error = (
    np.abs(restored_channel[smallest] - weight[smallest]).max() / channel_range[smallest]
)
# Every channel now uses all 255 levels, so the error of each is at most half a step of
# its own range (1/254 of its largest weight) instead of half a step of the whole tensor's:
# the small channels gain most.
### END SOLUTION
print(f"relative error of the smallest channel: one scale {error[channel_range.argmin()].max() / channel_range.min():.2%}, "
      f"one per channel {per_channel_error:.2%}")

# %% tags=["check"] exercise=4
_w = (
    np.random.default_rng(2).normal(size=(6, 4, 3, 3))
    * np.array([0.01, 0.1, 1, 3, 0.5, 2])[:, None, None, None]
)  # (6, 4, 3, 3)
_q, _s = quantize_per_channel(_w)
assert np.asarray(_q).dtype == np.int8 and np.shape(_q) == _w.shape, (
    f"q must be int8 of shape {_w.shape}, got {np.asarray(_q).dtype} {np.shape(_q)}"
)
assert np.shape(_s) == (6,), f"one scale per output channel expected, got shape {np.shape(_s)}"
assert np.all(np.abs(np.asarray(_q, dtype=int)).max(axis=(1, 2, 3)) == 127), (
    "every channel must use the full range ±127"
)
assert np.all(
    np.abs(_q * np.asarray(_s)[:, None, None, None] - _w)
    <= np.asarray(_s)[:, None, None, None] / 2 + 1e-12
), "the rounding error must be at most half a step of the channel's scale"
assert 0 < per_channel_error <= 0.5 / 127 + 1e-9, (
    f"at most half a step of ±127 relative to the channel, got {per_channel_error}"
)
assert answer_digest(per_channel_error, digits=3) == "3d3b94ea84a4", (
    f"per_channel_error must be the relative error of De_1's smallest channel, got {per_channel_error}"
)
print("exercise 4: correct")

# %% [markdown] tags=["solution"] exercise=5
# ### BEGIN SOLUTION
# To compare: the batch size (a GPU at batch 16 does far more images per second than at
# batch 1; a phone processes one photograph at a time), the precision (fp32, fp16 with
# tensor cores, mixed), the input size of the timing (the paper's inputs are 512 × 512,
# but the timing's size is not stated), what the clock covered (the forward pass only, or also copying the image
# to the GPU and the result back, preprocessing, the sigmoid and thresholding), whether
# the first (warm-up) calls were excluded, and the software (eager PyTorch, TensorRT, …).
# Even then, 44 fps says that XS needs ~1.16 TFLOP/s of sustained arithmetic for that
# rate; a GPU has it, a phone's CPU does not, as section 6 reasons.
#
# For a particular phone, measure on the phone: export the model (`export`, fp32, fp16
# weights or `--int8`; `--ort` writes ONNX Runtime Mobile's format), run it with the
# runtime the app will use (ONNX Runtime Mobile, or the vendor's accelerator) at the input size the screening needs, batch 1, after warm-up,
# and record the median latency over many runs, the peak memory, and the latency after a
# few minutes of continuous use (phones slow down when warm). Also check that the maps
# agree with the fp32 ones closely enough that AUPR on a test set does not move (the
# project's rules: bf16 by less than 0.005, int8 by at most 0.01).
# ### END SOLUTION

# %% [markdown] tags=["solution"] exercise=6
# ### BEGIN SOLUTION
# The weights are read once and stay put; the activations are what the forward pass
# creates, and at 512 × 512 a single 32-channel map is 33.6 MB, with several alive at
# once (the skips kept for the decoders, the concatenations). If the peak does not fit
# the memory the operating system grants an app, the model cannot run at all, whatever
# its weights weigh; and every byte written is also time and energy.
#
# Without retraining: a runtime that frees (or reuses) each map as soon as its last
# reader has run and plans the memory ahead (ONNX Runtime's arena does); in-place
# operations (the ReLU written over the convolution's output); folding batch norm (one
# map per block less); fp16 or bf16 maps (half the bytes); a smaller input (bytes fall
# with the area); processing the photograph in tiles, at the cost of the receptive field
# at the tile borders (lesson 4). With retraining: fewer channels at full resolution
# (En_1, De_1, De_2 produce the large maps), a lower input resolution, or int8 maps
# with quantization-aware training.
# ### END SOLUTION
