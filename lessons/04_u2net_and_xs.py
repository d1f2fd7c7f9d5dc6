# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 4 — The U²-Net and its XS width
#
# **At a glance**
#
# - **You will learn to**
#   - assemble U²-Net from RSU blocks: nesting, six side outputs and the fused output
#   - derive the parameter formula P(b, k) and find the paper's 0.29 M in it
#   - count multiply-accumulates and compare the full, small and XS widths
# - **Prerequisites**: lesson 3 (REBNCONV and RSU).
# - **Time on a laptop CPU**: < 1 min to run top to bottom; about 100 min for the six exercises,
#   plus the reading.
# - **Difficulty**: intermediate.
# - **Paper**:
#   [Siebert & Rostalski, MIDL 2021](https://openreview.net/group?id=MIDL.io/2021/Conference):
#   U²-XS-Net and its 0.29 M parameters.
#
# Lesson 3 built one residual U-block (RSU). U²-Net (Qin et al., *Pattern Recognition*
# 2020) **nests** them: a large U-Net whose eleven stages are each an RSU, a U of U's.
# The original has 44 million parameters. Siebert & Rostalski (MIDL 2021) want a model
# that runs on a phone-class processor next to a fundus camera, so they shrink every stage
# to the same narrow width and call the result **U²-XS-Net**: 0.29 M parameters, 150
# times fewer, for the same topology.
#
# This lesson assembles the network in NumPy from the blocks of lesson 3 and checks it
# against the library's torch model; looks at its six side outputs and the fused output;
# derives the parameter count $P(b, k)$ of the family and checks it; counts where the
# multiply-accumulates go, stage by stage; compares full, small and XS; and measures how
# far each stage sees.
#
# You will need: lesson 3 (REBNCONV, RSU-L, RSU-4F, receptive fields) and the shape
# convention `(B, C, H, W)`.

# %%
import copy

import cv2
import matplotlib.pyplot as plt
import numpy as np
import skimage.data
import torch

from u2net_mini import counting, fold, model, reference, rsu
from u2net_mini.lesions import LESIONS
from u2net_mini.model import DECODERS, ENCODERS, SIDE_STAGES, STAGE_BLOCKS

rng = np.random.default_rng(0)
torch.manual_seed(0)
np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## The paper's network
#
# Six encoder stages En_1 … En_6 (RSU-7, RSU-6, RSU-5, RSU-4, RSU-4F, RSU-4F) with 2 × 2
# max-pooling between them, and five decoder stages De_5 … De_1 that mirror them. Each
# decoder stage reads the deeper output, upsampled to its size, concatenated with the
# encoder output of its level. Every stage is an RSU, so the network is a U whose nodes
# are U's:
#
# ```
# x ─ En_1 ─────────────────────────────────────────── De_1 ─ side 1 ─┐
#      pool                                              up            │
#      En_2 ──────────────────────────────────── De_2 ─ side 2 ───────┤
#        pool                                     up                   │
#        En_3 ─────────────────────────── De_3 ─ side 3 ──────────────┤ concat ─ 1×1 conv ─ fused
#          pool                            up                          │
#          En_4 ────────────────── De_4 ─ side 4 ─────────────────────┤
#            pool                   up                                 │
#            En_5 ────────── De_5 ─ side 5 ───────────────────────────┤
#              pool           up                                       │
#              En_6 ─────────────── side 6 ───────────────────────────┘
# ```
#
# **Side outputs.** A 3 × 3 convolution turns the output of De_1, …, De_5 and En_6 into
# $k$ logit maps (one per lesion), upsampled bilinearly to the input size:
# $S^{(1)}, \dots, S^{(6)}$. **Fused output.** A 1 × 1 convolution mixes the six:
#
# $$S_{\text{fuse}, o} = b_o + \sum_{m=1}^{6} \sum_{c=1}^{k} w_{o, (m, c)}\, S^{(m)}_c$$
#
# All seven maps are scored by the loss and summed (deep supervision, lesson 6); at
# inference the fused map is the prediction.
#
# **Widths.** The original U²-Net gives every stage its own (in, mid, out) channels. The
# lightweight family has one knob, the width $b$: mid = $b$ and out = $4b$ in every stage,
# so encoders read $4b$ channels (En_1 reads the 3 colours) and decoders $8b$ (the
# upsampled deeper output and the skip). $b = 8$ is XS, $b = 16$ is "small" (U²-Net† of
# Qin et al.):

# %%
for stage, (c_in, mid, out) in model.stage_channels(8).items():
    print(f"{stage}: {STAGE_BLOCKS[stage]:<6}  in {c_in:3d}  mid {mid:2d}  out {out:2d}")

# %% [markdown]
# ## Assembling the network in NumPy
#
# The blocks are `reference.rsu` (the NumPy RSU-L and RSU-4F that lesson 3 rebuilt and
# checked), `reference.max_pool_2x2` (ceil mode) and `reference.resize_bilinear`. The
# network only wires them: down through the encoders, up through the decoders, six heads
# and the fusion. The input: scikit-image's retina photograph at 64 × 64, so the deepest
# stage, En_6, works on 2 × 2 pixels. The model: XS with $k = 4$ outputs (MA, HE, EX,
# SE), in float64 with random batch-norm statistics (a fresh batch norm would be the
# identity, which would hide mistakes).


# %%
def block_kind(stage):
    """(height, dilated) of a stage's block: "RSU-7" -> (7, False), "RSU-4F" -> (4, True)."""
    kind = STAGE_BLOCKS[stage]
    return int(kind[len("RSU-")]), kind.endswith("F")


retina = cv2.resize(skimage.data.retina(), (64, 64), interpolation=cv2.INTER_AREA)  # (64, 64, 3) uint8
x = retina.transpose(2, 0, 1)[None] / 255.0 - 0.5  # (1, 3, 64, 64) float64
xs = reference.randomize_batchnorm(model.u2net_xs(out_ch=4).double(), rng)
state = reference.numpy_state_dict(xs)
print("x:", x.shape, " XS parameters:", counting.count_parameters(xs))


# %%
def u2net_numpy(state, x):
    """The seven logit maps (fused, side 1 … side 6) of a U2Net in eval mode, and every stage's output."""
    stages = {}
    h = x
    for level, stage in enumerate(ENCODERS):
        if level > 0:
            h = reference.max_pool_2x2(h)  # (B, C, ceil(H_l / 2), ceil(W_l / 2))
        h = reference.rsu(state, f"encoders.{level}", h, *block_kind(stage))  # (B, 4b, H_l, W_l)
        stages[stage] = h
    for level in reversed(range(len(DECODERS))):  # De_5 first: it reads En_6 and En_5
        skip = stages[ENCODERS[level]]  # (B, 4b, H_l, W_l)
        joined = np.concatenate([reference.resize_bilinear(h, skip.shape[2:]), skip], axis=1)  # (B, 8b, H_l, W_l)
        h = reference.rsu(state, f"decoders.{level}", joined, *block_kind(DECODERS[level]))  # (B, 4b, H_l, W_l)
        stages[DECODERS[level]] = h
    sides = []
    for m, stage in enumerate(SIDE_STAGES):
        logits = reference.conv2d(stages[stage], state[f"sides.{m}.weight"], state[f"sides.{m}.bias"], padding=1)  # (B, k, H_l, W_l)
        sides.append(reference.resize_bilinear(logits, x.shape[2:]))  # (B, k, H, W): $S^{(m+1)}$
    stacked = np.concatenate(sides, axis=1)  # (B, 6k, H, W)
    # $S_{fuse,o} = b_o + \sum_{m,c} w_{o,(m,c)} S^{(m)}_c$: a 1×1 convolution is a weighted sum per pixel
    fused = np.einsum("oc,bchw->bohw", state["fuse.weight"][:, :, 0, 0], stacked) + state["fuse.bias"][None, :, None, None]  # (B, k, H, W)
    return (fused, *sides), stages


outputs, stages = u2net_numpy(state, x)
for stage, h in stages.items():
    print(f"{stage}: {h.shape}")
print("seven outputs:", [o.shape for o in outputs])

# %% [markdown]
# The encoders halve the map five times, 64 → 2; each decoder returns to the size of its
# skip. All seven outputs have the input's size and $k = 4$ channels.
#
# ## Compare with the library
#
# The torch model `model.U2Net` and the project's own NumPy forward pass
# (`reference.forward_numpy`) on the same weights:

# %%
with torch.no_grad():
    outputs_torch = [o.numpy() for o in xs(torch.from_numpy(x))]  # 7 × (1, 4, 64, 64)
outputs_reference = reference.forward_numpy(state, xs.config, x)  # 7 × (1, 4, 64, 64)
names = ["fused"] + [f"side {m}" for m in range(1, 7)]
gaps = [np.abs(ours_map - torch_map).max() for ours_map, torch_map in zip(outputs, outputs_torch)]
for name, gap in zip(names, gaps):
    print(f"{name:>7}: largest difference with the torch model {gap:.2e}")
print("largest difference over the seven outputs, ours vs torch       :", max(gaps))
print("largest difference over the seven outputs, ours vs forward_numpy:",
      max(np.abs(ours_map - reference_map).max() for ours_map, reference_map in zip(outputs, outputs_reference)))
assert max(gaps) < 1e-9

# %% [markdown]
# ## Six side outputs and the fused output
#
# The MA channel of the seven maps. The weights are random, so the maps show resolution,
# not lesions: side $m$ comes from a stage with output stride $2^{m-1}$ (side 6 from
# En_6, stride 32), and the deeper the stage, the coarser its map before upsampling. The
# fused map mixes fine and coarse.

# %%
strides = [1, 1, 2, 4, 8, 16, 32]  # fused, then the sides: De_1 … De_5 and En_6
fig, axes = plt.subplots(1, 8, figsize=(16, 2.6))
axes[0].imshow(retina)
axes[0].set_title("input, 64 × 64")
for ax, name, output, stride in zip(axes[1:], names, outputs, strides):
    ax.imshow(output[0, LESIONS.index("MA")], cmap="viridis")
    ax.set_title(f"{name}\n(stride {stride})" if name != "fused" else "fused", fontsize=9)
for ax in axes:
    ax.axis("off")
fig.suptitle("logits of the MA channel, untrained XS")
plt.tight_layout(rect=(0, 0, 1, 0.88))
plt.show()

# %% [markdown]
# ## Counting parameters: $P(b, k)$
#
# Parameters are the convolution weights and biases and batch norm's $\gamma$ and $\beta$
# (the running mean and variance are statistics, not trained). We count from the smallest
# part up.
#
# **One REBNCONV** $a \to c$: $9ac$ weights, $c$ biases, $c$ values of $\gamma$ and $c$
# of $\beta$: $9ac + 3c$.


# %%
def rebnconv_params(a, c):
    """Parameters of a 3×3 REBNCONV a -> c: 9ac weights + c biases + c gammas + c betas."""
    return 9 * a * c + 3 * c


for a, c in ((3, 32), (32, 8), (16, 8)):
    print(f"REBNCONV {a:2d} -> {c:2d}: ours {rebnconv_params(a, c):5d}, library {counting.count_parameters(rsu.REBNCONV(a, c))}")

# %% [markdown]
# **One RSU-L(in, b, 4b)** has 2·L REBNCONVs:
#
# | convolution | channels | how many |
# |---|---|---|
# | $F_1$ (`conv_in`) | in → 4b | 1 |
# | encoder level 0 | 4b → b | 1 |
# | encoder levels 1 … L−2 and the bottom | b → b | L − 1 |
# | decoder levels 1 … L−2 | 2b → b | L − 2 |
# | decoder level 0 | 2b → 4b | 1 |
#
# Adding up the table: $36\,\text{in}\,b + (27L + 63)\, b^2 + (6L + 18)\, b$
# ($b^2$: $36 + 9(L - 1) + 18(L - 2) + 72$; $b$: $12 + 3 + 3(L - 1) + 3(L - 2) + 12$).
# RSU-4F has the same convolutions as RSU-4 with other dilations: the same count.


# %%
def rsu_params(height, in_ch, b):
    """Parameters of RSU-height(in_ch, b, 4b), convolution by convolution."""
    total = rebnconv_params(in_ch, 4 * b)  # F_1
    total += rebnconv_params(4 * b, b)  # encoder level 0
    total += (height - 1) * rebnconv_params(b, b)  # encoder levels 1 … L-2 and the bottom
    total += (height - 2) * rebnconv_params(2 * b, b)  # decoder levels 1 … L-2
    total += rebnconv_params(2 * b, 4 * b)  # decoder level 0
    return total


largest = 0
for height, dilated in ((7, False), (6, False), (5, False), (4, False), (4, True)):
    for in_ch, b in ((3, 8), (32, 8), (64, 8), (5, 3)):
        block = rsu.RSU(height, in_ch, b, 4 * b, dilated=dilated)
        closed = 36 * in_ch * b + (27 * height + 63) * b**2 + (6 * height + 18) * b
        counted = counting.count_parameters(block)
        largest = max(largest, abs(rsu_params(height, in_ch, b) - counted), abs(closed - counted))
print("largest difference, rsu_params and the closed form vs count_parameters, over 20 blocks:", largest)

# %% [markdown]
# **Eleven stages and the heads.** The stage heights are 7, 6, 5, 4, 4, 4 (encoders) and
# 4, 4, 5, 6, 7 (decoders), $\sum L = 56$; the inputs are 3 (En_1), $4b$ (five encoders)
# and $8b$ (five decoders). The six side heads are 3 × 3 convolutions $4b \to k$ with
# bias, $6(36bk + k)$; the fused head a 1 × 1 convolution $6k \to k$, $6k^2 + k$.


# %%
def u2net_params(b, k, in_ch=3):
    """Parameters of the mid = b, out = 4b U²-Net with k outputs: stage by stage, then the heads."""
    channels = model.stage_channels(b, in_ch)  # {stage: (in, mid, out)}
    stages = sum(rsu_params(block_kind(stage)[0], channels[stage][0], b) for stage in channels)
    sides = 6 * (9 * 4 * b * k + k)  # six 3×3 convolutions 4b -> k, with bias
    fuse = 6 * k * k + k  # 1×1 convolution 6k -> k, with bias
    return stages + sides + fuse


heights = [block_kind(stage)[0] for stage in ENCODERS + DECODERS]  # (11,)
coefficient_b2 = sum(27 * L + 63 for L in heights) + 36 * 4 * 5 + 36 * 8 * 5  # sum (27L + 63), then the inputs 4b and 8b
coefficient_b = sum(6 * L + 18 for L in heights) + 36 * 3  # sum (6L + 18), then En_1's 3 input channels
print(f"sum of L = {sum(heights)};  b² coefficient {coefficient_b2};  b coefficient {coefficient_b}")

# %% [markdown]
# Collecting the terms:
#
# $$P(b, k) = 4365\, b^2 + 642\, b + 216\, b k + 6 k^2 + 7 k$$
#
# ($b^2$: $27 \cdot 56 + 63 \cdot 11 + 720 + 1440 = 4365$; $b$: $6 \cdot 56 + 18 \cdot 11 + 108 = 642$;
# the heads give $216bk + 6k + 6k^2 + k$). For XS with four outputs:
# $P(8, 4) = 279\,360 + 5\,136 + 6\,912 + 96 + 28 = 291\,532$, the paper's 0.29 M.
#
# ## Compare with the library
#
# The formula, our stage-by-stage sum, `counting.parameter_formula` and the parameters of
# the torch model itself, over widths and output counts:

# %%
rows = []
for b in (1, 2, 3, 8, 16):
    for k in (1, 2, 4, 7):
        formula = 4365 * b**2 + 642 * b + 216 * b * k + 6 * k**2 + 7 * k
        rows.append((b, k, formula, u2net_params(b, k), counting.parameter_formula(b, k),
                     counting.count_parameters(model.U2Net(k, b))))
rows = np.array(rows)  # (20, 6): b, k, formula, stage sum, library formula, torch model
print("P(8, 4) =", rows[(rows[:, 0] == 8) & (rows[:, 1] == 4), 2][0])
print("largest difference, formula vs the torch model's parameters:", np.abs(rows[:, 2] - rows[:, 5]).max())
print("largest difference, stage sum and counting.parameter_formula vs the model:",
      max(np.abs(rows[:, 3] - rows[:, 5]).max(), np.abs(rows[:, 4] - rows[:, 5]).max()))

# %% [markdown]
# A second way to the same formula, from the counts alone: $P$ is a polynomial in the
# monomials $b^2, b, bk, k^2, k$, so a least-squares fit to the 20 counted models must
# return its coefficients exactly.

# %%
b_grid, k_grid, counted = rows[:, 0].astype(float), rows[:, 1].astype(float), rows[:, 5].astype(float)  # (20,) each
monomials = np.stack([b_grid**2, b_grid, b_grid * k_grid, k_grid**2, k_grid], axis=1)  # (20, 5)
coefficients, *_ = np.linalg.lstsq(monomials, counted, rcond=None)  # (5,)
print("fitted coefficients of b², b, bk, k², k:", coefficients.round(6))

# %% [markdown]
# ## Full, small and XS
#
# The three models the project names, with four outputs as in the paper's multi-task
# setting. Megabytes in float32: 4 bytes per parameter ($10^6$ bytes to the MB).
# Multiply-accumulates (MACs) of every convolution at 512 × 512, the paper's input size,
# counted by `counting.conv_macs` from the shapes alone (on PyTorch's meta device, so the
# full model costs no arithmetic).

# %%
print(f"{'model':>6} {'width b':>8} {'parameters':>12} {'P(b, 4)':>10} {'MB fp32':>8} {'GMACs at 512':>13}")
comparison = {}
for name in model.MODEL_NAMES:
    network = model.build_model(name, out_ch=4)
    params = counting.count_parameters(network)
    macs = counting.conv_macs(network, 512, 512)
    comparison[name] = (params, macs)
    width = network.width
    formula = f"{counting.parameter_formula(width, 4):,}" if width != "full" else "—"
    print(f"{name:>6} {str(width):>8} {params:12,} {formula:>10} {params * 4 / 1e6:8.2f} {macs / 1e9:13.2f}")
full_params, full_macs = comparison["full"]
xs_params, xs_macs = comparison["xs"]
print(f"XS has {full_params / xs_params:.0f} times fewer parameters than full, and {full_macs / xs_macs:.1f} times fewer MACs")

# %% [markdown]
# XS has about 150 times fewer parameters than the original but only about 11 times
# fewer MACs: parameters go with channels², work goes with channels² **times the map
# size**, and the full model's widest stages (512 channels) are its deepest, smallest
# ones. The full net's count, 44.05 M, is not the 43.87 M the paper quotes; no variant of
# the counting matches it exactly (`docs/model.md`), and the project reports its true count.
#
# ## Where the work goes: MACs per stage
#
# A 3 × 3 convolution $a \to c$ on an $h \times w$ map costs $9\,a\,c\,h\,w$ MACs. Inside an
# RSU the map halves at each level (ceil mode); RSU-4F keeps it. A stage at output stride
# $s$ works on maps $1/s^2$ the size of the input's. By hand, stage by stage:


# %%
def level_sizes(height, width, levels):
    """Map sizes of `levels` levels that each halve the previous one (ceil mode)."""
    sizes = [(height, width)]
    for _ in range(levels - 1):
        height, width = -(-height // 2), -(-width // 2)
        sizes.append((height, width))
    return sizes


def rsu_macs(stage, in_ch, mid, out, height, width):
    """MACs of the stage's RSU on a (1, in_ch, height, width) input: 9·a·c·h·w per convolution."""
    levels, dilated = block_kind(stage)
    sizes = [(height, width)] * (levels - 1) if dilated else level_sizes(height, width, levels - 1)
    area = [h * w for h, w in sizes]  # (L-1,): pixels of each level
    total = 9 * in_ch * out * area[0] + 9 * out * mid * area[0]  # F_1, encoder level 0
    total += sum(9 * mid * mid * a for a in area[1:])  # encoder levels 1 … L-2
    total += 9 * mid * mid * area[-1]  # bottom
    total += sum(9 * 2 * mid * mid * a for a in area[1:])  # decoder levels 1 … L-2
    total += 9 * 2 * mid * out * area[0]  # decoder level 0
    return total


def stage_macs(b, k, size):
    """{stage: MACs} of the width-b network at size × size, the heads together as "heads"."""
    channels = model.stage_channels(b)
    sizes = dict(zip(ENCODERS, level_sizes(size, size, 6)))  # En_l works at stride 2^(l-1)
    sizes.update({decoder: sizes[encoder] for decoder, encoder in zip(DECODERS, ENCODERS)})  # De_l at En_l's size
    macs = {stage: rsu_macs(stage, *channels[stage], *sizes[stage]) for stage in ENCODERS + DECODERS[::-1]}
    sides = sum(9 * 4 * b * k * sizes[stage][0] * sizes[stage][1] for stage in SIDE_STAGES)  # 3×3, 4b -> k, at the stage's size
    macs["heads"] = sides + 6 * k * k * size * size  # and the fused 1×1, 6k -> k, at full size
    return macs


def library_stage_macs(network, size):
    """The library's per-convolution MACs, summed per stage ("encoders.0" is En_1, sides and fuse are heads)."""
    grouped = {}
    for name, macs in counting.conv_macs_per_layer(network, size, size).items():
        group, _, rest = name.partition(".")  # "encoders", "0.conv_in.conv"
        index = rest.split(".")[0]
        stage = {"encoders": f"En_{index and int(index) + 1}", "decoders": f"De_{index and int(index) + 1}"}.get(group, "heads")
        grouped[stage] = grouped.get(stage, 0) + macs
    return grouped


ours = stage_macs(8, 4, 512)
theirs = library_stage_macs(model.u2net_xs(4), 512)
print(f"{'stage':>6} {'by hand':>14} {'library':>14} {'share':>6}")
for stage, value in ours.items():
    print(f"{stage:>6} {value:14,} {theirs[stage]:14,} {value / sum(ours.values()):6.1%}")
print("largest difference, by hand vs counting.conv_macs_per_layer:", max(abs(ours[s] - theirs[s]) for s in ours))

# %%
stage_names = list(ours)  # En_1 … En_6, De_5 … De_1, heads
params_per_stage = {stage: rsu_params(block_kind(stage)[0], model.stage_channels(8)[stage][0], 8)
                    for stage in stage_names[:-1]}
params_per_stage["heads"] = 6 * (36 * 8 * 4 + 4) + 6 * 4 * 4 + 4
fig, (left, right) = plt.subplots(1, 2, figsize=(13, 3.6))
left.bar(stage_names, [params_per_stage[s] / 1e3 for s in stage_names], color="tab:blue")
left.set(ylabel="thousands of parameters", title=f"XS, k = 4: {sum(params_per_stage.values()):,} parameters")
right.bar(stage_names, [ours[s] / 1e9 for s in stage_names], color="tab:orange")
right.set(ylabel="GMACs", title=f"XS, k = 4, 512 × 512: {sum(ours.values()) / 1e9:.2f} GMACs")
for ax in (left, right):
    ax.tick_params(axis="x", rotation=60)
plt.tight_layout()
plt.show()

# %% [markdown]
# The parameters are spread over the stages (the decoders, which read $8b$ channels, a
# little more); the work is not. De_1 alone does about half of it, and En_1, De_1 and De_2
# together four fifths. To make XS faster, make its
# full-resolution stages cheaper; slimming its deep stages saves parameters and almost no
# time.
#
# ## How far each stage sees
#
# `counting.receptive_fields` follows every layer's exact index arithmetic (lesson 3) and
# returns, per stage, the output stride and the receptive field: how many consecutive
# input pixels, along H or W, one output pixel can depend on.

# %%
fields = counting.receptive_fields(xs)
fields_full = counting.receptive_fields(model.u2net_full(4))
print("the same table for XS and full (it depends on the topology only):", fields == fields_full)
for field in fields:
    print(f"{field.stage:>7}: stride {field.stride:2d}, receptive field {field.receptive_field:5d} px")

fig, ax = plt.subplots(figsize=(12, 3.6))
ax.bar([f.stage for f in fields], [f.receptive_field for f in fields],
       color=["tab:blue"] * 6 + ["tab:green"] * 5 + ["tab:gray"] * 7)
ax.axhline(512, color="tab:red", lw=1, label="the 512-pixel input")
ax.axhline(4288, color="black", lw=1, ls="--", label="a full IDRiD photograph, 4288 px wide")
ax.set(ylabel="receptive field (px)", title="receptive field per stage: encoders (blue), decoders (green), heads (gray)")
ax.tick_params(axis="x", rotation=60)
ax.legend(loc="upper left")
plt.tight_layout()
plt.show()

# %% [markdown]
# En_1 alone, one RSU-7, sees 480 pixels; each encoder stage adds a deeper U, and the
# decoders add their own. From En_2 on the field is wider than the 512-pixel input, and
# from En_3 on (1376 px, more than 2 · 512) even a pixel in one corner can depend on the
# opposite corner. From De_5 on the field is wider than a whole IDRiD photograph. That is
# what the architecture allows; how much of it a trained network actually uses (the
# effective receptive field) is usually far smaller and depends on the weights.

# %% [markdown]
# ## Summary
#
# - U²-Net is a U-Net of RSU blocks: six encoder stages (RSU-7, 6, 5, 4, 4F, 4F), five
#   decoder stages, six side outputs (3 × 3 conv, upsampled) and a fused output (1 × 1
#   conv over the six). All seven are logits of the input's size.
# - One width $b$ (mid = $b$, out = $4b$) gives the family
#   $P(b, k) = 4365 b^2 + 642 b + 216 b k + 6 k^2 + 7 k$: XS ($b = 8$) has 291,532
#   parameters for four lesions, 1.17 MB in float32; small ($b = 16$) 1.14 M; the
#   original 44.05 M.
# - Parameters are spread evenly over the stages, work is not: a stage at stride $s$
#   costs $1/s^2$, so the full-resolution stages En_1, De_1, De_2 do most of XS's
#   13.13 GMACs at 512 × 512.
# - Receptive fields depend on the topology only: 480 px after En_1, 6624 px at the
#   fused output, more than a whole photograph.
# - Our NumPy network agrees with `model.U2Net` to about $10^{-15}$; our counts agree
#   with `counting` exactly.

# %% [markdown]
# ## Exercises
#
# 1. **Implementation, about 25 min.** At inference, `fold.fold_batchnorm` merges each batch
#    norm into the convolution before it, and $\gamma$, $\beta$ disappear. Write
#    `folded_parameters(b, k)`: the parameter count of the folded width-b model with k outputs,
#    as a formula (count the batch-norm channels of an RSU-L first).
# 2. **Concept, about 15 min.** The parameters of XS are spread almost evenly over its stages,
#    but De_1 does half of the work. Why? If XS had to run twice as fast on a phone, which stages
#    would you change, and how?
# 3. **Experiment, about 10 min.** Compute `macs_by_size`, a dict from the input size (256,
#    500, 512, 1024) to the MACs of XS with four outputs (`counting.conv_macs`), and print each
#    one's ratio to 512 next to $(\text{size} / 512)^2$. Set
#    `scales_with_area_for_multiples_of_32` to `True` or `False` from what you see: do 256 and
#    1024 cost exactly $(\text{size}/512)^2$ times 512's MACs? Why does 500 not?
# 4. **Implementation, about 15 min.** Write `largest_width(budget_bytes, k)`: the largest
#    width $b$ whose model with $k$ outputs fits in `budget_bytes` bytes in float32 (use
#    `counting.parameter_formula`).
# 5. **Experiment, about 20 min.** Make `averaged`, a copy of `xs` whose fused head returns,
#    for each lesion, the plain mean of the six side outputs of that lesion (set `fuse.weight`
#    and `fuse.bias`). Run it on `x` and keep its seven outputs as NumPy arrays in
#    `outputs_averaged`. What would training lose with such a fixed head?
# 6. **Concept, about 15 min.** Side 6 reads the deepest stage, yet its receptive field (4096
#    px) is the smallest of the six sides. Why? And why is the fused output's field equal to side
#    1's?

# %% [markdown]
# Some checks below compare a fingerprint of your answer with a stored one
# (`answer_digest`: the numbers rounded, then hashed), so they can tell a right answer
# from a wrong one without showing it.

# %%
from lessons.exercises import answer_digest  # the fingerprint the checks were stored with


# %% tags=["solution"] exercise=1
def folded_parameters(b, k):
    """Parameters of fold.fold_batchnorm(model.U2Net(k, b)), without building it."""
    ### BEGIN SOLUTION
    # An RSU-L has 2L REBNCONVs: out channels 4b (F_1, decoder 0) twice, b the other 2L - 2
    # times, so 8b + (2L - 2) b = (2L + 6) b batch-norm channels, each with gamma and beta.
    # Over the eleven stages: sum (2L + 6) b = (2 * 56 + 6 * 11) b = 178 b channels.
    return counting.parameter_formula(b, k) - 2 * 178 * b
    ### END SOLUTION


# %% tags=["check"] exercise=1
for _b, _k in ((1, 1), (3, 2), (8, 4), (5, 7)):
    _expected = counting.count_parameters(fold.fold_batchnorm(model.U2Net(_k, _b)))
    _answer = folded_parameters(_b, _k)
    assert _answer == _expected, f"b = {_b}, k = {_k}: {_answer} is not the folded model's count"
print("exercise 1: correct")

# %% [markdown] tags=["solution"] exercise=2
# ### BEGIN SOLUTION
# A convolution's parameters depend on its channels only ($9ac$), its MACs on its
# channels times the pixels of its map ($9ac\,hw$). With one width for every stage, all
# stages have about the same parameters, but a stage at stride $s$ works on $1/s^2$ of the
# pixels: De_1 and En_1 run at full resolution, and De_1 reads $8b$ channels and runs
# RSU-7's three full-size convolutions on them. To halve the time, change the full- and
# half-resolution stages: fewer channels in En_1/De_1/De_2 (a smaller out than $4b$ there),
# a lower input resolution, or cheaper convolutions at full size (depthwise-separable).
# Slimming En_4 … De_5 saves parameters but almost no time.
# ### END SOLUTION

# %% tags=["solution"] exercise=3
### BEGIN SOLUTION
macs_by_size = {size: counting.conv_macs(model.u2net_xs(4), size, size) for size in (256, 500, 512, 1024)}
for size, macs in macs_by_size.items():
    print(f"{size:5d}: ratio to 512 {macs / macs_by_size[512]:.5f}, (size/512)^2 = {(size / 512) ** 2:.5f}")
scales_with_area_for_multiples_of_32 = (
    macs_by_size[1024] == 4 * macs_by_size[512] and 4 * macs_by_size[256] == macs_by_size[512]
)
# 500 is not a multiple of 32: pooling in ceil mode rounds 125 up to 63, 63 up to 32, …,
# so the deep maps are a little larger than 500/512 of 512's and the ratio exceeds (500/512)^2.
### END SOLUTION

# %% tags=["check"] exercise=3
assert set(macs_by_size) == {256, 500, 512, 1024}, f"sizes 256, 500, 512, 1024 expected, got {set(macs_by_size)}"
for _size in (500, 1024):
    _expected = counting.conv_macs(model.u2net_xs(4), _size, _size)
    assert macs_by_size[_size] == _expected, f"size {_size}: {macs_by_size[_size]} is not XS's MACs (k = 4)"
assert answer_digest(macs_by_size) == "f4c51ddcd2d5", "the MACs at 256 are not XS's (k = 4)"
assert isinstance(scales_with_area_for_multiples_of_32, (bool, np.bool_)), "scales_with_area_for_multiples_of_32 must be True or False"
assert answer_digest(scales_with_area_for_multiples_of_32) == "3cbc87c7681f", (
    "compare the ratios of 256 and 1024 with (size / 512)^2 again"
)
print("exercise 3: correct")

# %% tags=["solution"] exercise=4
def largest_width(budget_bytes, k):
    """The largest b with 4 * P(b, k) <= budget_bytes (float32), or 0 if not even b = 1 fits."""
    ### BEGIN SOLUTION
    # Why: P(b, k) grows with b, so the widths that fit are 1 ... b*; counting up until the next
    # width no longer fits finds b*.
    b = 0
    while 4 * counting.parameter_formula(b + 1, k) <= budget_bytes:
        b += 1
    return b
    ### END SOLUTION


# %% tags=["check"] exercise=4
for _budget, _k in ((1_000_000, 4), (1_166_128, 4), (5_000_000, 1), (20_000, 2), (100_000_000, 4)):
    _b = largest_width(_budget, _k)
    assert isinstance(_b, (int, np.integer)), f"the width must be an int, got {_b!r}"
    assert _b == 0 or 4 * counting.parameter_formula(int(_b), _k) <= _budget, f"budget {_budget}, k = {_k}: b = {_b} does not fit"
    assert 4 * counting.parameter_formula(int(_b) + 1, _k) > _budget, f"budget {_budget}, k = {_k}: b = {_b} + 1 fits too"
print("exercise 4: correct")

# %% tags=["solution"] exercise=5
### BEGIN SOLUTION
averaged = copy.deepcopy(xs)
with torch.no_grad():
    weight = torch.zeros_like(averaged.fuse.weight)  # (k, 6k, 1, 1)
    for o in range(averaged.out_ch):
        weight[o, o :: averaged.out_ch] = 1 / 6  # input channel m k + o is lesion o of side m + 1
    averaged.fuse.weight.copy_(weight)
    averaged.fuse.bias.zero_()
    outputs_averaged = [o.numpy() for o in averaged(torch.from_numpy(x))]
# A fixed mean gives every side the same say. A learned head weights them per lesion:
# the fine sides 1 and 2 for microaneurysms, the coarse ones for the extent of large
# exudates, and can even subtract a side's blur. Training would lose that choice.
### END SOLUTION

# %% tags=["check"] exercise=5
assert averaged is not xs, "averaged must be a copy of xs, not xs itself"
assert len(outputs_averaged) == 7, f"seven outputs expected, got {len(outputs_averaged)}"
_sides = np.stack([np.asarray(o) for o in outputs_averaged[1:]])  # (6, 1, 4, 64, 64)
assert np.allclose(outputs_averaged[0], _sides.mean(axis=0)), "the fused output is not the mean of the six sides"
assert all(np.allclose(_a, _b) for _a, _b in zip(outputs_averaged[1:], outputs_torch[1:])), \
    "the side outputs changed: only the fused head may differ from xs"
with torch.no_grad():
    assert np.allclose(xs(torch.from_numpy(x))[0].numpy(), outputs_torch[0]), "xs itself was changed: work on a copy"
print("exercise 5: correct")

# %% [markdown] tags=["solution"] exercise=6
# ### BEGIN SOLUTION
# Side 6 is computed from En_6 directly: its pixels have passed through the six encoder
# stages only. Sides 1 … 5 come from decoder stages, and each decoder stage is another RSU
# that reads the deeper output (which already saw everything En_6 saw) and widens the
# field further. De_1 comes last, after all the others, so it sees farthest (6624 px);
# the deepest stage is not the one that sees farthest, the latest one is. The fused 1 × 1
# convolution looks at one pixel of each side map, so its field is the union of the six
# sides' fields, and that union is side 1's, the largest. (Side 1's 3 × 3 head adds
# nothing measurable to De_1's 6624 px: neighbouring pixels of De_1 already depend on the
# same wide window, which the deep, coarse levels set.)
# ### END SOLUTION
