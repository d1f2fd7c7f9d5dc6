# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 2 — Lesions and masks
#
# **At a glance**
#
# - **You will learn to**
#   - read IDRiD's layout and its masks, and avoid the 0/76 grey-level trap
#   - draw lesion overlays and measure how rare lesion pixels are
#   - say what shrinking a photograph does to microaneurysms, and choose a mask resizing rule
# - **Prerequisites**: lesson 1 (the disc, the square crop).
# - **Time on a laptop CPU**: < 1 min to run top to bottom; about 75 min for the six exercises,
#   plus the reading.
# - **Difficulty**: introductory.
# - **Paper**:
#   [Siebert & Rostalski, MIDL 2021](https://openreview.net/group?id=MIDL.io/2021/Conference),
#   Section 3 (the IDRiD data set, four lesions).
#
# The network learns from **masks**: for each photograph and each lesion, a binary image
# that is 1 on the lesion's pixels and 0 elsewhere. The four lesions of diabetic
# retinopathy segmented in IDRiD, in the order used everywhere in this project:
#
# | | lesion | looks like |
# |---|---|---|
# | MA | microaneurysms | tiny dark-red dots, a few pixels wide: the earliest sign |
# | HE | haemorrhages | larger red blots and flames |
# | EX | hard exudates | bright yellow spots with sharp edges, often in clusters |
# | SE | soft exudates (cotton-wool spots) | pale, fuzzy-edged patches |
#
# Masks hold three traps that this lesson walks through: how they are stored (a mask read
# the obvious way can come out empty), how rare their pixels are, and what shrinking a
# photograph to 512 × 512 does to a lesion a few pixels wide.
#
# You will need: lesson 1 (the disc, the square), boolean arrays, and `(C, H, W)` for a
# stack of C masks.

# %%
import cv2
import matplotlib.pyplot as plt
from matplotlib.patches import Patch
import numpy as np
from PIL import Image

from data_prep import fundus, idrid, pipeline
from data_prep.idrid import IDRiD
from data_prep.shipped import idrid_root
from data_prep.synthetic import make_fundus
from u2net_mini import overlay
from u2net_mini.lesions import LESION_COLOURS, LESION_NAMES, LESIONS

rng = np.random.default_rng(0)
np.set_printoptions(precision=5, suppress=True)

# %% [markdown]
# ## The IDRiD layout
#
# IDRiD's segmentation part (Porwal et al. 2018) has 81 photographs, 54 for training and
# 27 for testing, and one folder per lesion for the masks, one TIFF per photograph and
# lesion. The project ships all 81 photographs and their lesion masks with each side
# shrunk by 4 (1072 × 712 instead of 4288 × 2848, `data_prep/shipped/idrid`, CC BY 4.0),
# in the same layout. The files per folder:

# %%
root = idrid_root()
for folder in sorted({path.parent for path in root.rglob("*") if path.is_file()}):
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    print(f"{str(folder.relative_to(root)):<80} {len(files):3d} files: {files[0]} … {files[-1]}")

# %% [markdown]
# The lesion folders are `1. Microaneurysms`, `2. Haemorrhages`, `3. Hard Exudates` and
# `4. Soft Exudates` (the original also has `5. Optic Disc`, not a lesion) in both
# splits. **A missing file means the lesion is absent** from that photograph: only 26 of
# the 54 training photographs have soft exudates, and IDRiD_43 has no haemorrhages. `IDRiD(root, split)` reads the layout
# and returns, for photograph `i`, the image, a `(4, H, W)` stack of masks in the order
# MA, HE, EX, SE (all False for a missing file) and which files exist:

# %%
test_set = IDRiD(root, "test")
item = test_set[0]
print(test_set)
print(item["name"], "image", item["image"].shape, "masks", item["masks"].shape, item["masks"].dtype)
print("mask file present:", dict(zip(LESIONS, item["present"].tolist())))
print("lesion pixels:    ", dict(zip(LESIONS, item["masks"].sum(axis=(1, 2)).tolist())))

# %% [markdown]
# ## The 0 / 76 trap
#
# An IDRiD mask is a **1-bit palette TIFF**: each pixel stores an index, 0 or 1, and a
# palette says that index 0 is black and index 1 is red. What you get depends on how you
# read it.

# %%
mask_path = test_set.mask_path(0, "EX")
with Image.open(mask_path) as tif:
    print("PIL mode:", tif.mode, "| palette, first two colours:", tif.getpalette()[:6])
    indices = np.array(tif)  # (712, 1072) palette indices
    grey = np.array(tif.convert("L"))  # (712, 1072) the colours as grey levels
opencv_grey = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)  # (712, 1072)
print("as an array (PIL):           values", np.unique(indices))
print("as 8-bit grey (PIL 'L'):     values", np.unique(grey))
print("as 8-bit grey (cv2.imread):  values", np.unique(opencv_grey))

# %% [markdown]
# Red (255, 0, 0) in grey is its luma, $0.299 R + 0.587 G + 0.114 B = 0.299 \cdot 255 = 76.2$,
# so the lesion is 76, not 255. The habit of binarizing a grey image at half-way, `> 127`,
# then loses **every** lesion pixel, without an error: a network trained on such masks
# learns that there are no lesions. Binarize with `> 0`, which is right for {0, 1},
# {0, 76} and {0, 255} alike. `idrid.read_mask` does so.

# %%
trap = grey > 127  # (712, 1072)
right = grey > 0  # (712, 1072)
print(f"> 127: {trap.sum()} lesion pixels;  > 0: {right.sum()} lesion pixels")
print("pixels that differ from idrid.read_mask:", np.count_nonzero(right != idrid.read_mask(mask_path)))

# %% [markdown]
# ## Overlays
#
# To see a mask, paint it on the photograph: each lesion pixel gets a blend of the
# photograph's colour $I$ and the lesion's colour $c$,
#
# $$o = (1 - a)\, I + a\, c, \qquad a = 0.6 \text{ on the lesion, } 0 \text{ elsewhere},$$
#
# lesion by lesion in the order MA, HE, EX, SE (a later one lies on top). The library's
# `overlay.blend` paints a model's probabilities the same way; a mask is a probability
# of 0 or 1.

# %%
def paint(image, masks, lesions, opacity=0.6):
    """(H, W, 3) uint8 with each (H, W) bool mask of `masks` blended in its lesion's colour."""
    out = image.astype(np.float64)  # (H, W, 3)
    for name, mask in zip(lesions, masks):
        colour = np.array([int(LESION_COLOURS[name][i : i + 2], 16) for i in (1, 3, 5)])  # (3,) RGB of "#rrggbb"
        alpha = opacity * mask[..., None]  # (H, W, 1) $a$
        out = (1 - alpha) * out + alpha * colour  # (H, W, 3) $o = (1 - a) I + a c$
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)  # (H, W, 3)


photo, masks = item["image"], item["masks"]  # (712, 1072, 3), (4, 712, 1072)
painted = paint(photo, masks, LESIONS)  # (712, 1072, 3)
print("largest difference from overlay.blend:",
      np.abs(painted.astype(int) - overlay.blend(photo, masks.astype(float), LESIONS)).max())

fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
axes[0].imshow(photo)
axes[0].set_title("IDRiD_55")
axes[1].imshow(painted)
axes[1].set_title("its masks: " + ", ".join(f"{n} {k} px" for n, k in zip(LESIONS, masks.sum(axis=(1, 2)))))
swatches = [Patch(color=LESION_COLOURS[name], label=f"{name}: {LESION_NAMES[name]}") for name in LESIONS]
axes[1].legend(handles=swatches, loc="lower right", fontsize=8, framealpha=0.9)
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# Real masks are drawn by hand, and a model's errors are easiest to study where the truth
# is known exactly. For that the project also paints synthetic photographs
# (`data_prep.synthetic.make_fundus`): retinas whose masks are exact, in IDRiD's colours.
# By default they draw lesions at least 2 px wide at the small sizes a laptop trains at,
# larger than real microaneurysms (more on that below).

# %%
SEED = 0
synthetic, synthetic_masks = make_fundus(SEED, 512)  # (512, 512, 3) uint8, (4, 512, 512) bool
print("lesion pixels:", dict(zip(LESIONS, synthetic_masks.sum(axis=(1, 2)).tolist())))


def zoom_box(mask, half=40):
    """(row slice, column slice) of a (2 half)² window around the largest lesion of `mask`."""
    _, _, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)  # (n, 5), (n, 2)
    largest = 1 + np.argmax(stats[1:, cv2.CC_STAT_AREA])
    col, row = np.clip(np.rint(centroids[largest]).astype(int), half, np.array(mask.shape[::-1]) - half)  # (2,)
    return slice(row - half, row + half), slice(col - half, col + half)


fig = plt.figure(figsize=(13, 7.5))
grid = fig.add_gridspec(2, 4)
big_left, big_right = fig.add_subplot(grid[0, :2]), fig.add_subplot(grid[0, 2:])
big_left.imshow(synthetic)
big_left.set_title(f"make_fundus({SEED}, 512)")
big_right.imshow(paint(synthetic, synthetic_masks, LESIONS))
big_right.set_title("MA, HE, EX, SE")
for k, name in enumerate(LESIONS):
    ax = fig.add_subplot(grid[1, k])
    rows, cols = zoom_box(synthetic_masks[k])
    ax.imshow(synthetic[rows, cols])
    ax.contour(synthetic_masks[k][rows, cols], levels=[0.5], colors=[LESION_COLOURS[name]], linewidths=1.2)
    ax.set_title(f"{name}: {LESION_NAMES[name]}", color=LESION_COLOURS[name])
for ax in fig.axes:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## How rare lesion pixels are
#
# The share of a lesion is its pixel count over the pixels of the retinal disc (the black
# surround cannot hold a lesion). We measure it on IDRiD_55, on four synthetic photographs
# drawn at real lesion sizes (`visible_at=None`), and then on all 54 real training
# photographs.

# %%
def shares_in_disc(image, masks):
    """(C,) fraction of the disc's pixels that belong to each lesion."""
    disc = fundus.fundus_mask(image)  # (H, W)
    return (masks & disc).sum(axis=(1, 2)) / disc.sum()  # (C,)


real_shares = shares_in_disc(photo, masks)  # (4,)
synthetic_shares = np.stack([  # (4 photographs, 4 lesions)
    shares_in_disc(*make_fundus(seed, 512, visible_at=None)) for seed in range(4)
])
print(f"{'':>16}" + "".join(f"{name:>10}" for name in LESIONS))
print(f"{'IDRiD_55':>16}" + "".join(f"{s:10.4%}" if present else f"{'no file':>10}"
                                    for s, present in zip(real_shares, item["present"])))
for seed, shares in enumerate(synthetic_shares):
    print(f"{'synthetic ' + str(seed):>16}" + "".join(f"{s:10.4%}" for s in shares))

# %% [markdown]
# Even IDRiD_55, a photograph with many exudates, has 6 % of its disc on an exudate. In
# the synthetic photographs a lesion covers up to about 1.6 % (HE of synthetic 1), SE
# may be absent (synthetic 3), and microaneurysms take one pixel in 2,500 to 17,000. The
# real training split, pooled (every lesion pixel of the
# 54 photographs over all their disc pixels; a photograph without a mask file counts as
# having none of that lesion):

# %%
train_set = IDRiD(root, "train")
lesion_pixels, disc_pixels = np.zeros(4), 0  # (4,), ()
for i in range(len(train_set)):
    example = train_set[i]
    disc = fundus.fundus_mask(example["image"])  # (712, 1072)
    lesion_pixels += (example["masks"] & disc).sum(axis=(1, 2))  # (4,)
    disc_pixels += disc.sum()
train_shares = lesion_pixels / disc_pixels  # (4,)
with_lesion = sum(train_set.mask_present(i) for i in range(len(train_set)))  # (4,) photographs with a mask file
for name, share, count in zip(LESIONS, train_shares, with_lesion):
    print(f"{name}: {share:8.4%} of the disc's pixels, in {count} of {len(train_set)} photographs")

# %% [markdown]
# In terms of lesson 5's imbalance $r$, background pixels per lesion pixel (the black
# lines mark the mean share of the four synthetic photographs above):

# %%
imbalance = (1 - train_shares) / train_shares  # (4,) r = background / lesion, per lesion
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.bar(LESIONS, train_shares, color=[LESION_COLOURS[name] for name in LESIONS], log=True)
ax.plot(LESIONS, synthetic_shares.mean(axis=0), "k_", markersize=30, label="synthetic, real sizes")
for k, name in enumerate(LESIONS):
    ax.text(k, train_shares[k] * 1.3, f"r ≈ {imbalance[k]:,.0f}", ha="center", fontsize=9)
ax.set(ylabel="share of the disc's pixels (log)", title="lesion pixels, the 54 real training photographs",
       ylim=(1e-5, 1))
ax.legend()
plt.show()

# %% [markdown]
# Real microaneurysms take one disc pixel in about 640 ($r \approx 639$), the rarest
# lesion; the synthetic ones drawn at real sizes are about ten times rarer still, so the
# synthetic photographs understate MA's share. A model that answers "background"
# everywhere is right on 98.6 % (HE) to 99.8 % (MA) of the disc's pixels: accuracy means
# nothing here. Against this imbalance the paper's choices make sense: it weighs the
# channels (lesson 5), focuses the loss on hard pixels and adds a Dice term (lesson 6),
# and measures results by the area under the precision–recall curve (lesson 9).

# %% [markdown]
# ## What shrinking does to microaneurysms
#
# A microaneurysm is 5–15 px wide in a 4288 × 2848 IDRiD photograph. The disc is about
# 3416 px wide there and 512 at the network's size: everything shrinks by about 6.7, and a
# microaneurysm becomes **0.75 to 2.25 pixels wide**; the smallest cover under half of one
# output pixel. How a mask is shrunk then decides whether the lesion is still in the
# target at all.
#
# We build a test: a 1008 × 1008 patch at full resolution with 150 round dots of MA size
# (5 to 15 px across), shrunk 7 times to 144 × 144. With $P_{ij}$ the 7 × 7 input pixels
# under output pixel $(i, j)$, the **covered fraction** is
#
# $$a_{ij} = \frac{1}{|P_{ij}|} \sum_{p \in P_{ij}} y_p .$$

# %%
FULL, FACTOR = 1008, 7
SMALL = FULL // FACTOR  # 144
dots = np.zeros((FULL, FULL), dtype=bool)  # (1008, 1008)
for _ in range(150):
    diameter = rng.uniform(5, 15)
    r0, c0 = rng.uniform(10, FULL - 10, size=2)  # the centre, anywhere on the sub-pixel grid
    rows, cols = np.mgrid[int(r0) - 8 : int(r0) + 9, int(c0) - 8 : int(c0) + 9]  # (17, 17) a window around it
    dots[rows, cols] |= (rows + 0.5 - r0) ** 2 + (cols + 0.5 - c0) ** 2 <= (diameter / 2) ** 2


def count_components(mask):
    """Number of 8-connected lesions in an (H, W) bool mask."""
    return cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1


print(f"{count_components(dots)} lesions (a few dots touch), {dots.sum()} px at full resolution, "
      f"{dots.sum() / FACTOR**2:.0f} px of true area at {SMALL} × {SMALL}")

# %% [markdown]
# Four rules, each in a line or two of NumPy:
#
# - **nearest**: the input pixel under the centre of each output pixel, row $\lfloor (i + 1/2) \cdot 7 \rfloor$;
# - **majority**: $a_{ij} \ge 1/2$;
# - **any**: $a_{ij} > 0$;
# - **preserve** (the project's rule): majority, plus, for each 8-connected lesion that
#   majority erases entirely, the one output pixel it covers most.

# %%
centres = ((np.arange(SMALL) + 0.5) * FACTOR).astype(int)  # (144,) input row (and column) under each output centre
nearest = dots[np.ix_(centres, centres)]  # (144, 144)
covered = dots.reshape(SMALL, FACTOR, SMALL, FACTOR).mean(axis=(1, 3))  # (144, 144) $a_{ij}$
majority = covered >= 0.5  # (144, 144)
any_cover = covered > 0  # (144, 144)

preserve = majority.copy()  # (144, 144)
count, labels, stats, _ = cv2.connectedComponentsWithStats(dots.astype(np.uint8), connectivity=8)  # labels (1008, 1008)
for lesion in range(1, count):
    x, y, w, h = stats[lesion, :4]  # the lesion's bounding box
    ys, xs = np.nonzero(labels[y : y + h, x : x + w] == lesion)  # (n,) its pixels, inside the box
    out_rows, out_cols = (ys + y) // FACTOR, (xs + x) // FACTOR  # (n,) the output pixel of each
    if majority[out_rows, out_cols].any():
        continue  # majority kept some of it
    best = np.argmax(covered[out_rows, out_cols])  # the output pixel this lesion covers most
    preserve[out_rows[best], out_cols[best]] = True

ours = {"nearest": nearest, "majority": majority, "any": any_cover, "preserve": preserve}
for rule, small in ours.items():
    library = pipeline.resize_mask(dots, (SMALL, SMALL), rule)  # (144, 144)
    print(f"{rule:>9}: pixels that differ from pipeline.resize_mask: {np.count_nonzero(small != library)}")

# %% [markdown]
# Counting the connected pieces after shrinking mixes two things: lesions lost, and
# neighbouring lesions whose pixels now touch and merge into one piece. So we count both:
# a lesion is **kept** when at least one of the output pixels under its own pixels is set.

# %%
footprints = []  # per input lesion: the output pixels under its pixels, (rows, cols)
for lesion in range(1, count):
    x, y, w, h = stats[lesion, :4]
    ys, xs = np.nonzero(labels[y : y + h, x : x + w] == lesion)  # (n,)
    footprints.append(((ys + y) // FACTOR, (xs + x) // FACTOR))


def kept_lesions(small):
    """How many input lesions still have a set pixel in the shrunk (144, 144) mask."""
    return sum(bool(small[out_rows, out_cols].any()) for out_rows, out_cols in footprints)


true_area = dots.sum() / FACTOR**2
print(f"{'rule':>9} {'kept':>5} {'pieces':>7} {'area (px)':>10} {'area / true area':>17}")
print(f"{'input':>9} {count - 1:5d} {count_components(dots):7d} {true_area:10.0f} {1:17.2f}")
for rule, small in ours.items():
    print(f"{rule:>9} {kept_lesions(small):5d} {count_components(small):7d} {small.sum():10d} "
          f"{small.sum() / true_area:17.2f}")

# %% [markdown]
# - **nearest** loses 16 of the 144 microaneurysms (11 %), **majority** 36 (25 %): the
#   target then says "background" where a lesion is, and the model is trained to miss them.
# - **any** keeps every lesion but makes most of them a blob of 2 × 2 to 3 × 3 pixels,
#   2.8 times the true area in all, and blobs that touch merge (131 pieces for 144 lesions).
# - **preserve** keeps every lesion, as one pixel where majority would lose it, with
#   0.89 of the true area (nearest's 0.97 is closer, but it loses 16 lesions). Its 4
#   merges (144 kept, 140 pieces) are lesions whose output pixels touch or overlap.

# %%
window = (slice(0, 420), slice(0, 420))  # a 420 × 420 corner at full resolution = 60 × 60 output
small_window = (slice(0, 420 // FACTOR), slice(0, 420 // FACTOR))
fig, axes = plt.subplots(1, 5, figsize=(15, 3.4))
axes[0].imshow(dots[window], cmap="gray", interpolation="nearest")
axes[0].set_title(f"full resolution ({count_components(dots[window])} dots)")
for ax, (rule, small) in zip(axes[1:], ours.items()):
    ax.imshow(small[small_window], cmap="gray", interpolation="nearest")
    ax.set_title(f"{rule}: {count_components(small[small_window])}")
for ax in axes:
    ax.axis("off")
fig.suptitle(f"the same corner shrunk {FACTOR} times by each rule (pieces counted in the corner)")
plt.tight_layout()
plt.show()

# %% [markdown]
# The library does the same for any factor, whole or not (OpenCV's area resize gives
# $a_{ij}$), and `pipeline.prepare_example` shrinks every mask of a photograph by
# `MASK_RULE`:

# %%
print("pipeline.MASK_RULE =", repr(pipeline.MASK_RULE))
x0, y0, x1, y1 = fundus.crop_to_disc(photo)[1]
exudates = fundus.pad_to_square(masks[2][y0:y1, x0:x1])  # (854, 854) IDRiD_55's EX, as prepare_example crops it
print(f"IDRiD_55 EX at {exudates.shape[0]} px: {count_components(exudates)} lesions; at 256 px:",
      {rule: count_components(pipeline.resize_mask(exudates, (256, 256), rule)) for rule in pipeline.MASK_RULES})

# %% [markdown]
# These are counts of pieces, as in the "pieces" column above: they fall both when a lesion
# is lost and when neighbours merge. Preserve loses no lesion (that is its rule), so its
# drop from 344 to 232 is all merges: at 256 px an output pixel spans 3.3 input pixels, and
# exudates that close together touch. Any merges by far the most (70 pieces); nearest and
# majority both lose small exudates and merge others, and end between the two.
#
# ## Summary
#
# - IDRiD keeps one 1-bit palette TIFF per photograph and lesion; a missing file means an
#   absent lesion. `IDRiD(root, split)[i]` gives the image, a `(4, H, W)` bool stack in the
#   order MA, HE, EX, SE, and which files exist.
# - Read as an array a mask is {0, 1}; as 8-bit grey it is {0, 76}. Binarize with `> 0`,
#   never `> 127`.
# - Lesion pixels are rare: over the 54 training photographs, 1.2 % of the disc's pixels
#   are exudate, 1.4 % haemorrhage and 0.16 % microaneurysm (one pixel in about 640).
#   Accuracy is meaningless; the loss and the metric must care about the few.
# - Shrinking to 512 makes a microaneurysm 0.75 to 2.25 pixels wide. Nearest and majority
#   lose some (11 % and 25 % in our test), any inflates them (2.8 times the area),
#   preserve keeps each lesion with about its true area (0.89 of it).

# %% [markdown]
# ## Exercises
#
# 1. **Implementation, about 10 min.** Write `read_mask_opencv(path)`: read an IDRiD mask with
#    `cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)` and return it as an `(H, W)` bool mask.
# 2. **Implementation, about 10 min.** Write `lesion_shares(masks, disc)`: for a `(C, H, W)`
#    bool stack and an `(H, W)` bool disc, the `(C,)` fraction of the disc's pixels that lie in
#    each lesion (lesion pixels outside the disc do not count).
# 3. **Implementation, about 25 min.** Write `count_lesions(mask)`: the number of lesions in
#    an `(H, W)` bool mask, two pixels belonging to the same lesion when they touch by an edge or
#    a corner (8-connectivity). Do it without `cv2.connectedComponents`: a flood fill in Python
#    is fine for small masks.
# 4. **Experiment, about 10 min.** Shrink `dots` 14 times instead of 7 (to 72 × 72) with
#    `pipeline.resize_mask`, and compute `count_ratio_by_rule`: a dict from each rule in
#    `pipeline.MASK_RULES` to the number of pieces after shrinking (`count_components`) over the
#    number of lesions before. Compare with factor 7: which ratios fall, and for which rules is a
#    falling ratio not a lost lesion?
# 5. **Concept, about 10 min.** The rule "any" keeps every microaneurysm. Why does the project
#    not use it? Think of what a model learns from its targets and of how its Dice score would
#    look against the true, smaller lesions.
# 6. **Experiment, about 10 min.** `make_fundus` draws lesions larger than real unless
#    `visible_at=None`. Compute `ma_area_ratio`: the number of MA pixels of `make_fundus(SEED,
#    512)` over that of `make_fundus(SEED, 512, visible_at=None)`. Why might a teaching data set
#    exaggerate microaneurysms on purpose?

# %% [markdown]
# Some checks below compare a fingerprint of your answer with a stored one
# (`answer_digest`: the numbers rounded, then hashed), so they can tell a right answer
# from a wrong one without showing it.

# %%
from lessons.exercises import answer_digest  # the fingerprint the checks were stored with


# %% tags=["solution"] exercise=1
def read_mask_opencv(path):
    """An IDRiD mask read with OpenCV as 8-bit grey, binarized: (H, W) bool."""
    ### BEGIN SOLUTION
    # Why: IDRiD stores a lesion as grey level 76 (the luma of pure red), so the test must be > 0:
    # a threshold at 127 would find nothing.
    grey_levels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)  # (H, W) {0, 76}
    return grey_levels > 0  # (H, W) never > 127: the lesion is 76
    ### END SOLUTION


# %% tags=["check"] exercise=1
_mask = read_mask_opencv(mask_path)  # (712, 1072)
assert isinstance(_mask, np.ndarray) and _mask.dtype == bool, (
    f"a bool array expected, got {type(_mask).__name__} {getattr(_mask, 'dtype', '')}"
)
assert _mask.any(), "the mask came out empty: is the lesion's grey level above your threshold?"
_differ = np.count_nonzero(_mask != idrid.read_mask(mask_path))
assert _differ == 0, f"differs from idrid.read_mask on {_differ} pixels"
print("exercise 1: correct")

# %% tags=["solution"] exercise=2
def lesion_shares(masks, disc):
    """(C,) fraction of the disc's pixels in each lesion of a (C, H, W) bool stack."""
    ### BEGIN SOLUTION
    # Why: masks & disc drops the lesion pixels outside the disc, and dividing by the disc's
    # pixels, not the image's, makes photographs with different black borders comparable.
    return (masks & disc).sum(axis=(1, 2)) / disc.sum()  # (C,)
    ### END SOLUTION


# %% tags=["check"] exercise=2
# disc = the left column of a 2 × 2 image; lesion 0 covers the top row (1 pixel inside the
# disc -> 1 / 2), lesion 1 only the right column (outside -> 0), lesion 2 everything (2 / 2 = 1)
_disc = np.array([[True, False], [True, False]])  # (2, 2)
_stack = np.array([[[1, 1], [0, 0]], [[0, 1], [0, 1]], [[1, 1], [1, 1]]], dtype=bool)  # (3, 2, 2)
_shares = lesion_shares(_stack, _disc)  # (3,)
assert np.allclose(_shares, [0.5, 0.0, 1.0]), f"2 × 2 case: expected [0.5, 0, 1], got {_shares}"
_disc55 = fundus.fundus_mask(photo)  # (712, 1072)
assert np.allclose(lesion_shares(masks, _disc55), real_shares), "IDRiD_55: differs from the lesson's shares"
print("exercise 2: correct")

# %% tags=["solution"] exercise=3
def count_lesions(mask):
    """Number of 8-connected lesions in an (H, W) bool mask."""
    ### BEGIN SOLUTION
    # Why: a flood fill from each lesion pixel not yet seen marks one whole 8-connected lesion; an
    # explicit stack avoids Python's recursion limit on large lesions.
    height, width = mask.shape
    seen = np.zeros_like(mask, dtype=bool)  # (H, W)
    lesions = 0
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        lesions += 1
        seen[start] = True
        stack = [start]
        while stack:
            row, col = stack.pop()
            for d_row in (-1, 0, 1):
                for d_col in (-1, 0, 1):
                    r, c = row + d_row, col + d_col
                    if 0 <= r < height and 0 <= c < width and mask[r, c] and not seen[r, c]:
                        seen[r, c] = True
                        stack.append((r, c))
    return lesions
    ### END SOLUTION


# %% tags=["check"] exercise=3
# two pixels touching at a corner: one lesion under 8-connectivity (two under 4)
assert count_lesions(np.array([[True, False], [False, True]])) == 1, "pixels touching at a corner are one lesion"
assert count_lesions(np.zeros((3, 3), dtype=bool)) == 0, "an empty mask has no lesion"
# rows: X.X / ... / X.X -> four separate corners
assert count_lesions(np.array([[1, 0, 1], [0, 0, 0], [1, 0, 1]], dtype=bool)) == 4, "four isolated pixels are four lesions"
_corner = dots[:280, :280]  # (280, 280)
assert count_lesions(_corner) == count_components(_corner), (
    f"a corner of `dots`: got {count_lesions(_corner)}, expected {count_components(_corner)}"
)
print("exercise 3: correct")

# %% tags=["solution"] exercise=4
### BEGIN SOLUTION
count_ratio_by_rule = {
    rule: count_components(pipeline.resize_mask(dots, (FULL // 14, FULL // 14), rule)) / count_components(dots)
    for rule in pipeline.MASK_RULES
}
# All fall. Nearest and majority lose far more lesions: about half the dots now cover
# less than half of one output pixel in all, and the others are split across several.
# Preserve still gives every dot a pixel, and any keeps every dot too: their lower ratios
# are merges, neighbours that now fall into touching pixels (any's blobs merge most).
### END SOLUTION
print(count_ratio_by_rule)

# %% tags=["check"] exercise=4
assert set(count_ratio_by_rule) == set(pipeline.MASK_RULES), f"one ratio per rule expected, got {set(count_ratio_by_rule)}"
_ratios = list(count_ratio_by_rule.values())
assert all(0 < _r <= 1 for _r in _ratios), f"ratios in (0, 1] expected: {count_ratio_by_rule}"
assert answer_digest(count_ratio_by_rule) == "8c4d8c562a64", (
    "not pieces after / lesions before at 72 × 72 for each rule"
)
print("exercise 4: correct")

# %% [markdown] tags=["solution"] exercise=5
# ### BEGIN SOLUTION
# A model learns to reproduce its targets. With "any", every microaneurysm in the target
# is a 2 × 2 or 3 × 3 blob and every exudate is a pixel fatter all round, so the model
# learns to paint blobs several times too large. Compared with the true lesions (mapped
# back to the photograph, or with the preserve targets) those blobs are mostly false
# positives: precision falls, and the Dice score of a tiny lesion, twice the overlap over
# the sum of both areas, stays low even when every lesion is found (a perfect 3 × 3
# prediction of a 1-pixel lesion has Dice 2 · 1 / (9 + 1) = 0.2). Blobs also merge
# neighbouring lesions, so counts are wrong too. Preserve keeps every lesion without
# inflating it.
# ### END SOLUTION

# %% tags=["solution"] exercise=6
### BEGIN SOLUTION
ma_area_ratio = (
    make_fundus(SEED, 512)[1][0].sum() / make_fundus(SEED, 512, visible_at=None)[1][0].sum()
)
# Far more MA pixels: each microaneurysm is drawn at least 2 px wide at 160 px. A small
# model trained for minutes at 128–192 px could not see a sub-pixel dot at all; the
# exaggeration keeps the lesson's training runs meaningful, and visible_at=None gives the
# real sizes when they matter.
### END SOLUTION
print(ma_area_ratio)

# %% tags=["check"] exercise=6
assert ma_area_ratio > 1, (
    f"the drawn microaneurysms are larger than the real ones, got a ratio of {ma_area_ratio}"
)
assert answer_digest(ma_area_ratio) == "d7fcd7b6db41", (
    f"expected MA pixels (default) / MA pixels (visible_at=None), got {ma_area_ratio}"
)
print("exercise 6: correct")
