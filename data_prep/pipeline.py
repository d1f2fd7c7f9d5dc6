"""
# The one preprocessing pipeline, for training and for prediction

    photograph (H, W, 3) uint8 ─ crop_to_disc ─ pad to square ─ resize to s   [cached]
        ─ CLAHE ─ (augmentation, training only) ─ normalize ─> x (3, s, s) float32

`prepare_example` does the first, expensive part (decoding and shrinking a 4288 × 2848
photograph) for the image, its lesion masks and its disc; `LesionDataset` caches its
result on disk. `enhance_square` and `to_input` do the cheap rest. `preprocess` chains
them for one photograph at prediction time, and `to_original` lays the network's output
back onto the photograph. The training data set calls the very same functions, so a
model never sees an input prepared differently from the ones it was trained on.

## Resizing lesion masks

A microaneurysm 5–15 px wide in a 4288 px photograph is about 1 px wide at 512, so how
a mask is shrunk decides whether the smallest lesions exist at all:

- `"nearest"`: the input pixel under each output pixel's centre. Most MA are missed.
- `"majority"`: the output pixel is set when at least half of its area is lesion
  (area averaging ≥ 0.5). Every lesion narrower than about one output pixel is lost.
- `"any"`: set when any of its area is lesion (> 0). No lesion is lost, but every
  lesion grows by up to one output pixel all round: MA become 2 × 2 or 3 × 3 blobs, and
  the edges of large exudates swell.
- `"preserve"` (**this project's rule**): `"majority"`, plus, for every connected lesion
  (8-connected, in the input) that `"majority"` would erase, the one output pixel its
  area covers most. Large lesions keep their true outline; no lesion disappears; a lost
  lesion comes back as a single pixel, the closest a 512 grid gets to its size.

docs/preprocessing.md shows the lesion counts and areas under each rule measured on the
real sample and on MA-sized dots. Enlarging (a small synthetic photograph) uses nearest
for every rule, as no lesion can vanish then. The disc mask itself uses `"majority"`.
"""

from typing import NamedTuple

import cv2
import numpy as np

from .enhance import clahe as apply_clahe
from .enhance import normalize
from .fundus import (
    DISC_THRESHOLD,
    Geometry,
    check_rgb,
    check_size,
    disc_box,
    fundus_mask,
    pad_to_square,
    to_original,
    to_square,
)

MASK_RULES = ("nearest", "majority", "any", "preserve")
MASK_RULE = "preserve"

__all__ = [
    "MASK_RULE",
    "MASK_RULES",
    "Example",
    "enhance_square",
    "prepare_example",
    "preprocess",
    "resize_mask",
    "to_input",
    "to_original",
]


def resize_mask(mask, shape, rule=MASK_RULE):
    """Resize an (H, W) bool mask to `shape = (h, w)` by one of `MASK_RULES`.

    The area covered by lesion in output pixel $(i, j)$ is
    $a_{ij} = \\frac{1}{|P_{ij}|} \\sum_{p \\in P_{ij}} y_p$ over the input pixels $P_{ij}$
    under it (OpenCV's area resize): `"majority"` is $a_{ij} \\ge 0.5$, `"any"` is
    $a_{ij} > 0$, and `"preserve"` adds back lesions that `"majority"` erases.
    """
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.ndim != 2:
        raise ValueError(f"mask must be an (H, W) bool array, got {mask.dtype} {mask.shape}")
    if rule not in MASK_RULES:
        raise ValueError(f"rule must be one of {MASK_RULES}, got {rule!r}")
    out_h, out_w = (int(n) for n in shape)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"shape must be two positive integers (h, w), got {shape!r}")
    in_h, in_w = mask.shape
    if not mask.any():  # nothing to resize (an absent lesion): skip the work
        return np.zeros((out_h, out_w), dtype=bool)
    as_bytes = mask.astype(np.uint8)  # (H, W)
    if rule == "nearest" or (out_h >= in_h and out_w >= in_w):
        nearest = cv2.resize(as_bytes, (out_w, out_h), interpolation=cv2.INTER_NEAREST_EXACT)
        return nearest > 0  # (h, w)
    # $a_{ij}$, the lesion fraction of each output pixel
    # (h, w)
    area = cv2.resize(mask.astype(np.float32), (out_w, out_h), interpolation=cv2.INTER_AREA)
    if rule == "any":
        return area > 0  # (h, w)
    out = area >= 0.5  # (h, w)
    if rule == "majority":
        return out
    return restore_lost_lesions(mask, area, out)


def restore_lost_lesions(mask, area, out):
    """Give every 8-connected lesion of `mask` that has no pixel in `out` one pixel back.

    Each input pixel is assigned the output pixel under its centre,
    $i = \\lfloor (y + 1/2)\\, h / H \\rfloor$; a lesion is lost when none of its pixels'
    output pixels is set, and comes back at the one with the largest area $a_{ij}$.
    """
    in_h, in_w = mask.shape
    out_h, out_w = out.shape
    _, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)  # (H, W)
    ys, xs = np.nonzero(mask)  # (N,) lesion pixels
    rows = np.minimum(((ys + 0.5) * out_h / in_h).astype(np.int64), out_h - 1)  # (N,)
    cols = np.minimum(((xs + 0.5) * out_w / in_w).astype(np.int64), out_w - 1)  # (N,)
    lesion = labels[ys, xs]  # (N,)
    kept = np.zeros(lesion.max() + 1, dtype=bool)  # (L + 1,)
    kept[lesion[out[rows, cols]]] = True
    lost = ~kept[lesion]  # (N,)
    if not lost.any():
        return out
    rows, cols, lesion = rows[lost], cols[lost], lesion[lost]  # (M,)
    # sort by lesion, then by decreasing area: the first pixel of each lesion is its best
    order = np.lexsort((-area[rows, cols], lesion))  # (M,)
    lesion_sorted = lesion[order]  # (M,)
    first = order[np.r_[True, lesion_sorted[1:] != lesion_sorted[:-1]]]  # (lost lesions,)
    out = out.copy()
    out[rows[first], cols[first]] = True
    return out


class Example(NamedTuple):
    """A photograph made square: what the data set caches for it."""

    image: np.ndarray  # (s, s, 3) uint8 RGB, before CLAHE
    masks: np.ndarray  # (C, s, s) bool, or None when no masks were given
    disc: np.ndarray  # (s, s) bool, the retinal disc
    geometry: Geometry


def prepare_example(image, masks=None, size=512, threshold=DISC_THRESHOLD, mask_rule=MASK_RULE):
    """Crop a photograph (and its masks) to the disc, pad to a square and resize to `size`.

    `image` (H, W, 3) uint8 RGB; `masks` None or (C, H, W) bool. Returns an `Example`.
    """
    check_rgb(image)
    check_size(size)
    if mask_rule not in MASK_RULES:
        raise ValueError(f"mask_rule must be one of {MASK_RULES}, got {mask_rule!r}")
    height, width = image.shape[:2]
    if masks is not None:
        masks = np.asarray(masks)
        if masks.dtype != bool or masks.ndim != 3 or masks.shape[1:] != (height, width):
            raise ValueError(
                f"masks must be a (C, {height}, {width}) bool array like the image, "
                f"got {masks.dtype} {masks.shape}"
            )
    disc = fundus_mask(image, threshold)  # (H, W)
    x0, y0, x1, y1 = disc_box(disc)
    geometry = Geometry(height, width, x0, y0, x1, y1, size)
    square = to_square(image[y0:y1, x0:x1], size)  # (s, s, 3)

    def shrink(mask, rule):  # (H, W) bool -> (s, s) bool
        return resize_mask(pad_to_square(mask[y0:y1, x0:x1]), (size, size), rule)

    square_disc = shrink(disc, "majority")  # (s, s)
    square_masks = None
    if masks is not None:
        square_masks = np.zeros((len(masks), size, size), dtype=bool)  # (C, s, s)
        for channel, mask in enumerate(masks):
            square_masks[channel] = shrink(mask, mask_rule)
    return Example(square, square_masks, square_disc, geometry)


def enhance_square(square, clahe=True, clahe_channel="lab", clip_limit=2.0, tile_grid=(8, 8)):
    """CLAHE on the square photograph (or nothing when `clahe=False`): uint8 in, uint8 out."""
    if not clahe:
        check_rgb(square)
        return square
    return apply_clahe(square, clip_limit, tile_grid, clahe_channel)  # (s, s, 3)


def to_input(square, mean=None, std=None):
    """The network's input: (s, s, 3) uint8 -> (3, s, s) float32.

    With `mean`/`std` (the training set's, from `dataset_stats`) each channel is
    standardized; with both None the values are only scaled to 0..1.
    """
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither")
    if mean is None:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    return normalize(square, mean, std)  # (3, s, s)


def preprocess(
    image,
    size=512,
    mean=None,
    std=None,
    clahe=True,
    clahe_channel="lab",
    threshold=DISC_THRESHOLD,
):
    """A photograph, ready for the network: returns `(x, geometry)`.

    `image` (H, W, 3) uint8 RGB -> `x` (3, size, size) float32; `geometry` lets
    `to_original(y_hat, geometry)` put the prediction back on the (H, W) grid.
    Use the training set's `mean`, `std` and `clahe` options.
    """
    example = prepare_example(image, None, size, threshold)
    square = enhance_square(example.image, clahe, clahe_channel)  # (s, s, 3)
    return to_input(square, mean, std), example.geometry
