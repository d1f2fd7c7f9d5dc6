"""
# The retinal disc: find it, crop to it, make it square, and map back

A colour fundus photograph is a bright, roughly round retinal disc on a black surround.
IDRiD photographs are 4288 × 2848 with the disc cut at top and bottom; skimage's
`retina()` is a full disc inside a square. The network sees a square `size × size`
image, so every photograph goes through the same three steps:

1. `fundus_mask`: the pixels of the disc. Threshold the channel maximum at 30 (of 255),
   after a 5 × 5 median filter that removes JPEG speckle, keep the largest connected
   component (text and notches in the border are separate components) and fill its holes
   (a dark macula or haemorrhage stays inside the disc).
2. `crop_to_disc`: the disc's bounding box `(x0, y0, x1, y1)`, half-open, in input pixels.
3. `to_square`: pad the crop with black to a square (centred), so the disc stays round,
   then resize to `size` (area averaging when shrinking, bilinear when enlarging).

`Geometry` records the three steps so that a prediction on the square can be laid back
onto the photograph's own pixel grid (`to_original`).

The paper says only that images are resized to 512 × 512 (Section 3); cropping to the
disc first keeps the black surround, which carries no lesions, from taking pixels away
from the retina, and padding (rather than stretching) keeps round lesions round.
Why 30: on the two real IDRiD photographs the bounding box of the disc moves by fewer
than 10 pixels for thresholds from 30 to 60, while below 25 a faint glow around the disc
joins it (docs/preprocessing.md has the sweep).
"""

from dataclasses import astuple, dataclass

import cv2
import numpy as np

from .checks import check_positive_int

# Channel-maximum level (of 255) above which a pixel belongs to the disc.
DISC_THRESHOLD = 30
# A disc must cover at least this fraction of the image ...
MIN_DISC_FRACTION = 0.01
# ... and leave at least this fraction dark: a photograph with no black surround at all
# (a uniform or all-bright image) is not a fundus photograph this pipeline can crop.
MIN_SURROUND_FRACTION = 0.001


def check_rgb(image, name="image"):
    """Raise ValueError unless `image` is an (H, W, 3) uint8 array."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise ValueError(f"{name} must be an (H, W, 3) RGB array, got shape {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (0..255), got dtype {image.dtype}")


def fundus_mask(image, threshold=DISC_THRESHOLD):
    """The pixels of the visible retinal disc, (H, W) bool.

    `image` is (H, W, 3) uint8 RGB. Raises ValueError("no retinal disc found ...") for an
    image with nothing above `threshold`, a disc smaller than 1 % of the image, or no dark
    surround (a uniform image).
    """
    check_rgb(image)
    channel_max = np.maximum(np.maximum(image[..., 0], image[..., 1]), image[..., 2])  # (H, W)
    brightness = cv2.medianBlur(channel_max, 5)  # (H, W) uint8
    bright = (brightness > threshold).astype(np.uint8)  # (H, W)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
    if count < 2:
        raise ValueError(
            f"no retinal disc found: no pixel is brighter than {threshold} "
            f"(image max {int(image.max())})"
        )
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    disc = labels == largest  # (H, W)
    disc = fill_holes(disc)  # (H, W)
    fraction = disc.mean()
    if fraction < MIN_DISC_FRACTION:
        raise ValueError(
            f"no retinal disc found: the largest bright region covers {fraction:.2%} "
            f"of the image, expected at least {MIN_DISC_FRACTION:.0%}"
        )
    if 1 - fraction < MIN_SURROUND_FRACTION:
        raise ValueError(
            "no retinal disc found: the image has no dark surround "
            f"(only {1 - fraction:.3%} of its pixels lie outside the bright region)"
        )
    return disc


def fill_holes(region):
    """`region` (H, W) bool with every dark hole inside it filled.

    A hole is a connected piece of the complement (4-connected) that does not touch the
    image border.
    """
    outside = (~region).astype(np.uint8)  # (H, W)
    count, labels = cv2.connectedComponents(outside, connectivity=4)  # (H, W)
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])  # (2H+2W,)
    is_hole = np.ones(count, dtype=bool)  # (count,) one flag per piece of the complement
    is_hole[0] = False  # label 0 is the region itself
    is_hole[border] = False  # pieces touching the border are the true background
    return region | is_hole[labels]  # (H, W)


def disc_box(disc):
    """Bounding box `(x0, y0, x1, y1)`, half-open, of a non-empty (H, W) bool mask."""
    rows = np.flatnonzero(disc.any(axis=1))  # (n_rows,)
    cols = np.flatnonzero(disc.any(axis=0))  # (n_cols,)
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def crop_to_disc(image, threshold=DISC_THRESHOLD):
    """Crop `image` to the bounding box of its retinal disc.

    Returns `(crop, box)`: `crop = image[y0:y1, x0:x1]` (a view) and `box = (x0, y0, x1, y1)`,
    half-open, in input pixels.
    """
    box = disc_box(fundus_mask(image, threshold))
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1], box


@dataclass(frozen=True)
class Geometry:
    """How a photograph of `height × width` became a `size × size` square.

    The disc box `(x0, y0, x1, y1)` was cut out, padded with black to `side × side`
    (`side` = the longer edge of the box, the crop centred), and resized to `size`.
    """

    height: int
    width: int
    x0: int
    y0: int
    x1: int
    y1: int
    size: int

    @property
    def box(self):
        return self.x0, self.y0, self.x1, self.y1

    @property
    def side(self):
        return max(self.x1 - self.x0, self.y1 - self.y0)

    @property
    def pad(self):
        """(top, bottom, left, right) black pixels added around the crop."""
        return square_pad(self.y1 - self.y0, self.x1 - self.x0)

    def to_tuple(self):
        return astuple(self)


def square_pad(height, width):
    """(top, bottom, left, right) that centre a `height × width` crop in a square."""
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    return top, side - height - top, left, side - width - left


def pad_to_square(array):
    """Pad an (H, W, ...) array with zeros (black, or False) to (S, S, ...), S = max(H, W)."""
    top, bottom, left, right = square_pad(*array.shape[:2])
    widths = [(top, bottom), (left, right)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths)  # (S, S, ...)


def to_square(crop, size=512):
    """Pad `crop` (H, W, 3) or (H, W) to a black square and resize it to `size × size`.

    Area averaging when shrinking (every input pixel counts), bilinear when enlarging.
    """
    if not isinstance(crop, np.ndarray) or crop.ndim not in (2, 3) or min(crop.shape[:2]) == 0:
        raise ValueError(
            f"crop must be a non-empty (H, W, 3) or (H, W) array, got shape "
            f"{getattr(crop, 'shape', type(crop).__name__)}"
        )
    check_size(size)
    square = pad_to_square(crop)  # (S, S, ...)
    if square.shape[0] == size:
        return square
    shrinking = square.shape[0] > size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interpolation)  # (size, size, ...)


def check_size(size):
    check_positive_int("size", size)


def to_original(maps, geometry, fill=0.0):
    """Lay (C, s, s) or (s, s) maps on the square back onto the photograph's (H, W) grid.

    Undo the resize (bilinear for float maps such as `y_hat`, nearest for bool masks),
    remove the padding, and place the crop at its box; pixels outside the box get `fill`.
    Returns (C, H, W) (or (H, W) for a 2-D input) float32, or bool for bool maps.
    """
    maps = np.asarray(maps)
    flat = maps.ndim == 2
    stack = maps[None] if flat else maps  # (C, s, s)
    size = geometry.size
    if stack.ndim != 3 or stack.shape[1:] != (size, size):
        raise ValueError(
            f"maps must have shape (C, {size}, {size}) or ({size}, {size}) like the "
            f"geometry, got {maps.shape}"
        )
    is_bool = stack.dtype == bool
    dtype = np.uint8 if is_bool else np.float32
    interpolation = cv2.INTER_NEAREST if is_bool else cv2.INTER_LINEAR
    side = geometry.side
    top, _, left, _ = geometry.pad
    x0, y0, x1, y1 = geometry.box
    out = np.full((len(stack), geometry.height, geometry.width), fill, dtype=dtype)  # (C, H, W)
    for channel, plane in zip(out, stack):
        plane = plane.astype(dtype)  # (s, s)
        if side != size:
            plane = cv2.resize(plane, (side, side), interpolation=interpolation)  # (S, S)
        channel[y0:y1, x0:x1] = plane[top : top + y1 - y0, left : left + x1 - x0]
    if is_bool:
        out = out.astype(bool)  # (C, H, W)
    return out[0] if flat else out
