# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 7 — The paper's augmentation
#
# **At a glance**
#
# - **You will learn to**
#   - write the paper's augmentation (rotation, shift, scale, flips) as one affine matrix
#   - apply it to a photograph and its masks alike, and see what it does to one-pixel lesions
#   - make augmentation reproducible from a seed whatever order the items load in
# - **Prerequisites**: lessons 1 and 2 (the square photograph and its masks).
# - **Time on a laptop CPU**: < 1 min to run top to bottom; about 80 min for the six exercises,
#   plus the reading.
# - **Difficulty**: intermediate.
# - **Paper**:
#   [Siebert & Rostalski, MIDL 2021](https://openreview.net/group?id=MIDL.io/2021/Conference),
#   Section 3 (rotation ±90°, shift ±0.1·s, scale 0.6–1.4, flips).
#
# IDRiD has 54 training photographs. A network with 0.29 M parameters can learn those 54
# by heart: where the optic disc is, which way the vessels run, where this patient's
# exudates sit. It should learn what a lesion looks like wherever it is. **Augmentation**
# shows the network a new variant of each photograph at every epoch, moved, turned,
# scaled and mirrored, so that position and orientation stop being clues.
#
# The masks must move with the photograph, pixel for pixel: a lesion rotated in the image
# but not in its mask teaches the network the wrong place. This lesson builds the paper's
# transform as one affine matrix, warps a photograph and its masks with it, follows a
# marker to the same pixel in both, looks at the random parameters, and shows how a seed
# makes an epoch reproducible. The library's version is `data_prep/augment.py`.
#
# You will need: lesson 2 (masks as a `(C, H, W)` bool stack) and 2 × 2 matrices
# acting on points $p = (x, y)$, x the column and y the row.

# %%
import cv2
import matplotlib.pyplot as plt
import numpy as np

from data_prep import augment
from data_prep.synthetic import make_fundus
from matplotlib.lines import Line2D

from u2net_mini.lesions import LESION_COLOURS, LESION_NAMES, LESIONS

rng = np.random.default_rng(0)
np.set_printoptions(precision=4, suppress=True)
SIZE = 256

# %% [markdown]
# A synthetic photograph (`make_fundus`, lesson 2), small enough for a quick lesson;
# augmentation works the same at 512. This one has microaneurysms, haemorrhages and hard
# exudates but no soft exudate (its SE mask is empty, as in about half of the synthetic
# photographs and of IDRiD's), so the SE lines below print zeros.

# %%
image, masks = make_fundus(6, SIZE)  # (256, 256, 3) uint8, (4, 256, 256) bool
print("image", image.shape, "masks", masks.shape, "lesion pixels", dict(zip(LESIONS, masks.sum(axis=(1, 2)).tolist())))


def show(ax, photo, lesion_masks, title=""):
    """The photograph with each lesion's outline in its colour."""
    ax.imshow(photo)
    for name, mask in zip(LESIONS, lesion_masks):
        if mask.any():
            ax.contour(mask, levels=[0.5], colors=[LESION_COLOURS[name]], linewidths=0.8)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def outline_legend(lesion_masks):
    """Legend handles for the outline colours of the lesions present in `lesion_masks`."""
    return [Line2D([], [], color=LESION_COLOURS[name], label=f"{name}: {LESION_NAMES[name]}")
            for name, mask in zip(LESIONS, lesion_masks) if mask.any()]


fig, ax = plt.subplots(figsize=(4, 4))
show(ax, image, masks, "the photograph and its masks (no SE)")
ax.legend(handles=outline_legend(masks), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=7)
plt.show()

# %% [markdown]
# ## The paper's transforms, as one matrix
#
# Siebert & Rostalski (MIDL 2021, Section 3) augment with
#
# | transform | range |
# |---|---|
# | rotation $\theta$ | $U[-90°, 90°]$ |
# | shift $t = (t_x, t_y)$ | $U[-0.1\,s, 0.1\,s]$ per axis, $s$ the image side |
# | scaling $k$ | $\pm 0.4$: $U[0.6, 1.4]$ |
# | flips | horizontal and vertical, each with $p = 0.5$ |
#
# The library draws the two flips independently, each with probability 1/2, as the paper
# gives them. All five are one affine map about the image centre
# $c = ((s - 1)/2, (s - 1)/2)$:
#
# $$p' = k\, R(\theta)\, F\, (p - c) + c + t = A p + b, \qquad A = k R(\theta) F, \quad b = c + t - A c$$
#
# with $F = \mathrm{diag}(\pm 1, \pm 1)$ the flips. In image coordinates y points **down**,
# so a rotation that looks counter-clockwise on the screen is
#
# $$R(\theta) = \begin{pmatrix} \cos\theta & \sin\theta \\ -\sin\theta & \cos\theta \end{pmatrix}:$$
#
# a point right of the centre, $(1, 0)$, goes to $(\cos\theta, -\sin\theta)$, up on the
# screen for $\theta > 0$. OpenCV wants the map as the 2 × 3 matrix $[A \mid b]$.

# %%
def affine_of(size, angle=0.0, scale=1.0, shift=(0.0, 0.0), hflip=False, vflip=False):
    """The (2, 3) matrix [A | b] of p' = k R(theta) F (p - c) + c + t."""
    theta = np.deg2rad(angle)
    rotation = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])  # (2, 2) $R(\theta)$
    flips = np.diag([-1.0 if hflip else 1.0, -1.0 if vflip else 1.0])  # (2, 2) $F$
    centre = np.full(2, (size - 1) / 2)  # (2,) $c$
    linear = scale * rotation @ flips  # (2, 2) $A = k R(\theta) F$
    offset = centre + np.asarray(shift) - linear @ centre  # (2,) $b = c + t - A c$
    return np.hstack([linear, offset[:, None]])  # (2, 3)


params = {"angle": 30.0, "scale": 1.2, "shift": (12.0, -8.0), "hflip": True, "vflip": False}
matrix = affine_of(SIZE, **params)  # (2, 3)
print(matrix)
print("largest difference from augment.affine_matrix:", np.abs(matrix - augment.affine_matrix(SIZE, **params)).max())

# %% [markdown]
# Two checks by hand: the centre goes to $c + t$ (rotation, scaling and flips keep it in
# place), and the determinant of $A$ is $\pm k^2$ (areas scale by $k^2$, and a flip turns
# the sign).

# %%
centre = np.full(2, (SIZE - 1) / 2)  # (2,)
print("centre", centre, "->", matrix @ np.append(centre, 1), "= c + t =", centre + params["shift"])
print("det A =", np.linalg.det(matrix[:, :2]), " -k^2 =", -params["scale"] ** 2)

# %% [markdown]
# ## Warping: the photograph bilinearly, the masks by nearest neighbour
#
# To fill output pixel $p'$, `cv2.warpAffine` goes **backwards**: it looks up the input at
# $p = A^{-1}(p' - b)$, which is rarely a whole pixel. The photograph is interpolated
# **bilinearly** from the four input pixels around $p$ (smooth, no jagged edges). A mask
# must stay 0/1, so it takes the **nearest** input pixel instead. Outside the input the
# photograph is black, like the surround of the disc, and the masks are background.
#
# The nearest-neighbour warp of the masks in NumPy:

# %%
def warp_masks_nearest(masks, matrix):
    """Warp a (C, H, W) bool stack by the (2, 3) matrix, nearest neighbour, False outside."""
    channels, height, width = masks.shape
    linear, offset = matrix[:, :2], matrix[:, 2]  # (2, 2), (2,)
    inverse = np.linalg.inv(linear)  # (2, 2) $A^{-1}$
    ys, xs = np.mgrid[0:height, 0:width]  # (H, W) each: the output pixels p'
    # $p = A^{-1} (p' - b)$ for every output pixel
    source_x = inverse[0, 0] * (xs - offset[0]) + inverse[0, 1] * (ys - offset[1])  # (H, W)
    source_y = inverse[1, 0] * (xs - offset[0]) + inverse[1, 1] * (ys - offset[1])  # (H, W)
    col = np.floor(source_x + 0.5).astype(int)  # (H, W) the nearest input column
    row = np.floor(source_y + 0.5).astype(int)  # (H, W)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)  # (H, W)
    out = np.zeros_like(masks)  # (C, H, W)
    out[:, inside] = masks[:, row[inside], col[inside]]
    return out


our_masks = warp_masks_nearest(masks, matrix)  # (4, 256, 256)
our_image = cv2.warpAffine(image, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)  # (256, 256, 3)
library_image, library_masks = augment.apply_affine(image, masks, matrix)  # (256, 256, 3), (4, 256, 256)
print("image: largest difference from augment.apply_affine:", np.abs(our_image.astype(int) - library_image).max())
print("masks: pixels that differ from augment.apply_affine:", np.count_nonzero(our_masks != library_masks),
      "of", our_masks.size)

# %% [markdown]
# (OpenCV computes the source coordinates in fixed point, to 1/1024 of a pixel, so a
# pixel whose source lies almost exactly half-way between two input pixels can round the
# other way; here none does, 0 of 262,144 pixels.)
#
# Why not warp the masks bilinearly too? A bilinear mask is no longer 0/1: along every
# lesion edge it takes fractions, and a thin lesion may nowhere reach 0.5.

# %%
blurred = cv2.warpAffine(masks.astype(np.float32).transpose(1, 2, 0), matrix, (SIZE, SIZE),
                         flags=cv2.INTER_LINEAR).transpose(2, 0, 1)  # (4, 256, 256) float
fractional = (blurred > 0) & (blurred < 1)  # (4, 256, 256)
for k, name in enumerate(LESIONS):
    print(f"{name}: {our_masks[k].sum():4d} lesion pixels by nearest; bilinear gives "
          f"{fractional[k].sum():4d} pixels strictly between 0 and 1")

# %% [markdown]
# ## One transform at a time
#
# Each of the paper's transforms alone: the rotation at 45° and at the end of its range
# (−90°), the others at the ends of theirs. The random draws further down combine them.

# %%
examples = {
    "identity": {},
    "rotate +45°": {"angle": 45.0},
    "rotate −90°": {"angle": -90.0},
    "shift (+0.1 s, −0.1 s)": {"shift": (0.1 * SIZE, -0.1 * SIZE)},
    "scale 0.6": {"scale": 0.6},
    "scale 1.4": {"scale": 1.4},
    "horizontal flip": {"hflip": True},
    "vertical flip": {"vflip": True},
}
fig, axes = plt.subplots(2, 4, figsize=(13, 6.8))
for ax, (title, kwargs) in zip(axes.ravel(), examples.items()):
    warp = augment.affine_matrix(SIZE, **kwargs)  # (2, 3)
    warped, warped_masks = augment.apply_affine(image, masks, warp)  # (256, 256, 3), (4, 256, 256)
    show(ax, warped, warped_masks, title)
plt.tight_layout()
fig.legend(handles=outline_legend(masks), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3)
plt.show()

# %% [markdown]
# At scale 1.4 the rim of the disc, and any lesion on it, leaves the frame; at 0.6 the
# disc shrinks and lesions shrink with it. The microaneurysms here are drawn larger than
# real (at least 2 px wide when the disc is 160 px, lesson 2), so they stay visible at
# 0.6; a real one, a pixel wide or less at 256 px, falls below a pixel and can vanish
# (exercise 3 counts how often).
#
# ## A marker lands on the same pixel
#
# The test that image and masks move together: paint a small blue square at a point $p$
# of the photograph, set the same square in an extra mask channel, warp both with one
# random matrix, and find the marker again in each. Both must sit where the equation
# sends $p$: $p' = A p + b$.

# %%
point = np.array([80.0, 170.0])  # (2,) p = (x, y): column 80, row 170
marked = image.copy()  # (256, 256, 3)
marker = np.zeros((1, SIZE, SIZE), dtype=bool)  # (1, 256, 256) the extra mask channel
x, y = point.astype(int)
marked[y - 2 : y + 3, x - 2 : x + 3] = (0, 0, 255)  # a 5 × 5 blue square, centred on p
marker[0, y - 2 : y + 3, x - 2 : x + 3] = True

random_matrix = augment.random_affine(np.random.default_rng(3), SIZE)  # (2, 3)
warped, warped_marker = augment.apply_affine(marked, marker, random_matrix)  # (256, 256, 3), (1, 256, 256)

expected = random_matrix @ np.append(point, 1)  # (2,) $p' = A p + b$
blue = (warped[..., 2] > 200) & (warped[..., 0] < 80) & (warped[..., 1] < 80)  # (256, 256) the marker in the image
found_in_image = np.array([np.nonzero(blue)[1].mean(), np.nonzero(blue)[0].mean()])  # (2,) centroid (x, y)
found_in_mask = np.array([np.nonzero(warped_marker[0])[1].mean(), np.nonzero(warped_marker[0])[0].mean()])  # (2,)
print("p' = A p + b      :", expected)
print("marker in image   :", found_in_image)
print("marker in the mask:", found_in_mask)
print("largest distance from p':", max(np.abs(found_in_image - expected).max(), np.abs(found_in_mask - expected).max()))

# %%
col, row = np.rint(expected).astype(int)
zoom = (slice(row - 12, row + 13), slice(col - 12, col + 13))  # a 25 × 25 window around p'
fig, axes = plt.subplots(1, 4, figsize=(15, 4))
axes[0].imshow(marked)
axes[0].plot(*point, "w+", ms=16)
axes[0].set_title(f"before: marker at p = ({point[0]:.0f}, {point[1]:.0f})")
axes[1].imshow(warped)
axes[1].plot(*expected, "w+", ms=16)
axes[1].set_title("after, + at A p + b")
axes[2].imshow(warped[zoom], extent=(col - 12.5, col + 12.5, row + 12.5, row - 12.5))
axes[2].plot(*expected, "w+", ms=22)
axes[2].set_title("after, image (zoom)")
axes[3].imshow(warped_marker[0][zoom], cmap="gray", extent=(col - 12.5, col + 12.5, row + 12.5, row - 12.5))
axes[3].plot(*expected, "r+", ms=22)
axes[3].set_title("after, marker mask (zoom)")
for ax in axes[:2]:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The random parameters
#
# `augment.random_params(rng, size)` draws the five parameters from a NumPy generator, in
# a fixed order: angle, scale, the two shifts, then the two flips. Written out:

# %%
def draw(rng, size):
    """The paper's parameters, drawn in the library's order."""
    return {
        "angle": rng.uniform(-90.0, 90.0),  # degrees
        "scale": rng.uniform(0.6, 1.4),
        "shift": rng.uniform(-0.1 * size, 0.1 * size, size=2),  # (2,) pixels
        "hflip": bool(rng.random() < 0.5),
        "vflip": bool(rng.random() < 0.5),
    }


ours_rng, library_rng = np.random.default_rng(0), np.random.default_rng(0)
ours = [draw(ours_rng, SIZE) for _ in range(2000)]
library = [augment.random_params(library_rng, SIZE) for _ in range(2000)]
largest = max(
    max(abs(a["angle"] - b["angle"]), abs(a["scale"] - b["scale"]), np.abs(a["shift"] - b["shift"]).max(),
        int(a["hflip"] != b["hflip"]), int(a["vflip"] != b["vflip"]))
    for a, b in zip(ours, library)
)
print("largest difference from augment.random_params over 2000 draws:", largest)

# %%
angles = np.array([d["angle"] for d in library])  # (2000,)
scales = np.array([d["scale"] for d in library])  # (2000,)
shifts = np.array([d["shift"] for d in library])  # (2000, 2)
flips = np.array([[d["hflip"], d["vflip"]] for d in library])  # (2000, 2)

fig, axes = plt.subplots(1, 4, figsize=(14, 3))
axes[0].hist(angles, bins=36, color="gray")
axes[0].set(title="angle θ (degrees)", xlim=(-100, 100))
axes[1].hist(scales, bins=32, color="gray")
axes[1].set(title="scale k", xlim=(0.5, 1.5))
axes[2].hist(shifts[:, 0] / SIZE, bins=32, color="gray", alpha=0.6, label="$t_x$")
axes[2].hist(shifts[:, 1] / SIZE, bins=32, color="tab:blue", alpha=0.4, label="$t_y$")
axes[2].set(title="shift t / s")
axes[2].legend()
axes[3].bar(["horizontal", "vertical"], flips.mean(axis=0), color="gray")
axes[3].set(title="share of draws flipped", ylim=(0, 1))
plt.tight_layout()
plt.show()
print(f"angle {angles.min():.1f}..{angles.max():.1f}, scale {scales.min():.3f}..{scales.max():.3f}, "
      f"shift/s {shifts.min() / SIZE:.3f}..{shifts.max() / SIZE:.3f}, flipped {flips.mean(axis=0)}")

# %% [markdown]
# Eight random draws of the photograph and its masks:

# %%
fig, axes = plt.subplots(2, 4, figsize=(13, 6.8))
for seed, ax in enumerate(axes.ravel()):
    p = augment.random_params(np.random.default_rng(seed), SIZE)
    warp = augment.affine_matrix(SIZE, **p)  # (2, 3)
    warped, warped_masks = augment.apply_affine(image, masks, warp)  # (256, 256, 3), (4, 256, 256)
    flipped = "h" * p["hflip"] + "v" * p["vflip"] or "no"
    show(ax, warped, warped_masks, f"seed {seed}: θ={p['angle']:.0f}°, k={p['scale']:.2f}, {flipped} flip")
plt.tight_layout()
fig.legend(handles=outline_legend(masks), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3)
plt.show()

# %% [markdown]
# ## Reproducible from a seed
#
# All randomness comes from the generator passed in: the same seed gives the same
# transform and the same warped arrays, byte for byte (checked here on one machine;
# NumPy's generators give the same numbers on every platform for a given NumPy version).

# %%
first = augment.augment(image, masks, np.random.default_rng(7))  # ((256, 256, 3), (4, 256, 256))
again = augment.augment(image, masks, np.random.default_rng(7))  # the same seed
other = augment.augment(image, masks, np.random.default_rng(8))  # another seed
print("seed 7 twice, identical:", np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1]))
print("seed 7 vs 8, identical: ", np.array_equal(first[0], other[0]))

# %% [markdown]
# Training needs more: a new draw for each photograph in each epoch, and the same draws
# when the run is repeated. The training data set (`data_prep/dataset.py`) gives item `i`
# of epoch `e` its own generator, `np.random.default_rng([seed, e, i])`. A generator
# shared by all items would not do: the draws would depend on the order in which the
# items are loaded, and parallel loader processes load them in an order nobody controls
# (exercise 5).

# %%
def epoch_angles(seed, epoch, items):
    """The rotation angle each item of `items` gets in `epoch`."""
    return [augment.random_params(np.random.default_rng([seed, epoch, i]), SIZE)["angle"] for i in items]


print("epoch 0, items 0-5:", np.round(epoch_angles(0, 0, range(6)), 1))
print("epoch 0, again    :", np.round(epoch_angles(0, 0, range(6)), 1))
print("epoch 1, items 0-5:", np.round(epoch_angles(0, 1, range(6)), 1))

# %% [markdown]
# ## Summary
#
# - The paper's augmentation (rotation in ±90°, shift up to ±0.1 s, scale 0.6–1.4, two
#   flips) is one affine map about the image centre, $p' = k R(\theta) F (p - c) + c + t$,
#   the 2 × 3 matrix $[A \mid b]$ with $A = k R F$ and $b = c + t - A c$.
# - One matrix warps the photograph (bilinear) and every mask (nearest, so masks stay
#   0/1); a marker lands on $A p + b$ in both. Outside the input everything is black
#   and background.
# - Our NumPy matrix and parameter draws agree with `data_prep.augment` exactly, our
#   nearest-neighbour warp to within OpenCV's fixed-point rounding.
# - A seed fixes the transform; the data set seeds every item of every epoch on its own,
#   so a run repeats whatever order its items are loaded in.

# %% [markdown]
# ## Exercises
#
# 1. **Implementation, about 15 min.** Write `invert_affine(matrix)`: the (2, 3) matrix $[A'
#    \mid b']$ of the inverse map, $p = A' p' + b'$, for a (2, 3) matrix $[A \mid b]$. Use NumPy
#    (`np.linalg.inv` is fine), not `cv2.invertAffineTransform`.
# 2. **Implementation, about 15 min.** Write `compose(first, second)`: the (2, 3) matrix of
#    the map that applies `first`, then `second`.
# 3. **Experiment, about 15 min.** A microaneurysm at 256 px is about one pixel. Make a `(1,
#    SIZE, SIZE)` mask with only the pixel at row 120, column 140 set. With
#    `np.random.default_rng(0)`, draw 300 matrices one after the other with
#    `augment.random_affine(rng, SIZE)`, warp the mask with each (`augment.apply_affine(image,
#    mask, matrix)`), and compute `vanish_rate`, the share of draws after which no pixel is set.
#    Which parameter decides whether it vanishes?
# 4. **Concept, about 10 min.** The library augments the `uint8` photograph *after* CLAHE and
#    *before* normalization. What would go wrong if it augmented the normalized input `x`
#    instead, with the same black (zero) border? And why would CLAHE after the augmentation be a
#    worse order?
# 5. **Experiment, about 15 min.** Compute the angles that items 0–4 of epoch 0 get when they
#    are loaded in the order 0, 1, 2, 3, 4 and in the order 4, 3, 2, 1, 0, two ways:
#    `per_item_forward` and `per_item_backward` with a generator per item,
#    `np.random.default_rng([0, 0, i])`; `shared_forward` and `shared_backward` with one
#    generator `np.random.default_rng(0)` shared by the items in loading order. Give each as a
#    list indexed by item (element `i` is item `i`'s angle).
# 6. **Concept, about 10 min.** The rotation stops at ±90°. Can the network still see a
#    photograph turned upside down (180°)? Which orientations can it see at all, counting flips?

# %% [markdown]
# Some checks below compare a fingerprint of your answer with a stored one
# (`answer_digest`: the numbers rounded, then hashed), so they can tell a right answer
# from a wrong one without showing it.

# %%
from lessons.exercises import answer_digest  # the fingerprint the checks were stored with


# %% tags=["solution"] exercise=1
def invert_affine(matrix):
    """The (2, 3) matrix of the inverse of the affine map [A | b]."""
    ### BEGIN SOLUTION
    linear_inverse = np.linalg.inv(matrix[:, :2])  # (2, 2) $A^{-1}$
    # p' = A p + b  ->  p = A^{-1} p' - A^{-1} b
    return np.hstack([linear_inverse, (-linear_inverse @ matrix[:, 2])[:, None]])  # (2, 3)
    ### END SOLUTION


# %% tags=["check"] exercise=1
_check_rng = np.random.default_rng(11)
for _ in range(5):
    _m = augment.random_affine(_check_rng, SIZE)  # (2, 3)
    _inverse = np.asarray(invert_affine(_m))  # (2, 3)
    assert _inverse.shape == (2, 3), f"a (2, 3) matrix expected, got shape {_inverse.shape}"
    assert np.allclose(_inverse, cv2.invertAffineTransform(_m)), "differs from cv2.invertAffineTransform"
    _points = _check_rng.uniform(0, SIZE, size=(3, 10))  # (3, 10) ten homogeneous points
    _points[2] = 1
    _there = _m @ _points  # (2, 10)
    assert np.allclose(_inverse @ np.vstack([_there, np.ones(10)]), _points[:2]), "the inverse does not map points back"
print("exercise 1: correct")

# %% tags=["solution"] exercise=2
def compose(first, second):
    """The (2, 3) matrix of `first` followed by `second`."""
    ### BEGIN SOLUTION
    # second(first(p)) = A2 (A1 p + b1) + b2 = (A2 A1) p + (A2 b1 + b2)
    linear = second[:, :2] @ first[:, :2]  # (2, 2)
    offset = second[:, :2] @ first[:, 2] + second[:, 2]  # (2,)
    return np.hstack([linear, offset[:, None]])  # (2, 3)
    ### END SOLUTION


# %% tags=["check"] exercise=2
_check_rng = np.random.default_rng(12)
_first, _second = augment.random_affine(_check_rng, SIZE), augment.random_affine(_check_rng, SIZE)  # (2, 3) each
_points = np.vstack([_check_rng.uniform(0, SIZE, size=(2, 10)), np.ones(10)])  # (3, 10)
_both = np.asarray(compose(_first, _second))  # (2, 3)
assert _both.shape == (2, 3), f"a (2, 3) matrix expected, got shape {_both.shape}"
_expected = _second @ np.vstack([_first @ _points, np.ones(10)])  # (2, 10) first, then second
assert np.allclose(_both @ _points, _expected), "compose(first, second) must apply first, then second"
# two quarter turns make a half turn, which is both flips
assert np.allclose(compose(augment.affine_matrix(9, angle=90.0), augment.affine_matrix(9, angle=90.0)),
                   augment.affine_matrix(9, hflip=True, vflip=True)), "90° twice must be 180°"
print("exercise 2: correct")

# %% tags=["solution"] exercise=3
### BEGIN SOLUTION
one_pixel = np.zeros((1, SIZE, SIZE), dtype=bool)  # (1, 256, 256)
one_pixel[0, 120, 140] = True
draw_rng = np.random.default_rng(0)
vanished = 0
for _ in range(300):
    _, moved = augment.apply_affine(image, one_pixel, augment.random_affine(draw_rng, SIZE))  # (1, 256, 256)
    vanished += not moved.any()
vanish_rate = vanished / 300
# The scale decides, mostly: with k < 1 the output pixels sample only about a fraction k^2
# of the input pixels, so a one-pixel lesion is skipped with probability about 1 - k^2
# (55 of the 60 vanishings here come with k < 1). With k >= 1 and no rotation every input
# pixel is sampled, but a grid turned by 30-55° can still step over one when k is close to
# 1 (the other 5, all with k < 1.16). The pixel is near the centre, so the shift never
# pushes it out of the frame.
### END SOLUTION
print(vanish_rate)

# %% tags=["check"] exercise=3
assert 0 <= vanish_rate <= 1, f"a share is between 0 and 1, got {vanish_rate}"
assert float(vanish_rate * 300).is_integer(), f"a share of 300 draws: k / 300, got {vanish_rate}"
assert answer_digest(vanish_rate) == "44896b093657", (
    f"got {vanish_rate}: not the share of the 300 draws in order"
)
print("exercise 3: correct")

# %% [markdown] tags=["solution"] exercise=4
# ### BEGIN SOLUTION
# After normalization, 0 is no longer black: it is the mean colour of the retina. The
# border brought in by a shift, a rotation or a small scale would be a flat retina-coloured
# area, where the network has learned that the surround is a constant strongly negative
# value (lesson 1); it would have to learn a second kind of surround that never occurs in
# real photographs. In uint8, 0 is black, the same as the true surround. CLAHE after the
# augmentation would equalize tiles whose content depends on the draw (a tile may be half
# black border), so the same retina would be enhanced differently from one epoch to the
# next and differently from the photographs at prediction time, which are never
# augmented; CLAHE first makes the enhancement a property of the photograph alone.
# ### END SOLUTION


# %% tags=["solution"] exercise=5
### BEGIN SOLUTION
# Why: a generator per item makes each item's draw independent of the loading order (data-loader
# workers load in any order); one shared generator hands out its draws in loading order, so
# reversing the order reverses who gets which angle.
def angle_of(generator):
    return augment.random_params(generator, SIZE)["angle"]


per_item_forward = [angle_of(np.random.default_rng([0, 0, i])) for i in range(5)]
per_item_backward = [angle_of(np.random.default_rng([0, 0, i])) for i in reversed(range(5))][::-1]
shared = np.random.default_rng(0)
shared_forward = [angle_of(shared) for _ in range(5)]
shared = np.random.default_rng(0)
shared_backward = [angle_of(shared) for _ in range(5)][::-1]  # item 4 gets the first draw
### END SOLUTION
print("per item:", np.round(per_item_forward, 1), np.round(per_item_backward, 1))
print("shared:  ", np.round(shared_forward, 1), np.round(shared_backward, 1))

# %% tags=["check"] exercise=5
for _name, _angles in (
    ("per_item_forward", per_item_forward),
    ("per_item_backward", per_item_backward),
    ("shared_forward", shared_forward),
    ("shared_backward", shared_backward),
):
    assert len(_angles) == 5 and all(-90 <= _a <= 90 for _a in _angles), (
        f"{_name}: five angles in ±90° expected"
    )
assert answer_digest(list(per_item_forward)) == "485abfbf317d", (
    "per_item_forward: item i's own generator's angle"
)
assert answer_digest(list(per_item_backward)) == "485abfbf317d", (
    "per_item_backward: indexed by item, not by loading"
)
assert answer_digest(list(shared_forward)) == "13fce382c6f9", (
    "shared_forward: one generator, items 0 to 4"
)
assert answer_digest(list(shared_backward)) == "96c00db85cfc", (
    "shared_backward: one generator, item 4 loaded first"
)
print("exercise 5: correct")

# %% [markdown] tags=["solution"] exercise=6
# ### BEGIN SOLUTION
# Yes. Flipping both axes is a rotation by 180° (exercise 2's check: two quarter turns
# are both flips), so a draw with both flips and angle θ is a rotation by θ + 180°: with
# θ in [−90°, 90°] that covers [90°, 270°], the other half of the circle. Without flips or
# with both, every rotation angle can occur; with exactly one flip, every mirror image at
# every angle. So the network sees all orientations and their mirror images, and left
# and right eyes (mirror images of each other) look alike to it.
# ### END SOLUTION
