# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 6 — Focal BCE, Dice and deep supervision
#
# **At a glance**
#
# - **You will learn to**
#   - compute focal BCE and Dice loss by hand and compare their gradients on easy and hard pixels
#   - say what each term does for a tiny lesion, from the numbers the lesson prints
#   - add deep supervision over the seven outputs and check it against the library
# - **Prerequisites**: lesson 5 (class weights); lesson 4 for the side outputs.
# - **Time on a laptop CPU**: < 1 min to run top to bottom; about 70 min for the six exercises,
#   plus the reading.
# - **Difficulty**: intermediate.
# - **Paper**:
#   [Siebert & Rostalski, MIDL 2021](https://openreview.net/group?id=MIDL.io/2021/Conference),
#   Section 3 (focal BCE with γ = 1, Dice, α = 0.75, deep supervision).
#
# Lesson 5 balanced the four lesion channels against each other. Inside one channel the
# imbalance is still there: thousands of background pixels per lesion pixel. Plain binary
# cross-entropy averages over all of them, so the many easy background pixels set the
# loss and a missed microaneurysm of three pixels hardly moves it.
#
# Siebert & Rostalski (MIDL 2021, Section 3) answer with two terms and one habit:
#
# - **focal binary cross-entropy**, which shrinks the loss of pixels that are already
#   right, so the hard ones count;
# - **Dice loss**, which looks at the overlap with the lesion only, so a tiny lesion
#   counts as much as a large one;
# - **deep supervision**: U²-Net's fused output and its six side outputs are each scored
#   by the loss, and the seven losses are summed.
#
# This lesson computes each by hand, follows their gradients on an easy and a hard
# pixel, shows why Dice helps tiny lesions, and checks everything against the library.

# %%
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import torch

from data_prep.dataset import LesionDataset
from data_prep.shipped import idrid_root
from u2net_mini import equations, losses, worked_example
from u2net_mini.checkpoint import load_model
from u2net_mini.shipped import shipped_checkpoints

rng = np.random.default_rng(0)
np.set_printoptions(precision=5, suppress=True)

# %% [markdown]
# ## The paper's equations
#
# For channel $k$, $y$ the binary target and $\hat y = \sigma(z)$ the probability from
# the logit $z$, with $n$ running over the $N$ pixels of the channel in the batch:
#
# $$\mathrm{fBCE}_k = -\frac{1}{N} \sum_n \Big[ y_{n,k} (1 - \hat y_{n,k})^\gamma \log \hat y_{n,k}
#   + (1 - y_{n,k})\, \hat y_{n,k}^\gamma \log (1 - \hat y_{n,k}) \Big], \qquad \gamma = 1$$
#
# $$D_k = 1 - \frac{2 \sum_n y_{n,k} \hat y_{n,k} + s}{\sum_n y_{n,k} + \sum_n \hat y_{n,k} + s}, \qquad s = 1$$
#
# $$L = \frac{1}{C} \sum_{k=1}^{C} \big(\alpha\, \mathrm{fBCE}_k + (1 - \alpha)\, D_k\big)\, w_k, \qquad \alpha = 0.75$$
#
# $$L_{\mathrm{total}} = \sum_{m=1}^{7} L\big(y, \hat y^{(m)}\big)$$
#
# with $w_k$ the class weights of lesson 5 and $m$ running over the fused output and the
# six side outputs. The paper gives no Dice smoothing $s$; the project takes $s = 1$
# (`docs/loss.md` lists every such choice).

# %% [markdown]
# ## Focal BCE by hand
#
# The worked example of the project: one image of 2 × 2 pixels, two lesions.

# %%
y = worked_example.TARGET  # (1, 2, 2, 2)
y_hat = worked_example.PROBABILITY  # (1, 2, 2, 2)
print("MA  y =", y[0, 0].tolist(), "  y_hat =", y_hat[0, 0].tolist())
print("EX  y =", y[0, 1].tolist(), "  y_hat =", y_hat[0, 1].tolist())

gamma = 1.0
# $y (1 - \hat y)^\gamma \log \hat y$: lesion pixels
positive_term = y * (1 - y_hat) ** gamma * np.log(y_hat)  # (B, C, H, W)
# $(1 - y)\, \hat y^\gamma \log(1 - \hat y)$: background pixels
negative_term = (1 - y) * y_hat**gamma * np.log(1 - y_hat)  # (B, C, H, W)
per_pixel = -(positive_term + negative_term)  # (B, C, H, W)
# $-\frac{1}{N} \sum_n [\dots]$
focal = per_pixel.mean(axis=(0, 2, 3))  # (C,)

print("\nper-pixel focal loss of MA:\n", per_pixel[0, 0])
print("fBCE per channel (MA, EX):", focal)
print("largest difference with equations.focal_bce:", np.abs(focal - equations.focal_bce(y, y_hat)).max())

# %% [markdown]
# The lesion pixel of MA, predicted 0.5, costs $0.5 \cdot (-\log 0.5) = 0.347$. The
# background pixel predicted 0.8 is the worst pixel of the image: $0.8 \cdot (-\log 0.2) = 1.288$.
# The background pixel predicted 0.2 is almost right and costs only $0.2 \cdot (-\log 0.8) = 0.045$:
# with $\gamma = 0$ (plain BCE) it would cost $0.223$, five times more.

# %%
plain = equations.focal_bce(y, y_hat, gamma=0.0)  # (C,)
bce_torch = torch.nn.functional.binary_cross_entropy(
    torch.from_numpy(y_hat), torch.from_numpy(y), reduction="none"
).mean(dim=(0, 2, 3))  # (C,)
print("gamma = 0 is plain BCE; largest difference with torch's BCE:", np.abs(plain - bce_torch.numpy()).max())

# %% [markdown]
# ## Dice by hand
#
# MA: overlap $\sum y \hat y = 0.5$, $\sum y = 1$, $\sum \hat y = 2.0$, so
# $D = 1 - (2 \cdot 0.5 + 1) / (1 + 2.0 + 1) = 0.5$.
# EX: $D = 1 - (2 \cdot 1.5 + 1) / (2 + 1.9 + 1) = 0.1836735$.

# %%
smooth = 1.0
# $\sum_n y_{n,k} \hat y_{n,k}$
intersection = (y * y_hat).sum(axis=(0, 2, 3))  # (C,)
# $\sum_n y_{n,k} + \sum_n \hat y_{n,k}$
total = y.sum(axis=(0, 2, 3)) + y_hat.sum(axis=(0, 2, 3))  # (C,)
# $D_k = 1 - (2 \sum y \hat y + s) / (\sum y + \sum \hat y + s)$
dice = 1 - (2 * intersection + smooth) / (total + smooth)  # (C,)
print("Dice loss per channel (MA, EX):", dice)
print("largest difference with equations.dice_loss:", np.abs(dice - equations.dice_loss(y, y_hat)).max())

# %% [markdown]
# ## The whole loss of one output
#
# Mix the two terms with $\alpha = 0.75$, weight each channel by $w_k$ and average over
# the $C = 2$ channels: $L = \tfrac12 (0.5047487 \cdot 0.5253199 + 0.1082443 \cdot 0.4746801) = 0.1582680$.

# %%
alpha = 0.75
weights = equations.class_weights(y)  # (C,)
# $\frac{1}{C} \sum_k (\alpha\, \mathrm{fBCE}_k + (1 - \alpha) D_k)\, w_k$
ours = ((alpha * focal + (1 - alpha) * dice) * weights).sum() / len(weights)
library = equations.lesion_loss(y, y_hat)
twin = losses.lesion_loss(torch.from_numpy(y), torch.logit(torch.from_numpy(y_hat))).item()
print(f"ours {ours:.7f}   equations.lesion_loss {library:.7f}   losses.lesion_loss on logits {twin:.7f}")
print("largest difference:", max(abs(ours - library), abs(ours - twin)))

# %% [markdown]
# ## Gradients on an easy and a hard pixel
#
# The network changes its logits $z$, so what matters is $\partial \ell / \partial z$.
# For one lesion pixel ($y = 1$) with $p = \sigma(z)$, using $\partial p / \partial z = p (1 - p)$:
#
# $$\ell = -(1 - p)^\gamma \log p, \qquad
#   \frac{\partial \ell}{\partial z} = \gamma\, p\, (1 - p)^\gamma \log p - (1 - p)^{\gamma + 1}$$
#
# and for a background pixel ($y = 0$), $\ell = -p^\gamma \log(1 - p)$ and
# $\partial \ell / \partial z = p^{\gamma + 1} - \gamma\, p^\gamma (1 - p) \log(1 - p)$.
# With $\gamma = 0$ both reduce to BCE's familiar $p - y$.
#
# An **easy** lesion pixel is predicted $p = 0.95$, a **hard** one $p = 0.1$. We compare
# the formula with torch's autograd through the library's loss on a single pixel
# (N = 1, so the mean is the pixel's own loss).


# %%
def focal_pixel_grad(p, y_pixel, gamma):
    """d(focal loss of one pixel)/dz at probability p = sigmoid(z); y_pixel is 0 or 1."""
    lesion = gamma * p * (1 - p) ** gamma * np.log(p) - (1 - p) ** (gamma + 1)
    background = p ** (gamma + 1) - gamma * p**gamma * (1 - p) * np.log(1 - p)
    return np.where(y_pixel == 1, lesion, background)


def autograd_pixel_grad(loss_fn, p, y_pixel, **options):
    """The same derivative by torch autograd through `loss_fn(y, logits)` on a 1 × 1 × 1 × 1 image."""
    z = torch.logit(torch.tensor([[[[p]]]], dtype=torch.float64)).requires_grad_()  # (1, 1, 1, 1)
    loss_fn(torch.tensor([[[[float(y_pixel)]]]], dtype=torch.float64), z, **options).sum().backward()
    return z.grad.item()


pixels = {"easy lesion": (0.95, 1), "hard lesion": (0.1, 1), "easy background": (0.05, 0), "hard background": (0.9, 0)}
print(f"{'pixel':>16} {'p':>5} {'BCE dl/dz':>10} {'focal dl/dz':>12} {'autograd':>10} {'focal/BCE':>10}")
largest = 0.0
for name, (p, y_pixel) in pixels.items():
    bce_grad = focal_pixel_grad(p, y_pixel, 0.0)
    focal_grad = focal_pixel_grad(p, y_pixel, 1.0)
    autograd = autograd_pixel_grad(losses.focal_bce, p, y_pixel, gamma=1.0)
    largest = max(largest, abs(focal_grad - autograd))
    print(f"{name:>16} {p:5.2f} {bce_grad:10.4f} {focal_grad:12.4f} {autograd:10.4f} {focal_grad / bce_grad:10.3f}")
print("largest difference, formula vs autograd:", largest)

# %% [markdown]
# The focal term cuts the gradient of the easy pixels to a tenth of BCE's, and leaves the
# hard pixels their full push (slightly more, in fact). Over a whole photograph, the
# millions of easy background pixels stop drowning out the few hard ones.
#
# The plot shows $|\partial \ell / \partial z|$ of a lesion pixel for $\gamma = 0, 1, 2$.

# %%
p_grid = np.linspace(0.01, 0.99, 99)  # (99,)
fig, ax = plt.subplots(figsize=(6, 3.5))
for g in (0.0, 1.0, 2.0):
    ax.plot(p_grid, np.abs(focal_pixel_grad(p_grid, 1, g)), label=f"gamma = {g:g}" + (" (BCE)" if g == 0 else ""))
ax.set(xlabel="predicted probability p of a lesion pixel", ylabel="|dl/dz|",
       title="gradient of one lesion pixel: focal terms quiet the easy ones")
ax.legend()
plt.show()

# %% [markdown]
# ### The Dice gradient
#
# Dice is not a sum over pixels, so its gradient on one pixel depends on the whole
# channel. With $I = \sum_n y_n \hat y_n$ and $S = \sum_n y_n + \sum_n \hat y_n$:
#
# $$\frac{\partial D}{\partial \hat y_n} = -\frac{2 y_n (S + s) - (2 I + s)}{(S + s)^2}, \qquad
#   \frac{\partial D}{\partial z_n} = \frac{\partial D}{\partial \hat y_n}\, \hat y_n (1 - \hat y_n)$$
#
# With respect to $\hat y$, every lesion pixel gets the same gradient, easy or hard; only
# the sigmoid's slope $\hat y (1 - \hat y)$ tells them apart. We put our easy and hard
# lesion pixels into one 4 × 4 image with two more lesion pixels and background at 0.05.

# %%
y_dice = np.zeros((1, 1, 4, 4))  # (1, 1, 4, 4)
y_dice[0, 0, 1, 1:3] = y_dice[0, 0, 2, 1:3] = 1
y_hat_dice = np.full((1, 1, 4, 4), 0.05)  # (1, 1, 4, 4)
y_hat_dice[0, 0, 1, 1], y_hat_dice[0, 0, 1, 2] = 0.95, 0.1  # the easy and the hard lesion pixel
y_hat_dice[0, 0, 2, 1:3] = 0.8

# $I$ and $S$ over the channel
I = (y_dice * y_hat_dice).sum()
S = y_dice.sum() + y_hat_dice.sum()
# $\partial D / \partial \hat y_n$
dD_dyhat = -(2 * y_dice * (S + smooth) - (2 * I + smooth)) / (S + smooth) ** 2  # (1, 1, 4, 4)
# $\partial D / \partial z_n$
dD_dz = dD_dyhat * y_hat_dice * (1 - y_hat_dice)  # (1, 1, 4, 4)

z_dice = torch.logit(torch.from_numpy(y_hat_dice)).requires_grad_()  # (1, 1, 4, 4)
losses.dice_loss(torch.from_numpy(y_dice), z_dice).sum().backward()
print("dD/dz by the formula:\n", dD_dz[0, 0])
print("largest difference with autograd:", np.abs(dD_dz - z_dice.grad.numpy()).max())
print(f"easy lesion pixel: dD/dy_hat = {dD_dyhat[0, 0, 1, 1]:.4f}, dD/dz = {dD_dz[0, 0, 1, 1]:.4f}")
print(f"hard lesion pixel: dD/dy_hat = {dD_dyhat[0, 0, 1, 2]:.4f}, dD/dz = {dD_dz[0, 0, 1, 2]:.4f}")

# %% [markdown]
# ## Why Dice helps tiny lesions
#
# A 64 × 64 image holds one lesion, of 3 pixels (a microaneurysm) or of 300 pixels (a
# large exudate). The network predicts 0.001 on the background and either **misses** the
# lesion (0.001 there too) or **finds** it (0.9). How much does each term reward finding it?
# (Only the number of lesion pixels matters to these losses, not their shape.)


# %%
def one_lesion(size, found):
    """Target and prediction for a 64 × 64 image with a lesion of `size` pixels, missed or found."""
    target = np.zeros((1, 1, 64, 64))  # (1, 1, 64, 64)
    target.reshape(-1)[:size] = 1
    prediction = np.where(target == 1, 0.9 if found else 0.001, 0.001)  # (1, 1, 64, 64)
    return target, prediction


print(f"{'lesion':>8} {'fBCE missed':>12} {'fBCE found':>11} {'drop':>8} {'Dice missed':>12} {'Dice found':>11} {'drop':>6}")
for size in (3, 300):
    (t, missed), (_, found) = one_lesion(size, False), one_lesion(size, True)
    f_miss, f_found = equations.focal_bce(t, missed)[0], equations.focal_bce(t, found)[0]
    d_miss, d_found = equations.dice_loss(t, missed)[0], equations.dice_loss(t, found)[0]
    print(f"{size:>5} px {f_miss:12.5f} {f_found:11.5f} {f_miss - f_found:8.5f} "
          f"{d_miss:12.3f} {d_found:11.3f} {d_miss - d_found:6.3f}")

# %% [markdown]
# The focal BCE is a mean over all 4096 pixels: finding the 3-pixel lesion lowers it by
# 0.005, a hundred times less than finding the large one. The Dice loss drops by 0.47
# for the small lesion and 0.94 for the large one: a factor of 2, not 100. Per lesion
# pixel, the gradients of the missed lesion tell the same story from the other side:

# %%
for size in (3, 300):
    t, missed = one_lesion(size, False)
    z = torch.logit(torch.from_numpy(missed)).requires_grad_()  # (1, 1, 64, 64)
    losses.focal_bce(torch.from_numpy(t), z).sum().backward()
    focal_grad = z.grad.numpy()[t == 1]  # (size,)
    z.grad = None
    losses.dice_loss(torch.from_numpy(t), z).sum().backward()
    dice_grad = z.grad.numpy()[t == 1]  # (size,)
    print(f"{size:>3}-pixel lesion, missed: dl/dz per lesion pixel  fBCE {focal_grad[0]:.2e}  Dice {dice_grad[0]:.2e}")

sizes = np.unique(np.logspace(0, 3, 25).astype(int))  # (S,) lesion sizes 1 … 1000
drops = np.array([
    [f(*one_lesion(n, False))[0] - f(*one_lesion(n, True))[0] for f in (equations.focal_bce, equations.dice_loss)]
    for n in sizes
])  # (S, 2)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.loglog(sizes, drops[:, 0], "o-", label="focal BCE")
ax.loglog(sizes, drops[:, 1], "s-", label="Dice")
ax.set(xlabel="lesion size (pixels of a 64 × 64 image)", ylabel="loss drop when the lesion is found",
       title="what finding a lesion is worth to each term")
ax.legend()
plt.show()

# %% [markdown]
# On a missed 3-pixel lesion, Dice pushes each lesion pixel about as hard as the focal
# BCE does (2.3e-4 against 2.5e-4); on a missed 300-pixel lesion it pushes each pixel 35
# times more weakly, since its push is shared by all the lesion's pixels. Summed over the
# lesion, then, focal BCE's reward grows in proportion to the lesion's size (a factor of
# 1000 from 1 to 1000 pixels in the plot), Dice's only by a factor of about 4 (0.24 at
# 1 pixel, 0.94 at 1000): Dice does not push a microaneurysm harder than focal BCE does,
# it keeps it from being outweighed by the large lesions. The smoothing $s = 1$ is what
# lowers Dice's reward for lesions of one or two pixels, and a
# diffuse background probability (0.01 on every pixel instead of 0.001) adds to its
# denominator and mutes it: try it in the exercises. The paper mixes both terms:
# $\alpha = 0.75$ of focal BCE, which gives every pixel a gradient, and $0.25$ of Dice,
# which makes small lesions count.

# %% [markdown]
# ## Deep supervision: seven outputs, one sum
#
# U²-Net returns seven maps: the fused output and six side outputs, one per decoder stage.
# Each is scored by the same loss $L$ and the seven losses are summed, each with weight 1.
# First seven made-up outputs of decreasing quality for a small batch, to check the sum
# against the library; then a real network's.

# %%
y_ds = (rng.random((2, 2, 16, 16)) < np.array([0.05, 0.2])[None, :, None, None]).astype(float)  # (B, C, H, W)
logits_ds = [
    (3.0 - 0.3 * m) * (2 * y_ds - 1) + rng.normal(0, 1 + 0.3 * m, size=y_ds.shape)  # (B, C, H, W)
    for m in range(7)
]  # m = 0: fused, m = 1 … 6: side outputs
y_hats_ds = [1 / (1 + np.exp(-z)) for z in logits_ds]  # 7 × (B, C, H, W)

per_output = np.array([equations.lesion_loss(y_ds, p) for p in y_hats_ds])  # (7,)
ours_ds = per_output.sum()
library_ds = equations.deep_supervision_loss(y_ds, y_hats_ds)
z_torch = [torch.from_numpy(z).requires_grad_() for z in logits_ds]
twin_ds = losses.deep_supervision_loss(torch.from_numpy(y_ds), z_torch)
print("loss of each output:", per_output)
print(f"sum {ours_ds:.6f}   equations.deep_supervision_loss {library_ds:.6f}   losses (torch) {twin_ds.item():.6f}")
print("largest difference:", max(abs(ours_ds - library_ds), abs(ours_ds - twin_ds.item())))

# %% [markdown]
# A real network's seven outputs: the U²-XS-Net the project ships, trained on the real
# IDRiD photographs (lesson 9), on one real test photograph at the paper's 512 × 512,
# each output scored by the same loss against the photograph's masks. The torch twin
# takes the logits, where a confident pixel's $\log \hat y$ stays finite.

# %%
workspace = tempfile.TemporaryDirectory(prefix="lesson06-")  # the photograph's cache goes here
network, payload = load_model(shipped_checkpoints("mt")[0])
real_test = LesionDataset(idrid_root(), "test", size=512, mean=payload["mean"], std=payload["std"],
                          cache_dir=workspace.name)
x_real, y_real = real_test[0]  # (3, 512, 512), (4, 512, 512)
with torch.no_grad():
    logits_real = network(x_real[None])  # 7 × (1, 4, 512, 512)
target_real = y_real[None].double()  # (1, 4, 512, 512)
# (7,): one loss per output, fused first
real_terms = np.array([losses.lesion_loss(target_real, z.double()).item() for z in logits_real])
print(real_test.reader.names[0], "- loss of each output:", real_terms.round(4),
      " sum:", round(real_terms.sum(), 4))
strides = [1, 1, 2, 4, 8, 16, 32]  # the resolution each output's stage works at, fused first

fig, ax = plt.subplots(figsize=(7, 3))
labels = ["fused\n(1)"] + [f"side {m}\n({strides[m]})" for m in range(1, 7)]
ax.bar(labels, real_terms, color="tab:blue")
ax.set(ylabel="L of the output",
       title=f"shipped XS on {real_test.reader.names[0]}: the seven terms (stage's stride)")
plt.tight_layout()
plt.show()

# %% [markdown]
# The trained network's terms grow from the fine outputs to the coarse ones: the fused
# output and side 1, both at full resolution, score best (about equal), and side 6,
# computed from En_6 at 1/32 of the resolution, worst, about 40 % higher. Every term is
# of the same order, so none of the seven dominates the sum and each stage's side head
# keeps a gradient of its own size to the end of training.
#
# Because the total is a plain sum, the gradient that reaches side output $m$ is exactly
# the gradient of its own term $L(y, \hat y^{(m)})$. In the network each side output hangs
# off a different decoder stage, so every stage hears from the target directly, not only
# through the fusion layer at the end.

# %%
twin_ds.backward()
largest = 0.0
for m, z in enumerate(logits_ds):
    alone = torch.from_numpy(z).requires_grad_()  # (B, C, H, W)
    losses.lesion_loss(torch.from_numpy(y_ds), alone).backward()
    largest = max(largest, (z_torch[m].grad - alone.grad).abs().max().item())
print("largest difference, gradient of the sum vs gradient of each term alone:", largest)

# %% [markdown]
# ## Summary
#
# - **Focal BCE** multiplies each pixel's cross-entropy by $(1 - \hat y)^\gamma$ on lesion
#   pixels and $\hat y^\gamma$ on background: with $\gamma = 1$ an easy pixel's gradient
#   falls to a tenth of BCE's while a hard pixel keeps its push.
# - **Dice** scores the overlap with the lesion; the reward for finding a lesion changes
#   only 2–4 times between 1 and 1000 pixels (focal BCE's: 1000 times), so
#   microaneurysms of a few pixels are not outweighed by large lesions. Its gradient with
#   respect to $\hat y$ is the same on every lesion pixel.
# - The paper mixes them, $\alpha = 0.75$ focal BCE and $0.25$ Dice, weights the channels
#   by $w_k$ (lesson 5) and averages over the channels.
# - **Deep supervision** sums the loss of the fused and the six side outputs; each output
#   receives the gradient of its own term.
# - Our NumPy lines agree with `u2net_mini.equations` and the torch twin `u2net_mini.losses`
#   to rounding, and our gradient formulas with autograd.

# %% [markdown]
# ## Exercises
#
# 1. **Implementation, about 15 min.** The project sums Dice over the whole batch. Write
#    `dice_loss_per_image(y, y_hat, smooth=1.0)`, returning a `(B, C)` array: the Dice loss of
#    each image and channel on its own.
# 2. **Experiment, about 10 min.** For an easy background pixel ($y = 0$, $\hat y = 0.05$),
#    find `smallest_gamma`: the smallest integer $\gamma$ for which its focal loss is below 1 %
#    of its plain BCE. Use `equations.focal_bce` on a 1 × 1 × 1 × 1 image.
# 3. **Experiment, about 10 min.** Repeat the 3-pixel demo with background probability 0.01
#    instead of 0.001 (lesion found: 0.9, missed: 0.01). Compute `fbce_drop` and `dice_drop`, the
#    loss drops when the lesion is found, and set `bigger_drop` to `"fbce"` or `"dice"`.
# 4. **Implementation, about 10 min.** Write `weighted_deep_supervision(y, y_hats,
#    side_weight)`: the fused output `y_hats[0]` with weight 1 and the six side outputs
#    `y_hats[1:]` with weight `side_weight`, using `equations.lesion_loss`.
# 5. **Concept, about 10 min.** At test time only the fused output is used. Why supervise the
#    six side outputs at all? What would you expect with `side_weight = 0`?
# 6. **Concept, about 15 min.** A lesion pixel the network is sure is background has $\hat y =
#    0.001$. Compare the gradients $\partial / \partial z$ of the focal BCE and of Dice on it,
#    using the formulas of the lesson. What does this say about training with Dice alone?

# %% [markdown]
# Some checks below compare a fingerprint of your answer with a stored one
# (`answer_digest`: the numbers rounded, then hashed), so they can tell a right answer
# from a wrong one without showing it.

# %%
from lessons.exercises import answer_digest  # the fingerprint the checks were stored with


# %% tags=["solution"] exercise=1
def dice_loss_per_image(y, y_hat, smooth=1.0):
    """Dice loss of each image and channel on its own: (B, C)."""
    ### BEGIN SOLUTION
    # Why: summing over the pixel axes (2, 3) only, not over the batch, gives one intersection and
    # one total per image and channel; with B = 1 it is equations.dice_loss.
    intersection_bc = (y * y_hat).sum(axis=(2, 3))  # (B, C)
    total_bc = y.sum(axis=(2, 3)) + y_hat.sum(axis=(2, 3))  # (B, C)
    return 1 - (2 * intersection_bc + smooth) / (total_bc + smooth)  # (B, C)
    ### END SOLUTION


# %% tags=["check"] exercise=1
_batch_target = y_ds[:, :, :4, :4]  # (2, 2, 4, 4)
_batch_prob = y_hats_ds[0][:, :, :4, :4]  # (2, 2, 4, 4)
_per_image = dice_loss_per_image(_batch_target, _batch_prob)
assert np.shape(_per_image) == (2, 2), f"one Dice loss per image and channel expected, shape (2, 2), got {np.shape(_per_image)}"
for _b in range(2):
    _expected = equations.dice_loss(_batch_target[_b : _b + 1], _batch_prob[_b : _b + 1])  # (C,)
    assert np.allclose(_per_image[_b], _expected), f"image {_b}: got {_per_image[_b]}, expected {_expected}"
assert np.allclose(dice_loss_per_image(y, y_hat, smooth=0.5), equations.dice_loss(y, y_hat, smooth=0.5)), "smooth is ignored"
print("exercise 1: correct")

# %% tags=["solution"] exercise=2
### BEGIN SOLUTION
_easy_y, _easy_p = np.zeros((1, 1, 1, 1)), np.full((1, 1, 1, 1), 0.05)  # (1, 1, 1, 1)
_bce = equations.focal_bce(_easy_y, _easy_p, gamma=0)[0]
smallest_gamma = 0
while equations.focal_bce(_easy_y, _easy_p, gamma=smallest_gamma)[0] >= 0.01 * _bce:
    smallest_gamma += 1
# by hand: the ratio is 0.05^gamma, below 0.01 from gamma > log 0.01 / log 0.05 = 1.54
### END SOLUTION
print("smallest gamma:", smallest_gamma)

# %% tags=["check"] exercise=2
assert float(smallest_gamma).is_integer(), f"smallest_gamma must be an integer, got {smallest_gamma}"
assert smallest_gamma >= 1, "gamma = 0 is plain BCE: 100 % of itself"
assert answer_digest(int(smallest_gamma)) == "d4735e3a265e", (
    f"gamma = {smallest_gamma} is not the smallest that is enough"
)
print("exercise 2: correct")

# %% tags=["solution"] exercise=3
### BEGIN SOLUTION
_t3 = np.zeros((1, 1, 64, 64))  # (1, 1, 64, 64)
_t3.reshape(-1)[:3] = 1
_missed3 = np.full(_t3.shape, 0.01)  # (1, 1, 64, 64)
_found3 = np.where(_t3 == 1, 0.9, 0.01)  # (1, 1, 64, 64)
fbce_drop = equations.focal_bce(_t3, _missed3)[0] - equations.focal_bce(_t3, _found3)[0]
dice_drop = equations.dice_loss(_t3, _missed3)[0] - equations.dice_loss(_t3, _found3)[0]
bigger_drop = "dice" if dice_drop > fbce_drop else "fbce"
# Dice still wins, but its drop shrinks: 41 units of background probability now sit in its denominator.
### END SOLUTION
print(f"fBCE drop {fbce_drop:.5f}, Dice drop {dice_drop:.3f}: the bigger is {bigger_drop}")

# %% tags=["check"] exercise=3
assert fbce_drop > 0 and dice_drop > 0, (
    f"finding the lesson must lower both losses, got {fbce_drop}, {dice_drop}"
)
assert answer_digest(fbce_drop, digits=3) == "d5651e2b6e31", (
    f"fbce_drop: {fbce_drop} is not the focal BCE's drop"
)
assert answer_digest(dice_drop) == "d0867720a8b0", (
    f"dice_drop: {dice_drop} is not the Dice loss's drop"
)
assert bigger_drop in ("fbce", "dice"), f'bigger_drop must be "fbce" or "dice", got {bigger_drop!r}'
assert answer_digest(bigger_drop) == "cd0027fc421e", (
    f"bigger_drop {bigger_drop!r} does not match the drops"
)
print("exercise 3: correct")


# %% tags=["solution"] exercise=4
def weighted_deep_supervision(y, y_hats, side_weight):
    """L(y, fused) + side_weight * sum of L(y, side output) over the six side outputs."""
    ### BEGIN SOLUTION
    # Why: the paper's deep supervision is this sum with side_weight = 1; the loss is linear in
    # side_weight, and 0 leaves the fused output alone.
    fused, sides = y_hats[0], y_hats[1:]
    return equations.lesion_loss(y, fused) + side_weight * sum(
        equations.lesion_loss(y, p) for p in sides
    )
    ### END SOLUTION


# %% tags=["check"] exercise=4
_one = weighted_deep_supervision(y_ds, y_hats_ds, 1.0)
assert np.isclose(_one, equations.deep_supervision_loss(y_ds, y_hats_ds)), (
    f"side_weight = 1 must give the paper's sum, got {_one}"
)
_zero = weighted_deep_supervision(y_ds, y_hats_ds, 0.0)
assert np.isclose(_zero, equations.lesion_loss(y_ds, y_hats_ds[0])), (
    f"side_weight = 0 must leave the fused output only, got {_zero}"
)
_half = weighted_deep_supervision(y_ds, y_hats_ds, 0.5)
assert np.isclose(_half, (_one + _zero) / 2), (
    f"the loss must be linear in side_weight, got {_half} at 0.5"
)
print("exercise 4: correct")

# %% [markdown] tags=["solution"] exercise=5
# ### BEGIN SOLUTION
# The fused output is a 1 × 1 convolution over the six upsampled side outputs, so without
# their own terms the deep stages would learn only from the gradient that trickles back
# through the fusion and through every later stage. With each side output scored against
# the target, every decoder stage gets a direct gradient: it learns a usable segmentation
# at its own scale, early in training, and the fusion combines maps that already mean
# something. With `side_weight = 0` one would expect slower, less stable training, deep
# stages that learn less, and side maps that are no segmentations at all, only whatever
# features suit the fusion.
# ### END SOLUTION

# %% [markdown] tags=["solution"] exercise=6
# ### BEGIN SOLUTION
# Focal BCE: $\partial \ell / \partial z = \gamma p (1-p)^\gamma \log p - (1-p)^{\gamma+1}$ at
# $p = 0.001$, $\gamma = 1$: $0.001 \cdot 0.999 \cdot (-6.91) - 0.998 \approx -1.005$, a full
# push (divided by $N$ in the mean). Dice: $\partial D / \partial \hat y$ is the same modest
# number for every lesion pixel, and the sigmoid's slope $\hat y (1 - \hat y) \approx 0.001$
# multiplies it, so the pixel barely moves. The logarithm of the cross-entropy cancels the
# sigmoid's flat tail; Dice has no logarithm. With Dice alone a lesion pixel predicted
# confidently as background would stay there; the focal BCE term lets the network climb
# out, and Dice then makes the small lesions count.
# ### END SOLUTION
