"""
# The synthetic vessel tree

Not part of the paper: the vessels of the synthetic fundus (`data_prep/synthetic/`).
They matter for the lesions: haemorrhages and microaneurysms are dark red like the vessels,
so a model must learn shape (round dots and blots against long tapering lines), as it must
on real photographs.

Arteries and veins each leave the optic disc in four trunks: two temporal arcades that bend
around the macula and two shorter nasal trunks. A trunk grows in steps of 1.2 % of the disc
radius R; at each step its heading turns by a drift (the arcade's bend) and a random wobble,
it tapers, and with some probability it branches: the child leaves at 25–70° with
0.55–0.8 of the parent's width and grows the same way. A vessel stops when it is thinner
than 0.25 % of R, leaves the disc, or reaches the fovea's avascular zone.

Calibration (development time, IDRiD_01 and IDRiD_55 at full size): trunk width near the
optic disc about 37 px for a disc diameter of about 3420 px (2.2 % of R for veins;
arteries about 3/4 of that); colour of vessel pixels against the median-filtered
background: (0.92–0.97, 0.68–0.80, 0.80–0.85) per RGB channel over all vessel pixels, thin
ones included, darker on the trunks.
"""

import math

import numpy as np

from .draw import Canvas

STEP = 0.012  # growth step / R
VEIN_WIDTH = 0.022  # trunk width at the optic disc / R
ARTERY_WIDTH = 0.016
MIN_WIDTH = 0.004  # vessels thinner than this / R stop
MAX_VESSELS = 70  # per tree, keeps the drawing time bounded
# Factor on the background colour at full coverage, RGB: veins darker than arteries.
VEIN_FACTOR = np.array([0.80, 0.55, 0.66], np.float32)  # (3,)
ARTERY_FACTOR = np.array([0.90, 0.70, 0.78], np.float32)  # (3,)


def grow_tree(rng, geo, trunk_width):
    """Grow one tree (arteries or veins): a list of (points (N, 2) px, widths (N,) px)."""
    radius = geo.radius
    vessels, queue = [], []
    temporal = np.pi if geo.side > 0 else 0.0  # heading from the optic disc to the fovea
    for up in (-1, 1):  # superior and inferior
        # Temporal arcade: leaves vertically, bends towards the fovea and around it.
        heading = up * np.pi / 2 + geo.side * rng.uniform(-0.25, 0.1)
        turn = up * geo.side * rng.uniform(3.3, 4.3) / radius  # rad per px
        queue.append((heading, turn, trunk_width * rng.uniform(0.95, 1.05), 0))
        # Nasal trunk: leaves at 30-60 degrees towards the nasal side, nearly straight.
        heading = (temporal + np.pi) + up * geo.side * rng.uniform(0.5, 1.0)
        queue.append((heading, rng.normal(0, 0.5) / radius,
                      trunk_width * rng.uniform(0.7, 0.85), 0))
    starts = [(geo.od_x + rng.normal(0, 0.15) * geo.od_radius,
               geo.od_y + rng.normal(0, 0.15) * geo.od_radius)
              for _ in queue]
    queue = [(x, y) + q for (x, y), q in zip(starts, queue)]
    step, min_width = STEP * radius, max(MIN_WIDTH * radius, 0.3)
    fovea_zone = 0.07 * radius
    edge = 0.02 * radius  # vessels stop 2 % of R inside the visible disc (as geo.inside)
    while queue and len(vessels) < MAX_VESSELS:
        x, y, heading, turn, width, depth = queue.pop(0)
        points, widths = [(x, y)], [width]
        for _ in range(int(1.6 / STEP)):
            heading += turn * step + rng.normal(0, 0.015)
            # The bend relaxes (an arcade turns ~90 degrees, then runs on) and meanders.
            turn = 0.97 * turn + rng.normal(0, 0.5) / radius
            x, y = x + step * math.cos(heading), y + step * math.sin(heading)
            width *= 0.994
            outside = (math.hypot(x - geo.cx, y - geo.cy) >= radius - edge
                       or not edge < y < geo.height - 1 - edge)
            if (width < min_width or outside
                    or math.hypot(x - geo.fovea_x, y - geo.fovea_y) < fovea_zone):
                break
            points.append((x, y))
            widths.append(width)
            if depth < 4 and rng.random() < step / ((0.16 + 0.08 * depth) * radius):
                child_width = width * rng.uniform(0.5, 0.75)
                child_heading = heading + rng.choice([-1, 1]) * rng.uniform(0.45, 1.2)
                queue.append((x, y, child_heading, rng.normal(0, 1.0) / radius, child_width,
                              depth + 1))
                width *= 0.92
        if len(points) > 1:
            # (N, 2), (N,)
            vessels.append((np.array(points, np.float32), np.array(widths, np.float32)))
    return vessels


def draw_tree(geo, vessels, ss=4, chunk=6):
    """Coverage of a tree: (H, W) float32; thin vessels are also paler (thinner blood column)."""
    canvas = Canvas(geo.height, geo.width, ss)
    pieces = []
    for points, widths in vessels:
        for start in range(0, len(points) - 1, chunk):
            end = min(start + chunk + 1, len(points))
            pieces.append((float(widths[start:end].mean()), points[start:end]))
    reference = 0.012 * geo.radius
    for width, points in sorted(pieces, key=lambda p: p[0]):  # thick ones last, on top
        canvas.polyline(points, width, value=min(1.0, (width / reference) ** 0.5))
    return canvas.coverage()  # (H, W)


def paint_vessels(rng, geo, image, ss=4):
    """Darken `image` (H, W, 3) float32 along an artery tree and a vein tree: (H, W, 3)."""
    for trunk, factor in ((VEIN_WIDTH, VEIN_FACTOR), (ARTERY_WIDTH, ARTERY_FACTOR)):
        coverage = draw_tree(geo, grow_tree(rng, geo, trunk * geo.radius), ss)  # (H, W)
        strength = factor * rng.uniform(0.95, 1.05)  # (3,)
        image = image * (1 - coverage[..., None] * (1 - strength))  # (H, W, 3)
    return image
