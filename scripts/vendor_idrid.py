"""Make the downscaled copy of IDRiD that ships in data_prep/shipped/idrid.

Run by hand, at development time, on the real data set (tests and the package never
import this script, and nothing reads the original at run time):

    python scripts/vendor_idrid.py SOURCE [--out data_prep/shipped/idrid] [--factor 4] [--force]

SOURCE is the folder that holds IDRiD's `A. Segmentation` (81 photographs, 4288 × 2848,
and their MA/HE/EX/SE masks) and its licence files. For both splits, every photograph is
shrunk by `factor` along each side with area averaging and written as JPEG (quality
`JPEG_QUALITY`); every lesion mask is shrunk with the project's mask rule
(`data_prep.pipeline.MASK_RULE`, which keeps every lesion, microaneurysms included) and
written as a 1-bit palette TIFF like the original, Deflate-compressed
(`data_prep.idrid.write_mask`). Folder and file names stay the same, and a photograph
without a lesion keeps having no mask file for it. The licence files are copied, and
`SHA256SUMS` lists every file written (check with `sha256sum -c SHA256SUMS` in --out).

The copy is written into a new temporary folder beside --out and moved into place only
when complete, so an interrupted run leaves --out as it was; an existing --out is
replaced only with --force.
"""

import argparse
import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

import cv2

from data_prep.atomic import atomic_write
from data_prep.checks import check_positive_flag
from data_prep.idrid import LESION_FOLDERS, SPLITS, IDRiD, read_mask, write_mask
from data_prep.pipeline import MASK_RULE, resize_mask

JPEG_QUALITY = 90
LICENCE_FILES = ("LICENSE.txt", "CC-BY-4.0.txt")


def shrink_photograph(image, factor):
    """(H, W, 3) uint8 RGB -> (H / factor, W / factor, 3) by area averaging."""
    height, width = image.shape[:2]
    if height % factor or width % factor:
        raise ValueError(f"a photograph of {width} x {height} is not divisible by the factor "
                         f"{factor}")
    # (h, w, 3)
    return cv2.resize(image, (width // factor, height // factor), interpolation=cv2.INTER_AREA)


def encode_jpeg(image):
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return jpeg.tobytes()


def vendor(source, out, factor):
    """Write the downscaled copy of `source` into `out` (a new folder); returns the counts."""
    counts = {"photographs": 0, "masks": 0}
    for split in SPLITS:
        reader = IDRiD(source, split)
        for i, name in enumerate(reader.names):
            image = reader[i]["image"]  # (H, W, 3) RGB
            small = shrink_photograph(image, factor)  # (h, w, 3)
            target = out / reader.image_path(i).relative_to(reader.root)
            with atomic_write(target) as file:
                file.write(encode_jpeg(small))
            counts["photographs"] += 1
            kept = []
            for lesion in LESION_FOLDERS:
                path = reader.mask_path(i, lesion)
                if not path.is_file():
                    continue
                mask = read_mask(path)  # (H, W)
                small_mask = resize_mask(mask, small.shape[:2], MASK_RULE)  # (h, w)
                write_mask(out / path.relative_to(reader.root), small_mask, deflate=True)
                counts["masks"] += 1
                kept.append(f"{lesion} {int(mask.sum())}->{int(small_mask.sum())}")
            print(f"{name}: {image.shape[1]}x{image.shape[0]} -> "
                  f"{small.shape[1]}x{small.shape[0]}; lesion pixels {', '.join(kept)}",
                  flush=True)
    for licence in LICENCE_FILES:
        if not (source / licence).is_file():
            raise FileNotFoundError(f"{source} has no {licence}; the copy may not ship without its "
                                    "licence")
        shutil.copyfile(source / licence, out / licence)
    write_checksums(out)
    return counts


def write_checksums(out):
    """`SHA256SUMS` in `out`: one `digest  relative/path` line per file, sorted by path."""
    lines = []
    for path in sorted(p for p in out.rglob("*")
                       if p.is_file() and p.name not in ("SHA256SUMS", "README.md")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(out).as_posix()}\n")
    with atomic_write(out / "SHA256SUMS", "w") as file:
        file.writelines(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path,
                        help="folder holding IDRiD's 'A. Segmentation' and its licence files")
    parser.add_argument("--out", type=Path, default=Path("data_prep/shipped/idrid"))
    parser.add_argument("--factor", type=int, default=4, help="shrink each side by this factor "
                                                              "(default 4)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    try:
        check_positive_flag("--factor", args.factor)
    except ValueError as error:
        sys.exit(str(error))
    if args.out.exists() and not args.force:
        sys.exit(f"{args.out} exists; pass --force to replace it (it is replaced only once the "
                 "copy is complete)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out.parent, prefix=f".{args.out.name}.") as scratch:
        fresh = Path(scratch) / "idrid"
        fresh.mkdir()
        counts = vendor(args.source, fresh, args.factor)
        if args.out.exists():
            shutil.rmtree(args.out)
        fresh.rename(args.out)
    print(f"wrote {counts['photographs']} photographs and {counts['masks']} masks to {args.out}")


if __name__ == "__main__":
    main()
