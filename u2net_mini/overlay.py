r"""
# Lesion overlays: the four probability maps painted on the photograph

What makes the model explainable to a screener (the paper's motivation): each lesion's
probability map laid over the retina in the lesion's own colour (`lesions.LESION_COLOURS`),
next to the photograph itself, with a legend.

A pixel is painted where the probability reaches the threshold t (0.5, the threshold of
the Dice score), with an opacity that grows with the probability,

$$o = (1 - a)\, I + a\, c, \qquad a = \omega\, \hat y\, [\hat y \ge t],$$

for the photograph's colour I, the lesion's colour c and the largest opacity ω = 0.6, so
a confident lesion stands out and a doubtful one is faint (`blend`). On a real
photograph a translucent fill alone is hard to read (a lesion is often the colour of its
surround, and microaneurysms are a few pixels), so the overlay also draws each painted
region's outline, one pixel wide, in the lesion's full colour (`outline`); the colours
(`lesions.LESION_COLOURS`) avoid the retina's own orange, red and yellow. Lesions are
painted in the project order MA, HE, EX, SE; where two overlap, the later one lies on top.
"""

import cv2
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from data_prep.fundus import to_square

from .lesions import LESION_COLOURS, LESION_NAMES, lesion_indices
from .report import save_figure

OPACITY = 0.6
THRESHOLD = 0.5
MAX_DISPLAY = 768  # pixels per side of the overlay's photograph, at most


def colour_rgb(lesion):
    """The lesion's colour as (3,) float64 in 0..255, e.g. "EX" -> [230, 184, 0]."""
    if lesion not in LESION_COLOURS:
        raise ValueError(f"lesion must be one of {tuple(LESION_COLOURS)}, got {lesion!r}")
    code = LESION_COLOURS[lesion].lstrip("#")
    return np.array([int(code[i:i + 2], 16) for i in (0, 2, 4)], dtype=np.float64)  # (3,)


def _check(photo, y_hat, lesions):
    photo, y_hat = np.asarray(photo), np.asarray(y_hat)
    lesions = tuple(lesions)
    lesion_indices(lesions)  # ValueError for unknown or repeated names
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"photo must be an (H, W, 3) uint8 RGB array, got {photo.dtype} "
                         f"{photo.shape}")
    if y_hat.shape != (len(lesions),) + photo.shape[:2]:
        raise ValueError(f"y_hat must have shape {(len(lesions),) + photo.shape[:2]} (one map per "
                         "lesion "
                         f"{lesions} on the photo's grid), got {y_hat.shape}")
    if np.isnan(y_hat).any() or y_hat.min() < 0 or y_hat.max() > 1:
        raise ValueError("y_hat must be probabilities in [0, 1]")
    return photo, y_hat, lesions


def blend(photo, y_hat, lesions, threshold=THRESHOLD, opacity=OPACITY):
    r"""Paint the maps on the photograph: $o = (1 - a) I + a c$, $a = \omega \hat y [\hat y \ge t]$.

    `photo` (H, W, 3) uint8 RGB; `y_hat` (C, H, W) probabilities, one map per name in
    `lesions`; t = `threshold`, ω = `opacity`. Returns (H, W, 3) uint8.
    """
    photo, y_hat, lesions = _check(photo, y_hat, lesions)
    if not 0 < threshold <= 1 or not 0 <= opacity <= 1:
        raise ValueError(f"threshold must be in (0, 1] and opacity in [0, 1], got {threshold} and "
                         f"{opacity}")
    out = photo.astype(np.float64)  # (H, W, 3)
    for name, probability in zip(lesions, y_hat):
        # $a = \omega \hat y [\hat y \ge t]$
        alpha = (opacity * probability * (probability >= threshold))[..., None]  # (H, W, 1)
        # $o = (1 - a) I + a c$
        out = (1 - alpha) * out + alpha * colour_rgb(name)  # (H, W, 3)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)  # (H, W, 3)


def outline(image, y_hat, lesions, threshold=THRESHOLD):
    """Draw the boundary of each region with ŷ ≥ t in the lesion's colour, opaque.

    A boundary pixel is a painted pixel with an unpainted pixel among its 8 neighbours
    (the painted set minus its 3 × 3 erosion), so a region of one or two pixels is all
    boundary and shows at full colour. `image` (H, W, 3) uint8; returns (H, W, 3) uint8.
    """
    image, y_hat, lesions = _check(image, y_hat, lesions)
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    out = image.copy()  # (H, W, 3)
    kernel = np.ones((3, 3), np.uint8)
    for name, probability in zip(lesions, y_hat):
        painted = (probability >= threshold).astype(np.uint8)  # (H, W)
        inner = cv2.erode(painted, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)  # (H, W)
        out[(painted - inner).astype(bool)] = colour_rgb(name).astype(np.uint8)
    return out


def display_pair(image, y_hat, geometry, max_side=MAX_DISPLAY):
    """The photograph's disc (cropped, padded to a square) and the maps, at a size fit to look at.

    `image` (H, W, 3) uint8 is the original photograph, `y_hat` (C, s, s) the maps on the
    network's square and `geometry` how one became the other (`data_prep.fundus.Geometry`).
    The side is the network's s, or the crop's own side up to `max_side` when larger.
    Returns ((d, d, 3) uint8, (C, d, d) float32).
    """
    side = max(geometry.size, min(geometry.side, max_side))
    photo = to_square(image[geometry.y0:geometry.y1, geometry.x0:geometry.x1], side)  # (d, d, 3)
    maps = np.stack([cv2.resize(np.asarray(m, dtype=np.float32), (side, side),
                                interpolation=cv2.INTER_LINEAR)
                     for m in y_hat])  # (C, d, d)
    return photo, np.clip(maps, 0, 1)


def overlay_figure(photo, y_hat, lesions, title="", threshold=THRESHOLD):
    """Two panels, the photograph and the painted maps, with one legend entry per lesion."""
    photo, y_hat, lesions = _check(photo, y_hat, lesions)
    figure = Figure(figsize=(10, 5.4), dpi=100, layout="constrained")
    left, right = figure.subplots(1, 2)
    left.imshow(photo)
    left.set_title("photograph")
    right.imshow(outline(blend(photo, y_hat, lesions, threshold), y_hat, lesions, threshold))
    right.set_title(f"lesions (p ≥ {threshold:g}, outlined; stronger fill = more certain)")
    for axes in (left, right):
        axes.set_axis_off()
    handles = [Patch(color=LESION_COLOURS[name], label=f"{name} {LESION_NAMES[name]}")
               for name in lesions]
    right.legend(handles=handles, loc="lower right", fontsize="small", framealpha=0.8)
    if title:
        figure.suptitle(title)
    return figure


def save_overlay(path, photo, y_hat, lesions, title="", threshold=THRESHOLD):
    """`overlay_figure` written atomically to `path` as PNG; returns the path."""
    return save_figure(overlay_figure(photo, y_hat, lesions, title, threshold), path)
