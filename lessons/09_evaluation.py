# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 9 — Evaluation: PR curves, AUPR, Dice and the real photograph
#
# **At a glance**
#
# - **You will learn to**
#   - compute a PR curve and its AUPR in NumPy, and read ROC against AUPR
#   - tell AUPR from Dice at a threshold, and pool pixels over photographs as the paper does
#   - put the shipped model's Table 1 beside the paper's and read its overlays
# - **Prerequisites**: lesson 8 (a trained model); lesson 2 for the masks.
# - **Time on a laptop CPU**: 1–2 min to run top to bottom; about 105 min for the six exercises,
#   plus the reading.
# - **Difficulty**: intermediate.
# - **Paper**:
#   [Siebert & Rostalski, MIDL 2021](https://openreview.net/group?id=MIDL.io/2021/Conference),
#   Table 1 (AUPR per lesion on the IDRiD test split).
#
# A lesion map is a probability per pixel. To say how good a model is, we compare its
# maps with the masks an ophthalmologist drew, over every pixel of every test
# photograph. Lesion pixels are rare: microaneurysms cover well under 0.1 % of a
# photograph. A model that predicts "no lesion" everywhere is right on more than 99.9 %
# of the pixels and useless; accuracy, and even the ROC curve, hardly tell it from a good one.
#
# Siebert & Rostalski (MIDL 2021) rank their models, as the IDRiD challenge did, by the
# **area under the precision-recall curve** (AUPR) of each lesion, and report the mean
# over the four lesions in their Table 1. This lesson builds the PR curve and the AUPR
# in NumPy from ten pixels up, shows why AUPR and not ROC, what a threshold does to the
# Dice score and not to the AUPR, how to score a whole test set in a fixed, small
# memory, and how to read the paper's table. Then it trains a small model for a few
# seconds on synthetic photographs and looks honestly at what it does on a real one.
#
# You will need: lesson 8 (training) and the words true/false positive/negative.

# %%
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from data_prep.dataset import LesionDataset
from data_prep.fundus import pad_to_square
from data_prep.idrid import IDRiD, read_image
from data_prep.pipeline import resize_mask
from data_prep.shipped import idrid_root
from data_prep.synthetic import write_idrid_layout
from u2net_mini import evaluate, metrics, predict, train
from u2net_mini.checkpoint import load_model
from u2net_mini.lesions import LESION_COLOURS, LESIONS
from u2net_mini.overlay import display_pair
from u2net_mini.report import PAPER_TABLE_1, paper_table, results_table
from u2net_mini.shipped import shipped_checkpoints

torch.set_num_threads(1)
torch.manual_seed(0)
rng = np.random.default_rng(0)
np.set_printoptions(precision=4, suppress=True)
began = time.perf_counter()
workspace = tempfile.TemporaryDirectory(prefix="lesson09-")  # deleted when the kernel stops
work = Path(workspace.name)  # every file of this lesson goes here

# %% [markdown]
# ## Precision, recall and the paper's AUPR
#
# Call a pixel a lesion when its score is at least a threshold $t$. Against the mask,
# each pixel is then a true positive (TP), false positive (FP) or false negative (FN):
#
# $$P(t) = \frac{TP}{TP + FP} \ \text{(precision: of what we marked, how much is lesion)}, \qquad
#   R(t) = \frac{TP}{TP + FN} = \frac{TP}{N_+} \ \text{(recall: of the lesion, how much we marked)}$$
#
# Lowering $t$ from 1 to 0 traces the **PR curve**. Its area, as the IDRiD challenge and
# scikit-learn's `average_precision_score` compute it, is the **step-wise average
# precision**, with $t_1 > t_2 > \dots$ the distinct scores and $R_0 = 0$:
#
# $$\mathrm{AUPR} = \sum_n (R_n - R_{n-1})\, P_n$$
#
# Pixels with equal scores cross the threshold together: one step.

# %% [markdown]
# ## Ten pixels, by hand
#
# Four lesion pixels among ten, with a tie at 0.8 (a lesion pixel and a background pixel)
# and one at 0.2.
#
# | threshold $t_n$ | 0.9 | 0.8 | 0.6 | 0.5 | 0.4 | 0.3 | 0.2 | 0.1 |
# |---|---|---|---|---|---|---|---|---|
# | lesion / background pixels at $t_n$ | 1 / 0 | 1 / 1 | 1 / 0 | 0 / 1 | 0 / 1 | 1 / 0 | 0 / 2 | 0 / 1 |
# | TP, FP (score $\ge t_n$) | 1, 0 | 2, 1 | 3, 1 | 3, 2 | 3, 3 | 4, 3 | 4, 5 | 4, 6 |
# | precision $P_n$ | 1 | 2/3 | 3/4 | 3/5 | 1/2 | 4/7 | 4/9 | 2/5 |
# | recall $R_n$ | 1/4 | 2/4 | 3/4 | 3/4 | 3/4 | 1 | 1 | 1 |
#
# Recall steps up by 1/4 only where a lesion pixel enters, so
# $\mathrm{AUPR} = \frac14 (1 + \frac23 + \frac34 + \frac47) = \frac14 \cdot 2.98810 = 0.74702$.

# %%
y_small = np.array([1, 0, 1, 1, 0, 0, 1, 0, 0, 0], dtype=bool)  # (10,)
scores_small = np.array([0.9, 0.8, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.2, 0.1])  # (10,)

thresholds, group = np.unique(scores_small, return_inverse=True)  # (8,), (10,) ascending
thresholds = thresholds[::-1]  # (8,) descending, t_1 > t_2 > ...
group = len(thresholds) - 1 - group  # (10,) the index n of each pixel's threshold
pos = np.bincount(group[y_small], minlength=len(thresholds))  # (8,) lesion pixels at t_n
neg = np.bincount(group[~y_small], minlength=len(thresholds))  # (8,) background pixels at t_n
tp, fp = np.cumsum(pos), np.cumsum(neg)  # (8,) each: pixels with score >= t_n
precision = tp / (tp + fp)  # (8,) $P_n$
recall = tp / y_small.sum()  # (8,) $R_n$
# $\sum_n (R_n - R_{n-1}) P_n$ with $R_0 = 0$
aupr_small = np.sum(np.diff(recall, prepend=0) * precision)
print("precision:", precision)
print("recall   :", recall)
print(f"AUPR by hand 0.74702, NumPy {aupr_small:.5f}, metrics.aupr {metrics.aupr(y_small, scores_small):.5f}")

library_p, library_r, library_t = metrics.pr_curve(y_small, scores_small)  # (8,) each
print("largest difference, ours vs metrics.pr_curve:",
      max(np.abs(precision - library_p).max(), np.abs(recall - library_r).max(), np.abs(thresholds - library_t).max()))
print("largest difference, ours vs metrics.aupr:", abs(aupr_small - metrics.aupr(y_small, scores_small)))

fig, ax = plt.subplots(figsize=(4.5, 4))
ax.fill_between(np.r_[0, recall], np.r_[precision[0], precision], step="pre", alpha=0.25,
                label=f"AUPR = {aupr_small:.3f}")  # each step: width R_n - R_{n-1}, height P_n
ax.plot(recall, precision, "o")
for t, r, p in zip(thresholds, recall, precision):
    ax.annotate(f"{t:g}", (r, p), textcoords="offset points", xytext=(4, 4), fontsize=8)
ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.05), ylim=(0, 1.05), title="ten pixels: one point per threshold")
ax.legend(loc="lower left")
plt.show()

# %% [markdown]
# The tie at 0.8 enters as one group: precision 2/3 at recall 1/2. Had the lesion pixel
# been scored 0.81, it would have entered alone with precision 1, and the AUPR would be
# 0.830; at 0.79, after the background pixel, 0.747 again. A sort that put the tied
# lesion pixel first would thus report 0.830 for the very same scores; grouping ties
# makes the value independent of how a sort happens to order equal scores. All of it as
# one function, for any number of pixels:


# %%
def average_precision(y, scores):
    """Step-wise average precision of `scores` for the binary target `y` (same shape, any)."""
    y, scores = np.asarray(y, dtype=bool).ravel(), np.asarray(scores).ravel()  # (N,) each
    values, group = np.unique(scores, return_inverse=True)  # (G,), (N,)
    pos = np.bincount(group[y], minlength=values.size)[::-1]  # (G,) highest score first
    neg = np.bincount(group[~y], minlength=values.size)[::-1]  # (G,)
    precision = np.cumsum(pos) / np.cumsum(pos + neg)  # (G,) $P_n$
    return float(np.sum(pos / pos.sum() * precision))  # $\sum_n (R_n - R_{n-1}) P_n$, recall steps pos_n / N_+


# %% [markdown]
# ## Why not accuracy, why not ROC
#
# A simulation: every lesion pixel gets a score drawn from Beta(5, 2) (mostly high),
# every background pixel one from Beta(2, 5) (mostly low). The model's skill is the
# same in every row; only the share of lesion pixels changes, from 10 % (a large soft
# exudate) to 0.1 % (microaneurysms). The ROC area is the probability that a random
# lesion pixel scores above a random background pixel; we compute it from ranks.


# %%
def roc_auc(y, scores):
    """Area under the ROC curve, from the ranks of the scores (continuous scores: no ties)."""
    ranks = np.empty(scores.size)  # (N,)
    ranks[np.argsort(scores)] = np.arange(1, scores.size + 1)  # (N,) rank 1 = lowest score
    n_pos, n_neg = y.sum(), (~y).sum()
    return (ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


N_PIXELS = 200_000
simulated = {}
print(f"{'lesion share':>12} {'accuracy of all-background':>27} {'ROC AUC':>8} {'AUPR (ours)':>12} "
      f"{'metrics.aupr':>13}")
for share in (0.1, 0.01, 0.001):
    n_pos = int(N_PIXELS * share)
    y_sim = np.zeros(N_PIXELS, dtype=bool)  # (N,)
    y_sim[:n_pos] = True
    scores_sim = np.where(y_sim, rng.beta(5, 2, N_PIXELS), rng.beta(2, 5, N_PIXELS))  # (N,)
    simulated[share] = (y_sim, scores_sim)
    ours, library = average_precision(y_sim, scores_sim), metrics.aupr(y_sim, scores_sim)
    print(f"{share:12.1%} {1 - share:27.1%} {roc_auc(y_sim, scores_sim):8.3f} {ours:12.3f} {library:13.3f}")
print("largest difference, average_precision vs metrics.aupr:",
      max(abs(average_precision(*pair) - metrics.aupr(*pair)) for pair in simulated.values()))

fig, ax = plt.subplots(figsize=(4.5, 4))
for share, (y_sim, scores_sim) in simulated.items():
    p, r, _ = metrics.pr_curve(y_sim, scores_sim)
    ax.plot(r, p, label=f"{share:.1%} lesion: AUPR {metrics.aupr(y_sim, scores_sim):.2f}")
ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="one model, rarer and rarer lesions")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# The ROC area does not move: it compares lesion pixels with background pixels one pair
# at a time, whatever their numbers. Precision does move: at 0.1 % lesion, even a small
# share of the background scoring high outnumbers the whole lesion. That is what an
# ophthalmologist looking at the map sees (a map full of false alarms), and what AUPR
# measures. It also means that **AUPR values of different lesions are not on one scale**:
# the same skill gives a lower AUPR on a rarer lesion.

# %% [markdown]
# ## AUPR against Dice: the threshold
#
# The paper's loss has a Dice term (lesson 6), and Dice is the usual segmentation score.
# As a metric it needs a binary map, so a threshold $t$ (the project reports $t = 0.5$):
#
# $$\mathrm{Dice}(t) = \frac{2\, TP(t)}{2\, TP(t) + FP(t) + FN(t)}$$
#
# AUPR uses only the **order** of the scores, no threshold. A model that outputs
# $\hat y^4$ instead of $\hat y$, a more cautious one, ranks every pixel the same, so it
# has the same PR curve and AUPR; but far fewer of its pixels pass 0.5.


# %%
def dice_at(y, scores, t):
    """Dice of the prediction "score >= t" (1.0 when nothing is lesion and nothing is marked)."""
    marked = scores >= t  # (N,)
    tp, fp, fn = np.sum(marked & y), np.sum(marked & ~y), np.sum(~marked & y)
    return 1.0 if 2 * tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


y_sim, scores_sim = simulated[0.01]  # (N,) each
cautious = scores_sim**4  # (N,) the same order, smaller values
print(f"AUPR: model {metrics.aupr(y_sim, scores_sim):.4f}, cautious model {metrics.aupr(y_sim, cautious):.4f}")
print(f"Dice at 0.5: model {dice_at(y_sim, scores_sim, 0.5):.4f}, cautious model {dice_at(y_sim, cautious, 0.5):.4f}")
print("largest difference, dice_at vs metrics.dice_score:",
      max(abs(dice_at(y_sim, s, t) - metrics.dice_score(y_sim, s, t))
          for s in (scores_sim, cautious) for t in (0.1, 0.5, 0.9)))

grid = np.linspace(0.01, 0.99, 99)  # (99,) thresholds
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, s in (("model", scores_sim), ("cautious model: score$^4$", cautious)):
    ax.plot(grid, [dice_at(y_sim, s, t) for t in grid], label=name)
ax.axvline(0.5, color="gray", lw=0.6)
ax.set(xlabel="threshold t", ylabel="Dice(t)", title="same AUPR, different Dice at 0.5 (1 % lesion pixels)")
ax.legend()
plt.show()

# %% [markdown]
# Here the cautious model has the higher Dice at 0.5: with 1 % lesion pixels the first
# model marks too much background at 0.5. Yet the two rank every pixel alike, and both
# reach the same best Dice, at different thresholds. Dice at 0.5 measures the ranking
# *and* the calibration of the probabilities; AUPR the ranking alone. That is why the
# paper ranks by AUPR: a threshold is a choice of the screening application (how many
# false alarms per missed lesion it accepts), not of the model.

# %% [markdown]
# ## A whole test set in a fixed memory
#
# The exact AUPR sorts every pixel. IDRiD's 27 test photographs at 512 × 512 are
# 7.1 M pixels per lesion: the scores in float32, the masks, and a sort index in int64 are
# about 90 MB per lesion, and more for a larger test set. `metrics.PRAccumulator` keeps a
# **histogram** instead: the counts of lesion and background pixels in each of $B$ equal
# bins of $[0, 1]$. The histogram of a test set is the sum of the histograms of its
# photographs, so it is fed one photograph at a time, and the AUPR comes from the
# counts, with one threshold per bin (pixels in one bin count as tied).

# %%
def binned_average_precision(y, scores, n_bins):
    """AUPR with the scores put into `n_bins` equal bins of [0, 1] (a bin = one threshold)."""
    bins = np.minimum((scores * n_bins).astype(np.int64), n_bins - 1)  # (N,) bin k = floor(score · B)
    pos = np.bincount(bins[y], minlength=n_bins)[::-1]  # (B,) highest bin first
    neg = np.bincount(bins[~y], minlength=n_bins)[::-1]  # (B,)
    filled = pos + neg > 0  # (B,) empty bins are no threshold
    precision = np.cumsum(pos[filled]) / np.cumsum((pos + neg)[filled])  # (B',)
    return float(np.sum(pos[filled] / pos.sum() * precision))


exact = metrics.aupr(y_sim, scores_sim)
print(f"exact AUPR {exact:.6f}")
print(f"{'bins':>6} {'ours':>9} {'PRAccumulator':>14} {'error':>9} {'memory':>10}")
bin_counts = 2 ** np.arange(4, 17, 2)  # (7,) 16 ... 65536
errors, gaps = [], []
for n_bins in bin_counts:
    accumulator = metrics.PRAccumulator(n_bins=int(n_bins))
    for chunk in range(10):  # ten "photographs" of 20 000 pixels, one at a time
        accumulator.update(y_sim[chunk::10], scores_sim[chunk::10])
    ours = binned_average_precision(y_sim, scores_sim, int(n_bins))
    errors.append(abs(ours - exact))
    gaps.append(abs(ours - accumulator.aupr()))
    print(f"{n_bins:6d} {ours:9.6f} {accumulator.aupr():14.6f} {errors[-1]:9.1e} {accumulator.nbytes / 1024:8.0f} KiB")
print("largest difference, ours vs PRAccumulator:", max(gaps))

fig, ax = plt.subplots(figsize=(5, 3.2))
ax.loglog(bin_counts, errors, "o-")
ax.set(xlabel="histogram bins B", ylabel="|binned AUPR − exact AUPR|", title="the price of a fixed memory")
ax.grid(alpha=0.3, which="both")
plt.show()

# %% [markdown]
# With the library's default of $2^{16}$ bins the error is far below what any table
# shows (three decimals), for 1 MiB per lesion whatever the size of the test set. The
# Dice counts (TP, FP, FN at 0.5) are kept exactly beside it. `metrics.LesionScores`
# holds one accumulator per lesion; `u2net_mini.evaluate` feeds it batch by batch.

# %% [markdown]
# ## A model to evaluate
#
# We train the paper's U²-XS-Net, multi-task, on 12 synthetic photographs at 96 px for
# 15 epochs (about 15 to 30 seconds on a laptop CPU), with the library's script (lesson
# 8). To learn quickly in so few steps we switch off the augmentation (`--augment none`);
# the paper trains 400 epochs at 512 px with it, on 54 real photographs.

# %%
SIZE, N_TRAIN, N_TEST, EPOCHS = 96, 12, 6, 15
data = write_idrid_layout(work / "data", n_train=N_TRAIN, n_test=N_TEST, size=SIZE, seed=0, visible_at=SIZE)
cache, run = work / "cache", work / "run"
train.run(train.parse_args([
    "--data", str(data), "--out", str(run), "--mode", "mt", "--model", "xs", "--size", str(SIZE),
    "--epochs", str(EPOCHS), "--batch-size", "4", "--seed", "0", "--augment", "none", "--val", "none",
    "--device", "cpu", "--threads", "1", "--cache", str(cache), "--no-progress"]))
checkpoint = run / "MA-HE-EX-SE" / "best.pt"
model, payload = load_model(checkpoint)
print(f"trained in {time.perf_counter() - began:.0f} s since the lesson began")

# %% [markdown]
# ## Table 1 for our model
#
# `evaluate.evaluate` scores checkpoints on a split: every test photograph through the
# training preprocessing, the fused output through the sigmoid, and `LesionScores`
# pooled over all pixels of all photographs. To see it from the inside, we also run the
# test photographs through the model ourselves and compute the exact AUPR of each lesion
# with our `average_precision`.

# %%
rows = evaluate.evaluate([checkpoint], data, ["test"], cache_dir=cache)
print(results_table(rows))

test_set = LesionDataset(data, "test", size=SIZE, mean=payload["mean"], std=payload["std"], cache_dir=cache)
x_test = torch.stack([test_set[i][0] for i in range(len(test_set))])  # (6, 3, 96, 96)
y_test = torch.stack([test_set[i][1] for i in range(len(test_set))]).numpy().astype(bool)  # (6, 4, 96, 96)
y_hat_test = predict.probabilities(model, x_test).numpy()  # (6, 4, 96, 96)
ours = {name: average_precision(y_test[:, k], y_hat_test[:, k]) for k, name in enumerate(LESIONS)}
print("ours (exact):", {name: round(value, 4) for name, value in ours.items()})
print("largest difference, ours vs evaluate (2^16 bins):", max(abs(ours[n] - rows[0]["aupr"][n]) for n in LESIONS))

fig, ax = plt.subplots(figsize=(4.5, 4))
for name, (p, r) in rows[0]["curves"].items():
    ax.plot(r, p, color=LESION_COLOURS[name], label=f"{name}: AUPR {rows[0]['aupr'][name]:.2f}")
ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
       title=f"synthetic test set, {N_TEST} photographs")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Reading the paper's Table 1
#
# The paper's Table 1 has one row per model and training mode and one column per
# lesion: the AUPR of MA, HE, EX and SE on IDRiD's 27 test photographs, pooled over
# their pixels at 512 × 512, and the mean of the four. How to read it:
#
# - **The mean AUPR of the models lies between about 0.64 and 0.68.** The paper's
#   U²-XS-Net, 0.29 M parameters, is in that range: a network about 150 times smaller
#   than the original U²-Net (44 M) loses little on this task. The paper reports about
#   44 frames per second for it on a desktop GPU (an RTX 2080 Ti), and argues from its
#   size that it suits a phone (lesson 10).
# - **Compare within a column.** The same skill gives a lower AUPR on a rarer lesion (the
#   simulation above), so a mean over four lesions mixes very different scales. And a
#   difference of a few hundredths between two rows comes from one training run of each
#   model scored on 27 photographs: another seed could move it by as much, so read such
#   differences with care.
# - **Parameters of a mode add up.** A single-task row is four models; their parameters
#   are summed, and so is the time to run them.
# - **Our row is not comparable** with the paper's: synthetic photographs, 96 px instead of
#   512, 12 training photographs instead of 54, 15 epochs instead of 400, no augmentation,
#   6 test photographs. Ours is a check that the pipeline works; the paper's protocol is
#   `make train DATA=/path/to/IDRiD` (docs/training.md). After 15 epochs only the hard
#   exudates are found (lesson 8's curves), so our mean AUPR is low.

# %% [markdown]
# ## Real photographs: sim to real
#
# The project ships the whole of IDRiD's segmentation part, downscaled
# (`data_prep.shipped`). Our lesson model has never seen a real photograph. Its score on
# the 27 real test photographs, at its own 96 px:

# %%
real_rows = evaluate.evaluate([checkpoint], idrid_root(), ["test"], cache_dir=cache)
print(results_table(real_rows))
real_aupr, real_dice = real_rows[0]["aupr"]["EX"], real_rows[0]["dice"]["EX"]
print(f"EX on the real test split  : AUPR {real_aupr:.3f}, Dice at 0.5 {real_dice:.3f}")
print(f"EX on the synthetic test set: AUPR {rows[0]['aupr']['EX']:.3f}, Dice at 0.5 {rows[0]['dice']['EX']:.3f}")

ex = LESIONS.index("EX")
real_set = LesionDataset(idrid_root(), "test", size=SIZE, mean=payload["mean"], std=payload["std"], cache_dir=cache)
x_real = torch.stack([real_set[i][0] for i in range(len(real_set))])  # (27, 3, 96, 96)
real_y = torch.stack([real_set[i][1][ex] for i in range(len(real_set))]).numpy().astype(bool)  # (27, 96, 96)
real_scores = predict.probabilities(model, x_real)[:, ex].numpy()  # (27, 96, 96)
print("largest difference, our real-photograph AUPR vs evaluate:",
      abs(average_precision(real_y, real_scores) - real_aupr))
print(f"share of EX pixels in the real test squares (the AUPR of random scores): {real_y.mean():.3f}")
real_dice_curve = np.array([dice_at(real_y.ravel(), real_scores.ravel(), t) for t in grid])  # (99,)
best_t = grid[np.argmax(real_dice_curve)]
print(f"best Dice on the real photographs: {real_dice_curve.max():.3f} at t = {best_t:.2f} (at 0.5: {real_dice:.3f})")

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
pairs = (("synthetic test", y_test[:, ex], y_hat_test[:, ex]), ("real IDRiD test", real_y, real_scores))
for label, y_k, s_k in pairs:
    p, r, _ = metrics.pr_curve(y_k, s_k)
    left.plot(r, p, label=f"{label}: AUPR {metrics.aupr(y_k, s_k):.2f}")
    right.plot(grid, [dice_at(y_k.ravel(), s_k.ravel(), t) for t in grid], label=label)  # (99,)
left.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="hard exudates: PR curves")
right.axvline(0.5, color="gray", lw=0.6)
right.set(xlabel="threshold t", ylabel="Dice(t)", title="hard exudates: Dice against the threshold")
for ax in (left, right):
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
plt.tight_layout()
plt.show()

# %% [markdown]
# The lesson model ranks real exudate pixels above chance (random scores would give an
# AUPR equal to the share of EX pixels, a few per cent), but far below its synthetic
# score, and at 96 px the other lesions are a pixel or less: a threshold and a model
# tuned on painted photographs do not carry over. What closes the gap is real training
# data, at the paper's scale.

# %% [markdown]
# ## Table 1 from real numbers: the shipped model
#
# The package ships U²-XS-Net trained by this project on the 54 real training
# photographs at the paper's 512 px scale (`u2net_mini.shipped`; how it was trained:
# docs/results.md). `evaluate` scores it on the 27 real test photographs, pooled over
# every pixel of the 512 px squares, as the paper's Table 1 does (about half a minute on
# one CPU thread), and prints the paper's rows beside it:

# %%
shipped = shipped_checkpoints("mt")
shipped_rows = evaluate.evaluate(shipped, idrid_root(), ["test"], cache_dir=cache)
print(results_table(shipped_rows))
print(paper_table())
gap = {name: shipped_rows[0]["aupr"][name] - PAPER_TABLE_1[2]["aupr"][name] for name in LESIONS}
print("shipped XS-MT minus the paper's XS-MT, AUPR per lesion:", {n: round(v, 3) for n, v in gap.items()})

# %% [markdown]
# Read the rows lesion by lesion, as above: the rarest and smallest lesion, MA, has the
# lowest AUPR in both, and EX, large and high-contrast, the highest. The shipped model
# was trained on a CPU on 256 px windows of the 512 px squares rather than on whole
# squares on a GPU (docs/training.md), one run, one seed; the paper's row is one run too.
#
# ### Overlays: what it finds, and what it misses
#
# `predict.Predictor` runs the whole prediction pipeline on a photograph file (crop to
# the disc, resize, CLAHE, the checkpoint's normalization, sigmoid of the fused output);
# `overlay.display_pair` lays the maps on the cropped photograph at a size fit to look
# at. Below, for two test photographs, the ophthalmologists' masks of EX and HE (white)
# against the model's regions at $t = 0.5$ (cyan for EX, green for HE).

# %%
predictor = predict.Predictor(shipped)
test_photos = IDRiD(idrid_root(), "test")
he = LESIONS.index("HE")
fig, axes = plt.subplots(2, 3, figsize=(15, 10))
for row_axes, name in zip(axes, ("IDRiD_55", "IDRiD_81")):
    index = test_photos.names.index(name)
    image = read_image(test_photos.image_path(index))  # (712, 1072, 3)
    y_hat, geometry = predictor(image)  # (4, 512, 512)
    photo, maps = display_pair(image, y_hat, geometry)  # (d, d, 3), (4, d, d)
    masks = test_photos[index]["masks"]  # (4, 712, 1072)
    box = np.s_[geometry.y0:geometry.y1, geometry.x0:geometry.x1]
    truth = {k: resize_mask(pad_to_square(masks[k][box]), photo.shape[:2]) for k in (ex, he)}  # (d, d) each
    row_axes[0].imshow(photo)
    row_axes[0].set_title(f"{name}", fontsize=10)
    for ax, k, colour in ((row_axes[1], ex, "cyan"), (row_axes[2], he, "lime")):
        ax.imshow(photo)
        ax.contour(truth[k], levels=[0.5], colors="white", linewidths=0.6)
        ax.contour(maps[k] >= 0.5, levels=[0.5], colors=colour, linewidths=0.9)
        ax.set_title(f"{LESIONS[k]}: mask (white), model at 0.5 ({colour})", fontsize=10)
for ax in axes.ravel():
    ax.axis("off")
plt.tight_layout()
plt.show()
print(f"lesson run time: {time.perf_counter() - began:.0f} s")

# %% [markdown]
# Look for three things. The large exudate clusters are found, with outlines close to
# the masks, while many of the smallest flecks are missed or merged. The optic disc,
# bright and yellowish like an exudate, is left alone: real training data taught what
# the synthetic photographs could not. And the haemorrhages: in IDRiD_55 the two large
# ones are found in part, but in IDRiD_81, a tessellated fundus (the choroid's vessels
# show through a thin retina), the model marks a dozen dark patches between the choroidal
# vessels as haemorrhages, where the ophthalmologists marked none: dark, red and blotchy
# is what a haemorrhage looks like at this scale, and such false alarms are the main
# reason HE scores below the paper (0.535 against 0.62). The library's overlay
# (`make demo`, `predict`) shows all four lesions at once. Every number and map here
# comes from one training run; docs/results.md records the same table with the commands
# that reproduce it.

# %% [markdown]
# ## Summary
#
# - Precision and recall at every threshold make the PR curve; the AUPR is the step-wise
#   average precision $\sum_n (R_n - R_{n-1}) P_n$ over the distinct scores, ties
#   entering together. Our NumPy version equals `metrics.aupr` to rounding.
# - With rare lesions, accuracy and the ROC area hardly see false alarms; precision does.
#   The same skill gives a lower AUPR on a rarer lesion.
# - AUPR depends only on the order of the scores; Dice needs a threshold and so also
#   measures calibration. The paper ranks by AUPR; a screening app must still pick $t$.
# - `PRAccumulator` scores any number of photographs in 1 MiB per lesion with a
#   $2^{16}$-bin histogram, within far less than $10^{-3}$ of the exact AUPR.
# - The paper's Table 1: mean AUPR about 0.64–0.68 for its models, U²-XS-Net with 0.29 M
#   parameters among them at about 44 frames per second on a GPU. Our lesson model is
#   not comparable; `evaluate` prints our row in the same form.
# - Trained on synthetic photographs only, the model finds some real exudates and makes
#   mistakes synthetic data did not teach it to avoid: the sim-to-real gap.
# - The shipped U²-XS-Net, trained on the real training photographs, puts real numbers
#   beside the paper's Table 1; its overlays show where it succeeds and fails.

# %% [markdown]
# ## Exercises
#
# 1. **Concept, by hand, about 15 min.** Eight pixels, target `y_ex1 = [1, 1, 0, 1, 0, 0, 0,
#    1]` and scores `s_ex1 = [0.95, 0.7, 0.7, 0.5, 0.4, 0.3, 0.3, 0.1]`. Write the table of
#    thresholds, TP, FP, precision and recall on paper, and set `ap_by_hand` to the AUPR as a sum
#    of fractions (write the arithmetic, e.g. `(1 + 2 / 3) / 4`, not a call to a library).
# 2. **Implementation, about 30 min.** Write `best_dice(y, scores)`, returning `(threshold,
#    dice)`: the threshold among the distinct scores that gives the highest Dice, and that Dice.
#    Vectorize it as `average_precision` does (sort once, cumulative sums), no loop over
#    thresholds.
# 3. **Experiment, about 15 min.** The library pools the pixels of all test photographs. For
#    hard exudates on our synthetic test set (`y_test`, `y_hat_test`), compute `pooled`, the
#    pooled AUPR, and `per_image_mean`, the mean of the per-photograph AUPRs over the photographs
#    that have EX pixels. Set `pooled_is_higher`. What does each average give weight to?
# 4. **Implementation, about 20 min.** Two GPUs each scored half of a test set into their own
#    `PRAccumulator`. Write `merge(a, b)`: a new accumulator holding both (the same bins and
#    threshold), leaving `a` and `b` unchanged, so that `merge(a, b).aupr()` and `.dice()` are
#    those of one accumulator fed everything.
# 5. **Concept, about 15 min.** Compare the lesson model's real-test scores with its synthetic
#    ones. Name three differences between our synthetic training photographs and a real one that
#    can explain the model's mistakes, and say what you would change first to close the gap, and
#    how you would measure that it closed.
# 6. **Concept, about 10 min.** A colleague prefers Dice at 0.5 to AUPR "because it is what
#    the overlay shows". Give one argument for each side, and say which number you would put in a
#    table that compares models, and which you would use to set up a screening app.

# %% tags=["solution"] exercise=1
y_ex1 = np.array([1, 1, 0, 1, 0, 0, 0, 1], dtype=bool)  # (8,)
s_ex1 = np.array([0.95, 0.7, 0.7, 0.5, 0.4, 0.3, 0.3, 0.1])  # (8,)
### BEGIN SOLUTION
# t:      0.95   0.7    0.5    0.4    0.3    0.1
# TP, FP: 1, 0   2, 1   3, 1   3, 2   3, 4   4, 4
# P:      1      2/3    3/4    3/5    3/7    1/2
# R:      1/4    2/4    3/4    3/4    3/4    1
ap_by_hand = (1 + 2 / 3 + 3 / 4 + 1 / 2) / 4  # = 0.72917
### END SOLUTION
print("AUPR by hand:", ap_by_hand)

# %% tags=["check"] exercise=1
_expected = metrics.aupr(y_ex1, s_ex1)
assert np.isclose(ap_by_hand, _expected), f"ap_by_hand = {ap_by_hand} is not the AUPR of these eight pixels"
print("exercise 1: correct")

# %% tags=["solution"] exercise=2
def best_dice(y, scores):
    """(threshold, dice): the distinct score t that maximizes the Dice of "score >= t", and that Dice."""
    ### BEGIN SOLUTION
    # Why: with the distinct scores sorted once, highest first, cumulative sums of positives and
    # negatives are TP and FP at every threshold; Dice = 2 TP / (2 TP + FP + FN) is then one
    # array, and its argmax the best threshold.
    y, scores = np.asarray(y, dtype=bool).ravel(), np.asarray(scores).ravel()  # (N,) each
    values, group = np.unique(scores, return_inverse=True)  # (G,), (N,)
    pos = np.bincount(group[y], minlength=values.size)[::-1]  # (G,) highest score first
    neg = np.bincount(group[~y], minlength=values.size)[::-1]  # (G,)
    tp, fp = np.cumsum(pos), np.cumsum(neg)  # (G,) at threshold values[::-1][n]
    fn = y.sum() - tp  # (G,)
    dice = 2 * tp / np.maximum(2 * tp + fp + fn, 1)  # (G,)
    best = int(np.argmax(dice))
    return float(values[::-1][best]), float(dice[best])
    ### END SOLUTION


# %% tags=["check"] exercise=2
_rng = np.random.default_rng(2)
for _n, _share in ((50, 0.3), (3000, 0.02)):
    _y = _rng.random(_n) < _share  # (n,)
    _s = np.clip(np.round(np.where(_y, _rng.beta(4, 2, _n), _rng.beta(2, 4, _n)), 2), 0.01, 1)  # (n,) rounded: many ties
    _t, _d = best_dice(_y, _s)
    assert np.isclose(_d, metrics.dice_score(_y, _s, _t)), f"the Dice at your threshold {_t} is not {_d}"
    _brute = max(metrics.dice_score(_y, _s, _u) for _u in np.unique(_s) if _u > 0)
    assert np.isclose(_d, _brute), f"{_n} pixels: a threshold gives Dice {_brute}, better than your {_d}"
print("exercise 2: correct")

# %% tags=["solution"] exercise=3
### BEGIN SOLUTION
pooled = metrics.aupr(y_test[:, ex], y_hat_test[:, ex])
per_image = [metrics.aupr(y_test[i, ex], y_hat_test[i, ex]) for i in range(len(y_test)) if y_test[i, ex].any()]
per_image_mean = float(np.mean(per_image))
pooled_is_higher = bool(pooled > per_image_mean)
# Pooling weighs every pixel the same: photographs with many exudate pixels dominate, and
# a false alarm in one photograph lowers the precision of all. The per-image mean weighs
# every photograph the same, however small its lesions, and is undefined for a photograph
# without the lesion (left out here).
### END SOLUTION
print(f"pooled {pooled:.3f}, mean of per-image AUPRs {per_image_mean:.3f}")

# %% tags=["check"] exercise=3
# the lesson's own exact AUPR of EX above pools every pixel of every test photograph
assert np.isclose(pooled, ours["EX"]), f"pooled = {pooled}: not the EX AUPR of the pooled test set"
assert 0 < per_image_mean <= 1, f"a mean of AUPRs lies in (0, 1], got {per_image_mean}"
assert not np.isclose(per_image_mean, pooled), (
    "per_image_mean equals the pooled AUPR: average per photograph"
)
assert isinstance(pooled_is_higher, (bool, np.bool_)), "pooled_is_higher must be True or False"
assert pooled_is_higher == (float(pooled) - float(per_image_mean) > 0), (
    "compare your two numbers again"
)
print("exercise 3: correct")


# %% tags=["solution"] exercise=4
def merge(a, b):
    """A new PRAccumulator holding everything `a` and `b` were fed; `a` and `b` stay as they are."""
    ### BEGIN SOLUTION
    # Why: an accumulator holds only sums (histogram counts per bin, TP, FP, FN, images), and the
    # sums of two halves add up to the sums of the whole; a new object leaves a and b untouched.
    if a.n_bins != b.n_bins or a.threshold != b.threshold:
        raise ValueError(
            f"accumulators must share bins and threshold, got {a.n_bins}/{a.threshold} "
            f"and {b.n_bins}/{b.threshold}"
        )
    merged = metrics.PRAccumulator(a.n_bins, a.threshold)
    merged.positive_counts = a.positive_counts + b.positive_counts  # (n_bins,)
    merged.negative_counts = a.negative_counts + b.negative_counts  # (n_bins,)
    merged.tp, merged.fp, merged.fn = a.tp + b.tp, a.fp + b.fp, a.fn + b.fn
    merged.n_images = a.n_images + b.n_images
    return merged
    ### END SOLUTION


# %% tags=["check"] exercise=4
_rng = np.random.default_rng(4)
_y = _rng.random((6, 40, 40)) < 0.05  # (6, 40, 40) six "photographs"
_s = np.clip(
    np.where(_y, _rng.normal(0.6, 0.2, _y.shape), _rng.normal(0.3, 0.2, _y.shape)), 0, 1
)  # (6, 40, 40)
_a, _b, _all = metrics.PRAccumulator(256), metrics.PRAccumulator(256), metrics.PRAccumulator(256)
for _i in range(6):
    (_a if _i < 4 else _b).update(_y[_i], _s[_i])
    _all.update(_y[_i], _s[_i])
_before = (_a.aupr(), _a.dice(), _b.aupr(), _b.dice())
_merged = merge(_a, _b)
assert _merged is not _a and _merged is not _b, "merge must return a new accumulator"
assert np.isclose(_merged.aupr(), _all.aupr()), (
    f"merged AUPR {_merged.aupr()} differs from {_all.aupr()}"
)
assert np.isclose(_merged.dice(), _all.dice()), (
    f"merged Dice {_merged.dice()} differs from {_all.dice()}"
)
assert _before == (_a.aupr(), _a.dice(), _b.aupr(), _b.dice()), "merge changed a or b"
print("exercise 4: correct")

# %% [markdown] tags=["solution"] exercise=5
# ### BEGIN SOLUTION
# Differences, any three: real exudates are many small, irregular, yellow flecks of
# varying sharpness, the painted ones smoother blobs; the real optic disc, the light
# reflexes along the vessels and near the macula, and the nerve-fibre sheen are bright
# like exudates and look different from the painted ones (so the model marks them); real
# photographs vary in illumination, colour, focus and compression, the synthetic ones
# much less; at 96 px a real exudate is often a pixel or less; and the model saw 12
# photographs for 15 epochs without augmentation, too little to generalize to anything.
# First change: train on real photographs (IDRiD, the paper's protocol) — nothing else
# removes the gap; failing that, more and more varied synthetic photographs (colour and
# brightness augmentation, realistic reflexes), a larger input, a longer run. Measure it
# on real photographs never used to train or to choose anything: the EX AUPR (and the
# false alarms on the optic disc) of IDRiD's test split, as the shipped model's table does.
# ### END SOLUTION

# %% [markdown] tags=["solution"] exercise=6
# ### BEGIN SOLUTION
# For Dice at 0.5: it scores the binary map a screener actually sees, with one number per
# lesion, and punishes a badly calibrated model whose probabilities never reach 0.5. For
# AUPR: it does not depend on an arbitrary threshold (a model can be excellent at ranking
# pixels and still score a poor Dice at 0.5, as the two models of the lesson show), it summarizes every
# operating point, and it is what the IDRiD challenge and the paper used, so the numbers
# compare. In a table comparing models: AUPR (and Dice beside it, with its threshold
# stated). For a screening app: choose the threshold on a validation set for the
# trade-off between missed lesions and false alarms the app needs, then report Dice (or
# precision and recall) at that threshold, on a test set not used to choose it.
# ### END SOLUTION
