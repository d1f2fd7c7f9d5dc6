"""
# The loss worked through by hand

`python -m u2net_mini.worked_example` prints every intermediate value of the paper's loss
on a case small enough to redo with a pen: one image of 2 × 2 pixels and two lesions,
MA and EX. The same numbers are the expected literals of `tests/test_equations.py`, and
`docs/loss.md` walks through them.
"""

import numpy as np
import torch

from . import equations, losses

# (B, C, H, W) = (1, 2, 2, 2): channel 0 is MA, channel 1 is EX
TARGET = np.array([[[[1, 0], [0, 0]], [[1, 1], [0, 0]]]], dtype=np.float64)
PROBABILITY = np.array([[[[0.5, 0.5], [0.2, 0.8]], [[0.9, 0.6], [0.1, 0.3]]]])
LESIONS = ("MA", "EX")


def explain(y=TARGET, y_hat=PROBABILITY, lesions=LESIONS, alpha=0.75, gamma=1.0, smooth=1.0):
    """Return the worked example as lines of text, each value computed by `equations`."""
    y, y_hat = equations.check_pair(y, y_hat)
    weights = equations.class_weights(y)  # (C,)
    focal = equations.focal_bce(y, y_hat, gamma)  # (C,)
    dice = equations.dice_loss(y, y_hat, smooth)  # (C,)
    per_channel = alpha * focal + (1 - alpha) * dice  # (C,)
    total = equations.lesion_loss(y, y_hat, alpha, gamma, smooth)
    lines = [f"alpha = {alpha}, gamma = {gamma}, smooth s = {smooth}", ""]
    for k, name in enumerate(lesions):
        positives, negatives = y[:, k].sum(), (1 - y[:, k]).sum()
        lines += [
            f"{name}: y = {y[0, k].astype(int).tolist()}, y_hat = {y_hat[0, k].tolist()}",
            f"  r = neg / (pos + 1) = {negatives:g} / {positives + 1:g} = "
            f"{negatives / (positives + 1):.7f}",
            f"  w = r^(1/8) / sum_j r_j^(1/8) = {weights[k]:.7f}",
            f"  fBCE = {focal[k]:.7f}",
            f"  D = 1 - (2*{(y[:, k] * y_hat[:, k]).sum():g} + s) / ({y[:, k].sum():g} + "
            f"{y_hat[:, k].sum():g} + s)"
            f" = {dice[k]:.7f}",
            f"  alpha*fBCE + (1-alpha)*D = {per_channel[k]:.7f}",
        ]
    terms = " + ".join(f"{per_channel[k]:.7f}*{weights[k]:.7f}" for k in range(len(lesions)))
    lines += ["", f"L = 1/{len(lesions)} * ({terms}) = {total:.7f}"]
    logits = torch.logit(torch.from_numpy(y_hat))  # (B, C, H, W)
    twin = losses.lesion_loss(torch.from_numpy(y), logits, alpha, gamma, smooth)
    lines += [f"torch twin on the logits of y_hat: {twin.item():.7f} (difference "
              f"{abs(twin.item() - total):.1e})"]
    lines += [f"deep supervision, seven identical outputs: 7 * L = {7 * total:.7f}"]
    return lines


def main():
    print("The loss of Siebert & Rostalski (MIDL 2021), Section 3, on a 2x2 image with two lesions")
    print("L = 1/C sum_k (alpha fBCE_k + (1 - alpha) D_k) w_k\n")
    print("\n".join(explain()))


if __name__ == "__main__":
    main()
