"""
# The training data set: IDRiD photographs as (image, target) tensors

`LesionDataset(root, split)` turns the photographs of one split into what the network
trains on, with the one pipeline of `data_prep.pipeline`:

1. **crop and resize, once**: `prepare_example` (crop to the disc, pad to a square,
   resize to `size`, masks by the `"preserve"` rule) runs when the data set is built and
   its result is cached on disk, one `.npz` per photograph; later epochs and later runs
   never decode a 4288 × 2848 JPEG again. An entry is rebuilt when its photograph or a
   mask file changes (size or modification time).
2. **CLAHE** on the square photograph;
3. **augmentation** (training only, `augment=True`): the paper's random affine map,
   applied to the uint8 photograph and the masks so that what comes in from outside is
   black, like the surround of the disc;
4. **a patch** (optional, `patch=p`): a p × p window of the augmented square, placed
   over a lesion pixel most of the time (`data_prep.patches`; the CPU protocol);
5. **normalization** with the training set's per-channel mean and std.

Item `i` is `(x, y)`: `x` (3, s, s) float32 (s = p with a patch) and the target `y` (C, s, s)
float32 in {0, 1}, one channel per lesion of `lesions` in the project order — one lesion for
a single-task model, ("MA", "HE") or ("EX", "SE") for the dual-task ones, all four for the
multi-task model (`u2net_mini.lesions.TASK_GROUPS`).

**Cache location.** `cache_dir` when given, else `$U2NET_MINI_CACHE`, else the user's
cache folder (`$XDG_CACHE_HOME/u2net_mini` or `~/.cache/u2net_mini`); never the data
folder itself, which may be read-only and is the user's. Inside it, one folder per
(data root, split, size, disc threshold, mask rule, cache version), so different
settings never mix. Entries are written atomically, so an interrupted run leaves no
half-written file.

**Statistics.** With `mean` and `std` both None they come from `dataset_stats`: the
*training* split's cached squares after CLAHE, pixels inside the disc (see
`data_prep.enhance`), also for `split="test"`, so test photographs never shape the
normalization. Pass the training set's `.mean` and `.std` to the test set to skip the
computation.

**Reproducible augmentation.** The draw for item `i` comes from
`np.random.default_rng([seed, epoch, i])`: the same for the same seed, epoch and index,
whichever DataLoader worker loads it, and different in every epoch — call
`set_epoch(epoch)` at the start of each epoch. DataLoader workers get a copy of the
data set when they start; with `persistent_workers=True` they do not see later
`set_epoch` calls, so keep the default `persistent_workers=False`.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write
from .augment import augment as augment_example
from .enhance import CLAHE_CHANNELS, channel_stats
from .fundus import DISC_THRESHOLD, Geometry, check_size
from .idrid import IDRiD
from .lesions import LESIONS, lesion_indices
from .patches import LESION_BIAS, patch_origin
from .pipeline import MASK_RULE, Example, enhance_square, prepare_example, to_input

CACHE_VERSION = 1


def default_cache_dir():
    """`$U2NET_MINI_CACHE`, else `$XDG_CACHE_HOME/u2net_mini`, else `~/.cache/u2net_mini`."""
    if os.environ.get("U2NET_MINI_CACHE"):
        return Path(os.environ["U2NET_MINI_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "u2net_mini"


class SquareCache:
    """The squares of one split, one `.npz` per photograph, built on demand."""

    def __init__(self, reader, size, threshold=DISC_THRESHOLD, cache_dir=None):
        self.reader, self.size, self.threshold = reader, size, threshold
        settings = {
            "root": str(Path(reader.root).resolve()),
            "split": reader.split,
            "size": size,
            "threshold": threshold,
            "mask_rule": MASK_RULE,
            "version": CACHE_VERSION,
        }
        key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
        folder_name = f"{Path(reader.root).resolve().name}-{reader.split}-{size}px-{key}"
        self.folder = (Path(cache_dir if cache_dir is not None else default_cache_dir())
                       / folder_name)

    def source_stamp(self, i):
        """Size and modification time of the photograph and its mask files, as text."""
        paths = [self.reader.image_path(i)] + [self.reader.mask_path(i, lesion)
                                               for lesion in LESIONS]
        parts = []
        for path in paths:
            if path.is_file():
                stat = path.stat()
                parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
            else:
                parts.append(f"{path.name}:absent")
        return "|".join(parts)

    def __getitem__(self, i):
        """The cached `Example` of photograph `i` (built and stored when missing or stale)."""
        path = self.folder / f"{self.reader.names[i]}.npz"
        stamp = self.source_stamp(i)
        if path.is_file():
            with np.load(path) as stored:
                if str(stored["stamp"]) == stamp:
                    return Example(
                        stored["image"], stored["masks"], stored["disc"],
                        Geometry(*stored["geometry"].tolist())
                    )
        item = self.reader[i]
        example = prepare_example(item["image"], item["masks"], self.size, self.threshold)
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as file:
            np.savez_compressed(
                file,
                image=example.image,  # (s, s, 3) uint8
                masks=example.masks,  # (4, s, s) bool
                disc=example.disc,  # (s, s) bool
                geometry=np.array(example.geometry.to_tuple()),  # (7,)
                stamp=np.array(stamp),
            )
        return example


def dataset_stats(root, size=512, cache_dir=None, clahe=True, clahe_channel="lab",
                  threshold=DISC_THRESHOLD, indices=None):
    """Per-channel (mean, std), two (3,) arrays in units of 0..1, of the *training* split
    (of its photographs `indices` only, when given: training leaves the held-out ones out).

    Measured on the cached squares after CLAHE (what `to_input` normalizes), over the
    pixels inside the retinal disc, all photographs pooled (`enhance.channel_stats`).
    """
    cache = SquareCache(IDRiD(root, "train"), size, threshold, cache_dir)
    squares, discs = [], []
    for i in range(len(cache.reader)) if indices is None else indices:
        example = cache[i]
        squares.append(enhance_square(example.image, clahe, clahe_channel))  # (s, s, 3)
        discs.append(example.disc)  # (s, s)
    return channel_stats(squares, discs)


class LesionDataset(torch.utils.data.Dataset):
    """(x, y) pairs of one IDRiD split for the lesions of one model; see the module docs."""

    def __init__(
        self,
        root,
        split="train",
        lesions=LESIONS,
        size=512,
        augment=False,
        mean=None,
        std=None,
        cache_dir=None,
        clahe=True,
        seed=0,
        clahe_channel="lab",
        threshold=DISC_THRESHOLD,
        patch=None,
        lesion_bias=LESION_BIAS,
    ):
        if patch is not None and not 1 <= patch <= size:
            raise ValueError(f"patch must be None or between 1 and size {size}, got {patch}")
        self.patch, self.lesion_bias = patch, lesion_bias
        self.lesions = tuple(lesions)
        self.channels = lesion_indices(self.lesions)  # validates the lesion names
        check_size(size)
        if clahe_channel not in CLAHE_CHANNELS:
            raise ValueError(f"clahe_channel must be one of {CLAHE_CHANNELS}, got "
                             f"{clahe_channel!r}")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither (then the training split's are "
                             "computed)")
        self.reader = IDRiD(root, split)
        self.size, self.augment, self.clahe, self.clahe_channel = (size, bool(augment), bool(clahe),
                                                                   clahe_channel)
        self.seed, self.epoch = int(seed), 0
        self.cache = SquareCache(self.reader, size, threshold, cache_dir)
        for i in range(len(self.reader)):  # crop and resize every photograph now, once
            self.cache[i]
        if mean is None:
            mean, std = dataset_stats(root, size, cache_dir, clahe, clahe_channel, threshold)
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)  # (3,)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)  # (3,)
        if self.mean.shape != (3,) or self.std.shape != (3,) or not np.all(self.std > 0):
            raise ValueError(f"mean and std must be 3 values each, std positive; got {mean!r} and "
                             f"{std!r}")
        present = [self.reader.mask_present(i)[self.channels] for i in range(len(self.reader))]
        self.present = np.stack(present)  # (N, C) which lesion masks exist per photograph

    @property
    def names(self):
        return self.reader.names

    def __len__(self):
        return len(self.reader)

    def set_epoch(self, epoch):
        """Choose the augmentation draws of this epoch (call once per epoch)."""
        self.epoch = int(epoch)

    def example(self, i):
        """The cached square photograph, all four masks, the disc and the `Geometry` of `i`."""
        return self.cache[i]

    def __getitem__(self, i):
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} photographs")
        i = int(i) % len(self)
        example = self.cache[i]
        square = enhance_square(example.image, self.clahe, self.clahe_channel)  # (s, s, 3) uint8
        masks = example.masks[self.channels]  # (C, s, s) bool
        rng = np.random.default_rng([self.seed, self.epoch, i])
        if self.augment:
            square, masks = augment_example(square, masks, rng)
        if self.patch is not None:
            top, left = patch_origin(masks, self.patch, rng, self.lesion_bias)
            window = np.s_[top:top + self.patch, left:left + self.patch]
            square, masks = square[window], masks[(slice(None), *window)]  # (p, p, 3), (C, p, p)
        x = to_input(square, self.mean, self.std)  # (3, s, s) float32
        y = masks.astype(np.float32)  # (C, s, s)
        return torch.from_numpy(x), torch.from_numpy(y)

    def __repr__(self):
        return (
            f"LesionDataset({str(self.reader.root)!r}, split={self.reader.split!r}, "
            f"lesions={self.lesions}, size={self.size}, augment={self.augment}, "
            f"patch={self.patch}) with {len(self)} photographs"
        )
