"""
# The IDRiD segmentation data set, read from its own folder layout

IDRiD (Porwal et al., Data 3(3):25, 2018) is the data set of the paper: 81 colour fundus
photographs (4288 × 2848 JPEG) with pixel masks of four lesions, 54 for training
(IDRiD_01–54) and 27 for testing (IDRiD_55–81). Unpacked, it reads

    A. Segmentation/
      1. Original Images/a. Training Set/IDRiD_01.jpg          (b. Testing Set/ ...)
      2. All Segmentation Groundtruths/a. Training Set/
          1. Microaneurysms/IDRiD_01_MA.tif    2. Haemorrhages/IDRiD_01_HE.tif
          3. Hard Exudates/IDRiD_01_EX.tif     4. Soft Exudates/IDRiD_01_SE.tif
          5. Optic Disc/IDRiD_01_OD.tif        (not a lesion, not read)

A mask is a 1-bit palette TIFF (index 0 black, 1 red): as an array it is {0, 1}, as
8-bit grey it is {0, 76}, so it is binarized with `> 0` (never `> 127`). A missing mask
file means the lesion is absent from that photograph (only 26 of the 54 training
photographs have SE; IDRiD_43 has no HE). `IDRiD` reads any `.jpg` in the images folder
with masks named `<name>_<lesion>.tif` (or `.tiff`, in any case: `MASK_SUFFIXES`), so
the synthetic set in the same layout reads alike. A split whose photographs have no
mask file at all, for any lesion, is refused with the names looked for and the files
found: it is almost always a folder whose masks are named otherwise, and reading it as
"no lesions anywhere" would train and score on empty targets without a word.
`write_mask` writes a mask in the same encoding.

Nothing is decoded before `[i]` asks for it: a 4288 × 2848 photograph with its masks is
about 60 MB in memory.
"""

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .atomic import atomic_write
from .lesions import LESIONS

SEGMENTATION = "A. Segmentation"
IMAGES = "1. Original Images"
GROUNDTRUTHS = "2. All Segmentation Groundtruths"
SPLITS = {"train": "a. Training Set", "test": "b. Testing Set"}
LESION_FOLDERS = {
    "MA": "1. Microaneurysms",
    "HE": "2. Haemorrhages",
    "EX": "3. Hard Exudates",
    "SE": "4. Soft Exudates",
}
IMAGE_SUFFIXES = (".jpg", ".jpeg")
MASK_SUFFIXES = (".tif", ".tiff")  # matched in any case

# What a command says after a data folder it cannot read, below the reader's own error.
EXPECTED_LAYOUT = (
    "expected IDRiD's segmentation layout (the real data set, or the synthetic one of\n"
    "python -m data_prep.synthetic --out DIR):\n"
    f"  DIR/{SEGMENTATION}/{IMAGES}/{SPLITS['train']}/IDRiD_01.jpg ...\n"
    f"  DIR/{SEGMENTATION}/{IMAGES}/{SPLITS['test']}/IDRiD_55.jpg ...\n"
    f"  DIR/{SEGMENTATION}/{GROUNDTRUTHS}/{SPLITS['train']}/{LESION_FOLDERS['MA']}/"
    "IDRiD_01_MA.tif ...\n"
    f"  (and {', '.join(LESION_FOLDERS[name] for name in LESIONS[1:])}; "
    "a missing mask file means the lesion is absent)"
)


def image_folder(root, split):
    return Path(root) / SEGMENTATION / IMAGES / SPLITS[split]


def mask_folder(root, split, lesion):
    return Path(root) / SEGMENTATION / GROUNDTRUTHS / SPLITS[split] / LESION_FOLDERS[lesion]


def read_image(path):
    """Decode a photograph to (H, W, 3) uint8 RGB, as stored (EXIF orientation ignored,
    like the masks)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    data = np.fromfile(path, dtype=np.uint8)  # (bytes,) works with any characters in the path
    if data.size == 0:
        raise ValueError(f"cannot read image {path}: the file is empty (0 bytes)")
    try:
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)  # (H, W, 3)
    except cv2.error as error:  # OpenCV raises for some malformed files instead of returning None
        message = f"cannot read image {path}: OpenCV could not decode it ({error.err})"
        raise ValueError(message) from error
    if bgr is None:
        raise ValueError(f"cannot read image {path}: not an image file OpenCV can decode")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # (H, W, 3)


def is_greyscale(image):
    """True when an (H, W, 3) RGB image has three equal channels: a grey photograph, which
    OpenCV decodes to colour by copying the one channel (a colour model then sees no colour)."""
    image = np.asarray(image)
    red, green, blue = image[..., 0], image[..., 1], image[..., 2]  # (H, W) each
    return bool(np.array_equal(red, green) and np.array_equal(green, blue))


def read_mask(path):
    """Read a lesion mask (1-bit palette TIFF, or any grey image) as (H, W) bool, `> 0`."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            if image.mode not in ("1", "L", "P"):
                image = image.convert("L")
            values = np.array(image)  # (H, W) palette indices {0, 1}, or grey levels
    except (OSError, SyntaxError) as error:  # PIL raises these for files it cannot parse
        raise ValueError(f"cannot read mask {path}: {error}") from error
    return values > 0  # (H, W)


def write_mask(path, mask, deflate=False):
    """Write an (H, W) bool mask as IDRiD does: a 1-bit palette TIFF whose palette maps 0
    to black and 1 to red. Uncompressed like the data set's own files, or with
    `deflate=True` compressed with zlib (TIFF compression 8, Adobe Deflate; a 1072 × 712
    mask shrinks from 95 kB to about 2 kB), which PIL, OpenCV and libtiff read alike.
    The file appears complete or not at all."""
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.ndim != 2 or min(mask.shape) == 0:
        raise ValueError(
            f"mask must be a non-empty (H, W) bool array, got {mask.dtype} {mask.shape}")
    height, width = mask.shape
    # rows of ceil(W / 8) bytes, the first pixel in the high bit
    pixels = np.packbits(mask, axis=1).tobytes()
    if deflate:
        pixels = zlib.compress(pixels, 9)
    colormap = struct.pack("<6H", 0, 65535, 0, 0, 0, 0)  # red (0, 1), green (0, 1), blue (0, 1)
    resolution = struct.pack("<II", 72, 1)  # 72 / 1 dots per inch
    pixels_at = 8
    colormap_at = pixels_at + len(pixels) + len(pixels) % 2  # TIFF offsets are even
    x_res_at = colormap_at + len(colormap)
    y_res_at = x_res_at + len(resolution)
    ifd_at = y_res_at + len(resolution)
    SHORT, LONG, RATIONAL = 3, 4, 5
    entries = [  # (tag, type, count, value or offset), in increasing tag order
        (256, LONG, 1, width),
        (257, LONG, 1, height),
        (258, SHORT, 1, 1),  # BitsPerSample
        (259, SHORT, 1, 8 if deflate else 1),  # Compression: Adobe Deflate or none
        (262, SHORT, 1, 3),  # PhotometricInterpretation: palette
        (273, LONG, 1, pixels_at),  # StripOffsets
        (277, SHORT, 1, 1),  # SamplesPerPixel
        (278, LONG, 1, height),  # RowsPerStrip: one strip
        (279, LONG, 1, len(pixels)),  # StripByteCounts
        (282, RATIONAL, 1, x_res_at),
        (283, RATIONAL, 1, y_res_at),
        (296, SHORT, 1, 2),  # ResolutionUnit: inch
        (320, SHORT, 6, colormap_at),  # ColorMap
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        if kind == SHORT and count == 1:
            field = struct.pack("<HH", value, 0)
        else:
            field = struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + field
    ifd += struct.pack("<I", 0)  # no further image in the file
    blob = (
        b"II" + struct.pack("<HI", 42, ifd_at) + pixels + b"\0" * (len(pixels) % 2)
        + colormap + resolution + resolution + ifd
    )
    with atomic_write(path) as file:
        file.write(blob)


class IDRiD:
    """The photographs and lesion masks of one split, read lazily.

    `IDRiD(root, split)` with `root` the folder that holds `A. Segmentation` (or that
    folder itself) and `split` "train" or "test". `len()`, `.names` (sorted file stems),
    and `[i]` -> dict with `name`, `image` (H, W, 3) uint8 RGB, `masks` (4, H, W) bool in
    the order MA, HE, EX, SE, `present` (4,) bool (which mask files exist).
    """

    def __init__(self, root, split="train"):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"IDRiD root {root} does not exist or is not a folder")
        if root.name == SEGMENTATION and not (root / SEGMENTATION).is_dir():
            root = root.parent
        self.root, self.split = root, split
        images = image_folder(root, split)
        truths = Path(root) / SEGMENTATION / GROUNDTRUTHS / SPLITS[split]
        for folder in (images, truths):
            if not folder.is_dir():
                found = sorted(p.name for p in root.iterdir())[:8]
                raise ValueError(
                    f"{root} does not have the IDRiD layout: expected the folder "
                    f"'{folder.relative_to(root)}', found only {found} at the top"
                )
        photographs = [p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        self._suffix = {p.stem: p.suffix for p in photographs}
        self.names = sorted(self._suffix)
        if not self.names:
            raise ValueError(f"no .jpg photographs in {images}")
        self._masks = self._find_masks()

    def _find_masks(self):
        """{(name, lesion): path} of every mask file, matched by `<name>_<lesion>` and a
        suffix of `MASK_SUFFIXES` in any case; ValueError when no photograph has any."""
        wanted = {f"{name}_{lesion}".lower(): (name, lesion)
                  for name in self.names for lesion in LESIONS}
        found, others = {}, []
        for lesion in LESIONS:
            folder = mask_folder(self.root, self.split, lesion)
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                key = wanted.get(path.stem.lower())
                is_mask = path.suffix.lower() in MASK_SUFFIXES and path.is_file()
                if key and key[1] == lesion and is_mask:
                    found.setdefault(key, path)
                else:
                    others.append(path.relative_to(self.root).as_posix())
        if not found:
            example = f"{self.names[0]}_{LESIONS[0]}.tif"
            first_folder = mask_folder(self.root, self.split, LESIONS[0]).relative_to(self.root)
            seen = "no files there at all"
            if others:
                seen = f"{len(others)} other files, e.g. {others[:3]}"
            raise ValueError(
                f"no mask file for any photograph of {self.split!r} in {self.root}: looked for "
                f"'<photograph>_<lesion>.tif' (or .tiff, any case), e.g. '{example}' in "
                f"'{first_folder}' and the other lesion "
                f"folders ({', '.join(LESION_FOLDERS.values())}); found {seen}"
            )
        return found

    def __len__(self):
        return len(self.names)

    def image_path(self, i):
        name = self.names[i]
        return image_folder(self.root, self.split) / f"{name}{self._suffix[name]}"

    def mask_path(self, i, lesion):
        """The mask file of photograph `i` and `lesion` (where `<name>_<lesion>.tif` would be
        when there is none)."""
        default = mask_folder(self.root, self.split, lesion) / f"{self.names[i]}_{lesion}.tif"
        return self._masks.get((self.names[i], lesion), default)

    def mask_present(self, i):
        """(4,) bool: which of the MA, HE, EX, SE mask files exist for photograph `i`."""
        return np.array([self.mask_path(i, lesion).is_file() for lesion in LESIONS])  # (4,)

    def __getitem__(self, i):
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} photographs")
        i = i % len(self)
        image = read_image(self.image_path(i))  # (H, W, 3)
        masks = self.masks(i, image.shape[:2])  # (4, H, W)
        return {"name": self.names[i], "image": image, "masks": masks,
                "present": self.mask_present(i)}

    def masks(self, i, shape):
        """(4, H, W) bool masks of photograph `i` in the order MA, HE, EX, SE, all False for
        a missing file, without decoding the photograph; ValueError for a mask whose shape is
        not `shape` = (H, W), the photograph's."""
        masks = np.zeros((len(LESIONS), *shape), dtype=bool)  # (4, H, W)
        for channel, lesion in enumerate(LESIONS):
            path = self.mask_path(i, lesion)
            if not path.is_file():
                continue
            mask = read_mask(path)  # (h, w)
            if mask.shape != tuple(shape):
                raise ValueError(
                    f"mask {path} has shape {mask.shape} but its image "
                    f"{self.image_path(i).name} has shape {tuple(shape)}"
                )
            masks[channel] = mask
        return masks

    def __repr__(self):
        return f"IDRiD({str(self.root)!r}, split={self.split!r}) with {len(self)} photographs"
