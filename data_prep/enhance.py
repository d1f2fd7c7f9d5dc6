r"""
# Contrast enhancement and normalization

**CLAHE** (contrast-limited adaptive histogram equalization) equalizes the histogram of
each tile of a `tile_grid` and clips every histogram at `clip_limit` times its mean
height before equalizing, so that noise in flat regions is not blown up; tiles are
blended bilinearly. Fundus photographs are lit unevenly (bright centre, dark rim), and
CLAHE makes a small dark microaneurysm at the rim as visible as one at the centre.

- `channel="lab"` (default) equalizes only the lightness L of CIE-Lab, so hues stay: a
  haemorrhage stays red, an exudate yellow.
- `channel="green"` equalizes only the green channel, the one with the most lesion
  contrast in fundus photographs (the red channel is near saturation, the blue one is
  dark and noisy); red and blue are left as they are, so the network still gets 3 channels.

The paper does not describe its preprocessing beyond resizing; CLAHE with OpenCV's
common setting (`clip_limit=2`, 8 × 8 tiles, i.e. 64-pixel tiles at 512) is this
project's choice, and `clahe=False` in the pipeline turns it off.

**Normalization** maps each channel to zero mean and unit variance over the data set,
$\hat{x}_c = (x_c / 255 - \mu_c) / \sigma_c$, with $\mu_c, \sigma_c$ measured by
`channel_stats` **inside the retinal disc** only: the black surround carries no
information, and its share of the square differs between photographs (about 21 % for a
full disc, 28 % for IDRiD's padded crops), so statistics over all pixels would mix that
share into $\mu$ and $\sigma$.
"""

import cv2
import numpy as np

from .fundus import check_rgb

CLAHE_CHANNELS = ("lab", "green")


def clahe(image, clip_limit=2.0, tile_grid=(8, 8), channel="lab"):
    """CLAHE on the L channel of CIE-Lab (or on the green channel) of an RGB image.

    `image` (H, W, 3) uint8 RGB -> (H, W, 3) uint8 RGB.
    """
    check_rgb(image)
    if not np.isfinite(clip_limit) or clip_limit <= 0:
        raise ValueError(f"clip_limit must be a positive number, got {clip_limit!r}")
    tile_grid = tuple(tile_grid)
    whole = all(isinstance(t, (int, np.integer)) and t >= 1 for t in tile_grid)
    if len(tile_grid) != 2 or not whole:
        raise ValueError(f"tile_grid must be two positive integers (rows, cols), got {tile_grid!r}")
    if channel not in CLAHE_CHANNELS:
        raise ValueError(f"channel must be one of {CLAHE_CHANNELS}, got {channel!r}")
    equalizer = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=tile_grid)
    if channel == "green":
        out = image.copy()  # (H, W, 3)
        out[..., 1] = equalizer.apply(np.ascontiguousarray(image[..., 1]))  # (H, W)
        return out
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)  # (H, W, 3), L scaled to 0..255
    lab[..., 0] = equalizer.apply(np.ascontiguousarray(lab[..., 0]))  # (H, W)
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)  # (H, W, 3)


def channel_stats(images, masks=None):
    """Per-channel mean and standard deviation of a set of images, in units of 0..1.

    $\\mu_c = \\frac{1}{N} \\sum_n x_{n,c}$ and
    $\\sigma_c = \\sqrt{\\frac{1}{N} \\sum_n (x_{n,c} - \\mu_c)^2}$, where $n$ runs over the
    $N$ pixels of all images pooled (inside `masks` when given), $x = I / 255$.

    `images`: iterable of (H, W, 3) uint8; `masks`: None or an iterable of (H, W) bool,
    one per image. Returns `(mean, std)`, two (3,) float64 arrays.
    """
    masks = None if masks is None else list(masks)
    images = list(images)
    if not images:
        raise ValueError("channel_stats needs at least one image, got none")
    if masks is not None and len(masks) != len(images):
        raise ValueError(
            f"masks must be one per image: got {len(masks)} masks for {len(images)} images")
    total = np.zeros(3)  # (3,) sum of x
    total_sq = np.zeros(3)  # (3,) sum of x^2
    count = 0
    for i, image in enumerate(images):
        check_rgb(image, f"images[{i}]")
        pixels = image.reshape(-1, 3)  # (H*W, 3)
        if masks is not None:
            mask = np.asarray(masks[i])
            if mask.dtype != bool or mask.shape != image.shape[:2]:
                raise ValueError(
                    f"masks[{i}] must be a bool array of shape {image.shape[:2]} like its "
                    f"image, got {mask.dtype} {mask.shape}"
                )
            pixels = pixels[mask.reshape(-1)]  # (n, 3)
        x = pixels.astype(np.float64) / 255  # (n, 3)
        total += x.sum(axis=0)
        total_sq += (x * x).sum(axis=0)
        count += len(x)
    if count == 0:
        raise ValueError("channel_stats found no pixel inside the masks")
    mean = total / count  # (3,) $\mu_c$
    # $\sigma_c^2 = \frac{1}{N}\sum_n x_{n,c}^2 - \mu_c^2$ (float64 sums of values in 0..1)
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))  # (3,)
    return mean, std


def normalize(image, mean, std):
    """$\\hat{x}_c = (x_c / 255 - \\mu_c) / \\sigma_c$: (H, W, 3) uint8 -> (3, H, W) float32.

    `mean`, `std`: three numbers each, in units of 0..1 (as `channel_stats` returns them).
    """
    check_rgb(image)
    mean = np.asarray(mean, dtype=np.float64).reshape(-1)  # (3,)
    std = np.asarray(std, dtype=np.float64).reshape(-1)  # (3,)
    if mean.shape != (3,) or std.shape != (3,):
        raise ValueError(f"mean and std must have 3 values each, got {mean.size} and {std.size}")
    if not (np.all(np.isfinite(std)) and np.all(std > 0)):
        raise ValueError(f"std must be positive in every channel, got {std.tolist()}")
    x = image.transpose(2, 0, 1).astype(np.float32) / 255  # (3, H, W)
    # $\hat{x}_c = (x_c - \mu_c) / \sigma_c$
    return ((x - mean[:, None, None]) / std[:, None, None]).astype(np.float32)  # (3, H, W)
