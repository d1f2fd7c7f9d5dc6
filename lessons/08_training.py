# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 8 — Training: single-, dual- and multi-task
#
# **At a glance**
#
# - **You will learn to**
#   - take one training step by hand: seven outputs, the deep-supervision loss, Adam in NumPy
#   - follow the learning-rate schedule over 400 epochs
#   - train single-, dual- and multi-task models and reproduce the library's training loop
# - **Prerequisites**: lessons 4, 6 and 7 (the network, the loss, the augmentation).
# - **Time on a laptop CPU**: < 1 min to run top to bottom; about 100 min for the six exercises,
#   plus the reading.
# - **Difficulty**: advanced.
# - **Paper**:
#   [Siebert & Rostalski, MIDL 2021](https://openreview.net/group?id=MIDL.io/2021/Conference),
#   Section 3 (Adam, lr 1e-3, weight decay 1e-4, 400 epochs, the schedule; st, dt and mt
#   models).
#
# The earlier lessons built the parts: photographs and masks (lessons 1, 2, 7), the
# network (3, 4) and the loss (5, 6). Training joins them in one short loop, repeated
# thousands of times:
#
# ```
# photographs x, masks y ─> model ─> 7 logits ─> deep-supervision loss ─> gradients ─> Adam step
# ```
#
# Siebert & Rostalski (MIDL 2021, Section 3) also ask *how to divide the four lesions
# among models*: one model per lesion (single-task), one for the red lesions and one for
# the white ones (dual-task), or one model for all four (multi-task). This lesson trains a
# tiny U²-XS-Net on the CPU in seconds: every step written out, Adam rebuilt in NumPy,
# the learning-rate schedule plotted over the paper's 400 epochs, and then the library's
# training script run on the same data, which must give the very same weights, to the
# last bit. It ends with the three modes side by side.
#
# You will need: lessons 4 (the seven outputs of U²-Net) and 6 (the loss), and the idea
# of gradient descent.

# %%
import csv
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from data_prep.dataset import LesionDataset
from data_prep.idrid import read_image
from data_prep.synthetic import write_idrid_layout
from u2net_mini import equations, losses, train
from u2net_mini.counting import count_parameters
from u2net_mini.equations import lr_at_epoch
from u2net_mini.lesions import LESION_COLOURS, LESIONS, TASK_GROUPS, models_for_mode
from u2net_mini.model import build_model
from u2net_mini.predict import Predictor

torch.set_num_threads(1)  # one thread: deterministic on a CPU, and quick on a busy laptop
torch.manual_seed(0)
rng = np.random.default_rng(0)
np.set_printoptions(precision=5, suppress=True)
began = time.perf_counter()
workspace = tempfile.TemporaryDirectory(prefix="lesson08-")  # deleted when the kernel stops
work = Path(workspace.name)  # every file of this lesson goes here
print("files of this lesson go to", work)

# %% [markdown]
# ## The paper's protocol, and this lesson's
#
# | | paper | this lesson |
# |---|---|---|
# | data | IDRiD: 54 training, 27 test photographs | synthetic, IDRiD's layout: 12 training, 4 test |
# | input | 512 × 512 | 96 × 96 (64 for the three modes) |
# | model | U²-XS-Net, 0.29 M parameters | the same |
# | loss | fused + 6 side outputs, α = 0.75, γ = 1 | the same (`losses.deep_supervision_loss`) |
# | optimizer | Adam, lr $10^{-3}$, weight decay $10^{-4}$ | the same |
# | schedule | lr × 0.75 every 15 epochs from epoch 115 | the same (`equations.lr_at_epoch`) |
# | epochs | 400 | 3 by hand, 15 with the library |
# | augmentation | rotation, shift, scale, flips | the same (lesson 7) |
# | batch | not stated | 4 photographs |
#
# The full protocol is one command on a GPU (`docs/training.md`):
# `python -m u2net_mini.train --data /path/to/IDRiD --mode mt --out runs/mt`.
# At 512 px and 400 epochs it takes hours; everything below runs in well under a minute.

# %% [markdown]
# ## What each mode trains
#
# `lesions.models_for_mode` says which lesions each model of a mode predicts, one tuple
# per model. A model with $C$ lesions has $C$ output channels; only its side heads and
# the fusing convolution depend on $C$, so the models of all modes are nearly the same
# size.

# %%
print(f"{'mode':>4} {'models':>6}  {'lesions per model':<34} {'params per model':>18} {'params in all':>14}")
for mode in TASK_GROUPS:
    groups = models_for_mode(mode)
    counts = [count_parameters(build_model("xs", len(group))) for group in groups]
    shown = ", ".join("+".join(group) for group in groups)
    print(f"{mode:>4} {len(groups):6d}  {shown:<34} {str(sorted(set(counts))):>18} {sum(counts):14,d}")

# %% [markdown]
# The multi-task model is the paper's 0.29 M. Single-task needs four models, so four
# times the parameters and four forward passes per photograph; dual-task two of each.
# What one gains for it is a model whose every weight serves one lesion (or two related
# ones); what one loses is shared features: a vessel learned by the MA model is learned
# again by the HE model.

# %% [markdown]
# ## The data
#
# `data_prep.synthetic.write_idrid_layout` paints a synthetic set in IDRiD's folder
# layout and file encoding (lesson 2); `visible_at=96` keeps every lesion at least 2 px
# wide at our 96 px input. `LesionDataset` is what the training script reads: each item
# is the disc cropped, resized, CLAHE, the paper's random augmentation and the
# normalization, `x` (3, s, s) and `y` (C, s, s). The cache of resized photographs goes
# into our temporary folder too (by default it is `~/.cache/u2net_mini`).

# %%
SIZE, N_TRAIN, N_TEST, BATCH = 96, 12, 4, 4
data = write_idrid_layout(work / "data", n_train=N_TRAIN, n_test=N_TEST, size=SIZE, seed=0, visible_at=SIZE)
cache = work / "cache"
train_set = LesionDataset(data, "train", size=SIZE, augment=True, seed=0, cache_dir=cache)
print(train_set)
x0, y0 = train_set[0]  # (3, 96, 96), (4, 96, 96)
print("x:", tuple(x0.shape), x0.dtype, " y:", tuple(y0.shape), y0.dtype)
shares = np.mean([train_set[i][1].numpy().mean(axis=(1, 2)) for i in range(N_TRAIN)], axis=0)  # (4,)
print("share of lesion pixels in the training set:", dict(zip(LESIONS, np.round(shares, 4).tolist())))


def show_item(ax, x, y, title):
    """A normalized input shown as a photograph, with each lesion's outline in its colour."""
    photo = np.clip(x.numpy().transpose(1, 2, 0) * train_set.std + train_set.mean, 0, 1)  # (s, s, 3)
    ax.imshow(photo)
    for name, mask in zip(LESIONS, y.numpy()):
        if mask.any():
            ax.contour(mask, levels=[0.5], colors=[LESION_COLOURS[name]], linewidths=0.7)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


fig, axes = plt.subplots(1, 4, figsize=(11, 3))
for i, ax in enumerate(axes):
    show_item(ax, *train_set[i], f"{train_set.names[i]} (epoch 0)")
fig.suptitle("what the network sees: augmented, normalized inputs and their masks")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The learning-rate schedule
#
# The paper trains 400 epochs with Adam at $\mathrm{lr}_0 = 10^{-3}$ and multiplies the
# rate by $f = 0.75$ every $p = 15$ epochs from epoch $e_0 = 115$. With epochs $e$
# counted from 0 (the project's reading; `docs/training.md`):
#
# $$\mathrm{lr}(e) = \begin{cases} \mathrm{lr}_0 & e < e_0 \\
#   \mathrm{lr}_0 \cdot f^{\lfloor (e - e_0) / p \rfloor + 1} & e \ge e_0 \end{cases}$$
#
# In NumPy, for all 400 epochs at once:

# %%
epochs = np.arange(400)  # (400,)
# $\lfloor (e - e_0)/p \rfloor + 1$ decays so far, none before $e_0$
decays = np.where(epochs >= 115, (epochs - 115) // 15 + 1, 0)  # (400,)
# $\mathrm{lr}_0 \cdot f^{\text{decays}}$
lr_schedule = 1e-3 * 0.75**decays  # (400,)
library_schedule = np.array([lr_at_epoch(e) for e in epochs])  # (400,)
print("largest difference, ours vs equations.lr_at_epoch:", np.abs(lr_schedule - library_schedule).max())
print(f"epoch 114: {lr_schedule[114]:.2e}, epoch 115: {lr_schedule[115]:.2e}, "
      f"epoch 399: {lr_schedule[399]:.2e} after {decays[399]} decays")

fig, ax = plt.subplots(figsize=(8, 3.2))
ax.semilogy(epochs, lr_schedule, drawstyle="steps-post")
ax.axvline(115, color="gray", lw=0.6)
ax.text(118, 6e-4, "epoch 115: first decay", fontsize=8, color="gray")
ax.set(xlabel="epoch (from 0)", ylabel="learning rate", title="the paper's schedule over 400 epochs")
ax.grid(alpha=0.3, which="both")
plt.show()

# %% [markdown]
# A constant rate for the first 115 epochs, where the network learns what lesions look
# like; then 19 steps down, to $4 \cdot 10^{-6}$ at the last epoch, a factor of about 240,
# where it settles into the fine detail. Our 15 epochs all lie on the flat part.

# %% [markdown]
# ## One training step, piece by piece
#
# A batch of four photographs through a fresh XS model with four outputs. U²-Net returns
# **seven** logit maps: the fused output first, then the six side outputs, each at the
# input's size.

# %%
x = torch.stack([train_set[i][0] for i in range(BATCH)])  # (4, 3, 96, 96)
y = torch.stack([train_set[i][1] for i in range(BATCH)])  # (4, 4, 96, 96)
torch.manual_seed(0)
model = build_model("xs", len(LESIONS))
outputs = model(x)  # 7 × (4, 4, 96, 96)
for name, logits in zip(["fused"] + [f"side {m}" for m in range(1, 7)], outputs):
    print(f"{name:>7}: {tuple(logits.shape)}")

# %% [markdown]
# The loss of each output is the paper's $L$ (lesson 6), and deep supervision sums the
# seven, each weighted 1: $L_{\mathrm{total}} = \sum_{m=1}^{7} L(y, \hat y^{(m)})$,
# $\hat y^{(m)} = \sigma(z^{(m)})$. The library computes it in torch from the logits
# (`losses.deep_supervision_loss`); its readable NumPy definition takes probabilities
# (`equations.deep_supervision_loss`). On the same outputs, in float64:

# %%
loss = losses.deep_supervision_loss(y, outputs, alpha=0.75, gamma=1.0)  # a scalar tensor
per_output = [losses.deep_supervision_loss(y, [logits]).item() for logits in outputs]  # 7 floats
print("loss of each output:", np.round(per_output, 4))
print(f"their sum {sum(per_output):.4f}, the total {loss.item():.4f}")

y_numpy = y.numpy().astype(np.float64)  # (4, 4, 96, 96)
y_hats = [torch.sigmoid(logits.detach().double()).numpy() for logits in outputs]  # 7 × (4, 4, 96, 96)
numpy_loss = equations.deep_supervision_loss(y_numpy, y_hats)
torch_loss = losses.deep_supervision_loss(y, [logits.detach().double() for logits in outputs]).item()
print("largest difference, equations (NumPy) vs losses (torch), float64:", abs(numpy_loss - torch_loss))

# %% [markdown]
# ### Adam, in NumPy
#
# `loss.backward()` fills every parameter's `.grad`. Adam then moves each parameter
# $\theta$ with its gradient $g$, keeping two running averages per parameter. torch's
# `Adam(weight_decay=λ)`, the paper's optimizer, adds the weight decay to the gradient
# (an L2 penalty). At step $t = 1, 2, \dots$, with $\beta_1 = 0.9$, $\beta_2 = 0.999$,
# $\epsilon = 10^{-8}$:
#
# $$g \leftarrow g + \lambda \theta, \quad m \leftarrow \beta_1 m + (1 - \beta_1) g, \quad
#   v \leftarrow \beta_2 v + (1 - \beta_2) g^2, \quad
#   \theta \leftarrow \theta - \mathrm{lr} \frac{m / (1 - \beta_1^t)}{\sqrt{v / (1 - \beta_2^t)} + \epsilon}$$


# %%
def adam_numpy(thetas, grads, state, lr=1e-3, weight_decay=1e-4, betas=(0.9, 0.999), eps=1e-8):
    """One Adam step on lists of float64 arrays; `state` holds t, m and v and is updated."""
    beta1, beta2 = betas
    state["t"] += 1
    t = state["t"]
    new_thetas = []
    for k, (theta, grad) in enumerate(zip(thetas, grads)):
        g = grad + weight_decay * theta  # (same shape as theta) $g + \lambda \theta$
        state["m"][k] = beta1 * state["m"][k] + (1 - beta1) * g  # $m$
        state["v"][k] = beta2 * state["v"][k] + (1 - beta2) * g**2  # $v$
        m_hat = state["m"][k] / (1 - beta1**t)  # bias-corrected first moment
        v_hat = state["v"][k] / (1 - beta2**t)  # bias-corrected second moment
        new_thetas.append(theta - lr * m_hat / (np.sqrt(v_hat) + eps))  # (same shape as theta)
    return new_thetas


parameters = list(model.parameters())
optimizer = torch.optim.Adam(parameters, lr=1e-3, weight_decay=1e-4)
state = {"t": 0, "m": [np.zeros(p.shape) for p in parameters], "v": [np.zeros(p.shape) for p in parameters]}
x_next = torch.stack([train_set[i][0] for i in range(4, 8)])  # (4, 3, 96, 96)
y_next = torch.stack([train_set[i][1] for i in range(4, 8)])  # (4, 4, 96, 96)
batches = [(x, y), (x_next, y_next)]
for step, (x_step, y_step) in enumerate(batches, start=1):
    optimizer.zero_grad()
    step_loss = losses.deep_supervision_loss(y_step, model(x_step))
    step_loss.backward()
    before = [p.detach().double().numpy().copy() for p in parameters]
    grads = [p.grad.double().numpy() for p in parameters]
    ours = adam_numpy(before, grads, state)  # the NumPy step
    optimizer.step()  # torch's step
    after = [p.detach().double().numpy() for p in parameters]
    gap = max(np.abs(a - o).max() for a, o in zip(after, ours))
    print(f"step {step}: loss {step_loss.item():.4f}; largest difference, NumPy Adam vs torch.optim.Adam: {gap:.1e}")
    if step == 1:
        moves = np.concatenate([np.abs(a - b).ravel() for a, b in zip(after, before)])  # (291532,)
print(f"parameters: {sum(p.numel() for p in parameters):,}")

# %% [markdown]
# The differences are float32 rounding: torch keeps the weights in float32. At step 1
# the bias correction makes $\hat m = g$ and $\hat v = g^2$, so each weight moves by
# $\mathrm{lr} \cdot g / (|g| + \epsilon) \approx \mathrm{lr}$, whatever the size of its
# gradient: Adam's learning rate is a step length per weight, not a multiplier of the
# gradient.

# %%
fig, ax = plt.subplots(figsize=(7, 3))
ax.hist(moves / 1e-3, bins=np.linspace(0, 1.2, 61))
ax.set(xlabel="|change of a weight| / lr at step 1", ylabel="weights", yscale="log",
       title="Adam's first step moves almost every weight by lr")
plt.show()
print(f"share of weights that moved by 0.99 lr to 1.01 lr: {np.mean(np.abs(moves / 1e-3 - 1) < 0.01):.3f}")

# %% [markdown]
# ## The training loop, by hand
#
# Now the whole loop, exactly as the library's script runs it, so that we can compare:
#
# 1. `torch.manual_seed(seed)`, *then* build the model: the seed fixes the initial weights.
# 2. Per epoch: set the learning rate from the schedule; `set_epoch(epoch)` chooses the
#    augmentation draws (photograph $i$ of epoch $e$ is augmented with
#    `np.random.default_rng([seed, e, i])`); take the order of the photographs from the
#    same `DistributedSampler` the script uses (for one process too), told the epoch with
#    `set_epoch`. We use the sampler itself rather than copy how it shuffles: that is a
#    detail of torch's, and the script's order is whatever the sampler gives.
# 3. Per batch: forward → 7 logits → `deep_supervision_loss` → `zero_grad`, `backward`, `step`.

# %%
EPOCHS_BY_HAND, SEED = 3, 0
torch.manual_seed(SEED)
model = build_model("xs", len(LESIONS))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
step_losses = []  # one per batch
for epoch in range(EPOCHS_BY_HAND):
    for group in optimizer.param_groups:
        group["lr"] = lr_at_epoch(epoch)
    train_set.set_epoch(epoch)
    sampler = torch.utils.data.DistributedSampler(train_set, num_replicas=1, rank=0, shuffle=True, seed=SEED)
    sampler.set_epoch(epoch)
    order = list(sampler)  # the photographs of this epoch, in the script's order
    for start in range(0, N_TRAIN, BATCH):
        pairs = [train_set[i] for i in order[start:start + BATCH]]
        x_batch = torch.stack([p[0] for p in pairs])  # (4, 3, 96, 96)
        y_batch = torch.stack([p[1] for p in pairs])  # (4, 4, 96, 96)
        outputs = model(x_batch)  # 7 × (4, 4, 96, 96)
        loss = losses.deep_supervision_loss(y_batch, outputs, alpha=0.75, gamma=1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step_losses.append(loss.item())
    print(f"epoch {epoch + 1}: order {order}, mean loss {np.mean(step_losses[-N_TRAIN // BATCH:]):.4f}")

# %% [markdown]
# ## The same with the library
#
# `u2net_mini.train` is that loop with what a real run needs around it: the normalization
# statistics of the training photographs, a validation score after every epoch, `last.pt`
# and `best.pt` written safely, `metrics.csv`, resuming, several GPUs. On the command line
# it is `python -m u2net_mini.train --data DIR --out RUN ...`; from Python,
# `train.run(train.parse_args([...]))` does the same and returns the trained models.
# With the same seed and settings it must give our weights exactly. `--val test` scores
# the 4 test photographs after every epoch (they do not train, so the weights do not
# change; use a held-out set in a real run: `docs/training.md`).

# %%
run_folder = work / "run"
arguments = ["--data", str(data), "--out", str(run_folder), "--mode", "mt", "--model", "xs",
             "--size", str(SIZE), "--batch-size", str(BATCH), "--seed", str(SEED), "--augment", "paper",
             "--val", "test", "--device", "cpu", "--threads", "1", "--cache", str(cache), "--no-progress"]
trained = train.run(train.parse_args(arguments + ["--epochs", str(EPOCHS_BY_HAND)]))
library_model = trained["MA-HE-EX-SE"]
ours_state, library_state = model.state_dict(), library_model.state_dict()
weight_gap = max((ours_state[key].double() - library_state[key].double()).abs().max().item() for key in ours_state)
print("largest difference, hand loop vs train.run, over every weight and buffer:", weight_gap)

with open(run_folder / "MA-HE-EX-SE" / "metrics.csv") as file:
    rows = list(csv.DictReader(file))
ours_per_epoch = np.array(step_losses).reshape(EPOCHS_BY_HAND, -1).mean(axis=1)  # (3,)
library_per_epoch = np.array([float(row["train_loss"]) for row in rows])  # (3,)
print("largest difference, mean loss per epoch, ours vs metrics.csv:", np.abs(ours_per_epoch - library_per_epoch).max())
print("the run folder:", sorted(str(p.relative_to(run_folder)) for p in run_folder.rglob("*") if p.is_file()))
assert weight_gap == 0, f"the hand loop and train.run should agree bit for bit, differ by {weight_gap}"

# %% [markdown]
# Zero: the same weights, bit for bit. Everything that decides them was the same: the
# seed before the model was built, the order of the photographs in every epoch, every
# augmentation draw, the learning rate, the batches, and one CPU thread (several threads
# may add numbers in another order and change the last bits).

# %% [markdown]
# ## Loss curves
#
# `--resume` continues a run from its `last.pt`: the weights, Adam's $m$ and $v$, the
# epoch and the random states. Raising `--epochs` trains on; the resumed run is the one
# that would have run uninterrupted. Twelve epochs more:

# %%
EPOCHS_IN_ALL = 15
train.run(train.parse_args(["--out", str(run_folder), "--resume", "--epochs", str(EPOCHS_IN_ALL),
                            "--threads", "1", "--device", "cpu", "--cache", str(cache), "--no-progress"]))
with open(run_folder / "MA-HE-EX-SE" / "metrics.csv") as file:
    rows = list(csv.DictReader(file))
history = {key: np.array([float(row[key]) for row in rows]) for key in rows[0]}  # {column: (15,)}
print("metrics.csv columns:", list(history))
print(f"share of the fused output in the training loss, epochs 1 and 15: "
      f"{history['train_fused_loss'][0] / history['train_loss'][0]:.3f}, "
      f"{history['train_fused_loss'][-1] / history['train_loss'][-1]:.3f}")

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
left.plot(history["epoch"], history["train_loss"], label="training: fused + 6 sides", marker=".")
left.plot(history["epoch"], history["train_fused_loss"], label="training: fused output only", marker=".")
left.plot(history["epoch"], history["val_loss"], label="test photographs: fused + 6 sides", marker=".")
steps_x = (np.arange(len(step_losses)) + 1) / (N_TRAIN // BATCH)  # (9,) epochs as fractions
left.plot(steps_x, step_losses, color="gray", lw=0.8, label="each batch, by hand (epochs 1-3)")
left.set(xlabel="epoch", ylabel="loss", yscale="log", title="loss")
left.legend(fontsize=8)
for name in LESIONS:
    right.plot(history["epoch"], history[f"val_aupr_{name}"], color=LESION_COLOURS[name], label=name, marker=".")
right.set(xlabel="epoch", ylabel="AUPR", ylim=(0, 1), title="AUPR of the fused output on the test photographs")
right.legend(fontsize=8)
for ax in (left, right):
    ax.grid(alpha=0.3)
plt.tight_layout()
plt.show()

# %% [markdown]
# The loss falls fastest in the first epochs: the network first learns to predict "no
# lesion" almost everywhere, which is right for about 99 % of the pixels of every lesion
# channel. The fused output's part is about an eighth of the total, the six side outputs
# carry the rest. Only then do the lesions come, and not together: hard exudates, large,
# bright and sharp-edged, are found first (from about epoch 6 here); haemorrhages,
# microaneurysms and soft exudates still score near zero after 15 epochs, 45 steps. The
# paper's run takes 400 epochs at 512 px: with 54 photographs in batches of 4 (the
# paper does not state its batch size; 4 is the project's default) some 5 600 steps, on
# 28 times more pixels per photograph. (Lesson 9 explains AUPR; the `make demo` run, 40
# epochs at 160 px, finds all four lesions: docs/results.md.)

# %% [markdown]
# ## Single-, dual- and multi-task runs
#
# `--mode st|dt|mt` chooses how the lesions are divided, and the run folder gets one
# sub-folder per model, named after its lesions. The three modes, at 64 px for two
# epochs each (`--val none`: nothing is scored, `best.pt` is the last epoch):

# %%
mode_runs = {}
for mode in TASK_GROUPS:
    mode_runs[mode] = work / f"run-{mode}"
    models = train.run(train.parse_args([
        "--data", str(data), "--out", str(mode_runs[mode]), "--mode", mode, "--size", "64", "--epochs", "2",
        "--batch-size", "6", "--val", "none", "--device", "cpu", "--threads", "1", "--cache", str(cache),
        "--no-progress"]))
    for folder, trained_model in models.items():
        with open(mode_runs[mode] / folder / "metrics.csv") as file:
            mode_rows = list(csv.DictReader(file))
        first_loss, last_loss = float(mode_rows[0]["train_loss"]), float(mode_rows[-1]["train_loss"])
        print(f"   {mode}/{folder:<12} outputs {trained_model.out_ch}, params {count_parameters(trained_model):,}, "
              f"loss {first_loss:.3f} -> {last_loss:.3f}")

# %% [markdown]
# The losses of different modes are not comparable numbers: the loss divides by the
# number of channels $C$ and weights them by class weights that sum to 1, so a
# four-channel model's loss is about a quarter of a one-channel model's (exercise 4).
# Compare modes by what they predict, with the same metric on the same test photographs
# (lesson 9).
#
# At prediction time the models of a run combine into the same four maps, whatever the
# mode: `predict.Predictor` takes the st or dt checkpoints together.

# %%
photo_path = sorted((data / "A. Segmentation" / "1. Original Images" / "b. Testing Set").glob("*.jpg"))[0]
photo = read_image(photo_path)  # (96, 96, 3)
for mode, folder in mode_runs.items():
    predictor = Predictor(sorted(folder.glob("*/best.pt")))
    y_hat, _ = predictor(photo)  # (4, 64, 64)
    print(f"{mode}: {len(predictor.parts)} model(s) -> maps {tuple(y_hat.shape)} for {predictor.lesions}")
print(f"lesson run time so far: {time.perf_counter() - began:.0f} s")

# %% [markdown]
# ## Summary
#
# - One training step: forward → seven logit maps (fused and six sides) →
#   `deep_supervision_loss`, the paper's loss of each output summed → `backward` →
#   Adam step. Our NumPy loss and NumPy Adam agree with the library's torch ones.
# - Adam (with weight decay added to the gradient, as the paper's torch `Adam`) moves
#   each weight by about lr at its first step: lr is a step length.
# - The schedule: $10^{-3}$ for 115 epochs, then × 0.75 every 15 epochs, to about
#   $4 \cdot 10^{-6}$ at epoch 400.
# - A training run is reproducible when the seed, the order of the photographs, the
#   augmentation draws, the learning rate and the arithmetic are: our hand loop and
#   `train.run` give the same weights to the last bit, and `--resume` continues a run
#   as if it had never stopped.
# - st trains four one-output models, dt two two-output models, mt one four-output model
#   (0.29 M parameters); each model gets its own folder and checkpoints, and the models of
#   a run combine into the same four maps. Loss values do not compare across modes.
# - Here: 12 photographs at 96 px for 15 epochs on a CPU, where hard exudates appear. The
#   paper: 54 photographs at 512 px for 400 epochs on a GPU.

# %% [markdown]
# ## Exercises
#
# 1. **Concept, about 10 min.** With Adam, what does the learning rate set (think of the
#    histogram of the first step)? Why would training at $10^{-3}$ to the end be a bad idea, and
#    why does the paper wait until epoch 115 before lowering it?
# 2. **Implementation, by hand, about 20 min.** Write `first_epoch_below(threshold,
#    lr0=1e-3)`: the first epoch (counted from 0) at which the paper's learning rate is below
#    `threshold`, from the formula of the schedule (a logarithm, no loop over epochs). At which
#    epoch does the rate first fall below $10^{-4}$?
# 3. **Implementation, about 25 min.** torch's `AdamW` *decouples* the weight decay: the
#    gradient stays $g$, and the weight shrinks by its own step, $\theta \leftarrow \theta -
#    \mathrm{lr}\, \lambda\, \theta$, before the Adam step. Write `adamw_numpy(theta, grad, m, v,
#    t, lr, weight_decay)` for one array, returning the new `(theta, m, v)`; betas 0.9, 0.999,
#    eps $10^{-8}$.
# 4. **Experiment, about 15 min.** Take the batch target `y_numpy` of the lesson and the
#    prediction $\hat y = 0.3$ everywhere. Compute `st_losses`, a dict from each lesion to the
#    loss a single-task model would have (`equations.lesion_loss` on that lesion's channel alone,
#    shape (B, 1, H, W)), and `mt_loss`, the multi-task loss on all four channels. How does
#    `mt_loss` follow from the four st losses? Set `mt_over_mean_st` to `mt_loss` divided by the
#    mean of the st losses.
# 5. **Experiment, about 20 min.** Deep supervision feeds the deepest stage directly: side
#    output 6 reads En_6. From the initial weights (`torch.manual_seed(0)`, then
#    `build_model("xs", 4)`), compute on the lesson's batch `x`, `y` the norm of the gradient of
#    all parameters of `encoders[5]` (En_6) with the deep-supervision loss, `grad_norm_deep`, and
#    with the fused output's loss alone, `grad_norm_fused`. Set `deep_reaches_further` to whether
#    the first is larger.
# 6. **Concept, about 10 min.** Our hand loop and `train.run` gave the same weights to the
#    last bit. Which of the steps of the loop would break that if done differently (name three),
#    and why does `--resume` need the same care?

# %% [markdown]
# Some checks below compare a fingerprint of your answer with a stored one
# (`answer_digest`: the numbers rounded, then hashed), so they can tell a right answer
# from a wrong one without showing it.

# %%
from lessons.exercises import answer_digest  # the fingerprint the checks were stored with


# %% [markdown] tags=["solution"] exercise=1
# ### BEGIN SOLUTION
# With Adam the learning rate is (about) the distance each weight moves per step: the
# update is $\mathrm{lr} \cdot \hat m / (\sqrt{\hat v} + \epsilon)$, a ratio of order 1 —
# exactly ±lr at the first step, as the histogram shows. A constant $10^{-3}$ keeps every
# weight jittering by that much around a minimum, because the gradients of mini-batches of
# four photographs point in different directions: the loss stops falling and the maps stay
# noisy. Lowering the rate lets the weights settle into the minimum the large steps found.
# Lowering it early would slow the first phase, where large steps cross the loss
# landscape fast and the network has still to learn what each lesion looks like (the
# small lesions come late: see the loss curves); the paper keeps the full rate for the
# first 115 of 400 epochs, then shrinks it 19 times by 0.75, about 240-fold in all.
# ### END SOLUTION

# %% tags=["solution"] exercise=2
def first_epoch_below(threshold, lr0=1e-3):
    """The first epoch e (from 0) with lr_at_epoch(e, lr0) < threshold, in closed form."""
    ### BEGIN SOLUTION
    if threshold > lr0:
        return 0
    # lr0 · 0.75^k < threshold  <=>  k > log(threshold / lr0) / log(0.75)
    k = int(np.floor(np.log(threshold / lr0) / np.log(0.75))) + 1
    k = max(k, 1)
    return 115 + (k - 1) * 15  # the k-th decay happens at epoch 115 + (k - 1) · 15
    ### END SOLUTION


print("first epoch below 1e-4:", first_epoch_below(1e-4))

# %% tags=["check"] exercise=2
for _threshold in (2e-3, 9e-4, 5e-4, 1.01e-4, 1e-4, 3e-5, 1e-5, 2e-6):
    _brute = next(e for e in range(2000) if lr_at_epoch(e) < _threshold)
    _answer = first_epoch_below(_threshold)
    assert _answer == _brute, f"threshold {_threshold}: first_epoch_below says {_answer}, the schedule disagrees"
assert first_epoch_below(1e-4, lr0=1e-2) > first_epoch_below(1e-4), "a larger lr0 must take longer to fall below"
print("exercise 2: correct")

# %% tags=["solution"] exercise=3
def adamw_numpy(theta, grad, m, v, t, lr=1e-3, weight_decay=1e-2, betas=(0.9, 0.999), eps=1e-8):
    """One AdamW step (step number t, from 1) for one float64 array; returns (theta, m, v)."""
    ### BEGIN SOLUTION
    # Why: AdamW shrinks the weight by lr * lambda * theta outside the adaptive step, so the decay
    # is not divided by sqrt(v_hat) as an L2 term in the gradient would be; m and v see the loss's
    # gradient only.
    beta1, beta2 = betas
    theta = theta * (1 - lr * weight_decay)  # decoupled decay: the weight shrinks, the gradient stays
    m = beta1 * m + (1 - beta1) * grad  # (same shape)
    v = beta2 * v + (1 - beta2) * grad**2  # (same shape)
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    return theta - lr * m_hat / (np.sqrt(v_hat) + eps), m, v
    ### END SOLUTION


# %% tags=["check"] exercise=3
_rng = np.random.default_rng(3)
_theta = torch.tensor(_rng.normal(size=(5, 7)), requires_grad=True)  # float64
_opt = torch.optim.AdamW([_theta], lr=0.05, weight_decay=0.3)
_ours, _m, _v = _theta.detach().numpy().copy(), np.zeros((5, 7)), np.zeros((5, 7))
for _t in range(1, 5):
    _grad = _rng.normal(size=(5, 7))  # (5, 7)
    _theta.grad = torch.from_numpy(_grad.copy())
    _opt.step()
    _ours, _m, _v = adamw_numpy(_ours, _grad, _m, _v, _t, lr=0.05, weight_decay=0.3)
    _gap = np.abs(_ours - _theta.detach().numpy()).max()
    assert _gap < 1e-12, f"step {_t}: differs from torch.optim.AdamW by {_gap}"
print("exercise 3: correct")

# %% tags=["solution"] exercise=4
### BEGIN SOLUTION
constant = np.full_like(y_numpy, 0.3)  # (4, 4, 96, 96)
st_losses = {name: equations.lesion_loss(y_numpy[:, [k]], constant[:, [k]]) for k, name in enumerate(LESIONS)}
mt_loss = equations.lesion_loss(y_numpy, constant)
mt_over_mean_st = mt_loss / np.mean(list(st_losses.values()))
# mt_loss = (1/4) sum_k w_k L_k: each lesion's st loss, weighted by the class weight w_k
# (which sum to 1), divided by C = 4. With nearly equal weights that is about a quarter of
# the mean st loss: the numbers differ by the scale of the loss, not by quality.
### END SOLUTION
print("st losses:", st_losses, " mt loss:", mt_loss, " ratio:", mt_over_mean_st)

# %% tags=["check"] exercise=4
assert set(st_losses) == set(LESIONS), f"st_losses needs one entry per lesion, got {sorted(st_losses)}"
assert (
    answer_digest({_name: float(_loss) for _name, _loss in st_losses.items()}) == "a19c01a041f8"
), "the single-task losses are wrong: one channel of y_numpy, of shape (B, 1, H, W), against 0.3"
assert answer_digest(float(mt_loss)) == "0d7f3f88e3f6", (
    f"mt_loss {mt_loss} is not the multi-task loss"
)
assert answer_digest(float(mt_over_mean_st)) == "a30a043314fa", (
    f"mt_over_mean_st is wrong: {mt_over_mean_st}"
)
print("exercise 4: correct")

# %% tags=["solution"] exercise=5
### BEGIN SOLUTION
norms = {}
for kind in ("deep", "fused"):
    torch.manual_seed(0)
    fresh = build_model("xs", 4)
    outputs_fresh = fresh(x)  # 7 × (4, 4, 96, 96)
    used = outputs_fresh if kind == "deep" else outputs_fresh[:1]
    losses.deep_supervision_loss(y, used).backward()
    norms[kind] = torch.sqrt(sum((p.grad**2).sum() for p in fresh.encoders[5].parameters())).item()
grad_norm_deep, grad_norm_fused = norms["deep"], norms["fused"]
deep_reaches_further = grad_norm_deep > grad_norm_fused
# With the fused loss alone, En_6's gradient comes only through side 6 and the 1×1 fusing
# convolution; deep supervision adds side 6's own loss, a short path to the deepest stage.
### END SOLUTION
print(f"gradient norm at En_6: deep supervision {grad_norm_deep:.4g}, fused only {grad_norm_fused:.4g}")


# %% tags=["check"] exercise=5
# three significant digits: torch's float32 sums may differ in the last bits between CPUs
assert grad_norm_deep > 0 and grad_norm_fused > 0, (
    "both losses reach En_6 (through the fused head at least)"
)
assert answer_digest(float(grad_norm_deep), digits=3) == "5547bf1b31f8", (
    f"grad_norm_deep {grad_norm_deep} is not En_6's gradient norm"
)
assert answer_digest(float(grad_norm_fused), digits=3) == "690b621d7556", (
    f"grad_norm_fused {grad_norm_fused} is wrong"
)
assert isinstance(deep_reaches_further, (bool, np.bool_)), (
    "deep_reaches_further must be True or False"
)
assert answer_digest(deep_reaches_further) == "3cbc87c7681f", "compare your two norms again"
print("exercise 5: correct")

# %% [markdown] tags=["solution"] exercise=6
# ### BEGIN SOLUTION
# Any of: seeding torch *after* building the model (other initial weights); shuffling the
# photographs with another generator or seed (other batches); drawing the augmentation
# from one running random stream instead of from (seed, epoch, index) (other transforms,
# and different ones again with several DataLoader workers); setting the learning rate
# from another epoch count (the schedule starts at epoch 0); another batch size; several
# CPU threads or a GPU (sums in another order change the last bits, and the differences
# grow over the steps); other normalization statistics (computed on other photographs).
# `--resume` must restore all of the state the next epoch depends on: the weights and
# batch-norm buffers, Adam's $m$, $v$ and step count (a fresh Adam would start again with
# steps of ±lr), the epoch (for the schedule, the shuffling and the augmentation), and the
# random states. With those, 1 epoch plus a resumed 1 equals 2 epochs.
# ### END SOLUTION
