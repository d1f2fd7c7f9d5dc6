"""
# The healthy synthetic fundus: frame, disc, illumination, optic disc, macula, texture

Not part of the paper: the background on which `data_prep/synthetic/` paints lesions.
The vessel tree is in `vessels.py`, the lesions in `lesions.py`.

Every length is a fraction of the disc radius `R` (the visible retina), so the picture is
the same at any `size`. Constants were calibrated, at development time, on two real IDRiD
photographs (IDRiD_01, IDRiD_55; 4288 × 2848, disc diameter about 3420 px) and on
`skimage.data.retina()`:

- frame: the disc spans 0.80 of the width, its centre at 0.466 of the width, cut at top
  and bottom (the disc is 1.20 times the 2848-px height): bounding box of
  `max(R, G, B) > 25`, largest component;
- colour: medians of rings 0.2–0.4 R around the disc centre; vignetting: the ratio of the
  ring at 0.9 R to that at 0.3 R, per channel;
- optic disc: centre at the brightest point of the blurred grey image, 0.33–0.39 D from the
  disc centre; radius where its radial colour profile reaches its surround, about 0.07 D;
  colour of its centre against its surround;
- macula: the median at the disc centre against the ring at 0.2 R.
"""

from dataclasses import dataclass

import numpy as np

from .draw import bandpass_noise, smooth_field

FRAMES = ("square", "idrid")
IDRID_ASPECT = 4288 / 2848  # width / height of an IDRiD photograph
# Disc radius / image width in IDRiD_01 and IDRiD_55: 3424 / 2 / 4288 = 0.399, 0.398.
IDRID_RADIUS = 0.399
IDRID_CENTRE_X = 0.466  # disc centre / width: 2000 / 4288, 1979 / 4288
SQUARE_RADIUS = (0.46, 0.49)  # a square frame keeps a thin black margin around the disc

# Colour inside the disc (rings 0.2-0.4 R, RGB medians): IDRiD_01, IDRiD_55, skimage retina.
BASE_COLOURS = np.array([[204, 103, 40], [155, 62, 4], [225, 88, 60]], np.float32)  # (3, 3)
# Darkening at 0.9 R against 0.3 R, 1 - ratio: IDRiD_01 (156/204, 62/103, 28/40) ->
# (0.24, 0.40, 0.30); IDRiD_55 (0.20, 0.23, -); retina (0.17, 0.18, 0.13).
VIGNETTE = np.array([0.20, 0.27, 0.22], np.float32)  # (3,)
# Optic disc: radius / R (240 px / 1710 px = 0.14) and its distance from the disc centre / R.
OD_RADIUS = (0.12, 0.16)
OD_DISTANCE = (0.62, 0.76)
# Optic disc colour: a blend towards white with these weights per channel; IDRiD_01 goes
# from (216, 117, 65) around it to (255, 176, 109) at its centre, IDRiD_55 from
# (147, 62, 5) to (246, 167, 32): (255 - c) * w gives w ~ (0.8-1.0, 0.4-0.55, 0.15-0.3).
OD_WHITE = np.array([0.85, 0.45, 0.2], np.float32)  # (3,)
# Macula: centre / ring at 0.2 R: IDRiD_01 (0.98, 0.86, 0.56), retina (0.81, 0.52, 0.34).
MACULA_DEPTH = np.array([0.6, 1.0, 1.2], np.float32)  # (3,) relative per-channel darkening
MACULA_SIGMA = 0.13  # Gaussian width / R of the darker macula
BLACK = np.array([4, 2, 2], np.float32)  # (3,) the surround: median (5, 1, 2) and (2, 2, 2)


@dataclass
class Anatomy:
    """Where things are in one synthetic photograph (pixels; x right, y down); not to be
    confused with `fundus.Geometry`, the crop and resize of any photograph."""

    height: int
    width: int
    cx: float  # disc centre
    cy: float
    radius: float  # disc radius R
    od_x: float  # optic disc centre and radius
    od_y: float
    od_radius: float
    fovea_x: float
    fovea_y: float
    side: int  # +1: optic disc right of the fovea, -1: left

    def grid(self):
        """Pixel coordinates: two (H, W) float32 arrays, x and y."""
        ys, xs = np.mgrid[0 : self.height, 0 : self.width].astype(np.float32)  # (H, W) each
        return xs, ys

    def inside(self, x, y, margin=0.0):
        """Whether points are inside the visible disc, `margin` (fraction of R) from its edge."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        r = np.hypot(x - self.cx, y - self.cy)  # same shape as x
        pad = margin * self.radius
        return (r < self.radius - pad) & (y > pad) & (y < self.height - 1 - pad)


def make_anatomy(rng, size, frame="square"):
    """Frame, disc, optic disc and fovea of one photograph `size` pixels wide."""
    if frame == "square":
        height = width = size
        radius = rng.uniform(*SQUARE_RADIUS) * size
        cx, cy = (size - 1) / 2 + rng.uniform(-0.005, 0.005, 2) * size
    else:
        width, height = size, int(round(size / IDRID_ASPECT))
        radius = IDRID_RADIUS * width * rng.uniform(0.99, 1.01)
        cx, cy = IDRID_CENTRE_X * width, (height - 1) / 2
    side = int(rng.choice([-1, 1]))  # right or left eye
    od_distance = rng.uniform(*OD_DISTANCE) * radius
    od_x = cx + side * od_distance
    od_y = cy + rng.uniform(-0.08, 0.04) * radius
    # The fovea sits about 2.5 optic-disc diameters temporal to the optic disc, a little below.
    fovea_x = od_x - side * rng.uniform(0.64, 0.72) * radius
    fovea_y = od_y + rng.uniform(0.02, 0.1) * radius
    od_radius = rng.uniform(*OD_RADIUS) * radius
    return Anatomy(height, width, cx, cy, radius, od_x, od_y, od_radius, fovea_x, fovea_y, side)


def disc_alpha(geo, xs, ys):
    """Soft-edged disc: 1 inside, 0 outside, a 1-px ramp at the edge: (H, W) float32."""
    r = np.hypot(xs - geo.cx, ys - geo.cy)  # (H, W)
    return np.clip(geo.radius - r + 0.5, 0.0, 1.0)  # (H, W)


def background(rng, geo):
    """The retina without vessels or lesions, float32 RGB in 0-255: (H, W, 3)."""
    xs, ys = geo.grid()  # (H, W) each
    weights = rng.dirichlet([1.0, 1.0, 0.4])  # (3,) a mix of the calibrated colours, mostly IDRiD's
    base = (weights @ BASE_COLOURS * rng.uniform(0.92, 1.08, 3)).astype(np.float32)  # (3,)
    r = np.hypot(xs - geo.cx, ys - geo.cy) / geo.radius  # (H, W) 0 at the centre, 1 at the edge
    # (H, W, 3)
    vignette = 1 - rng.uniform(0.6, 1.3) * VIGNETTE * np.minimum(r / 0.9, 1.1)[..., None] ** 3
    # Uneven illumination: a slow field, +-7 % (std), slightly different per channel.
    light = 1 + 0.07 * smooth_field(rng, geo.height, geo.width, cells=3)[..., None]  # (H, W, 1)
    # (H, W, 3)
    tint = 1 + 0.03 * np.stack([smooth_field(rng, geo.height, geo.width, 2) for _ in range(3)], -1)
    # Choroidal texture: blobs of about 1 % of R, 1-2 % of the intensity.
    texture = 1 + rng.uniform(0.006, 0.016) * bandpass_noise(rng, geo.height, geo.width,
                                                             0.01 * geo.radius)  # (H, W)
    d_macula = np.hypot(xs - geo.fovea_x, ys - geo.fovea_y) / geo.radius  # (H, W)
    macula_depth = rng.uniform(0.1, 0.3)
    macula = 1 - macula_depth * MACULA_DEPTH * np.exp(
        -0.5 * (d_macula / MACULA_SIGMA) ** 2)[..., None]  # (H, W, 3)
    fovea = 1 - 0.4 * macula_depth * MACULA_DEPTH * np.exp(
        -0.5 * (d_macula / 0.025) ** 2)[..., None]  # (H, W, 3)
    image = base * vignette * light * tint * texture[..., None] * macula * fovea  # (H, W, 3)
    return optic_disc(rng, geo, image, xs, ys).astype(np.float32)  # (H, W, 3)


def optic_disc(rng, geo, image, xs, ys):
    """Brighten and yellow the optic disc (slightly tall ellipse) with a paler cup: (H, W, 3)."""
    dx, dy = ((xs - geo.od_x) / geo.od_radius,
              (ys - geo.od_y) / (geo.od_radius * rng.uniform(1.03, 1.15)))
    d = np.hypot(dx, dy)  # (H, W) 1 on the rim of the optic disc
    # (H, W) soft edge over ~10 % of its radius
    rim = 1 / (1 + np.exp(np.minimum((d - 1) / 0.08, 50)))
    halo = 0.2 * np.exp(-0.5 * (np.maximum(d - 1, 0) / 0.5) ** 2)  # (H, W) peripapillary glow
    cup_x = 0.25 * geo.side * rng.uniform(-1, 1)  # the cup sits off-centre
    d_cup = np.hypot(dx - cup_x, dy) / rng.uniform(0.35, 0.55)  # (H, W)
    cup = 1 / (1 + np.exp(np.minimum((d_cup - 1) / 0.15, 50)))  # (H, W)
    strength = rng.uniform(0.7, 1.0)
    white = OD_WHITE * rng.uniform(0.85, 1.15, 3)  # (3,)
    alpha = (strength * rim + halo)[..., None] * white  # (H, W, 3)
    image = image + (255 - image) * alpha  # (H, W, 3) blend towards white
    return image + (255 - image) * (0.45 * strength * cup)[..., None] * np.array([0.6, 0.8, 0.9],
                                                                                 np.float32)


def finish(rng, geo, image, notch=True):
    """Cut the disc out of a black surround, add the camera notch and sensor noise: uint8
    (H, W, 3)."""
    xs, ys = geo.grid()  # (H, W) each
    alpha = disc_alpha(geo, xs, ys)  # (H, W)
    if notch:
        # IDRiD photographs (and skimage's retina) show a small tab at the disc edge, up and to
        # the right: a rectangle 3 % of R tall, sticking out 2 % of R.
        angle = np.deg2rad(rng.uniform(-40, -25))
        ex, ey = geo.cx + geo.radius * np.cos(angle), geo.cy + geo.radius * np.sin(angle)
        tab = ((np.abs(ys - ey) < 0.03 * geo.radius) & (xs > ex - 0.04 * geo.radius)
               & (xs < ex + 0.02 * geo.radius))
        alpha = np.maximum(alpha, 0.6 * tab)  # (H, W)
    noise = rng.normal(0.0, 1.3, image.shape).astype(np.float32)  # (H, W, 3) sensor noise
    out = alpha[..., None] * image + (1 - alpha[..., None]) * BLACK + noise  # (H, W, 3)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)  # (H, W, 3)
