r"""
# The paper's loss, in torch (the training twin)

The same equations as `u2net_mini/equations.py`, which is the readable definition and
states every choice the paper leaves open (n runs over the whole batch, Dice smoothing
s = 1, uniform weights when every channel is all positive). This file differs only where
training needs it:

- **Logits in, not probabilities.** `logits` z, the target `y`; ŷ = σ(z). The logarithms
  of the focal BCE come from log-sigmoid: log ŷ = log σ(z) and log(1 − ŷ) = log σ(−z),
  so logits of ±100 give finite losses and gradients instead of log 0.
- **Class weights carry no gradient.** They are computed from the target alone.
- **The target is checked once per call** (`check_target` is a host sync on a GPU), and
  `output_losses` returns each output's loss, so that training logs the fused output's
  loss without computing it again.

Both twins take the target first, as the equations are written: `equations.lesion_loss(y,
y_hat)` and `losses.lesion_loss(y, logits)` (torch's own losses put the prediction first;
here one order serves both files). A call in torch's order fails loudly: the logits are
not a binary target.

`tests/test_losses.py` checks this file against the NumPy definition on random float64
inputs, and its gradients with `torch.autograd.gradcheck`.
"""

import torch
import torch.nn.functional as F


def _check_shapes(y, logits):
    if logits.ndim != 4:
        raise ValueError(f"logits must be 4-D (B, C, H, W), got shape {tuple(logits.shape)}")
    if y.shape != logits.shape:
        raise ValueError(
            f"logits and y must have the same shape, got {tuple(logits.shape)} and {tuple(y.shape)}"
        )


def check_target(y):
    """Return `y` unchanged, or raise ValueError unless it is a binary (B, C, H, W) tensor.

    (The NumPy twin `equations.check_target` returns it as float64.)
    """
    if y.ndim != 4:
        raise ValueError(f"y must be 4-D (B, C, H, W), got shape {tuple(y.shape)}")
    if not bool(((y == 0) | (y == 1)).all()):  # one host sync
        raise ValueError("y must be binary (0 or 1); the losses take (y, logits), target first")
    return y


def class_weights(y):
    r"""Class weights: (C,).

    $w_k = r_k^{1/8} / \sum_j r_j^{1/8}$, $r_k = \sum_n (1 - y_{n,k}) / (\sum_n y_{n,k} + 1)$.

    `y` (B, C, H, W) binary; no gradient. Uniform 1/C when every r_k is 0.
    """
    return _class_weights(check_target(y))


@torch.no_grad()
def _class_weights(y):
    y = y.to(torch.float64)  # exact pixel counts for any batch size
    negatives = (1 - y).sum(dim=(0, 2, 3))  # (C,)
    positives = y.sum(dim=(0, 2, 3))  # (C,)
    # $r_k^{1/8}$
    root = (negatives / (positives + 1)) ** (1 / 8)  # (C,)
    total = root.sum()
    if total == 0:
        return torch.full_like(root, 1 / root.numel())  # (C,)
    return root / total  # (C,)


def focal_bce(y, logits, gamma=1.0):
    r"""Focal binary cross-entropy per channel: (C,).

    $\mathrm{fBCE}_k = -\frac{1}{N} \sum_n [ y (1-\hat y)^\gamma \log \hat y
    + (1-y)\, \hat y^\gamma \log(1-\hat y) ]$.

    `y` and `logits` z, both (B, C, H, W); ŷ = σ(z).
    """
    _check_gamma(gamma)
    _check_shapes(y, logits)
    return _focal_bce(check_target(y).to(logits.dtype), logits, gamma)


def dice_loss(y, logits, smooth=1.0):
    r"""$D_k = 1 - (2 \sum_n y \hat y + s) / (\sum_n y + \sum_n \hat y + s)$: (C,).

    `y` and `logits` z, both (B, C, H, W); ŷ = σ(z); s = `smooth` > 0.
    """
    _check_smooth(smooth)
    _check_shapes(y, logits)
    return _dice_loss(check_target(y).to(logits.dtype), logits, smooth)


def lesion_loss(y, logits, alpha=0.75, gamma=1.0, smooth=1.0):
    r"""The paper's loss of one output: a scalar tensor.

    $L = \frac{1}{C} \sum_k (\alpha\, \mathrm{fBCE}_k + (1 - \alpha)\, D_k)\, w_k$.

    `y` and `logits` (B, C, H, W); α = `alpha`, γ = `gamma`, s = `smooth`.
    """
    return output_losses(y, [logits], alpha, gamma, smooth)[0]


def deep_supervision_loss(y, logits_list, alpha=0.75, gamma=1.0, smooth=1.0):
    r"""The loss over every output: a scalar tensor.

    $L_{\mathrm{total}} = \sum_m L(z^{(m)}, y)$ over the fused and the six side outputs,
    each weighted 1.

    `y` (B, C, H, W) binary; `logits_list`: a sequence of (B, C, H, W) logits (U²-Net's
    forward returns seven).
    """
    return output_losses(y, logits_list, alpha, gamma, smooth).sum()


def output_losses(y, logits_list, alpha=0.75, gamma=1.0, smooth=1.0):
    r"""$L(z^{(m)}, y)$ for every output m: a (M,) tensor, the fused output's first.

    Their sum is `deep_supervision_loss`. The target is checked and the class weights
    computed once for all outputs.
    """
    if len(logits_list) == 0:
        raise ValueError("logits_list must hold at least one output, got an empty sequence")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    _check_gamma(gamma)
    _check_smooth(smooth)
    for logits in logits_list:
        _check_shapes(y, logits)
    dtype = logits_list[0].dtype
    weights = _class_weights(check_target(y)).to(dtype)  # (C,) w_k
    y = y.to(dtype)  # (B, C, H, W)
    losses = []
    for logits in logits_list:
        # $\alpha\, \mathrm{fBCE}_k + (1 - \alpha)\, D_k$
        focal, dice = _focal_bce(y, logits, gamma), _dice_loss(y, logits, smooth)  # (C,), (C,)
        per_channel = alpha * focal + (1 - alpha) * dice  # (C,)
        # $\frac{1}{C} \sum_k (\dots)\, w_k$
        losses.append((per_channel * weights).sum() / weights.numel())
    return torch.stack(losses)  # (M,)


# Unchecked cores, shared by the public functions above.

def _check_gamma(gamma):
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")


def _check_smooth(smooth):
    if not smooth > 0:
        raise ValueError(
            f"smooth must be > 0 (it keeps an empty channel's Dice defined), got {smooth}")


def _focal_bce(y, logits, gamma):
    y_hat = torch.sigmoid(logits)  # (B, C, H, W)
    log_y_hat = F.logsigmoid(logits)  # (B, C, H, W)  log ŷ
    log_one_minus_y_hat = F.logsigmoid(-logits)  # (B, C, H, W)  log(1 − ŷ)
    # $y (1 - \hat y)^\gamma \log \hat y + (1 - y)\, \hat y^\gamma \log(1 - \hat y)$
    per_pixel = y * (1 - y_hat) ** gamma * log_y_hat + (1 - y) * y_hat**gamma * log_one_minus_y_hat
    # $-\frac{1}{N} \sum_n [\dots]$
    return -per_pixel.mean(dim=(0, 2, 3))  # (C,)


def _dice_loss(y, logits, smooth):
    y_hat = torch.sigmoid(logits)  # (B, C, H, W)
    # $\sum_n y \hat y$
    intersection = (y * y_hat).sum(dim=(0, 2, 3))  # (C,)
    # $\sum_n y + \sum_n \hat y$
    total = y.sum(dim=(0, 2, 3)) + y_hat.sum(dim=(0, 2, 3))  # (C,)
    # $1 - (2 \sum y \hat y + s) / (\sum y + \sum \hat y + s)$
    return 1 - (2 * intersection + smooth) / (total + smooth)  # (C,)
