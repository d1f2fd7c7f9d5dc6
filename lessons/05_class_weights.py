# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 5 — Class weights: the 1/8 exponent
#
# **At a glance**
#
# - **You will learn to**
#   - compute the paper's class weights r_k and w_k by hand and in NumPy
#   - explain why the weights use the 8th root of the imbalance, with numbers
#   - check a NumPy definition against the library's and its torch twin
# - **Prerequisites**: lesson 2 (masks and how rare lesion pixels are).
# - **Time on a laptop CPU**: < 1 min to run top to bottom; about 60 min for the six exercises,
#   plus the reading.
# - **Difficulty**: introductory.
# - **Paper**:
#   [Siebert & Rostalski, MIDL 2021](https://openreview.net/group?id=MIDL.io/2021/Conference),
#   Section 3 (the class weights of the loss).
#
# A multi-task model predicts four lesion channels at once: microaneurysms (MA),
# haemorrhages (HE), hard exudates (EX) and soft exudates (SE). Their pixels are rare,
# and not equally rare: over IDRiD's 54 training photographs (lesson 2) the disc's
# background outnumbers a lesion's pixels about 70 times for haemorrhages, 84 for hard
# exudates, 360 for soft exudates and 640 for microaneurysms, a few pixels each and the
# rarest of all. If every channel counted the same in the loss, the optimizer would
# spend its effort where the pixels are.
#
# Siebert & Rostalski (MIDL 2021, Section 3) weight each channel $k$ of the loss by a
# class weight $w_k$ that grows with how rare the lesion is, but only as the **8th root**
# of the imbalance. This lesson builds the weights in NumPy, checks them against the
# library, and shows with a plot what the exponent 1/8 does that 1 (or 1/2) would not.
#
# You will need: NumPy, the shape convention `(B, C, H, W)` (B images, C lesion channels,
# H × W pixels) and the binary target `y` (1 on a lesion pixel, 0 elsewhere).

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from u2net_mini import equations, losses, worked_example
from u2net_mini.lesions import LESIONS

rng = np.random.default_rng(0)
np.set_printoptions(precision=5, suppress=True)

# %% [markdown]
# ## The paper's equation
#
# For channel $k$, with $n$ running over every pixel of that channel in the batch:
#
# $$r_k = \frac{\sum_n (1 - y_{n,k})}{\sum_n y_{n,k} + 1}, \qquad
#   w_k = \frac{r_k^{1/8}}{\sum_j r_j^{1/8}}$$
#
# - $r_k$ is the **imbalance**: background pixels per lesion pixel. The $+1$ keeps it
#   finite for a batch without any pixel of lesion $k$.
# - $r_k^{1/8}$ grows with the imbalance, slowly.
# - Dividing by $\sum_j r_j^{1/8}$ makes the weights sum to 1.
#
# The weights multiply each channel's loss:
# $L = \frac{1}{C} \sum_k \big(\alpha\, \mathrm{fBCE}_k + (1 - \alpha)\, D_k\big)\, w_k$
# (lesson 6 covers fBCE and $D$).

# %% [markdown]
# ## A batch to weigh
#
# We draw a toy batch: two images of 128 × 128 pixels with four lesion channels. Each
# lesion is a disc; microaneurysms are tiny and few, soft exudates large.

# %%
B, H, W = 2, 128, 128
rows, cols = np.mgrid[0:H, 0:W]  # (H, W) each


def draw_discs(rng, count, radius):
    """A binary (H, W) mask with `count` discs of `radius` pixels at random places."""
    mask = np.zeros((H, W))  # (H, W)
    for _ in range(count):
        r0, c0 = rng.integers(radius, H - radius, size=2)
        mask[(rows - r0) ** 2 + (cols - c0) ** 2 <= radius**2] = 1  # (H, W)
    return mask


# (count, radius) per lesion, in the order MA, HE, EX, SE
shapes = {"MA": (3, 1), "HE": (3, 5), "EX": (12, 2), "SE": (1, 9)}
y = np.stack(
    [np.stack([draw_discs(rng, *shapes[name]) for name in LESIONS]) for _ in range(B)]
)  # (B, C, H, W)
print("y:", y.shape, y.dtype)

fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
for k, (ax, name) in enumerate(zip(axes, LESIONS)):
    ax.imshow(y[0, k], cmap="gray")
    ax.set_title(f"{name}: {int(y[0, k].sum())} px")
    ax.axis("off")
fig.suptitle("image 0 of the toy batch, one channel per lesion")
plt.show()

# %% [markdown]
# ## Step by step in NumPy
#
# The sums run over the axes B, H and W, leaving one number per channel.

# %%
# $\sum_n y_{n,k}$: lesion pixels of each channel in the whole batch
positives = y.sum(axis=(0, 2, 3))  # (C,)
# $\sum_n (1 - y_{n,k})$: background pixels
negatives = (1 - y).sum(axis=(0, 2, 3))  # (C,)
# $r_k = \sum_n (1 - y_{n,k}) / (\sum_n y_{n,k} + 1)$
ratio = negatives / (positives + 1)  # (C,)
# $r_k^{1/8}$
root = ratio ** (1 / 8)  # (C,)
# $w_k = r_k^{1/8} / \sum_j r_j^{1/8}$
weights = root / root.sum()  # (C,)

print(f"{'lesion':>6} {'positives':>10} {'negatives':>10} {'r':>9} {'r^(1/8)':>8} {'w':>7}")
for k, name in enumerate(LESIONS):
    print(f"{name:>6} {positives[k]:10.0f} {negatives[k]:10.0f} {ratio[k]:9.2f} {root[k]:8.4f} {weights[k]:7.4f}")
print("sum of the weights:", weights.sum())

# %% [markdown]
# The imbalances span a factor of 16.6 between MA and SE, but the weights stay within a
# factor of 1.42 of each other: the 8th root squeezes the range.

# %% [markdown]
# ## Compare with the library
#
# `u2net_mini.equations.class_weights` is the project's NumPy definition, and
# `u2net_mini.losses.class_weights` its torch twin used in training.

# %%
library = equations.class_weights(y)  # (C,)
twin = losses.class_weights(torch.from_numpy(y)).numpy()  # (C,)
print("ours   :", weights)
print("library:", library)
print("largest difference, ours vs equations.class_weights:", np.abs(weights - library).max())
print("largest difference, ours vs losses.class_weights   :", np.abs(weights - twin).max())
assert np.abs(weights - library).max() < 1e-12 and np.abs(weights - twin).max() < 1e-12

# %% [markdown]
# ## Why an exponent at all: 1, 1/2 or 1/8
#
# The natural first idea is $w_k \propto r_k$: weight a channel by how rare it is. The
# plot shows what each exponent $p$ in $w_k \propto r_k^p$ does. Left: the unnormalized
# factor $r^p$ (log–log axes, so the exponent is the slope); the grey lines mark the four
# imbalances of our toy batch. Right: the weight $w$ of a lesion in a two-lesion batch
# where the other lesion has a fixed imbalance $r = 10$.

# %%
imbalance = np.logspace(0, 4, 200)  # (200,) r from 1 to 10^4
exponents = {"1": 1.0, "1/2": 0.5, "1/8": 1 / 8}
r_other = 10.0

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
for label, p in exponents.items():
    left.loglog(imbalance, imbalance**p, label=f"p = {label}")
    # $w = r^p / (r^p + r_{other}^p)$
    right.semilogx(imbalance, imbalance**p / (imbalance**p + r_other**p), label=f"p = {label}")  # (200,)
for k, name in enumerate(LESIONS):
    left.axvline(ratio[k], color="gray", lw=0.5)
    left.text(ratio[k], 1.2 * 2.5**k, name, rotation=90, fontsize=8, color="gray")  # staggered: HE and SE lie close
left.set(xlabel="imbalance r (background per lesion pixel)", ylabel="$r^p$", title="unnormalized factor")
right.axhline(0.5, color="gray", lw=0.5)
right.set(xlabel="imbalance r of the lesion", ylabel="weight w", ylim=(0, 1),
          title=f"weight against a lesion with r = {r_other:g}")
left.legend()
right.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# Right panel: with $p = 1$, as the lesion's imbalance goes from 1 to $10^4$ its weight
# goes from 0.09 to 0.999, and the other lesion all but vanishes from the loss. With
# $p = 1/8$ the rarer lesion still gets more, but its weight only goes from 0.43 to 0.70
# over the same four decades. The largest-to-smallest weight in our batch:

# %%
for label, p in exponents.items():
    w_p = ratio**p / (ratio**p).sum()  # (C,)
    print(f"p = {label:>3}: weights {w_p}, largest / smallest = {w_p.max() / w_p.min():.2f}")

# %% [markdown]
# ## By hand
#
# The project's worked example (`python -m u2net_mini.worked_example`, `docs/loss.md`):
# one image of 2 × 2 pixels, two lesions.
#
# | | y | positives | negatives | r | $r^{1/8}$ |
# |---|---|---|---|---|---|
# | MA | [[1, 0], [0, 0]] | 1 | 3 | 3 / (1 + 1) = 1.5 | 1.0519895 |
# | EX | [[1, 1], [0, 0]] | 2 | 2 | 2 / (2 + 1) = 0.6666667 | 0.9505798 |
#
# The roots sum to 2.0025693, so $w = (1.0519895, 0.9505798) / 2.0025693 = (0.5253199, 0.4746801)$.

# %%
by_hand = np.array([1.5 ** (1 / 8), (2 / 3) ** (1 / 8)]) / (1.5 ** (1 / 8) + (2 / 3) ** (1 / 8))  # (2,)
from_library = equations.class_weights(worked_example.TARGET)  # (2,)
print("by hand:", by_hand, " library:", from_library)
print("largest difference:", np.abs(by_hand - from_library).max())

# %% [markdown]
# ## Edge cases
#
# - A channel **without any lesion pixel** in the batch: $r = N / (0 + 1) = N$, finite
#   thanks to the $+1$, and the largest weight.
# - A channel **entirely lesion**: $r = 0$, weight 0.
# - **Every** channel entirely lesion: all $r_k = 0$ and the normalization is $0/0$; the
#   library returns uniform weights $1/C$ instead of NaN.
# - The sums run over the **batch**, not one image: the same image gets different weights
#   in different batches.

# %%
empty_and_full = np.zeros((1, 2, 2, 2))  # (1, 2, 2, 2)
empty_and_full[:, 1] = 1  # channel 1 all lesion
print("no lesion / all lesion:", equations.class_weights(empty_and_full))
print("all lesion everywhere :", equations.class_weights(np.ones((1, 4, 2, 2))))

# %% [markdown]
# ## Summary
#
# - $r_k$ counts background pixels per lesion pixel of channel $k$ over the whole batch;
#   the $+1$ keeps an absent lesion finite.
# - $w_k = r_k^{1/8} / \sum_j r_j^{1/8}$: rarer lesions weigh more, the weights sum to 1.
# - The 8th root turns imbalances that differ by a large factor (16.6 in our toy batch)
#   into weights that differ by a small one (1.42), so no channel takes over the loss and
#   none vanishes. The imbalance inside each channel is left to the focal BCE and the
#   Dice loss (lesson 6).
# - Our NumPy lines agree with `equations.class_weights` and the torch twin to rounding.

# %% [markdown]
# ## Exercises
#
# 1. **Implementation, about 15 min.** Write `class_weights_with(y, exponent)`: the paper's
#    weights with any exponent $p$ in place of 1/8, for a `(B, C, H, W)` target.
# 2. **Experiment, about 10 min.** For the toy batch `y`, compute `spread_by_exponent`: a dict
#    from the exponent (1, 1/2, 1/8 as floats: `1.0`, `0.5`, `0.125`) to the ratio of the largest
#    to the smallest class weight. Use NumPy and the `ratio` array of the lesson.
# 3. **Concept, about 10 min.** Why 1/8 and not 1? Answer in three or four sentences, using
#    the numbers of exercise 2.
# 4. **Experiment, about 10 min.** Add a third image without any lesion to the batch
#    (`np.zeros((1, 4, H, W))`) and compute its class weights `weights_three_images` with
#    `equations.class_weights`. Does the weight of MA (the rarest lesion) rise or fall? Set
#    `ma_weight_rises` to `True` or `False` from what you computed.
# 5. **Concept, by hand, about 5 min.** Find the imbalance `r_twice_eighth` at which a
#    lesion's unnormalized factor $r^{1/8}$ is twice that of a balanced channel ($r = 1$), and
#    `r_twice_half` for $r^{1/2}$.
# 6. **Concept, about 10 min.** What would happen without the $+1$ in $r_k$ in a batch without
#    any soft exudate? And what does the $+1$ change in a batch with thousands of SE pixels?

# %% [markdown]
# Some checks below compare a fingerprint of your answer with a stored one
# (`answer_digest`: the numbers rounded, then hashed), so they can tell a right answer
# from a wrong one without showing it.

# %%
from lessons.exercises import answer_digest  # the fingerprint the checks were stored with


# %% tags=["solution"] exercise=1
def class_weights_with(y, exponent):
    """w_k = r_k^p / sum_j r_j^p with p = `exponent`, for a binary (B, C, H, W) target."""
    ### BEGIN SOLUTION
    # Why: the paper's r_k sums over the batch and the pixels (axes 0, 2, 3); its p-th power
    # normalized to sum 1 is w_k, and p = 1/8 gives equations.class_weights.
    ratio_k = (1 - y).sum(axis=(0, 2, 3)) / (y.sum(axis=(0, 2, 3)) + 1)  # (C,)
    powered = ratio_k**exponent  # (C,)
    return powered / powered.sum()  # (C,)
    ### END SOLUTION


# %% tags=["check"] exercise=1
_w = class_weights_with(y, 1 / 8)
assert np.shape(_w) == (4,), f"one weight per channel expected, got shape {np.shape(_w)}"
assert np.allclose(_w, equations.class_weights(y)), f"exponent 1/8 must give the paper's weights, got {_w}"
_w1 = class_weights_with(worked_example.TARGET, 1.0)
assert np.allclose(_w1, [1.5 / (1.5 + 2 / 3), (2 / 3) / (1.5 + 2 / 3)]), f"exponent 1, worked example: got {_w1}"
assert np.allclose(class_weights_with(y, 0.0), 0.25), "exponent 0 must give equal weights"
print("exercise 1: correct")

# %% tags=["solution"] exercise=2
### BEGIN SOLUTION
# Why: in a ratio of two weights the normalization cancels, so the spread is (r_max / r_min)^p:
# about 16.6 at p = 1, its square root at 1/2 and its 8th root, about 1.42, at 1/8.
spread_by_exponent = {}
for p in (1.0, 0.5, 0.125):
    w_p = ratio**p / (ratio**p).sum()  # (C,)
    spread_by_exponent[p] = w_p.max() / w_p.min()
### END SOLUTION
print(spread_by_exponent)

# %% tags=["check"] exercise=2
assert set(spread_by_exponent) == {1.0, 0.5, 0.125}, f"keys 1.0, 0.5, 0.125 expected, got {set(spread_by_exponent)}"
_spreads = [spread_by_exponent[_p] for _p in (0.125, 0.5, 1.0)]
assert all(_s >= 1 for _s in _spreads), f"largest / smallest is at least 1, got {_spreads}"
assert _spreads == sorted(_spreads), f"a larger exponent cannot narrow the spread: {_spreads}"
assert answer_digest(spread_by_exponent) == "7927120c13a4", (
    f"the spreads {spread_by_exponent} are not right"
)
print("exercise 2: correct")

# %% [markdown] tags=["solution"] exercise=3
# ### BEGIN SOLUTION
# With $p = 1$ the weights are proportional to the imbalances themselves, which differ
# by a factor of 16.6 in our batch (about 9 over IDRiD's training photographs, 69 for HE
# to 639 for MA, and far more in a batch without any pixel of some lesion): the
# rarest lesion would take most of the loss, and the loss of the others would barely
# move the network. Its few pixels would then steer every step, a noisy signal. With
# $p = 1/8$ the spread is below 1.5 here: rare lesions still count more, but every lesion
# keeps a say. The imbalance inside a channel is handled by the focal BCE and the Dice
# loss, so the weights need only a gentle nudge between channels.
# ### END SOLUTION

# %% tags=["solution"] exercise=4
### BEGIN SOLUTION
weights_three_images = equations.class_weights(np.concatenate([y, np.zeros((1, 4, H, W))]))  # (C,)
# It falls, slightly: the empty image multiplies every r_k by (negatives_k + 128 * 128) / negatives_k,
# a little more for the channels with more lesion pixels (fewer negatives), so HE and SE gain
# and MA loses (0.31650 -> 0.31639).
ma_weight_rises = bool(weights_three_images[0] > weights[0])
### END SOLUTION
print("two images  :", weights)
print("three images:", weights_three_images)

# %% tags=["check"] exercise=4
assert np.shape(weights_three_images) == (4,), (
    f"one weight per lesion expected, got {np.shape(weights_three_images)}"
)
assert np.isclose(np.sum(weights_three_images), 1), "class weights sum to 1"
assert answer_digest(weights_three_images) == "0669dff68b7f", (
    "weights of the three-image batch are wrong"
)
assert isinstance(ma_weight_rises, (bool, np.bool_)), (
    f"ma_weight_rises must be True or False, got {ma_weight_rises!r}"
)
assert answer_digest(ma_weight_rises) == "60a33e6cf515", (
    "look again at the MA weight before and after"
)
print("exercise 4: correct")

# %% tags=["solution"] exercise=5
### BEGIN SOLUTION
# Why: r^(1/8) = 2 means r = 2^8 = 256, and r^(1/2) = 2 means r = 4: the 8th root needs a 64 times
# larger imbalance for the same doubling.
r_twice_eighth = 2.0**8  # r^(1/8) = 2
r_twice_half = 2.0**2  # r^(1/2) = 2
### END SOLUTION

# %% tags=["check"] exercise=5
assert np.isclose(r_twice_eighth ** (1 / 8), 2 * 1 ** (1 / 8)), (
    f"r_twice_eighth^(1/8) must be 2, got {r_twice_eighth}"
)
assert np.isclose(r_twice_half**0.5, 2), f"r_twice_half^(1/2) must be 2, got {r_twice_half}"
print("exercise 5: correct")

# %% [markdown] tags=["solution"] exercise=6
# ### BEGIN SOLUTION
# Without the $+1$, a batch without soft exudate gives $r = N / 0 = \infty$: its weight
# becomes $\infty / \infty$, NaN, and the NaN spreads through the loss into every
# parameter at the next step. With the $+1$ the absent lesion gets $r = N$, the largest
# weight of the batch but a finite one. With thousands of SE pixels the $+1$ changes $r$
# by a relative amount of about one in a thousand, and its 8th root by an eighth of that:
# nothing one could see.
# ### END SOLUTION
