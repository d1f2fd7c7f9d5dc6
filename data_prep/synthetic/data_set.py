"""
# A synthetic IDRiD-like data set: one photograph, and a whole data set on disk

Not part of the paper. The paper trains and tests on IDRiD (Porwal et al. 2018), which
cannot ship with the project. This module paints colour fundus photographs with the four
lesions (MA, HE, EX, SE) and their exact masks, and writes them in IDRiD's folder layout and
file encoding, so that the one reader (`data_prep/idrid.py`) reads real and synthetic data
alike and every lesson and test runs on a laptop with no download.

    image, masks = make_fundus(seed=0, size=512)        # (512, 512, 3) uint8, (4, 512, 512) bool
    write_idrid_layout("data/synthetic", n_train=54, n_test=27, size=256)
    python -m data_prep.synthetic --out data/synthetic --size 256

A photograph is painted in four steps: the frame, the healthy background, optic disc and
macula (`retina.py`); the vessel trees (`vessels.py`); the lesions and
their masks (`lesions.py`); the disc cut out of a black surround, with sensor
noise (`retina.finish`). Shapes are rasterised with sub-pixel anti-aliasing
(`draw.py`). docs/data.md shows the result beside a real photograph and lists the
measurements behind the constants.

Departure from real data, on purpose: lesions are drawn at least 2 px wide when the disc
is shrunk to `visible_at` pixels (160 by default), so that a small model trained for a few
minutes on a CPU at 128–192 px can see microaneurysms at all. Real microaneurysms are 2–4
times smaller; `visible_at=None` draws them at their real size.
"""

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from data_prep.idrid import image_folder, mask_folder, write_mask
from data_prep.lesions import LESIONS

from .lesions import paint_lesions
from .retina import FRAMES, background, finish, make_anatomy
from .vessels import paint_vessels

MIN_PAINTED_SIZE = 64  # below this the vessels and the optic disc are a few pixels
SUPERSAMPLE = 4  # shapes are drawn on a grid 4 times finer, then averaged
JPEG_QUALITY = 95


def make_fundus(seed, size=512, *, frame="square", visible_at=160, presence=None):
    """Paint one synthetic colour fundus photograph with lesions.

    seed: a non-negative int or a tuple of them (`np.random.SeedSequence`'s entropy); the
        same seed gives the same image and masks, byte for byte, and the same eye at any size.
    size: width of the photograph in pixels (at least 64).
    frame: "square" (size × size, the whole disc with a thin black margin) or "idrid"
        (IDRiD's 4288 × 2848 aspect: size × round(size / 1.506), the disc cut at top and bottom).
    visible_at: lesions are at least 2 px wide when the disc is shrunk to this many pixels
        (None: real lesion sizes).
    presence: optional dict, e.g. {"SE": False}, forcing which lesions the image has.

    Returns image (H, W, 3) uint8 RGB and masks (4, H, W) bool in the order MA, HE, EX, SE;
    an absent lesion has an all-False mask.
    """
    check_size(size)
    if frame not in FRAMES:
        raise ValueError(f"frame must be one of {FRAMES}, got {frame!r}")
    check_visible_at(visible_at)
    unknown = set(presence or {}) - set(LESIONS)
    if unknown:
        raise ValueError(f"presence keys must be among {LESIONS}, got {sorted(unknown)}")
    # One random stream per step, so that how many numbers one step draws (the vessels draw
    # fewer in a small photograph) does not change the next: a seed paints the same eye,
    # with the same lesions in the same places, at any size.
    streams = [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(5)]
    geometry, healthy, vessels, lesions, noise = streams
    geo = make_anatomy(geometry, int(size), frame)
    image = background(healthy, geo)  # (H, W, 3) float32, the healthy retina with optic disc
    image = paint_vessels(vessels, geo, image, SUPERSAMPLE)  # (H, W, 3)
    # (H, W, 3), (4, H, W)
    image, masks = paint_lesions(lesions, geo, image, visible_at, SUPERSAMPLE, presence)
    return finish(noise, geo, image), masks  # (H, W, 3) uint8, (4, H, W) bool


def check_size(size):
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_PAINTED_SIZE:
        raise ValueError(
            f"size must be an integer of at least {MIN_PAINTED_SIZE} pixels, got {size!r}")


def check_visible_at(visible_at):
    number = isinstance(visible_at, (int, float, np.integer, np.floating))
    ok = number and not isinstance(visible_at, bool)
    if visible_at is not None and not (ok and visible_at >= 16):
        raise ValueError(f"visible_at must be None or a number of pixels >= 16, got {visible_at!r}")


def image_name(number):
    """IDRiD's name of image `number` (1-based): 1 -> "IDRiD_01"."""
    return f"IDRiD_{number:02d}"


def check_counts(n_train, n_test):
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {n!r}")
    if n_train + n_test == 0:
        raise ValueError("n_train + n_test must be at least 1, got 0 images in all")


def write_split(root, split, numbers, size, seed, frame, visible_at):
    """Write the photographs and masks of one split under `root`; returns lesion counts."""
    image_dir = image_folder(root, split)
    image_dir.mkdir(parents=True, exist_ok=True)
    for lesion in LESIONS:  # every lesion folder exists, as in IDRiD, even when empty
        mask_folder(root, split, lesion).mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(LESIONS, 0)
    for number in numbers:
        image_frame = frame
        if frame == "mixed":  # every third image in IDRiD's frame, the others square
            image_frame = "idrid" if number % 3 == 0 else "square"
        # Each image has its own seed (seed, number): one image can be remade alone.
        image, masks = make_fundus((seed, number), size, frame=image_frame, visible_at=visible_at)
        name = image_name(number)
        Image.fromarray(image).save(image_dir / f"{name}.jpg", quality=JPEG_QUALITY)
        for lesion, mask in zip(LESIONS, masks):
            if not mask.any():
                continue  # as in IDRiD: no file for an absent lesion
            write_mask(mask_folder(root, split, lesion) / f"{name}_{lesion}.tif", mask)
            counts[lesion] += 1
    return counts


def write_idrid_layout(root, n_train=54, n_test=27, size=512, seed=0, frame="square",
                       visible_at=160, progress=None):
    """Write a synthetic set in IDRiD's layout and encoding under `root`; returns `root`.

    Training images are IDRiD_01 … IDRiD_{n_train}, test images are numbered after them
    (IDRiD_55 … with the default 54). Photographs are JPEG (quality 95); masks are 1-bit
    palette TIFFs, with no file where an image lacks that lesion. Image number k is
    `make_fundus((seed, k), size, frame=..., visible_at=...)`. `frame` is "square", "idrid"
    or "mixed" (every third image in IDRiD's frame); `visible_at` is the input size a model
    will train at (lesions stay at least 2 px wide there). A README.txt at the top says what
    the folder is and how it was made. `progress(split, n_images, counts)` is called after
    each split.

    `root` must not exist or be an empty folder: nothing a user made is overwritten. The set
    is written into a temporary sibling folder and renamed into place at the end, so an
    interrupted run leaves no half-written `root`.
    """
    check_counts(n_train, n_test)
    if frame not in FRAMES + ("mixed",):
        raise ValueError(f"frame must be one of {FRAMES + ('mixed',)}, got {frame!r}")
    check_size(size)
    check_visible_at(visible_at)
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(f"output folder {root} exists and is not empty; choose a new folder "
                              "(nothing is overwritten)")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        numbers = {"train": range(1, n_train + 1), "test": range(n_train + 1, n_train + n_test + 1)}
        counts = {}
        for split in ("train", "test"):
            counts[split] = write_split(staging, split, numbers[split], size, seed, frame,
                                        visible_at)
            if progress is not None:
                progress(split, len(numbers[split]), counts[split])
        readme = readme_text(n_train, n_test, size, seed, frame, visible_at, counts)
        (staging / "README.txt").write_text(readme)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it private; this is an ordinary folder
        if root.exists():
            root.rmdir()  # the empty folder the user named (fails if it was filled meanwhile)
        os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root


def readme_text(n_train, n_test, size, seed, frame, visible_at, counts):
    per_split = "\n".join(f"  {split}: " + ", ".join(f"{k} {v}" for k, v in c.items())
                          for split, c in counts.items())
    return (
        "SYNTHETIC fundus photographs in the layout and file encoding of IDRiD "
        "(segmentation part).\n"
        "Not real patients: painted by data_prep/synthetic/ of u2net_mini.\n"
        f"n_train={n_train} n_test={n_test} size={size} seed={seed} frame={frame} "
        f"visible_at={visible_at}\n"
        "Image IDRiD_k is make_fundus((seed, k), size, frame=frame, visible_at=visible_at)\n"
        "(with frame='mixed': 'idrid' when k is a multiple of 3, else 'square').\n"
        "Images with each lesion (mask file present):\n"
        f"{per_split}\n"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m data_prep.synthetic",
        description="Write a synthetic IDRiD-like data set in IDRiD's layout.")
    add = parser.add_argument
    add("--out", required=True, help="new (or empty) folder to write the data set into")
    add("--n-train", type=int, default=54, help="training images (IDRiD has 54)")
    add("--n-test", type=int, default=27, help="test images (IDRiD has 27)")
    add("--size", type=int, default=512, help="image width in pixels")
    add("--seed", type=int, default=0)
    add("--frame", choices=FRAMES + ("mixed",), default="square",
        help="square photographs, IDRiD's 4288 x 2848 frame, or every third one in it")
    add("--visible-at", type=int, default=160,
        help="the input size a model will train at: lesions stay >= 2 px wide there (default 160)")
    add("--real-sizes", action="store_true",
        help="draw lesions at their real sizes (ignore --visible-at)")
    args = parser.parse_args(argv)

    def progress(split, n, counts):
        with_each = "/".join(str(counts[k]) for k in LESIONS)
        print(f"{split}: {n} images; with MA/HE/EX/SE: {with_each}")

    try:
        visible_at = None if args.real_sizes else args.visible_at
        root = write_idrid_layout(args.out, args.n_train, args.n_test, args.size, args.seed,
                                  args.frame, visible_at, progress)
    except (ValueError, FileExistsError) as error:
        parser.exit(2, f"error: {error}\n")
    print(f"wrote {root}")
    return 0

