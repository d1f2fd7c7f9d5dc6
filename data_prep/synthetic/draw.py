"""
# Drawing with coverage: the rasteriser behind the synthetic fundus

Not part of the paper: a tool for `data_prep/synthetic/`, which paints IDRiD-like
photographs with lesions whose masks must sit exactly where the lesions are drawn.

A `Canvas` draws shapes with OpenCV on a grid `ss` times finer than the image and averages
each `ss × ss` block (`cv2.INTER_AREA` on an integer factor is a block mean). Each image
pixel so gets the fraction of its area the shapes cover, in [0, 1]: sub-pixel
anti-aliasing, so a microaneurysm 1.5 px wide is drawn as a soft dot at the right place and
not as a jagged 1- or 2-pixel square. Coordinates are image pixels as floats (pixel centres
at integers); OpenCV receives them as fixed-point integers (`shift` fractional bits).

`smooth_field` and `bandpass_noise` make the slow illumination changes and the fine
texture of the fundus background.
"""

import cv2
import numpy as np

SHIFT = 4  # OpenCV fixed-point fractional bits: coordinates to 1/16 of a fine pixel


class Canvas:
    """A coverage canvas of `height × width` image pixels, drawn `ss` times finer.

    Draw calls take `value` in [0, 1] (the opacity written inside the shape; a later shape
    overwrites an earlier one where they overlap). `coverage()` returns the block means.
    """

    def __init__(self, height, width, ss=4):
        if height < 1 or width < 1 or ss < 1:
            raise ValueError(f"canvas needs height, width, ss >= 1, got {height}, {width}, {ss}")
        self.height, self.width, self.ss = height, width, ss
        self.fine = np.zeros((height * ss, width * ss), np.uint8)  # (H*ss, W*ss)

    def _fixed(self, xy):
        """Image-pixel coordinates -> fine-grid fixed-point integers (pixel centres kept)."""
        fine = (np.asarray(xy, np.float64) + 0.5) * self.ss - 0.5  # (..., 2)
        return np.round(fine * (1 << SHIFT)).astype(np.int32)  # (..., 2)

    def _level(self, value):
        return int(round(255 * float(np.clip(value, 0.0, 1.0))))

    def ellipse(self, cx, cy, half_x, half_y, angle_deg=0.0, value=1.0):
        """A filled ellipse centred at (cx, cy) with semi-axes half_x, half_y (image px)."""
        centre = tuple(int(v) for v in self._fixed((cx, cy)))
        # OpenCV fills every fine pixel whose centre is on or inside the outline: half a
        # fine pixel too much all round. Shrinking the axes by that much makes areas unbiased.
        axes = tuple(max(0, int(round((a * self.ss - 0.5) * (1 << SHIFT))))
                     for a in (half_x, half_y))
        cv2.ellipse(self.fine, centre, axes, float(angle_deg), 0.0, 360.0, self._level(value), -1,
                    cv2.LINE_8, SHIFT)

    def polygon(self, points, value=1.0):
        """A filled polygon through `points` (N, 2) in image px (N >= 3, not self-crossing)."""
        points = np.asarray(points, np.float64)  # (N, 2)
        fine = inset(self._fixed(points) / (1 << SHIFT), 0.5)  # (N, 2) for the same reason as above
        pts = np.round(fine * (1 << SHIFT)).astype(np.int32).reshape(1, -1, 2)  # (1, N, 2)
        cv2.fillPoly(self.fine, pts, self._level(value), cv2.LINE_8, SHIFT)

    def polyline(self, points, thickness, value=1.0):
        """An open polyline through `points` (N, 2), `thickness` image px wide (round caps).

        OpenCV draws only odd widths of fine pixels (thickness t gives 2 floor(t / 2) + 1);
        the line is drawn at the odd width just above and its value lowered in proportion, so
        the coverage summed across the line equals `thickness`.
        """
        pts = self._fixed(points).reshape(1, -1, 2)  # (1, N, 2)
        wanted = max(thickness * self.ss, 1e-6)  # fine px
        odd = max(1, 2 * int(np.ceil((wanted - 1) / 2)) + 1)  # the odd width >= wanted
        fine_thickness = 1 if odd == 1 else odd - 1  # OpenCV's t for that width
        cv2.polylines(self.fine, pts, False, self._level(value * min(1.0, wanted / odd)),
                      fine_thickness, cv2.LINE_8, SHIFT)

    def coverage(self):
        """Fraction of each image pixel covered (times the drawn value): (H, W) float32."""
        # (H, W)
        small = cv2.resize(self.fine, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return small.astype(np.float32) / 255.0  # (H, W)


def inset(points, distance):
    """Move each edge of the polygon `points` (N, 2) inwards by `distance`: (N, 2).

    Each vertex moves along the bisector of its two edges' inward normals, by
    `distance / cos(half the turn)`, which keeps every edge parallel to itself.
    """
    edges = np.roll(points, -1, axis=0) - points  # (N, 2) edge i runs from vertex i to i + 1
    lengths = np.maximum(np.hypot(edges[:, 0], edges[:, 1]), 1e-12)  # (N,)
    # The shoelace sum's sign says whether the vertices run clockwise or counter-clockwise.
    following = np.roll(points, -1, axis=0)  # (N, 2)
    orientation = np.sign(np.sum(points[:, 0] * following[:, 1] - following[:, 0] * points[:, 1]))
    # (N, 2) inward
    normals = orientation * np.stack([-edges[:, 1], edges[:, 0]], -1) / lengths[:, None]
    before = np.roll(normals, 1, axis=0)  # (N, 2) the normal of the edge that ends at vertex i
    bisector = before + normals  # (N, 2)
    unit = bisector / np.maximum(np.hypot(*bisector.T), 1e-12)[:, None]  # (N, 2)
    # (N,) capped: spikes move at most 5x
    cos_half = np.maximum(np.sum(unit * normals, axis=1), 0.2)
    return points + unit * (distance / cos_half)[:, None]  # (N, 2)


def smooth_field(rng, height, width, cells=4):
    """A slowly varying random field, standardized to mean 0 and std 1: (H, W) float32.

    Gaussian values on a `(cells + 1) × (cells + 1)` grid, interpolated bicubically over the
    image; the scale of its changes is about 1 / cells of the image.
    """
    grid = rng.normal(0.0, 1.0, (cells + 1, cells + 1)).astype(np.float32)  # (cells+1, cells+1)
    field = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)  # (H, W)
    return (field - field.mean()) / (field.std() + 1e-6)  # (H, W)


def bandpass_noise(rng, height, width, sigma):
    """White noise blurred with a Gaussian of `sigma` px, standardized to mean 0 and std 1:
    (H, W) float32. Its blobs are about `2 sigma` px across."""
    noise = rng.normal(0.0, 1.0, (height, width)).astype(np.float32)  # (H, W)
    blurred = cv2.GaussianBlur(noise, (0, 0), max(float(sigma), 0.3))  # (H, W)
    return (blurred - blurred.mean()) / (blurred.std() + 1e-6)  # (H, W)
