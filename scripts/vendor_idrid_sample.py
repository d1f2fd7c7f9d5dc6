"""Make the downscaled IDRiD sample that ships in data_prep/samples/idrid.

Run by hand, once, at development time (tests never import this script):

    python scripts/vendor_idrid_sample.py SOURCE [--out data_prep/samples/idrid] [--factor 4]

SOURCE holds real IDRiD files in the data set's layout (`A. Segmentation/...`). Every
photograph found under either split is shrunk by `factor` along each side with area
averaging and written as JPEG (quality 90); every lesion mask is shrunk with the
project's mask rule (`data_prep.pipeline.MASK_RULE`, which keeps every lesion) and
written as a 1-bit palette TIFF like the original (`data_prep.idrid.write_mask`).
Folder and file names stay the same. An existing non-empty output folder is left alone
unless `--force` is given.
"""

import argparse
import sys
from pathlib import Path

import cv2

from data_prep.idrid import LESION_FOLDERS, SPLITS, IDRiD, read_mask, write_mask
from data_prep.pipeline import MASK_RULE, resize_mask
from u2net_mini.atomic import atomic_write

JPEG_QUALITY = 90


def vendor(source, out, factor):
    for split in SPLITS:
        reader = IDRiD(source, split)
        for i, name in enumerate(reader.names):
            image = reader[i]["image"]  # (H, W, 3) RGB
            height, width = image.shape[:2]
            if height % factor or width % factor:
                raise ValueError(f"{name} is {width} x {height}, not divisible by the factor {factor}")
            shape = (height // factor, width // factor)
            small = cv2.resize(image, shape[::-1], interpolation=cv2.INTER_AREA)  # (h, w, 3)
            ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
                                    [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                raise RuntimeError(f"JPEG encoding failed for {name}")
            target = out / reader.image_path(i).relative_to(reader.root)
            with atomic_write(target) as file:
                file.write(jpeg.tobytes())
            print(f"{target.relative_to(out)}  {width}x{height} -> {shape[1]}x{shape[0]}")
            for lesion in LESION_FOLDERS:
                path = reader.mask_path(i, lesion)
                if not path.is_file():
                    continue
                mask = read_mask(path)  # (H, W)
                small_mask = resize_mask(mask, shape, MASK_RULE)  # (h, w)
                target = out / path.relative_to(reader.root)
                write_mask(target, small_mask)
                print(f"{target.relative_to(out)}  {int(mask.sum())} -> {int(small_mask.sum())} lesion pixels")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder holding 'A. Segmentation' of real IDRiD files")
    parser.add_argument("--out", type=Path, default=Path("data_prep/samples/idrid"))
    parser.add_argument("--factor", type=int, default=4, help="shrink each side by this factor")
    parser.add_argument("--force", action="store_true", help="write into an existing non-empty --out")
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()) and not args.force:
        sys.exit(f"{args.out} exists and is not empty; pass --force to write into it")
    vendor(args.source, args.out, args.factor)


if __name__ == "__main__":
    main()
