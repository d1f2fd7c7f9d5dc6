# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 1 — Fundus photographs and preprocessing
#
# **At a glance**
#
# - **You will learn to**
#   - find the retinal disc of a fundus photograph, crop it, pad it to a square and resize it
#     without distorting a lesion
#   - apply CLAHE and read its effect on a histogram and on local detail
#   - normalize the input with statistics of the training photographs only, and say why
# - **Prerequisites**: none; NumPy arrays and a first look at images as `(H, W, 3)` arrays.
# - **Time on a laptop CPU**: < 1 min to run top to bottom; about 70 min for the six exercises,
#   plus the reading.
# - **Difficulty**: introductory.
# - **Paper**:
#   [Siebert & Rostalski, MIDL 2021](https://openreview.net/group?id=MIDL.io/2021/Conference),
#   Section 3 (preprocessing: 512 × 512, CLAHE, normalization).
#
# A colour fundus photograph shows the back of the eye: a bright, roughly round retinal
# disc on a black surround, lit from the centre, darker at the rim. The optic disc (the
# bright spot where the vessels enter) and the macula (the dark centre of sharp vision)
# are the landmarks; the lesions of diabetic retinopathy are small spots on top of them.
#
# The network of this project sees one thing only: a square of `s × s` pixels with three
# channels of numbers near zero. Photographs come in other shapes: IDRiD's are
# 4288 × 2848 with the disc cut at top and bottom, others hold a whole disc in a square,
# and the lighting differs from one photograph to the next. This lesson takes two real
# photographs to the network's input, one step at a time, and checks each step against
# the library (`data_prep/fundus.py`, `data_prep/enhance.py`, `data_prep/pipeline.py`).
#
# You will need: NumPy arrays of shape `(H, W, 3)` (rows, columns, red-green-blue) with
# `uint8` values 0..255, and boolean masks of shape `(H, W)`.

# %%
import cv2
import matplotlib.pyplot as plt
import numpy as np
import skimage.data

from data_prep import enhance, fundus, pipeline
from data_prep.idrid import IDRiD
from data_prep.shipped import idrid_root

rng = np.random.default_rng(0)  # nothing in this lesson is random; the habit stays
np.set_printoptions(precision=4, suppress=True)
SIZE = 512  # the paper's input size

# %% [markdown]
# ## Two real photographs
#
# - `skimage.data.retina()`: a whole retinal disc inside a square frame, 1411 × 1411.
# - IDRiD_55, a test photograph of IDRiD (Porwal et al. 2018, CC BY 4.0), shipped with the
#   project at a quarter of its size (1072 × 712 instead of 4288 × 2848): the disc is cut
#   at top and bottom, as in every IDRiD photograph. `IDRiD(root, split)` reads the data
#   set's own folder layout (lesson 2 looks inside).

# %%
retina = skimage.data.retina()  # (1411, 1411, 3) uint8
photo = IDRiD(idrid_root(), "test")[0]["image"]  # (712, 1072, 3) uint8
photographs = {"retina()": retina, "IDRiD_55": photo}
for name, image in photographs.items():
    print(f"{name:>9}: shape {image.shape}, dtype {image.dtype}, values {image.min()}..{image.max()}")

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, (name, image) in zip(axes, photographs.items()):
    ax.imshow(image)
    ax.set_title(f"{name}, {image.shape[1]} × {image.shape[0]}")
    ax.axis("off")
plt.show()

# %% [markdown]
# ## The paper's step, and this project's
#
# Siebert & Rostalski (MIDL 2021, Section 3) say only that the photographs are resized to
# 512 × 512 (and augmented, lesson 7). Resizing a 4288 × 2848 frame straight to a square
# would squash the disc and spend a fifth of the pixels on black, so the project does
# more (`docs/preprocessing.md` gives the reasons and the measurements):
#
# ```
# photograph (H, W, 3) uint8
#   ─ fundus_mask, crop_to_disc   the retinal disc and its bounding box
#   ─ to_square                   pad with black to a square, resize to s
#   ─ clahe                       contrast-limited histogram equalization of the lightness
#   ─ normalize                   (x / 255 − μ) / σ per channel
#   = x (3, s, s) float32
# ```

# %% [markdown]
# ## Step 1: find the retinal disc
#
# Inside the disc every pixel has at least one bright channel (the red one, in practice);
# outside it all three are near 0. So we look at the **channel maximum** of each pixel.
# Its histogram has two humps, the surround near 0 and the disc far above; the library
# cuts between them at 30 (of 255).

# %%
def channel_maximum(image):
    """The brightest of the three channels of each pixel."""
    return image.max(axis=2)  # (H, W)


fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
for ax, (name, image) in zip(axes, photographs.items()):
    ax.hist(channel_maximum(image).ravel(), bins=64, range=(0, 256), log=True, color="gray")
    ax.axvline(fundus.DISC_THRESHOLD, color="red", label=f"threshold {fundus.DISC_THRESHOLD}")
    ax.set(title=f"{name}: channel maximum", xlabel="value", ylabel="pixels (log)")
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# Thresholding alone leaves specks: JPEG noise in the black border, and, in some
# photographs, text or a notch mark. Four small steps make it one clean region:
#
# 1. a 5 × 5 **median filter** removes isolated noisy pixels;
# 2. **threshold** at 30;
# 3. keep the **largest connected component** (8-connected): text and notches are separate
#    components;
# 4. **fill holes**: a dark macula or a large haemorrhage must stay inside the disc. A hole
#    is a piece of the complement (4-connected) that does not touch the image border.

# %%
def disc_of(image, threshold=30):
    """The retinal disc of an (H, W, 3) uint8 photograph, (H, W) bool."""
    smoothed = cv2.medianBlur(channel_maximum(image), 5)  # (H, W) uint8
    bright = (smoothed > threshold).astype(np.uint8)  # (H, W) 0/1
    count, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)  # labels (H, W)
    largest = 1 + np.argmax(stats[1:, cv2.CC_STAT_AREA])  # label 0 is the dark background
    disc = labels == largest  # (H, W)
    # holes: pieces of the complement that do not touch the border
    count_out, pieces = cv2.connectedComponents((~disc).astype(np.uint8), connectivity=4)  # (H, W)
    border = np.concatenate([pieces[0], pieces[-1], pieces[:, 0], pieces[:, -1]])  # (2H + 2W,)
    is_hole = np.ones(count_out, dtype=bool)  # (count_out,)
    is_hole[0] = False  # label 0 of `pieces` is the disc itself
    is_hole[border] = False
    return disc | is_hole[pieces]  # (H, W)


discs = {name: disc_of(image) for name, image in photographs.items()}
for name, image in photographs.items():
    library = fundus.fundus_mask(image)  # (H, W)
    print(f"{name:>9}: disc covers {discs[name].mean():.1%} of the frame; "
          f"pixels that differ from fundus.fundus_mask: {np.count_nonzero(discs[name] != library)}")

# %% [markdown]
# ## Step 2: crop to the disc
#
# The bounding box of the disc, half-open as Python slices are: columns `x0 .. x1 − 1`,
# rows `y0 .. y1 − 1`.

# %%
def box_of(disc):
    """(x0, y0, x1, y1) of a non-empty (H, W) bool mask, half-open."""
    rows = np.flatnonzero(disc.any(axis=1))  # (n_rows,) rows that hold disc pixels
    cols = np.flatnonzero(disc.any(axis=0))  # (n_cols,)
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


boxes = {name: box_of(disc) for name, disc in discs.items()}
crops = {}
for name, image in photographs.items():
    x0, y0, x1, y1 = boxes[name]
    crops[name] = image[y0:y1, x0:x1]  # (y1 - y0, x1 - x0, 3)
    _, library_box = fundus.crop_to_disc(image)
    print(f"{name:>9}: box {boxes[name]}, crop {crops[name].shape}, fundus.crop_to_disc: {library_box}")
    assert boxes[name] == library_box

# %% [markdown]
# The IDRiD crop is 854 wide and 712 tall: 854 − 712 = 142 rows of the disc lie outside
# the frame. The crop of `retina()` is nearly square. Cropping gives the retina the
# columns the black surround took: 1072 − 854 = 218 of IDRiD_55's 1072 columns were black.

# %% [markdown]
# ## Step 3: pad to a square, then resize
#
# Pad the crop with black to a square, centred (an odd pixel goes to the bottom or the
# right), then shrink it to `SIZE × SIZE` with **area averaging** (`cv2.INTER_AREA`): each
# output pixel is the mean of the input pixels it covers, so thin vessels do not flicker
# in and out as they would with nearest-neighbour sampling.

# %%
def square_of(crop, size):
    """Pad an (H, W, 3) crop with black to a centred square and resize it to size × size."""
    height, width = crop.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    square = np.zeros((side, side, 3), dtype=crop.dtype)  # (S, S, 3)
    square[top : top + height, left : left + width] = crop
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)  # (size, size, 3)


squares = {name: square_of(crop, SIZE) for name, crop in crops.items()}
for name, crop in crops.items():
    library = fundus.to_square(crop, SIZE)  # (SIZE, SIZE, 3)
    difference = np.abs(squares[name].astype(int) - library).max()
    print(f"{name:>9}: square {squares[name].shape}; largest difference from fundus.to_square: {difference}")

# %% [markdown]
# Why pad rather than stretch? Stretching the 854 × 712 crop to a square scales the
# columns by 512 / 854 and the rows by 512 / 712: every round thing, a microaneurysm or a
# cotton-wool spot, becomes an ellipse 1.2 times taller than wide, and by a different
# amount in each photograph.

# %%
stretched = cv2.resize(crops["IDRiD_55"], (SIZE, SIZE), interpolation=cv2.INTER_AREA)  # (512, 512, 3)
height, width = crops["IDRiD_55"].shape[:2]
print(f"stretching: columns × {SIZE / width:.3f}, rows × {SIZE / height:.3f}, "
      f"a circle becomes {width / height:.2f} times taller than wide")

fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
axes[0].imshow(crops["IDRiD_55"])
axes[0].set_title(f"crop {width} × {height}")
axes[1].imshow(squares["IDRiD_55"])
axes[1].set_title(f"padded, then {SIZE} × {SIZE}")
axes[2].imshow(stretched)
axes[2].set_title(f"stretched to {SIZE} × {SIZE} (not used)")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# The disc on the square is the disc mask taken through the same steps, shrunk by
# majority (an output pixel belongs to the disc when at least half of it did): area
# averaging of the 0/1 mask gives that fraction.

# %%
square_discs = {}
for name, disc in discs.items():
    x0, y0, x1, y1 = boxes[name]
    fraction = fundus.to_square(disc[y0:y1, x0:x1].astype(np.float32), SIZE)  # (512, 512) disc share of each pixel
    square_discs[name] = fraction >= 0.5  # (512, 512)
    print(f"{name:>9}: the disc covers {square_discs[name].mean():.1%} of the square")

# %% [markdown]
# ## Step 4: CLAHE
#
# The lighting falls off from the centre to the rim, and a dark microaneurysm near the
# rim has less contrast than one at the centre. **Histogram equalization** remaps the
# grey levels so that they are used evenly: with $h(v)$ the histogram of the $N$ pixels,
# the new value of level $v$ is
#
# $$T(v) = \mathrm{round}\Big(\frac{255}{N} \sum_{u \le v} h(u)\Big).$$
#
# Plain equalization stretches whatever is most common, noise included. **Contrast
# limiting** first clips the histogram at `clip_limit` times its mean height $N / 256$
# and spreads the clipped excess evenly over all 256 levels, so no level's slope
# $T(v) - T(v - 1)$ can exceed about `clip_limit`. **Adaptive** means one such mapping
# per tile of an 8 × 8 grid (64 × 64 pixels at 512), blended bilinearly between
# neighbouring tiles so that no seams show.
#
# We equalize only the lightness L of the CIE-Lab colour space, so hues stay: a
# haemorrhage stays red, an exudate yellow. Here is one tile's mapping in NumPy, with the
# clipping done the way OpenCV does it (an integer limit; the excess that does not divide
# by 256 goes one count each to every `256 // residual`-th level).

# %%
def clipped_equalization(grey, clip_limit):
    """The contrast-limited mapping T of one tile: (256,) uint8 look-up table."""
    n = grey.size
    hist = np.bincount(grey.ravel(), minlength=256)  # (256,) h(v)
    limit = max(int(clip_limit * n / 256), 1)  # clip_limit times the mean height
    excess = np.maximum(hist - limit, 0).sum()
    hist = np.minimum(hist, limit) + excess // 256  # (256,) clipped, excess spread evenly
    residual = excess % 256
    if residual:
        hist[np.arange(0, 256, max(256 // residual, 1))[:residual]] += 1
    # $T(v) = \mathrm{round}(255 / N \sum_{u \le v} h(u))$
    return np.clip(np.rint(np.cumsum(hist) * 255 / n), 0, 255).astype(np.uint8)  # (256,)


lightness = cv2.cvtColor(squares["IDRiD_55"], cv2.COLOR_RGB2LAB)[..., 0]  # (512, 512) L scaled to 0..255
for clip_limit in (1.0, 2.0, 40.0):
    ours = clipped_equalization(lightness, clip_limit)[lightness]  # (512, 512) one tile: the whole image
    opencv = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(1, 1)).apply(lightness)  # (512, 512)
    print(f"clip limit {clip_limit:>4}: largest difference from OpenCV's CLAHE with one tile: "
          f"{np.abs(ours.astype(int) - opencv).max()}")

# %%
fig, ax = plt.subplots(figsize=(5.5, 4))
levels = np.arange(256)  # (256,)
for clip_limit in (1.0, 2.0, 4.0, 40.0):
    ax.plot(levels, clipped_equalization(lightness, clip_limit), label=f"clip limit {clip_limit:g}")
ax.plot(levels, levels, "k:", label="identity")
ax.set(xlabel="L before", ylabel="L after", title="one tile's mapping T for IDRiD_55")
ax.legend()
plt.show()
print("clip limit 40, levels 0 to 3 map to", clipped_equalization(lightness, 40.0)[:4].tolist())

# %% [markdown]
# With clip limit 40 the mapping is nearly plain equalization. The black surround, more
# than a quarter of the square at L ≈ 0, claims its share of the range (level 0 maps to
# 40 and levels 1–3 to 61–68, as printed above), and most of the remaining slope goes to
# the narrow band of levels where the retina's pixels lie: small differences there, noise
# included, become large ones. A low
# limit keeps the mapping closer to the identity. With 8 × 8 tiles and the L channel of
# Lab this is `enhance.clahe`:

# %%
def clahe_lightness(image, clip_limit=2.0, tile_grid=(8, 8)):
    """CLAHE on the L channel of CIE-Lab of an (H, W, 3) uint8 RGB image."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)  # (H, W, 3)
    lab[..., 0] = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=tile_grid).apply(lab[..., 0])  # (H, W)
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)  # (H, W, 3)


enhanced = {name: clahe_lightness(square) for name, square in squares.items()}
for name, square in squares.items():
    difference = np.abs(enhanced[name].astype(int) - enhance.clahe(square)).max()
    print(f"{name:>9}: largest difference from enhance.clahe: {difference}")

# %% [markdown]
# Before and after, with the histogram of L inside the disc:

# %%
fig, axes = plt.subplots(2, 3, figsize=(13, 8))
for row, name in zip(axes, squares):
    inside = square_discs[name]  # (512, 512)
    row[0].imshow(squares[name])
    row[0].set_title(f"{name}, before")
    row[1].imshow(enhanced[name])
    row[1].set_title(f"{name}, after CLAHE")
    for image, label in ((squares[name], "before"), (enhanced[name], "after")):
        L = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)[..., 0]  # (512, 512)
        row[2].hist(L[inside], bins=64, range=(0, 256), histtype="step", lw=1.5, label=label)
    row[2].set(title="L inside the disc", xlabel="L (0..255)", ylabel="pixels")
    row[2].legend()
    row[0].axis("off")
    row[1].axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# The histogram widens, and the small structures gain contrast. To put a number on it we
# measure the **local detail**: the standard deviation of L minus its 15 × 15 local mean,
# the fine structure that lesions are made of, 10 px or more inside the rim of the disc.

# %%
def local_detail(image, region):
    """Std of L minus its 15 × 15 local mean, over the (H, W) bool `region`."""
    L = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32)  # (H, W)
    return float((L - cv2.blur(L, (15, 15)))[region].std())


inner = {name: cv2.erode(d.astype(np.uint8), np.ones((21, 21), np.uint8)) > 0  # (512, 512) 10 px inside
         for name, d in square_discs.items()}
for name in squares:
    print(f"{name:>9}: local detail {local_detail(squares[name], inner[name]):.1f} before, "
          f"{local_detail(enhanced[name], inner[name]):.1f} after CLAHE")

# %% [markdown]
# ## Step 5: normalization
#
# Networks train best on inputs near zero with unit spread. Each channel $c$ is
# standardized with the training set's mean and standard deviation,
#
# $$\hat x_c = \frac{x_c / 255 - \mu_c}{\sigma_c},$$
#
# with $\mu_c$ and $\sigma_c$ measured over the **pixels inside the disc** of all training
# photographs pooled, after CLAHE. Inside the disc only, because the black surround
# carries no information and its share differs between photographs. Here the two
# photographs stand in for a training set.

# %%
print("share of the square outside the disc:",
      {name: f"{1 - d.mean():.1%}" for name, d in square_discs.items()})

pixels = np.concatenate([enhanced[name][square_discs[name]] for name in squares]) / 255  # (N, 3) in 0..1
mean = pixels.mean(axis=0)  # (3,) $\mu_c$
std = pixels.std(axis=0)  # (3,) $\sigma_c$
everything = np.concatenate([enhanced[name].reshape(-1, 3) for name in squares]) / 255  # (2 * 512 * 512, 3)
print("inside the disc: mean", mean, "std", std)
print("all pixels     : mean", everything.mean(axis=0), "std", everything.std(axis=0))

library_mean, library_std = enhance.channel_stats(enhanced.values(), square_discs.values())  # (3,) each
print("largest difference from enhance.channel_stats:",
      max(np.abs(mean - library_mean).max(), np.abs(std - library_std).max()))

# %%
image = enhanced["IDRiD_55"]  # (512, 512, 3)
# $\hat x_c = (x_c / 255 - \mu_c) / \sigma_c$
x = (image.transpose(2, 0, 1) / 255 - mean[:, None, None]) / std[:, None, None]  # (3, 512, 512)
print("x:", x.shape)
print("largest difference from enhance.normalize:", np.abs(x - enhance.normalize(image, mean, std)).max())

# %% [markdown]
# The whole chain in one call is `pipeline.preprocess(photograph, size, mean, std)`, which
# also returns a `Geometry`: the box and size, so that `fundus.to_original` can lay a
# prediction on the square back onto the photograph's own pixels (lesson 9). It must give
# what we built step by step:

# %%
x_library, geometry = pipeline.preprocess(photo, SIZE, mean, std)  # (3, 512, 512)
print(geometry)
print("largest difference, our x vs pipeline.preprocess:", np.abs(x - x_library).max())
example = pipeline.prepare_example(photo, size=SIZE)  # image (512, 512, 3), disc (512, 512)
print("disc pixels that differ from prepare_example's:", np.count_nonzero(example.disc != square_discs["IDRiD_55"]))
back = fundus.to_original(square_discs["IDRiD_55"], geometry)  # (712, 1072) bool
agreement = np.mean(back == discs["IDRiD_55"])
print(f"the square's disc laid back on the photograph matches the disc on {agreement:.2%} of its pixels")

# %%
pooled = np.concatenate([  # (3, N) both photographs, pixels inside the disc
    enhance.normalize(enhanced[name], mean, std)[:, square_discs[name]] for name in squares
], axis=1)
print("inside the disc, both photographs pooled: mean", pooled.mean(axis=1, dtype=np.float64),
      "std", pooled.std(axis=1, dtype=np.float64))

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for c, colour in enumerate(("red", "green", "blue")):
    axes[0].hist(pooled[c], bins=80, histtype="step", color=colour, label=colour)
axes[0].set(title="x inside the disc, both photographs", xlabel="standardized value", ylabel="pixels")
axes[0].legend()
outside = ~square_discs["IDRiD_55"]  # (512, 512)
axes[1].imshow(x[1], cmap="gray")
axes[1].set_title(f"IDRiD_55's x, green channel (surround = {x[1][outside].mean():.2f})")
axes[1].axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# How to read the histogram:
#
# - **Two humps** in red and in blue: one per photograph. The two were taken with different
#   cameras and light, so retina()'s pixels average about +0.7 (red) and +0.8 (blue), and
#   IDRiD_55's about −0.8 and −0.9. Standardizing pools them to mean 0 and std 1; it
#   does not make each photograph look alike. Green's two humps, about +0.4 and −0.4, are
#   close enough to merge into one peak.
# - **The spikes** are clipping, not lesions: the red spike near +1.7 is every pixel whose
#   red had hit 255, the camera's ceiling (4 % of retina()'s disc), all mapped to one value
#   $(1 - \mu_r)/\sigma_r$; the blue spike near −1.4 is every pixel with no blue at all,
#   0 (14 % of IDRiD_55's disc), mapped to $-\mu_b / \sigma_b$.
# - **The comb** in blue: IDRiD_55's blue uses fewer than 90 of the 256 levels inside the
#   disc, so its standardized values sit on a grid, with empty bins between them.
#
# The surround, outside the histogram, becomes one strongly negative value per channel;
# the network learns to ignore it.
#
# ## Summary
#
# - The disc is the largest bright region of the channel maximum (median filter, threshold
#   30, largest component, holes filled); the photograph is cropped to its bounding box.
# - The crop is padded with black to a centred square, so round lesions stay round, and
#   shrunk to `s × s` by area averaging.
# - CLAHE remaps the lightness tile by tile with a clipped histogram equalization: it
#   roughly doubles the local detail, without turning noise into texture.
# - Each channel is standardized with the mean and std of the training photographs'
#   pixels inside the disc. `pipeline.preprocess` does all of it, and its `Geometry` maps
#   a prediction back to the photograph.
# - Every step we wrote agrees with the library: the masks and boxes exactly, the images
#   to the last grey level, `x` to float rounding.

# %% [markdown]
# ## Exercises
#
# 1. **Concept, about 10 min.** A microaneurysm is round. What shape would it have on the
#    network's input if the project stretched IDRiD's full 4288 × 2848 frame to 512 × 512 without
#    cropping or padding? And with cropping but stretching the 3419 × 2848 disc box? Give the
#    ratio of height to width in each case.
# 2. **Implementation, about 15 min.** Write `pad_centred(array)`: pad an `(H, W)` or `(H, W,
#    3)` array with zeros to a `(S, S)` or `(S, S, 3)` square, `S = max(H, W)`, with the array
#    centred (an odd extra row or column goes to the bottom or the right).
# 3. **Experiment, about 10 min.** The threshold 30 is the library's choice. For the *other*
#    sample photograph, IDRiD_01 (`IDRiD(idrid_root(), "train")[0]["image"]`), compute
#    `width_by_threshold`, a dict from each threshold in `(10, 20, 30, 45, 60)` to the width `x1
#    - x0` of the disc box from `fundus.crop_to_disc(image, threshold)`. Then set
#    `glow_joins_below_30` to `True` if the box at threshold 10 is more than 20 pixels wider than
#    at 30.
# 4. **Experiment, about 10 min.** Compute `detail_by_clip`: a dict from each clip limit in
#    `(1.0, 2.0, 4.0, 8.0)` to the `local_detail` of IDRiD_55's square after
#    `enhance.clahe(squares["IDRiD_55"], clip_limit)`, over `inner["IDRiD_55"]`. Does the detail
#    grow with the clip limit? What would be the price of a large limit?
# 5. **Implementation, about 15 min.** Write `clahe_green(image)`: CLAHE (clip limit 2, 8 × 8
#    tiles) on the green channel only, red and blue unchanged: the library's `channel="green"`
#    option.
# 6. **Concept, about 10 min.** Why are $\mu$ and $\sigma$ measured on the training
#    photographs only (also when preparing the test set), and why after CLAHE rather than before?

# %% [markdown]
# Some checks below compare a fingerprint of your answer with a stored one
# (`answer_digest`: the numbers rounded, then hashed), so they can tell a right answer
# from a wrong one without showing it.

# %%
from lessons.exercises import answer_digest  # the fingerprint the checks were stored with


# %% [markdown] tags=["solution"] exercise=1
# ### BEGIN SOLUTION
# Stretching the full frame scales the columns by 512 / 4288 and the rows by 512 / 2848;
# a circle of diameter d becomes d · 512 / 2848 tall and d · 512 / 4288 wide, a height to
# width ratio of 4288 / 2848 = 1.51. Cropping first leaves a 3419 × 2848 box, stretched by
# 512 / 3419 and 512 / 2848: ratio 3419 / 2848 = 1.20. Padding to a square scales both
# axes by the same 512 / 3419, ratio 1: the microaneurysm stays round, and looks the same
# in every photograph whatever its frame.
# ### END SOLUTION

# %% tags=["solution"] exercise=2
def pad_centred(array):
    """Zero-pad an (H, W) or (H, W, 3) array to a centred (S, S[, 3]) square, S = max(H, W)."""
    ### BEGIN SOLUTION
    # Why: the offsets (S - H) // 2 and (S - W) // 2 put an odd extra row or column at the bottom
    # or the right, as fundus.pad_to_square does; zeros are the black of the photograph's border.
    height, width = array.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    out = np.zeros((side, side) + array.shape[2:], dtype=array.dtype)  # (S, S[, 3])
    out[top : top + height, left : left + width] = array
    return out
    ### END SOLUTION


# %% tags=["check"] exercise=2
for _shape in [(3, 5), (6, 3), (4, 4), (1, 2), (2, 7, 3)]:
    _array = np.arange(1, np.prod(_shape) + 1).reshape(_shape)  # (_shape) no zeros: the padding shows
    _ours = pad_centred(_array)  # (S, S[, 3])
    _expected = fundus.pad_to_square(_array)  # (S, S[, 3])
    assert np.shape(_ours) == _expected.shape, f"shape {_shape}: expected {_expected.shape}, got {np.shape(_ours)}"
    assert np.array_equal(_ours, _expected), f"shape {_shape}: the array is not centred like fundus.pad_to_square"
assert np.array_equal(pad_centred(crops["IDRiD_55"]), fundus.pad_to_square(crops["IDRiD_55"])), "the IDRiD crop"
print("exercise 2: correct")

# %% tags=["solution"] exercise=3
train_photo = IDRiD(idrid_root(), "train")[0]["image"]  # (712, 1072, 3)
### BEGIN SOLUTION
# Why: a lower threshold lets the dim glow around the disc count as retina, so the box widens (921
# px at 10 against 855 at 30); above 30 the box hardly moves.
width_by_threshold = {}
for threshold in (10, 20, 30, 45, 60):
    _, (x0, _, x1, _) = fundus.crop_to_disc(train_photo, threshold)
    width_by_threshold[threshold] = x1 - x0
glow_joins_below_30 = width_by_threshold[10] - width_by_threshold[30] > 20
### END SOLUTION
print(width_by_threshold)

# %% tags=["check"] exercise=3
assert set(width_by_threshold) == {10, 20, 30, 45, 60}, f"one width per threshold expected, got {set(width_by_threshold)}"
_whole = all(isinstance(_w, (int, np.integer)) for _w in width_by_threshold.values())
assert _whole, "widths are whole pixels"
_widths = [width_by_threshold[_t] for _t in (10, 20, 30, 45, 60)]
assert _widths == sorted(_widths, reverse=True), (
    f"a higher threshold cannot give a wider box, got {_widths}"
)
assert answer_digest(width_by_threshold) == "88d289468e4d", (
    "the widths are not x1 - x0 of IDRiD_01's disc boxes"
)
assert isinstance(glow_joins_below_30, (bool, np.bool_)), (
    "glow_joins_below_30 must be True or False"
)
assert answer_digest(glow_joins_below_30) == "3cbc87c7681f", (
    "look again at the widths at 10 and at 30"
)
print("exercise 3: correct")

# %% tags=["solution"] exercise=4
### BEGIN SOLUTION
detail_by_clip = {
    clip: local_detail(enhance.clahe(squares["IDRiD_55"], clip), inner["IDRiD_55"])
    for clip in (1.0, 2.0, 4.0, 8.0)
}
# It grows with the limit: each tile's mapping may get steeper. The price is noise: the
# JPEG blocks and sensor noise of flat regions are stretched as much as the lesions, and
# the dark rim and the black border turn grainy.
### END SOLUTION
print(detail_by_clip)

# %% tags=["check"] exercise=4
assert set(detail_by_clip) == {1.0, 2.0, 4.0, 8.0}, (
    f"keys 1.0, 2.0, 4.0, 8.0 expected, got {set(detail_by_clip)}"
)
_unclipped = local_detail(squares["IDRiD_55"], inner["IDRiD_55"])
assert all(_detail > _unclipped for _detail in detail_by_clip.values()), (
    "CLAHE at any limit adds local detail"
)
assert answer_digest(detail_by_clip, digits=3) == "82d2898e50a1", (
    "not the local detail of IDRiD_55's square after enhance.clahe at each clip limit"
)
print("exercise 4: correct")


# %% tags=["solution"] exercise=5
def clahe_green(image):
    """CLAHE (clip 2, 8 × 8 tiles) on the green channel of an (H, W, 3) uint8 RGB image."""
    ### BEGIN SOLUTION
    # Why: OpenCV's CLAHE works on one 8-bit channel; equalizing green alone, the channel with the
    # most lesion contrast, leaves red and blue, and so the colour balance, as they were.
    out = image.copy()  # (H, W, 3)
    equalizer = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    out[..., 1] = equalizer.apply(np.ascontiguousarray(image[..., 1]))  # (H, W)
    return out
    ### END SOLUTION


# %% tags=["check"] exercise=5
for _name, _square in squares.items():
    _ours = clahe_green(_square)  # (512, 512, 3)
    assert np.array_equal(_ours[..., [0, 2]], _square[..., [0, 2]]), (
        f"{_name}: red and blue must not change"
    )
    _expected = enhance.clahe(_square, channel="green")  # (512, 512, 3)
    assert np.array_equal(_ours, _expected), (
        f"{_name}: differs from enhance.clahe(channel='green') by up to {np.abs(_ours.astype(int) - _expected).max()}"
    )
print("exercise 5: correct")

# %% [markdown] tags=["solution"] exercise=6
# ### BEGIN SOLUTION
# The test photographs stand for photographs the model has never seen; if their pixels
# shaped $\mu$ and $\sigma$, the test set would leak into the model's input, and a
# photograph at prediction time (one at a time, no set around it) could not be treated
# the same way. So $\mu$ and $\sigma$ are part of the trained model, saved with it and
# used unchanged on every later photograph. After CLAHE, because CLAHE changes the
# distribution (it widens L and moves its mean): statistics measured before it would not
# give the network mean 0 and std 1 on what it actually receives.
# ### END SOLUTION
