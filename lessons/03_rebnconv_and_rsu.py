# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 3 — REBNCONV and RSU: the blocks of U²-Net
#
# **At a glance**
#
# - **You will learn to**
#   - write a (dilated) convolution, batch norm and ReLU in NumPy and check them against torch
#   - compute a receptive field by hand and from an impulse response
#   - build an RSU block from NumPy parts and match the library's to float64 precision
# - **Prerequisites**: none for the code; lesson 1 for the pictures. Convolutions as in any
#   introduction to CNNs.
# - **Time on a laptop CPU**: < 1 min to run top to bottom; about 105 min for the six exercises,
#   plus the reading.
# - **Difficulty**: intermediate.
# - **Paper**:
#   [Siebert & Rostalski, MIDL 2021](https://openreview.net/group?id=MIDL.io/2021/Conference),
#   the U²-Net blocks it uses unchanged.
#
# Whether a red dot in a fundus photograph is a microaneurysm depends on a few pixels
# (its size, its edge) and on what lies far around it (a dot on a vessel is a vessel
# crossing, not a lesion). A segmentation network has to see both. One 3 × 3 convolution
# sees 3 pixels across; a stack of $n$ of them sees $2n + 1$. To see 480 pixels at full
# resolution a plain stack would need 240 layers.
#
# U-Net sees far by pooling, but only its bottom, at the lowest resolution, sees far.
# U²-Net (Qin et al., *Pattern Recognition* 2020) puts a small U-Net **inside every
# block**: the **residual U-block** RSU-L. Each block mixes fine detail and a wide context
# at its own resolution, for the price of 2·L convolutions, most of them on small maps.
# Siebert & Rostalski (MIDL 2021) use these blocks unchanged; only the number of channels
# shrinks (lesson 4).
#
# This lesson builds the blocks in NumPy: convolution with dilation (first as loops, then
# vectorized), the receptive field of dilated convolutions, REBNCONV (convolution, batch
# norm, ReLU), and an RSU-7 checked against the library's torch block. It ends with the
# residual connection that gives the block its name.
#
# You will need: NumPy, the shape convention `(B, C, H, W)` (B images, C channels,
# H × W pixels) and what a convolution does in words.

# %%
import copy
import time

import cv2
import matplotlib.pyplot as plt
import numpy as np
import skimage.data
import torch
import torch.nn.functional as F

from u2net_mini import counting, reference, rsu

rng = np.random.default_rng(0)
torch.manual_seed(0)
np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## The paper's blocks
#
# **REBNCONV** is a 3 × 3 convolution with dilation $d$ and padding $d$ (so H and W stay),
# batch norm and ReLU:
#
# $$\mathrm{REBNCONV}(x) = \max\!\Big(0,\ \gamma\, \frac{(W *_d x + b) - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta\Big)$$
#
# with the convolution, for output channel $o$, pixel $(h, w)$, taps $i, j \in \{0, 1, 2\}$
# and zero padding $p = d$:
#
# $$(W *_d x)_{b,o,h,w} = \sum_{c} \sum_{i,j} W_{o,c,i,j}\, x_{b,c,\,h + d i - p,\,w + d j - p}$$
#
# **RSU-L** (Qin et al. draw it as a U of height L): an input convolution $F_1$ lifts the
# input to `out` channels; an encoder of L − 1 REBNCONVs (`out → mid`, then `mid → mid`)
# with 2 × 2 max-pooling between levels; a bottom REBNCONV with dilation 2; a decoder of
# L − 1 REBNCONVs, each reading the upsampled deeper map concatenated with the encoder's
# map of the same level (the skip). The block adds $F_1$ back:
#
# $$\mathcal{H}_{RSU}(x) = \mathcal{U}(F_1(x)) + F_1(x)$$
#
# ```
# x ─ F_1 (in→out) ─┬──────────────────────────────────────────────────┐
#                   enc 0 (out→mid) ───────────────── dec 0 (2mid→out) ─ + ─ output
#                     pool                                 up
#                     enc 1 (mid→mid) ───────── dec 1 (2mid→mid)
#                       pool                       up
#                       …  enc L−2 ── bottom (d = 2) ── dec L−2
# ```
#
# **RSU-4F** is RSU-4 with dilations (1, 2, 4 | 8 | 4, 2, 1) instead of pooling, for the
# deep stages where maps are already small.

# %% [markdown]
# ## Convolution with dilation, one loop per symbol
#
# Every sum of the equation as a Python loop: the most direct reading, and slow.


# %%
def conv2d_loops(x, weight, bias, dilation):
    """3×3 (or k×k) convolution, stride 1, padding so that H and W stay; one loop per index."""
    batch, channels, height, width = x.shape
    out_channels, _, kernel, _ = weight.shape
    padding = dilation * (kernel - 1) // 2  # p = d for a 3×3 kernel
    y = np.zeros((batch, out_channels, height, width))  # (B, O, H, W)
    for b in range(batch):
        for o in range(out_channels):
            for h in range(height):
                for w in range(width):
                    total = bias[o]
                    for c in range(channels):
                        for i in range(kernel):
                            for j in range(kernel):
                                row, col = h + dilation * i - padding, w + dilation * j - padding
                                if 0 <= row < height and 0 <= col < width:  # outside: zero padding
                                    total += weight[o, c, i, j] * x[b, c, row, col]
                    y[b, o, h, w] = total
    return y


x_tiny = rng.normal(size=(1, 2, 6, 6))  # (B, C, H, W)
w_tiny = rng.normal(size=(3, 2, 3, 3))  # (O, C, 3, 3)
b_tiny = rng.normal(size=3)  # (O,)
for d in (1, 2):
    ours = conv2d_loops(x_tiny, w_tiny, b_tiny, d)  # (1, 3, 6, 6)
    torchs = F.conv2d(torch.from_numpy(x_tiny), torch.from_numpy(w_tiny), torch.from_numpy(b_tiny),
                      padding=d, dilation=d).numpy()  # (1, 3, 6, 6)
    print(f"dilation {d}: output {ours.shape}, largest difference with torch: {np.abs(ours - torchs).max():.2e}")

# %% [markdown]
# ### Vectorized: one matrix product per tap
#
# For a fixed tap $(i, j)$ the inner sum over $c$ is, at every pixel at once, a matrix
# product of $W_{:,:,i,j}$ (O × C) with the input shifted by $(d i - p, d j - p)$ and
# flattened to C × HW. Nine taps, nine products, and no loop over pixels. On a zero-padded
# copy, the shift is a slice.


# %%
def conv2d_taps(x, weight, bias, dilation):
    """The same convolution: a loop over the k×k taps, each a matrix product over channels."""
    batch, channels, height, width = x.shape
    out_channels, _, kernel, _ = weight.shape
    padding = dilation * (kernel - 1) // 2
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))  # (B, C, H + 2p, W + 2p)
    y = np.zeros((batch, out_channels, height * width))  # (B, O, HW)
    for i in range(kernel):
        for j in range(kernel):
            # $x_{b,c,h+di-p,w+dj-p}$ for every (h, w): a slice of the padded input
            shifted = padded[:, :, dilation * i : dilation * i + height, dilation * j : dilation * j + width]  # (B, C, H, W)
            # $\sum_c W_{o,c,i,j}\, x_{\dots}$
            y += weight[:, :, i, j] @ shifted.reshape(batch, channels, height * width)  # (O, C) @ (B, C, HW) -> (B, O, HW)
    return y.reshape(batch, out_channels, height, width) + bias[None, :, None, None]  # (B, O, H, W)


def best_time(function, *args, repeat=3):
    """The fastest of `repeat` runs, in seconds (the first run pays for warming up)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args)
        times.append(time.perf_counter() - start)
    return min(times), result


x_small = rng.normal(size=(1, 4, 24, 24))  # (B, C, H, W)
w_small = rng.normal(size=(4, 4, 3, 3))  # (O, C, 3, 3)
b_small = rng.normal(size=4)  # (O,)
seconds_loops, slow = best_time(conv2d_loops, x_small, w_small, b_small, 2, repeat=1)  # slow: (1, 4, 24, 24)
seconds_taps, fast = best_time(conv2d_taps, x_small, w_small, b_small, 2)  # fast: (1, 4, 24, 24)
print(f"loops {seconds_loops * 1e3:.1f} ms, taps {seconds_taps * 1e3:.2f} ms on a (1, 4, 24, 24) input")
print(f"largest difference, loops vs taps: {np.abs(slow - fast).max():.2e}")

# %% [markdown]
# ## Compare with the library
#
# `reference.conv2d` is the project's NumPy convolution (the one `forward_numpy` uses);
# torch's `F.conv2d` is what the model runs. On a larger input with dilation 3:

# %%
x_conv = rng.normal(size=(2, 8, 40, 56))  # (B, C, H, W)
w_conv = rng.normal(size=(16, 8, 3, 3))  # (O, C, 3, 3)
b_conv = rng.normal(size=16)  # (O,)
ours = conv2d_taps(x_conv, w_conv, b_conv, 3)  # (2, 16, 40, 56)
library = reference.conv2d(x_conv, w_conv, b_conv, padding=3, dilation=3)  # (2, 16, 40, 56)
torchs = F.conv2d(torch.from_numpy(x_conv), torch.from_numpy(w_conv), torch.from_numpy(b_conv),
                  padding=3, dilation=3).numpy()  # (2, 16, 40, 56)
print("largest difference, ours vs reference.conv2d:", np.abs(ours - library).max())
print("largest difference, ours vs torch F.conv2d   :", np.abs(ours - torchs).max())
assert np.abs(ours - torchs).max() < 1e-10

# %% [markdown]
# ## Receptive fields of dilated convolutions
#
# A 3 × 3 kernel with dilation $d$ reads the pixels at offsets $-d, 0, +d$ along each
# axis: it **spans** $2d + 1$ pixels with the 9 weights of a 3 × 3 kernel. In a stack of
# convolutions (stride 1) the offsets add up, so the output pixel depends on
#
# $$r = 1 + 2 \sum_l d_l$$
#
# consecutive pixels along each axis: its **receptive field**. We can see it: put a single
# 1 (an impulse) in the middle of a zero image and run it through kernels of ones. The
# output is non-zero exactly where an output pixel depends on the impulse, and by the
# symmetry of the kernels that is the receptive field of the middle pixel.


# %%
def impulse_response(dilations, size=41):
    """A centred impulse through a stack of 3×3 all-ones convolutions with these dilations."""
    x = np.zeros((1, 1, size, size))  # (1, 1, size, size)
    x[0, 0, size // 2, size // 2] = 1.0
    for d in dilations:
        x = conv2d_taps(x, np.ones((1, 1, 3, 3)), np.zeros(1), d)  # (1, 1, size, size)
    return x[0, 0]  # (size, size): how many paths lead from the impulse to each pixel


def extent(response):
    """Width of the non-zero part of a response along the columns (first to last, holes included)."""
    columns = np.flatnonzero(response.any(axis=0))  # (n,)
    return int(columns[-1] - columns[0] + 1)


stacks = [(1,), (2,), (4,), (1, 1, 1), (1, 2, 4), (1, 2, 4, 8)]
fig, axes = plt.subplots(1, len(stacks), figsize=(14, 2.8))
for ax, dilations in zip(axes, stacks):
    response = impulse_response(dilations)  # (41, 41)
    ax.imshow(response > 0, cmap="gray")
    ax.set_title(f"d = {dilations}\nr = {extent(response)}", fontsize=9)
    ax.axis("off")
fig.suptitle("input pixels a centre output pixel depends on (white)")
plt.tight_layout(rect=(0, 0, 1, 0.9))
plt.show()

print(f"{'dilations':>14} {'1 + 2 sum d':>12} {'measured':>9}")
for dilations in stacks:
    print(f"{str(dilations):>14} {1 + 2 * sum(dilations):12d} {extent(impulse_response(dilations)):9d}")

# %% [markdown]
# A single dilated convolution reads 9 pixels spread over $2d + 1$: the holes between
# them are filled only by other layers. Dilations 1, 2, 4, 8 double the field at every
# layer and leave no hole: the stack (1, 2, 4) reaches 15 pixels with 3 layers and 27
# weights per channel pair, like a dense 15 × 15 kernel with 225.
#
# The library computes receptive fields exactly, from the index arithmetic of every layer
# (`counting.block_receptive_field`). For one REBNCONV, and for RSU-4F, whose longest path
# is $F_1$ (d = 1), the encoder (1, 2, 4), the bottom (8) and the decoder (4, 2, 1):

# %%
for d in (1, 2, 4):
    print(f"REBNCONV d = {d}: library {counting.block_receptive_field(rsu.REBNCONV(1, 1, d))}, 1 + 2d = {1 + 2 * d}")
rsu4f_path = (1, 1, 2, 4, 8, 4, 2, 1)
print(f"RSU-4F: library {counting.block_receptive_field(rsu.RSU4F(3, 8, 32))}, 1 + 2 sum d = {1 + 2 * sum(rsu4f_path)}")

# %% [markdown]
# ### With pooling: the jump
#
# After a 2 × 2 pooling with stride 2, neighbouring pixels of a map are 2 input pixels
# apart, after two poolings 4: the **jump** $j$ doubles. A 3 × 3 convolution at jump $j$
# adds $2 d j$ to the field, a 2 × 2 pooling adds $j$ (its second pixel), and bilinear
# upsampling from a map at jump $j$ adds $j$ (it mixes two neighbours). This is the
# textbook recurrence $r \leftarrow r + (k - 1)\, d\, j$, along the longest path of an
# RSU-L: down the encoder, through the bottom, up the decoder.


# %%
def rsu_field_recurrence(height):
    """The textbook receptive field of RSU-`height` (pooled), along its deepest path."""
    r, j = 1, 1  # field and jump, in input pixels
    r += 2 * j  # F_1: 3×3, d = 1
    r += 2 * j  # encoder level 0
    for _ in range(1, height - 1):
        r += j  # 2×2 pooling reads a second pixel, one jump away
        j *= 2
        r += 2 * j  # encoder level
    r += 2 * 2 * j  # bottom, d = 2
    r += 2 * j  # deepest decoder level, at the bottom's size
    for _ in range(height - 2):
        r += j  # bilinear upsampling mixes two neighbours of the deeper map
        j //= 2
        r += 2 * j  # decoder level
    return r


for height in (4, 5, 6, 7):
    block = rsu.RSU(height, 3, 8, 32)
    print(f"RSU-{height}: recurrence {rsu_field_recurrence(height):4d}, exact (library) {counting.block_receptive_field(block):4d}")

# %% [markdown]
# An RSU-7 alone sees 480 pixels with 14 convolutions. The recurrence is 4 pixels short
# for RSU-7: it assumes every window is centred on its output pixel, but a 2 × 2 pooling
# window covers pixels $2m$ and $2m + 1$ of the finer map, and the bilinear taps are
# half a pixel off, so at the deep levels the exact windows reach a little further on one
# side. The library follows the exact index arithmetic.

# %% [markdown]
# ## REBNCONV in NumPy
#
# Convolution, batch norm with its running statistics (the network in eval mode), ReLU.
# The weights come from a torch `REBNCONV` through `reference.numpy_state_dict`, a dict
# from the module's names (`conv.weight`, `bn.running_mean`, …) to NumPy arrays.
#
# A fresh batch norm has mean 0, variance 1, $\gamma = 1$, $\beta = 0$; a trained one does
# not. `reference.randomize_batchnorm` draws its statistics at random, with a positive
# shift $\beta$ so that few ReLUs output only zeros: a block whose branches are all zero
# would hide a wrong decoder from the comparison.


# %%
def batchnorm_numpy(x, gamma, beta, mean, var, eps=1e-5):
    r"""$\gamma (x - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta$, one value of each per channel."""
    per_channel = (None, slice(None), None, None)
    return gamma[per_channel] * (x - mean[per_channel]) / np.sqrt(var[per_channel] + eps) + beta[per_channel]  # (B, C, H, W)


def rebnconv_numpy(state, prefix, x, dilation=1):
    """relu(batchnorm(conv3x3_d(x))) with the weights stored under `prefix` in `state`
    ("encoder.0", as `reference.rebnconv` takes it; "" for a lone layer's own state dict)."""

    def key(name):
        return f"{prefix}.{name}" if prefix else name

    y = conv2d_taps(x, state[key("conv.weight")], state[key("conv.bias")], dilation)  # (B, O, H, W)
    y = batchnorm_numpy(y, state[key("bn.weight")], state[key("bn.bias")],
                        state[key("bn.running_mean")], state[key("bn.running_var")])  # (B, O, H, W)
    return np.maximum(y, 0.0)  # (B, O, H, W): ReLU


layer = reference.randomize_batchnorm(rsu.REBNCONV(8, 16, dilation=2).double(), rng)
x_layer = rng.normal(size=(2, 8, 24, 20))  # (B, C, H, W)
ours = rebnconv_numpy(reference.numpy_state_dict(layer), "", x_layer, dilation=2)  # (2, 16, 24, 20)
with torch.no_grad():
    torchs = layer(torch.from_numpy(x_layer)).numpy()  # (2, 16, 24, 20)
print("largest difference, rebnconv_numpy vs rsu.REBNCONV:", np.abs(ours - torchs).max())
print(f"share of outputs the ReLU set to zero: {np.mean(ours == 0):.2f}")

# %% [markdown]
# ## Pooling and upsampling
#
# The encoder halves the map with 2 × 2 max-pooling, stride 2, in **ceil mode**: an odd
# last row or column is pooled on its own, so 45 rows become 23 (floor mode would drop
# the last row). The decoder brings a deeper map back to the exact size of the skip it is
# joined with, by bilinear resizing (`align_corners=False`); `reference.resize_bilinear`
# does that in NumPy. Both on a 5 × 7 map:


# %%
def max_pool_ceil(x):
    """2×2 max-pooling, stride 2, ceil mode: (B, C, H, W) -> (B, C, ceil(H/2), ceil(W/2))."""
    batch, channels, height, width = x.shape
    # pad an odd last row / column with -inf, which never wins a max
    padded = np.pad(x, ((0, 0), (0, 0), (0, height % 2), (0, width % 2)), constant_values=-np.inf)  # (B, C, 2H', 2W')
    out_h, out_w = padded.shape[2] // 2, padded.shape[3] // 2
    return padded.reshape(batch, channels, out_h, 2, out_w, 2).max(axis=(3, 5))  # (B, C, H', W')


x_pool = rng.normal(size=(1, 2, 5, 7))  # (B, C, H, W)
pooled = max_pool_ceil(x_pool)  # (1, 2, 3, 4)
pooled_torch = F.max_pool2d(torch.from_numpy(x_pool), 2, 2, ceil_mode=True).numpy()  # (1, 2, 3, 4)
back = reference.resize_bilinear(pooled, (5, 7))  # (1, 2, 5, 7)
back_torch = F.interpolate(torch.from_numpy(pooled), size=(5, 7), mode="bilinear", align_corners=False).numpy()  # (1, 2, 5, 7)
print(f"pool {x_pool.shape} -> {pooled.shape}, largest difference with torch: {np.abs(pooled - pooled_torch).max()}")
print(f"resize {pooled.shape} -> {back.shape}, largest difference with torch: {np.abs(back - back_torch).max():.2e}")

# %% [markdown]
# ## An RSU-7 from NumPy parts
#
# The input: the retina photograph of scikit-image, shrunk to 64 × 64 and cropped to an
# odd 45 × 61 so that ceil mode shows, scaled to [−0.5, 0.5]. The block: `rsu.RSU(7, 3, 8, 32)`,
# the En_1 stage of U²-XS-Net (3 channels in, mid = 8, out = 32), in float64 with random
# batch-norm statistics.

# %%
retina = cv2.resize(skimage.data.retina(), (64, 64), interpolation=cv2.INTER_AREA)  # (64, 64, 3) uint8
crop = retina[9:54, 2:63]  # (45, 61, 3)
x = (crop.transpose(2, 0, 1)[None] / 255.0 - 0.5).astype(np.float64)  # (1, 3, 45, 61)

block = reference.randomize_batchnorm(rsu.RSU(7, 3, 8, 32).double(), rng)
state = reference.numpy_state_dict(block)
print("x:", x.shape)
print(f"{len(state)} arrays in the state dict, those of F_1:", [name for name in state if name.startswith("conv_in")])


# %% [markdown]
# The block follows the figure: $F_1$, six encoder levels (pooling before all but the
# first), the bottom with dilation 2, six decoder levels from the deepest up, each reading
# `[upsampled deeper map, skip]`, and the residual sum. It keeps every map by name, for
# the shape table and the pictures below.


# %%
def rsu_numpy(state, x, height):
    r"""RSU-`height` (pooled) from NumPy parts: $\mathcal{U}(F_1(x)) + F_1(x)$ and every map by name."""
    maps = {}
    f1 = rebnconv_numpy(state, "conv_in", x)  # (B, out, H, W): $F_1(x)$
    maps["F_1(x)"] = f1
    skips = []
    h = f1
    for level in range(height - 1):
        if level > 0:
            h = max_pool_ceil(h)  # (B, mid, ceil(H_l / 2), ceil(W_l / 2))
        h = rebnconv_numpy(state, f"encoder.{level}", h)  # (B, mid, H_l, W_l)
        maps[f"encoder {level}"] = h
        skips.append(h)
    h = rebnconv_numpy(state, "bottom", h, dilation=2)  # (B, mid, H_deepest, W_deepest)
    maps["bottom"] = h
    for level in reversed(range(height - 1)):
        skip = skips[level]
        h = reference.resize_bilinear(h, skip.shape[2:])  # (B, mid, H_l, W_l): the identity at the deepest level
        h = rebnconv_numpy(state, f"decoder.{level}", np.concatenate([h, skip], axis=1))  # (B, mid or out, H_l, W_l)
        maps[f"decoder {level}"] = h
    maps["U(F_1(x))"] = h
    return h + f1, maps  # (B, out, H, W): $\mathcal{U}(F_1(x)) + F_1(x)$


out, maps = rsu_numpy(state, x, 7)  # (1, 32, 45, 61)
for name, array in maps.items():
    print(f"{name:>10}: {array.shape}")
print(f"{'output':>10}: {out.shape}")

# %% [markdown]
# Down the encoder 45 × 61 becomes 23 × 31, 12 × 16, 6 × 8, 3 × 4 and 2 × 2; the
# bottom works at 2 × 2 with dilation 2 (on so small a map every tap but the centre one
# reads zero padding). Every decoder level comes back to the exact size of its skip.
#
# ## Compare with the library
#
# The same weights, the torch block and the project's own NumPy RSU (`reference.rsu`, which
# reads a whole network's state dict, so its keys get the prefix of a stage, here `block`,
# as in `block.conv_in.conv.weight`; our helper takes its prefix the same way):

# %%
x_torch = torch.from_numpy(x)  # (1, 3, 45, 61)
with torch.no_grad():
    out_torch = block(x_torch).numpy()  # (1, 32, 45, 61)
out_reference = reference.rsu({f"block.{name}": array for name, array in state.items()}, "block", x, 7)  # (1, 32, 45, 61)
print("largest difference, rsu_numpy vs rsu.RSU (torch):", np.abs(out - out_torch).max())
print("largest difference, rsu_numpy vs reference.rsu   :", np.abs(out - out_reference).max())
print(f"largest output value: {np.abs(out_torch).max():.3f}")
assert np.abs(out - out_torch).max() < 1e-10

# %% [markdown]
# ## The U inside the block
#
# One channel of each map (the channel that varies most), drawn at its true size relative
# to the input (one map pixel is one square of the grid of the 45 × 61 input) and on one
# colour scale: the encoder shrinks the photograph, the decoder brings it back to full
# size. Every map comes out of a ReLU, so 0 is the bottom of the scale.

# %%
def strongest_channel(array):
    """The (H, W) channel of a (1, C, H, W) map with the largest standard deviation."""
    return array[0, np.argmax(array[0].std(axis=(1, 2)))]  # (H, W)


top = ["F_1(x)"] + [f"encoder {level}" for level in range(6)]
bottom = ["bottom"] + [f"decoder {level}" for level in reversed(range(6))]
shown = {name: strongest_channel(maps[name]) for name in top + bottom}  # name -> (h, w)
scale = plt.Normalize(0, max(channel.max() for channel in shown.values()))
full_h, full_w = maps["F_1(x)"].shape[2:]
fig, axes = plt.subplots(2, 7, figsize=(16, 4.6), constrained_layout=True)
for row, names in zip(axes, (top, bottom)):
    for ax, name in zip(row, names):
        h, w = shown[name].shape
        # extent in input pixels: a map of h × w pixels covers h × w squares of the input's grid
        image = ax.imshow(shown[name], cmap="magma", norm=scale, extent=(0, w, h, 0))
        ax.set(xlim=(0, full_w), ylim=(full_h, 0), xticks=[], yticks=[])
        ax.set_title(f"{name}: {h}×{w}", fontsize=9)
fig.colorbar(image, ax=axes, shrink=0.8, label="activation (after ReLU)")
fig.suptitle("RSU-7 on a 45 × 61 photograph (random weights), maps at true relative size: "
             "down the encoder (top), up the decoder (bottom)")
plt.show()

# %% [markdown]
# ## The residual
#
# A residual block of ResNet computes $F_2(F_1(x)) + x$. The RSU replaces the plain
# convolution $F_2$ by the U-structure $\mathcal{U}$ and adds $F_1(x)$ instead of $x$: the
# input has `in` channels (3 here) and the output `out` (32), so $x$ itself cannot be
# added, while $F_1(x)$ already has `out` channels. $F_1$ gives local features at full
# resolution; $\mathcal{U}$ adds what the block learned from up to 480 pixels around.

# %%
f1, u = maps["F_1(x)"], maps["U(F_1(x))"]  # (1, 32, 45, 61) each
channel = int(np.argmax(f1[0].std(axis=(1, 2)) * u[0].std(axis=(1, 2))))  # a channel where both branches vary
fig, axes = plt.subplots(1, 4, figsize=(13, 3))
axes[0].imshow(crop)
axes[0].set_title("input (45 × 61)")
for ax, (title, array) in zip(axes[1:], (("$F_1(x)$", f1), ("$\\mathcal{U}(F_1(x))$", u), ("sum: the output", out))):
    ax.imshow(array[0, channel], cmap="magma")
    ax.set_title(f"{title}, channel {channel}")
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()
print(f"size of the two branches (root mean square): F_1 {np.sqrt((f1**2).mean()):.3f}, U {np.sqrt((u**2).mean()):.3f}")

# %% [markdown]
# ## What the U buys
#
# The RSU-7's 14 convolutions run at decreasing sizes. Multiply-accumulates (MACs) of a
# 3 × 3 convolution `a → c` on an $h \times w$ map: $9\, a\, c\, h\, w$. The library counts
# them per convolution (`counting.conv_macs_per_layer`, which works on the shapes only,
# for a float32 block like the model's) at 64 × 64:

# %%
per_layer = counting.conv_macs_per_layer(rsu.RSU(7, 3, 8, 32), 64, 64)  # {name: MACs}
convs = [module for module in block.modules() if isinstance(module, torch.nn.Conv2d)]
all_full_size = sum(9 * conv.in_channels * conv.out_channels * 64 * 64 for conv in convs)
field_u = counting.block_receptive_field(block)
field_flat = 1 + 2 * sum(conv.dilation[0] for conv in convs)  # the bottom keeps its dilation 2
print(f"RSU-7 at 64 × 64: {sum(per_layer.values()) / 1e6:.1f} M MACs in {len(convs)} convolutions, receptive field {field_u} px")
print(f"the same {len(convs)} convolutions all at 64 × 64: {all_full_size / 1e6:.1f} M MACs, receptive field {field_flat} px")
print(f"the U sees {field_u / field_flat:.1f} times farther for {sum(per_layer.values()) / all_full_size:.0%} of the cost")
print(f"a plain stack of 3×3 convolutions needs {-(-(field_u - 1) // 2)} layers to see {field_u} px")

# %% [markdown]
# The deep levels are cheap because their maps are small: the three convolutions at full
# size (`F_1`, encoder 0, decoder 0) do most of the work, and everything below them widens
# the field for little.

# %% [markdown]
# ## Summary
#
# - A convolution is, for each of its $k^2$ taps, a matrix product over channels of a
#   shifted input; dilation $d$ only spaces the taps $d$ pixels apart.
# - A 3 × 3 convolution with dilation $d$ spans $2d + 1$ pixels; in a stack with stride 1
#   the field is $1 + 2 \sum d_l$. Pooling doubles the jump, so deep layers widen the field
#   fast: RSU-7 sees 480 pixels (the textbook recurrence says 476; the library counts the
#   off-centre windows exactly).
# - REBNCONV = 3 × 3 convolution (dilation $d$, padding $d$), batch norm, ReLU.
# - RSU-L = $\mathcal{U}(F_1(x)) + F_1(x)$: a U-Net of height L inside one block, with
#   ceil-mode pooling and resizing to each skip's exact size, so any H and W work.
#   RSU-4F replaces pooling by dilations 1, 2, 4, 8.
# - Our NumPy RSU-7 agrees with `rsu.RSU` and `reference.rsu` to about $10^{-15}$.

# %% [markdown]
# ## Exercises
#
# 1. **Concept, about 10 min.** A 3 × 3 convolution with dilation 2 and a 5 × 5 convolution
#    both span 5 pixels. Compare them: weights per channel pair, input pixels read, and what the
#    dilated one cannot see. When is the dilated one the better choice?
# 2. **Implementation, about 25 min.** Write `depthwise_conv2d(x, weight, dilation)`: each
#    channel convolved with its own 3 × 3 kernel, `weight` of shape `(C, 1, 3, 3)`, no sum over
#    channels, padding $d$, no bias (torch's `F.conv2d(..., groups=C)`). Use one loop over the 9
#    taps, as in `conv2d_taps`.
# 3. **Experiment, about 15 min.** Run `impulse_response` with dilations `(2, 2, 2)` and with
#    `(1, 2, 4)`. Inside the square the receptive field spans, count the pixels whose response is
#    zero: `holes_222` and `holes_124`. Why does RSU-4F use 1, 2, 4, 8 and not 2, 2, 2, 2?
# 4. **Implementation, about 30 min.** Write `rsu4f_numpy(state, x)`: RSU-4F from
#    `rebnconv_numpy` (no pooling, no resizing; encoder dilations 1, 2, 4, bottom 8, decoder 4,
#    2, 1), with the weights of a torch `rsu.RSU4F` as `reference.numpy_state_dict` gives them.
# 5. **Experiment, about 15 min.** Silence the U branch: make `silenced`, a copy of `block`
#    (`copy.deepcopy`) whose last decoder convolution has the batch-norm shift
#    `decoder[0].bn.bias` set to −1000, and run it on `x_torch`: `out_silenced` (a NumPy array).
#    What does the block compute now? Set `silenced_equals_f1` to `True` or `False` from what you
#    computed, by comparing with `f1`.
# 6. **Concept, about 10 min.** U²-Net uses RSU-4F for its two deepest encoder stages (En_5,
#    En_6) and De_5. Why dilation there, and not pooling? Think of the map sizes for a 512 × 512
#    input and for the smallest input the model accepts, 32 × 32.

# %% [markdown]
# Some checks below compare a fingerprint of your answer with a stored one
# (`answer_digest`: the numbers rounded, then hashed), so they can tell a right answer
# from a wrong one without showing it.

# %%
from lessons.exercises import answer_digest  # the fingerprint the checks were stored with


# %% [markdown] tags=["solution"] exercise=1
# ### BEGIN SOLUTION
# The dilated 3 × 3 kernel has 9 weights per pair of channels, the 5 × 5 kernel 25, and
# the dilated one reads 9 of the 25 pixels: only those at even offsets (−2, 0, 2 along each
# axis). A detail that falls between its taps, a one-pixel microaneurysm next to the
# centre, is invisible to it alone; the 5 × 5 kernel sees every pixel. The dilated kernel
# is the better choice when it is stacked on layers that have already filled the holes
# (dilations 1, 2, 4, …): the stack then reaches far with few weights and few MACs, and
# without pooling, so the map keeps its resolution — which is what RSU-4F does.
# ### END SOLUTION

# %% tags=["solution"] exercise=2
def depthwise_conv2d(x, weight, dilation):
    """Each channel of x (B, C, H, W) convolved with its own kernel weight[c, 0] (3×3), padding d."""
    ### BEGIN SOLUTION
    # Why: with one kernel per channel (torch's groups = C) each output channel reads only its own
    # input channel, so the sum over channels disappears; padding d keeps H x W at dilation d.
    batch, channels, height, width = x.shape
    kernel = weight.shape[-1]
    padding = dilation * (kernel - 1) // 2
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))  # (B, C, H + 2p, W + 2p)
    y = np.zeros_like(x, dtype=np.result_type(x, weight))  # (B, C, H, W)
    for i in range(kernel):
        for j in range(kernel):
            shifted = padded[:, :, dilation * i : dilation * i + height, dilation * j : dilation * j + width]  # (B, C, H, W)
            y += weight[None, :, 0, i, j, None, None] * shifted  # (1, C, 1, 1) * (B, C, H, W): no sum over channels
    return y
    ### END SOLUTION


# %% tags=["check"] exercise=2
_rng = np.random.default_rng(2)
for _d in (1, 2, 3):
    _x = _rng.normal(size=(2, 5, 9, 11))  # (B, C, H, W)
    _w = _rng.normal(size=(5, 1, 3, 3))  # (C, 1, 3, 3)
    _ours = depthwise_conv2d(_x, _w, _d)
    _expected = F.conv2d(torch.from_numpy(_x), torch.from_numpy(_w), padding=_d, dilation=_d, groups=5).numpy()
    assert np.shape(_ours) == _expected.shape, f"dilation {_d}: shape {np.shape(_ours)} expected {_expected.shape}"
    _gap = np.abs(_ours - _expected).max()
    assert _gap < 1e-10, f"dilation {_d}: differs from torch's groups=C convolution by {_gap}"
print("exercise 2: correct")

# %% tags=["solution"] exercise=3
### BEGIN SOLUTION
holes = {}
for dilations in ((2, 2, 2), (1, 2, 4)):
    response = impulse_response(dilations)  # (41, 41)
    rows, cols = np.nonzero(response)
    square = response[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]  # (r, r)
    holes[dilations] = int(np.sum(square == 0))
holes_222, holes_124 = holes[(2, 2, 2)], holes[(1, 2, 4)]
# (2, 2, 2) spans 13 pixels per axis but reaches only the even offsets: 7 × 7 = 49 of the
# 13 × 13 = 169 pixels, 120 holes. (1, 2, 4) reaches every offset from -7 to 7: no hole.
# Stacked equal dilations never fill the gaps between their taps (gridding), so RSU-4F
# starts at 1 and doubles.
### END SOLUTION
print("holes with (2, 2, 2):", holes_222, "  with (1, 2, 4):", holes_124)

# %% tags=["check"] exercise=3
_cases = (((2, 2, 2), holes_222, "2abaca4911e6"), ((1, 2, 4), holes_124, "5feceb66ffc8"))
for _dilations, _answer, _digest in _cases:
    assert isinstance(_answer, (int, np.integer)), (
        f"holes for {_dilations} must be an int, got {_answer!r}"
    )
    assert 0 <= _answer < 41 * 41, (
        f"dilations {_dilations}: {_answer} holes cannot be in a 41 × 41 response"
    )
    assert answer_digest(_answer) == _digest, f"dilations {_dilations}: {_answer} holes is wrong"
print("exercise 3: correct")


# %% tags=["solution"] exercise=4
def rsu4f_numpy(state, x):
    r"""RSU-4F: $\mathcal{U}(F_1(x)) + F_1(x)$ with dilations 1, 2, 4 | 8 | 4, 2, 1 and no pooling."""
    ### BEGIN SOLUTION
    # Why: RSU-4F is an RSU with dilation in place of pooling: the encoder dilates 1, 2, 4, the
    # bottom 8, the decoder mirrors 4, 2, 1 on the concatenation with its skip, and the residual
    # adds F_1(x).
    dilations = (1, 2, 4)
    f1 = rebnconv_numpy(state, "conv_in", x)  # (B, out, H, W)
    skips = []
    h = f1
    for level, d in enumerate(dilations):
        h = rebnconv_numpy(state, f"encoder.{level}", h, dilation=d)  # (B, mid, H, W)
        skips.append(h)
    h = rebnconv_numpy(state, "bottom", h, dilation=8)  # (B, mid, H, W)
    for level in reversed(range(len(dilations))):
        h = rebnconv_numpy(
            state,
            f"decoder.{level}",
            np.concatenate([h, skips[level]], axis=1),
            dilation=dilations[level],
        )  # (B, mid or out, H, W)
    return h + f1  # (B, out, H, W)
    ### END SOLUTION


# %% tags=["check"] exercise=4
_rng = np.random.default_rng(4)
_block = reference.randomize_batchnorm(rsu.RSU4F(6, 4, 12).double(), _rng)
_x = _rng.normal(size=(2, 6, 11, 13))  # (B, C, H, W)
_ours = rsu4f_numpy(reference.numpy_state_dict(_block), _x)
with torch.no_grad():
    _expected = _block(torch.from_numpy(_x)).numpy()  # (2, 12, 11, 13)
assert np.shape(_ours) == _expected.shape, (
    f"output shape {np.shape(_ours)}, expected {_expected.shape}"
)
_gap = np.abs(_ours - _expected).max()
assert _gap < 1e-10, f"differs from rsu.RSU4F by {_gap}"
print("exercise 4: correct")

# %% tags=["solution"] exercise=5
### BEGIN SOLUTION
silenced = copy.deepcopy(block)
with torch.no_grad():
    silenced.decoder[0].bn.bias.fill_(-1000.0)  # the last ReLU now outputs zeros: U(F_1(x)) = 0
    out_silenced = silenced(x_torch).numpy()  # (1, 32, 45, 61)
silenced_equals_f1 = bool(np.allclose(out_silenced, f1))
# The block falls back to F_1(x): a 3×3 convolution, batch norm and ReLU. The residual keeps
# the block useful (and its gradient flowing to conv_in) even when the U branch is dead.
### END SOLUTION
print("largest difference, silenced block vs F_1(x):", np.abs(out_silenced - f1).max())

# %% tags=["check"] exercise=5
assert silenced is not block, "silenced must be a copy of block, not block itself"
with torch.no_grad():
    assert np.allclose(block(x_torch).numpy(), out_torch), (
        "block itself was changed: work on a copy"
    )
    assert silenced.decoder[0].bn.bias.max().item() <= -1000 + 1e-9, (
        "set decoder[0].bn.bias of the copy to -1000"
    )
    _copy_output = silenced(x_torch)  # (1, 32, 45, 61)
assert np.allclose(np.asarray(out_silenced), _copy_output.numpy()), (
    "out_silenced is not the silenced block's output"
)
assert isinstance(silenced_equals_f1, (bool, np.bool_)), (
    f"silenced_equals_f1 must be True or False, got {silenced_equals_f1!r}"
)
assert answer_digest(silenced_equals_f1) == "3cbc87c7681f", "compare out_silenced with f1 again"
print("exercise 5: correct")

# %% [markdown] tags=["solution"] exercise=6
# ### BEGIN SOLUTION
# With a 512 × 512 input, En_5 works at 32 × 32 and En_6 at 16 × 16; an RSU-4 would pool
# them further, to 16 × 16 and 8 × 8 (En_5) or 8 × 8 and 4 × 4 (En_6), and its decoder
# would have to rebuild the map from a few dozen pixels. At the smallest input, 32 × 32,
# En_5 sees a 2 × 2 map and En_6 a 1 × 1 map: pooling a single pixel gives the same pixel
# and learns nothing.
# Dilation grows the receptive field as pooling does (1, 2, 4, 8 doubles it at each
# level) while the maps keep their size, so no detail is thrown away and nothing has to be
# upsampled. On such small maps full-resolution convolutions cost little. (Large dilations
# on a tiny map mostly read zero padding, which is the price of this choice.)
# ### END SOLUTION
