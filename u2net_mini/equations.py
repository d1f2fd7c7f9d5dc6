r"""
# The paper's loss, in NumPy

The readable definition of the training objective of Section 3 of Siebert & Rostalski
(MIDL 2021). The torch twin that trains the network is `u2net_mini/losses.py`;
`tests/test_losses.py` holds the two together.

Arrays are shaped (B, C, H, W): B images, C lesion channels, H × W pixels. `y` is the
binary target, `y_hat` the sigmoid probability. For channel k the paper's per-channel
loss is

$$L = \frac{1}{C} \sum_{k=1}^{C} \big(\alpha\, \mathrm{fBCE}_k + (1 - \alpha)\, D_k\big)\, w_k$$

with focal binary cross-entropy (γ = 1), Dice loss D, α = 0.75 and class weights w.

Where the paper is silent, and what we chose:

- **What n runs over.** The sums over pixels n run over every pixel of the whole batch
  for channel k (axes B, H, W), not over one image. A lesion absent from one image is
  then not a 0/0 Dice of its own, and the class weights describe the batch the gradient
  step sees.
- **The Dice smoothing s.** The paper gives none; we use s = 1 (added to numerator and
  denominator), which keeps an empty channel's Dice defined and is negligible next to
  the hundreds of lesion pixels of a real batch.
- **All channels positive.** The class weight ratio r_k is 0 when a channel has no
  negative pixel; if every channel is like that, Σ_j r_j^{1/8} = 0 and the normalization
  is 0/0. We then return uniform weights 1/C rather than NaN.

The learning-rate schedule, once here, lives in `schedule.py`; `lr_at_epoch` is
re-exported below for code that still reads it as `equations.lr_at_epoch` (lesson 8).
"""

import numpy as np

from .schedule import lr_at_epoch  # noqa: F401  re-exported, see the docstring


def _as_float_array(name, value):
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 4:
        raise ValueError(f"{name} must be 4-D (B, C, H, W), got shape {array.shape}")
    return array


def check_target(y):
    """Return `y` as a float64 (B, C, H, W) array, or raise ValueError if it is not binary."""
    y = _as_float_array("y", y)
    if not np.all((y == 0) | (y == 1)):
        bad = y[(y != 0) & (y != 1)].ravel()[0]
        raise ValueError(f"y must be binary (0 or 1), got a value {bad}")
    return y


def check_pair(y, y_hat):
    """Validate a target and a probability map of the same (B, C, H, W) shape."""
    y = check_target(y)
    y_hat = _as_float_array("y_hat", y_hat)
    if y.shape != y_hat.shape:
        raise ValueError(f"y and y_hat must have the same shape, got {y.shape} and {y_hat.shape}")
    if not np.all((y_hat >= 0) & (y_hat <= 1)):  # also catches NaN
        raise ValueError("y_hat must be probabilities in [0, 1] (apply a sigmoid to logits first)")
    return y, y_hat


def class_weights(y):
    r"""Class weights of the paper, one per channel: (C,).

    $$r_k = \frac{\sum_n (1 - y_{n,k})}{\sum_n y_{n,k} + 1}, \qquad
      w_k = \frac{r_k^{1/8}}{\sum_j r_j^{1/8}}$$

    `y` is the binary target (B, C, H, W); n runs over the pixels of the whole batch. The
    weights sum to 1. A rare lesion (few positives) has a large r_k and so a larger
    weight; the 8th root tames the imbalance of 10^3 to 10^4 between lesion and
    background to a factor of 2 to 3.

    If every channel is entirely positive, every r_k is 0 and the normalization is 0/0:
    we return uniform weights 1/C.
    """
    y = check_target(y)
    # $\sum_n (1 - y_{n,k})$
    negatives = (1 - y).sum(axis=(0, 2, 3))  # (C,)
    # $\sum_n y_{n,k}$
    positives = y.sum(axis=(0, 2, 3))  # (C,)
    # $r_k = \sum_n (1 - y_{n,k}) / (\sum_n y_{n,k} + 1)$
    ratio = negatives / (positives + 1)  # (C,)
    # $r_k^{1/8}$
    root = ratio ** (1 / 8)  # (C,)
    total = root.sum()
    if total == 0:
        return np.full(y.shape[1], 1 / y.shape[1])  # (C,) the 0/0 case
    # $w_k = r_k^{1/8} / \sum_j r_j^{1/8}$
    return root / total  # (C,)


def _weighted_log(weight, probability):
    """weight · log(probability), with 0 · log 0 taken as 0 (its limit)."""
    safe = np.where(weight == 0, 1.0, probability)
    with np.errstate(divide="ignore"):
        return np.where(weight == 0, 0.0, weight * np.log(safe))


def focal_bce(y, y_hat, gamma=1.0):
    r"""Focal binary cross-entropy per channel: (C,).

    $$\mathrm{fBCE}_k = -\frac{1}{N} \sum_n \Big[
      y_{n,k} (1 - \hat y_{n,k})^\gamma \log \hat y_{n,k}
      + (1 - y_{n,k})\, \hat y_{n,k}^\gamma \log (1 - \hat y_{n,k}) \Big]$$

    `y` target, `y_hat` probability, both (B, C, H, W); N = B·H·W pixels of channel k;
    γ = `gamma` (the paper uses 1; γ = 0 gives plain BCE). The factor (1 − ŷ)^γ shrinks the
    loss of pixels that are already right, so the many easy background pixels stop
    drowning the few lesion pixels.

    A pixel predicted with certainty and wrong (ŷ = 0 where y = 1) gives an infinite loss,
    as the equation does; the torch twin works on logits, where this cannot happen.
    """
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    y, y_hat = check_pair(y, y_hat)
    n_pixels = y.shape[0] * y.shape[2] * y.shape[3]  # N
    # $y (1 - \hat y)^\gamma \log \hat y$
    positive_term = _weighted_log(y * (1 - y_hat) ** gamma, y_hat)  # (B, C, H, W)
    # $(1 - y)\, \hat y^\gamma \log(1 - \hat y)$
    negative_term = _weighted_log((1 - y) * y_hat**gamma, 1 - y_hat)  # (B, C, H, W)
    # $-\frac{1}{N} \sum_n [\dots]$
    return -(positive_term + negative_term).sum(axis=(0, 2, 3)) / n_pixels  # (C,)


def dice_loss(y, y_hat, smooth=1.0):
    r"""Soft Dice loss per channel: (C,).

    $$D_k = 1 - \frac{2 \sum_n y_{n,k} \hat y_{n,k} + s}{\sum_n y_{n,k} + \sum_n \hat y_{n,k} + s}$$

    `y` target, `y_hat` probability, both (B, C, H, W); s = `smooth` > 0. Dice looks at the
    overlap with the lesion only, so a lesion of 20 pixels counts as much as one of 20 000:
    the term that makes microaneurysms visible to the optimizer.
    """
    if not smooth > 0:
        raise ValueError(
            f"smooth must be > 0 (it keeps an empty channel's Dice defined), got {smooth}")
    y, y_hat = check_pair(y, y_hat)
    # $\sum_n y_{n,k} \hat y_{n,k}$
    intersection = (y * y_hat).sum(axis=(0, 2, 3))  # (C,)
    # $\sum_n y_{n,k} + \sum_n \hat y_{n,k}$
    total = y.sum(axis=(0, 2, 3)) + y_hat.sum(axis=(0, 2, 3))  # (C,)
    # $1 - (2 \sum y \hat y + s) / (\sum y + \sum \hat y + s)$
    return 1 - (2 * intersection + smooth) / (total + smooth)  # (C,)


def lesion_loss(y, y_hat, alpha=0.75, gamma=1.0, smooth=1.0):
    r"""The paper's loss of one output: a float.

    $$L = \frac{1}{C} \sum_{k=1}^{C} \big(\alpha\, \mathrm{fBCE}_k + (1 - \alpha)\, D_k\big)\, w_k$$

    `y` target and `y_hat` probability (B, C, H, W); α = `alpha` (0.75 in the paper), γ =
    `gamma`, s = `smooth`; w from `class_weights(y)`, fBCE from `focal_bce`, D from
    `dice_loss`. The weights already sum to 1 and the paper still divides by C; we keep
    both, so L is the paper's number.

    The factor 1/C is not harmless under the paper's optimizer. Without weight decay a
    constant factor c on the loss leaves Adam's steps unchanged (Adam divides the gradient
    by its running RMS, up to ε). But torch's Adam adds the decay λθ to the gradient
    before that division (L2 weight decay, as the paper's "L2-norm weight decay" reads),
    so the step follows c ∇L + λθ: dividing by C makes the same λ = 1e-4 C times stronger
    against the loss, and a single-task model (C = 1) is regularized 4 times more weakly
    than the multi-task one (C = 4). On (θ − 1)², Adam settles where
    2c(θ − 1) + λθ = 0, θ* = 2c / (2c + λ) (tests/test_equations.py). We keep the paper's
    protocol as written (1/C, Adam, λ = 1e-4) and state the difference in docs/loss.md;
    AdamW's decoupled decay would not depend on C.
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    weights = class_weights(y)  # (C,) w_k
    # $\alpha\, \mathrm{fBCE}_k + (1 - \alpha)\, D_k$
    # (C,)
    per_channel = alpha * focal_bce(y, y_hat, gamma) + (1 - alpha) * dice_loss(y, y_hat, smooth)
    # $\frac{1}{C} \sum_k (\dots)\, w_k$
    return float((per_channel * weights).sum() / len(weights))


def deep_supervision_loss(y, y_hats, alpha=0.75, gamma=1.0, smooth=1.0):
    r"""The loss over every output of the network: a float.

    $$L_{\mathrm{total}} = \sum_{m} L(y, \hat y^{(m)})$$

    `y_hats` is a sequence of probability maps (B, C, H, W): for U²-Net the fused output and
    the six side outputs, each weighted 1, as U²-Net's own training sums its seven losses
    (the paper: "every side output weighted equally").
    """
    if len(y_hats) == 0:
        raise ValueError("y_hats must hold at least one output, got an empty sequence")
    return sum(lesion_loss(y, y_hat, alpha, gamma, smooth) for y_hat in y_hats)
