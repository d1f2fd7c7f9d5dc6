"""
# The paper's data augmentation

Siebert & Rostalski (Section 3) augment every training image with a random rotation in
[−90°, 90°], a shift of up to ±0.1·s along each axis, a scaling of ±0.4·s (a scale
factor in [0.6, 1.4]) and horizontal and vertical flips, for an image of side `s`.
Here all five are one affine map about the image centre $c = ((s-1)/2, (s-1)/2)$:

$$p' = k\\,R(\\theta)\\,F\\,(p - c) + c + t$$

with $F = \\mathrm{diag}(\\pm 1, \\pm 1)$ the flips, $R(\\theta)$ the rotation, $k$ the
scale factor and $t$ the shift, written as the 2 × 3 matrix $[A \\mid b]$,
$A = k R(\\theta) F$, $b = c + t - A c$, that `cv2.warpAffine` expects. One matrix moves
the photograph (bilinear) and every mask (nearest, so masks stay 0/1), and whatever
comes in from outside the image is black (and background in the masks), like the
surround of the disc.

The paper draws the parameters uniformly; it does not say how the flips are drawn, and we
flip each axis with probability 0.5. Randomness comes only from the
`numpy.random.Generator` passed in, so a seed reproduces an epoch.
"""

import cv2
import numpy as np

MAX_ANGLE = 90.0  # degrees, $\theta \sim U[-90, 90]$
MAX_SHIFT = 0.1  # fraction of s, $t \sim U[-0.1 s, 0.1 s]$ per axis
SCALE_RANGE = (0.6, 1.4)  # $k \sim U[0.6, 1.4]$
FLIP_PROBABILITY = 0.5


def affine_matrix(size, angle=0.0, scale=1.0, shift=(0.0, 0.0), hflip=False, vflip=False):
    """The (2, 3) matrix $[A \\mid b]$ of $p' = k R(\\theta) F (p - c) + c + t$.

    `angle` $\\theta$ in degrees, counter-clockwise as the image is shown (y down);
    `scale` $k$; `shift` $t = (t_x, t_y)$ in pixels; `hflip` mirrors left-right and
    `vflip` top-bottom, before rotating. Points are (x, y) = (column, row).
    """
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size!r}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    theta = np.deg2rad(angle)
    # (2, 2) $R(\theta)$
    rotation = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    flips = np.diag([-1.0 if hflip else 1.0, -1.0 if vflip else 1.0])  # (2, 2) $F$
    centre = np.full(2, (size - 1) / 2)  # (2,) $c$
    linear = scale * rotation @ flips  # (2, 2) $A = k R(\theta) F$
    # (2,) $b = c + t - A c$
    offset = centre + np.asarray(shift, dtype=np.float64) - linear @ centre
    return np.hstack([linear, offset[:, None]])  # (2, 3)


def random_params(rng, size):
    """Draw the paper's parameters: a dict of `affine_matrix` keyword arguments."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return {
        "angle": rng.uniform(-MAX_ANGLE, MAX_ANGLE),
        "scale": rng.uniform(*SCALE_RANGE),
        "shift": rng.uniform(-MAX_SHIFT * size, MAX_SHIFT * size, size=2),  # (2,)
        "hflip": bool(rng.random() < FLIP_PROBABILITY),
        "vflip": bool(rng.random() < FLIP_PROBABILITY),
    }


def random_affine(rng, size):
    """One random (2, 3) augmentation matrix for a `size × size` image."""
    return affine_matrix(size, **random_params(rng, size))


def apply_affine(image, masks, matrix):
    """Warp `image` (H, W, 3) or (H, W) bilinearly and `masks` (C, H, W) bool (or None)
    by nearest neighbour with the same (2, 3) `matrix`; the border is black / False."""
    image = np.asarray(image)
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (2, 3):
        raise ValueError(f"matrix must have shape (2, 3), got {matrix.shape}")
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W, 3) or (H, W), got shape {image.shape}")
    height, width = image.shape[:2]
    warp = {"dsize": (width, height), "borderMode": cv2.BORDER_CONSTANT, "borderValue": 0}
    warped = cv2.warpAffine(image, matrix, flags=cv2.INTER_LINEAR, **warp)  # (H, W, 3)
    if masks is None:
        return warped, None
    masks = np.asarray(masks)
    if masks.dtype != bool or masks.ndim != 3 or masks.shape[1:] != (height, width):
        raise ValueError(
            f"masks must be a (C, {height}, {width}) bool array like the image, "
            f"got {masks.dtype} {masks.shape}"
        )
    warped_masks = np.zeros_like(masks)  # (C, H, W)
    for channel, mask in enumerate(masks):
        # (H, W)
        moved = cv2.warpAffine(mask.astype(np.uint8), matrix, flags=cv2.INTER_NEAREST, **warp)
        warped_masks[channel] = moved > 0
    return warped, warped_masks


def augment(image, masks, rng):
    """The paper's augmentation of a square image and its masks, drawn from `rng`."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.shape[0] != image.shape[1]:
        raise ValueError(f"image must be square, (s, s, 3) or (s, s), got shape {image.shape}")
    return apply_affine(image, masks, random_affine(rng, image.shape[0]))
