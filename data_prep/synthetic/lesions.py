r"""
# The four synthetic lesions: where, how big, what colour, and their masks

Not part of the paper: the lesions of the synthetic fundus (`data_prep/synthetic/`), in
the project's order MA, HE, EX, SE.

- **MA** microaneurysms: tiny round dark-red dots, scattered over the posterior pole.
- **HE** haemorrhages: dark-red blots (a few overlapping ellipses, soft edges), dots, and
  flame shapes elongated along the nerve fibres (which run away from the optic disc).
- **EX** hard exudates: bright yellow, sharp-edged irregular specks in clusters or in
  rings (circinate patterns) around the macula.
- **SE** soft exudates (cotton-wool spots): pale, fuzzy patches near the optic disc and
  the vessel arcades; present in about half of the images, as in IDRiD (40 of 81).

## Masks
Each lesion kind is drawn as a coverage layer `c` in [0, 1] (fraction of each pixel the
lesion covers, sub-pixel anti-aliased, blurred for soft edges). Layers stack bottom to top
HE, MA, SE, EX; a layer is hidden where a later one covers it:
$c^{eff}_k = c_k \prod_{j > k} (1 - c_j)$. The mask of lesion k is $c^{eff}_k \ge 1/2$:
the pixels at least half of which show that lesion. The colour is the over-composite
$x = (1 - \sum_k o_k c^{eff}_k)\, b + \sum_k o_k c^{eff}_k\, L_k(b)$ with `b` the healthy
background, `L_k(b)` the lesion's colour over it and `o_k` its opacity. Paint is kept only
within the reach of a layer's blur around its own mask (`clip_to_fringe`), so a speck too
small to own a mask pixel is not drawn at all: every painted lesion has a mask.

## Sizes, and where they depart from real ones
Calibrated (development time) on IDRiD_01 and IDRiD_55 at full size (disc diameter
D ≈ 3420 px): hard-exudate components have equivalent diameters 0.003–0.004 D (10th
percentile), 0.005–0.008 D (median), 0.017 D (90th percentile), up to 0.04–0.08 D;
haemorrhage blots in IDRiD_01 are about 100 px (0.03 D) across; microaneurysms are 5–15 px
(0.0015–0.0045 D). Soft exudates are absent from the sample: sized from the optic disc
(0.14 D) as 1/5 to 1/2 of it.

A microaneurysm 0.003 D across is a third of a pixel once the disc is shrunk to the 160 px
that a laptop trains on: it vanishes from both image and mask. With `visible_at=160` (the
default) every lesion is drawn at least `MIN_PIXELS` = 2 px wide at that scale (a disc
`visible_at` px across); at 512 px that makes microaneurysms about 6 px wide, 2–4 times
the real size, and merges the smallest exudate specks into larger ones. Haemorrhages are
at least `HE_FLOOR` = 2 times that width, so that size tells a dot haemorrhage from a
microaneurysm, as in real eyes. `visible_at=None` keeps the real sizes (with a 1-px floor).

## Colours
Factors on the background colour, measured as the lesion centre against a ring around it:
haemorrhage blots in IDRiD_01 (0.88–0.93, 0.72–0.79, 0.81–0.85) in RGB. Hard exudates
blend towards white with weights (255 - b) w: IDRiD_01 core (231, 149, 72) over
(209, 113, 47) and IDRiD_55 (202, 135, 6) over (154, 63, 3) give w ≈ (0.48, 0.25–0.38,
0.01–0.12). Haemorrhages are drawn a little stronger than measured, microaneurysms clearly
darker and sharp (green at 0.45 of the background): a 2-px dot needs that contrast to
survive shrinking and JPEG and to be learned by the demo's small model in a few minutes
(docs/data.md has the numbers). Cotton-wool spots are paler and less yellow than exudates.
"""

import cv2
import numpy as np

from data_prep.lesions import LESIONS

from .draw import Canvas, bandpass_noise

# Probability that an image has each lesion: IDRiD has MA in 81/81, HE 80/81, EX 81/81,
# SE 40/81 images; a few images without MA, HE or EX keep the "absent" case exercised.
PRESENCE = {"MA": 0.95, "HE": 0.95, "EX": 0.95, "SE": 0.5}
MIN_PIXELS = 2.0  # smallest lesion width at the `visible_at` scale
HE_FLOOR = 2.0  # haemorrhages are at least this many times the smallest lesion width
PAINT_ORDER = ("HE", "MA", "SE", "EX")  # bottom to top
HE_FACTOR = np.array([0.86, 0.62, 0.72], np.float32)  # (3,) RGB factor at full strength
MA_FACTOR = np.array([0.80, 0.45, 0.55], np.float32)  # (3,) darker: small and saturated
EX_WHITE = np.array([0.60, 0.45, 0.07], np.float32)  # (3,) blend weights towards white
SE_WHITE = np.array([0.30, 0.32, 0.26], np.float32)  # (3,)
# Gaussian blur of each layer: (fraction of R, at least this many px; 0 for none).
BLUR = {"MA": (0.0, 0.0), "HE": (0.004, 0.3), "EX": (0.0, 0.0), "SE": (0.012, 0.5)}


def min_diameter(geo, visible_at):
    """Smallest lesion width in pixels: 2 px at the `visible_at` scale, and never under 1 px."""
    if visible_at is None:
        return 1.0
    return max(1.0, MIN_PIXELS * 2 * geo.radius / visible_at)


def sample_points(rng, geo, n, centre, spread):
    """Up to `n` points (n, 2) around `centre`, Gaussian with `spread` (fraction of R),
    inside the disc and away from the optic disc."""
    candidates = np.asarray(centre, np.float64) + rng.normal(0, spread * geo.radius,
                                                             (4 * n + 16, 2))  # (M, 2)
    inside = geo.inside(candidates[:, 0], candidates[:, 1], margin=0.08)  # (M,)
    # (M,)
    clear = np.hypot(candidates[:, 0] - geo.od_x, candidates[:, 1] - geo.od_y) > 1.4 * geo.od_radius
    return candidates[inside & clear][:n]  # (n', 2)


def log_uniform_int(rng, low, high):
    return int(round(np.exp(rng.uniform(np.log(low), np.log(high)))))


def blob(rng, x, y, radius, jitter, aspect=1.0, angle=None, n_vertices=24):
    r"""A smooth irregular outline around (x, y): (n_vertices, 2) px.

    The radius wobbles with the angle as
    $r(\theta) = r_0 (1 + \sum_{k=2}^{4} a_k \cos(k\theta + \phi_k))$, $a_k$ uniform in
    [0, jitter / k]; the outline is then squashed by `aspect` and turned by `angle`.
    """
    theta = np.linspace(0, 2 * np.pi, n_vertices, endpoint=False)  # (V,)
    k = np.arange(2, 5)[:, None]  # (3, 1)
    wobble = (rng.uniform(0, jitter / k)
              * np.cos(k * theta + rng.uniform(0, 2 * np.pi, (3, 1)))).sum(0)  # (V,)
    radii = radius * (1 + wobble)  # (V,)
    turn = rng.uniform(0, np.pi) if angle is None else angle
    px, py = radii * np.cos(theta), aspect * radii * np.sin(theta)  # (V,) each
    return np.stack([x + px * np.cos(turn) - py * np.sin(turn),
                     y + px * np.sin(turn) + py * np.cos(turn)], -1)


def draw_ma(rng, geo, floor, ss):
    """Microaneurysm coverage (H, W): round dots 0.003-0.009 R wide, centred on pixel centres
    so that each covers at least half of one pixel."""
    canvas = Canvas(geo.height, geo.width, ss)
    # (n, 2)
    points = sample_points(rng, geo, log_uniform_int(rng, 8, 80), (geo.fovea_x, geo.fovea_y), 0.4)
    for x, y in np.round(points):
        d = max(rng.uniform(0.003, 0.009) * geo.radius, floor)
        canvas.ellipse(x, y, d / 2, d / 2 * rng.uniform(0.85, 1.0), rng.uniform(0, 180))
    return blur(canvas.coverage(), blur_sigma("MA", geo))  # (H, W)


def draw_he(rng, geo, floor, ss):
    """Haemorrhage coverage (H, W): blots, dots and flame shapes, at least twice as wide as the
    smallest microaneurysm (a dot haemorrhage is told from a microaneurysm by its size)."""
    canvas = Canvas(geo.height, geo.width, ss)
    floor = HE_FLOOR * floor
    # (n, 2)
    points = sample_points(rng, geo, log_uniform_int(rng, 3, 30), (geo.fovea_x, geo.fovea_y), 0.45)
    for x, y in points:
        kind = rng.choice(["blot", "dot", "flame"], p=[0.55, 0.2, 0.25])
        if kind == "flame":  # along the nerve fibres: pointing away from the optic disc
            along = np.arctan2(y - geo.od_y, x - geo.od_x)
            length = max(rng.uniform(0.04, 0.12) * geo.radius, floor)
            width = max(length * rng.uniform(0.25, 0.4), floor)
            canvas.polygon(blob(rng, x, y, length / 2, 0.15, width / length, along))
        elif kind == "dot":
            d = max(rng.uniform(0.015, 0.03) * geo.radius, floor)
            canvas.ellipse(x, y, d / 2, d / 2 * rng.uniform(0.8, 1.0), rng.uniform(0, 180))
        else:
            d = max(rng.uniform(0.03, 0.11) * geo.radius, floor)
            for _ in range(rng.integers(1, 4)):  # overlapping lobes
                ox, oy = rng.normal(0, 0.15 * d, 2)
                canvas.polygon(blob(rng, x + ox, y + oy, d / 2 * rng.uniform(0.6, 1.0), 0.4,
                                    rng.uniform(0.6, 1)))
    return blur(canvas.coverage(), blur_sigma("HE", geo))  # (H, W)


def draw_ex(rng, geo, floor, ss):
    """Hard-exudate coverage (H, W): sharp irregular specks in clusters and rings."""
    canvas = Canvas(geo.height, geo.width, ss)
    # (k, 2)
    centres = sample_points(rng, geo, int(rng.integers(1, 6)), (geo.fovea_x, geo.fovea_y), 0.3)
    for cx, cy in centres:
        n = log_uniform_int(rng, 10, 80)
        if rng.random() < 0.35:  # circinate ring around a leaking spot
            ring = rng.uniform(0.06, 0.16) * geo.radius
            start, arc = rng.uniform(0, 2 * np.pi), rng.uniform(np.pi, 2 * np.pi)
            theta = start + rng.uniform(0, arc, n)  # (n,)
            rho = ring * rng.normal(1, 0.12, n)  # (n,)
            xy = np.stack([cx + rho * np.cos(theta), cy + rho * np.sin(theta)], -1)  # (n, 2)
        else:
            # (n, 2)
            xy = np.array([cx, cy]) + rng.normal(0, rng.uniform(0.02, 0.06) * geo.radius, (n, 2))
        keep = geo.inside(xy[:, 0], xy[:, 1], margin=0.08)  # (n,)
        keep &= np.hypot(xy[:, 0] - geo.od_x, xy[:, 1] - geo.od_y) > 1.4 * geo.od_radius
        # Speck widths: log-normal, median 0.012 R (0.006 D), 90th percentile ~0.024 R.
        # (n,)
        diameters = np.clip(np.exp(rng.normal(np.log(0.012), 0.55, n)), 0.005, 0.1) * geo.radius
        for (x, y), d in zip(xy[keep], diameters[keep]):
            canvas.polygon(blob(rng, x, y, max(d, floor) / 2, 0.5, rng.uniform(0.6, 1.0),
                                n_vertices=12))
    return blur(canvas.coverage(), blur_sigma("EX", geo))  # (H, W)


def draw_se(rng, geo, floor, ss):
    """Soft-exudate coverage (H, W): fuzzy patches along the arcades near the optic disc."""
    canvas = Canvas(geo.height, geo.width, ss)
    for _ in range(int(rng.integers(1, 5))):
        up = rng.choice([-1, 1])
        # above or below, leaning temporal
        angle = up * np.pi / 2 + geo.side * rng.uniform(0.0, 0.9) * up
        distance = rng.uniform(0.25, 0.6) * geo.radius
        x, y = geo.od_x + distance * np.cos(angle), geo.od_y + distance * np.sin(angle)
        if not geo.inside(x, y, margin=0.12):
            continue
        d = max(rng.uniform(0.06, 0.14) * geo.radius, 2 * floor)
        canvas.polygon(blob(rng, x, y, d / 2, 0.4, rng.uniform(0.55, 1.0)))
    return blur(canvas.coverage(), blur_sigma("SE", geo))  # (H, W)


def blur_sigma(name, geo):
    """Blur of a lesion layer in px: soft edges for HE, fuzzy ones for SE, sharp MA and EX."""
    fraction, least = BLUR[name]
    return max(least, fraction * geo.radius) if least > 0 else 0.0


def blur(coverage, sigma):
    return cv2.GaussianBlur(coverage, (0, 0), sigma) if sigma > 0 else coverage  # (H, W)


def clip_to_fringe(coverage, sigma):
    """Keep `coverage` (H, W) only within the blur's reach of its own mask (coverage >= 1/2).

    A speck narrower than a pixel (or mostly hidden under a later lesion) has no mask pixel;
    painted alone it would be a lesion without a label. Paint survives only in the fringe
    that anti-aliasing and blur put around a masked lesion: ceil(3 sigma) + 1 px.
    """
    reach = int(np.ceil(3 * sigma)) + 1
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))  # (k, k)
    near = cv2.dilate((coverage >= 0.5).astype(np.uint8), disc) > 0  # (H, W)
    return np.where(near, coverage, 0.0).astype(np.float32)  # (H, W)


DRAW = {"MA": draw_ma, "HE": draw_he, "EX": draw_ex, "SE": draw_se}


def paint_lesions(rng, geo, image, visible_at=160, ss=4, presence=None):
    """Draw the lesions on a healthy `image` (H, W, 3) float32.

    Returns the painted image (H, W, 3) float32 and the masks (4, H, W) bool in the order
    MA, HE, EX, SE. `presence` (dict lesion -> bool) overrides the random choice of which
    lesions the image has.
    """
    floor = min_diameter(geo, visible_at)
    chosen = {k: rng.random() < p for k, p in PRESENCE.items()}
    if presence is not None:
        chosen.update(presence)
    coverage = {}
    for name in PAINT_ORDER:
        if chosen[name]:
            coverage[name] = DRAW[name](rng, geo, floor, ss)  # (H, W)
        else:
            coverage[name] = np.zeros((geo.height, geo.width), np.float32)  # (H, W)
    # $c^{eff}_k = c_k \prod_{j > k} (1 - c_j)$: later layers hide earlier ones.
    visible, hidden = {}, np.ones((geo.height, geo.width), np.float32)  # (H, W)
    for name in reversed(PAINT_ORDER):
        visible[name] = clip_to_fringe(coverage[name] * hidden, blur_sigma(name, geo))  # (H, W)
        hidden = hidden * (1 - coverage[name])  # (H, W)
    # (H, W)
    texture = np.clip(bandpass_noise(rng, geo.height, geo.width, 0.006 * geo.radius), -2, 2)
    colour = {  # L_k(b) and the opacity o_k (per pixel where the lesion is textured)
        "HE": (image * HE_FACTOR * rng.uniform(0.93, 1.07), rng.uniform(0.8, 1.0)),
        "MA": (image * MA_FACTOR * rng.uniform(0.93, 1.07), rng.uniform(0.85, 1.0)),
        "SE": (image + (255 - image) * SE_WHITE * rng.uniform(0.8, 1.2),
               rng.uniform(0.6, 0.9) + 0.1 * texture),
        "EX": (image + (255 - image) * EX_WHITE * rng.uniform(0.8, 1.2, 3),
               rng.uniform(0.85, 1.0) + 0.1 * texture),
    }
    # $x = (1 - \sum_k o_k c^{eff}_k) b + \sum_k o_k c^{eff}_k L_k(b)$
    out = image.copy()  # (H, W, 3)
    for name in PAINT_ORDER:
        lesion_colour, opacity = colour[name]
        weight = (np.clip(opacity, 0, 1) * visible[name])[..., None]  # (H, W, 1)
        out += weight * (lesion_colour - image)  # (H, W, 3)
    masks = np.stack([visible[name] >= 0.5 for name in LESIONS])  # (4, H, W)
    return out, masks
