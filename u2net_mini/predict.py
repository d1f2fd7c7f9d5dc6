"""
# Prediction: lesion maps and an overlay for any fundus photograph

    python -m u2net_mini.predict photo.jpg --out maps                      # the shipped XS-MT
    python -m u2net_mini.predict photo.jpg more/*.png \
        --checkpoint runs/mt/MA-HE-EX-SE/best.pt --out maps
    python -m u2net_mini.predict photo.jpg --onnx model.onnx --out maps     # no model code needed

For every photograph (JPEG, PNG or TIFF, any size) the training preprocessing
(`data_prep.pipeline.preprocess`: crop to the retinal disc, pad to a square, resize,
CLAHE, the checkpoint's mean and std), the network's fused output through a sigmoid, and
three kinds of file in `--out`:

- `NAME_overlay.png`: the photograph and its lesion maps painted on it, one colour per
  lesion, with a legend (`u2net_mini.overlay`);
- `NAME_probabilities.npy`: the maps on the network's square, (C, s, s) float32, one
  channel per lesion in the project order MA, HE, EX, SE (those the checkpoints predict);
- with `--original-grid`, `NAME_probabilities_original.npy`: the same maps laid back on
  the photograph's own (C, H, W) pixel grid (0 outside the disc). At IDRiD's 4288 × 2848
  that is 49 MB per lesion.

With neither `--checkpoint` nor `--onnx`, the multi-task U²-XS-Net shipped in the
package (`u2net_mini.shipped`, trained on real IDRiD) predicts; `--shipped dt` takes the
shipped dual-task pair. Several checkpoints (the single-task or dual-task models of one
run) combine into one set of maps; they must share the input size. A photograph that
cannot be read, or in which no retinal disc is found (not a fundus photograph), is
reported and skipped, and the others are still processed. Exit code: 0 when every
photograph was processed, 1 when some were skipped, 2 for bad arguments (no usable
checkpoint, files that already exist without `--overwrite`).

The network runs on the fastest measured CPU path of `u2net_mini.inference`
(batch norm folded into the convolutions, channels_last, no autograd; see
docs/performance.md), or on ONNX Runtime for a file written by `u2net_mini.export`
(`--onnx`), which needs none of the model code. `--bf16` runs a checkpoint in bfloat16
where the CPU does it natively (about 1.6 times faster here; test AUPR moved by 0.0002),
else in float32; it is off by default so that one photograph gives the same maps on
every machine. `checkpoint.load_model` (the plain eager
model) serves `u2net_mini.evaluate` and is the reference the fast path is tested against.
"""

import argparse
import functools
import sys
from pathlib import Path

import numpy as np
import torch

from data_prep.atomic import atomic_write
from data_prep.fundus import to_original
from data_prep.idrid import is_greyscale, read_image
from data_prep.pipeline import preprocess

from .checkpoint import preprocessing_arguments
from .inference import load_for_prediction
from .lesions import LESIONS
from .model import fused_probabilities
from .overlay import THRESHOLD, display_pair, save_overlay
from .shipped import SHIPPED, shipped_checkpoints

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


@torch.no_grad()
def probabilities(model, x):
    r"""$\hat y = \sigma(z_{\mathrm{fused}})$: x (B, 3, s, s) -> (B, C, s, s) tensor.

    `model` is a U²-Net (its fused logits go through the sigmoid) or a session of
    `u2net_mini.inference` (which returns y_hat itself).
    """
    if isinstance(model, torch.nn.Module):
        return fused_probabilities(model(x))  # (B, C, s, s)
    return torch.as_tensor(model(x))  # (B, C, s, s)


class Predictor:
    """One or several checkpoints that together predict maps for photographs."""

    def __init__(self, checkpoints, device="cpu", loader=load_for_prediction):
        checkpoints = [Path(c) for c in checkpoints]
        if not checkpoints:
            raise ValueError("give at least one checkpoint or ONNX file")
        self.device = torch.device(device)
        self.parts = [loader(path, self.device) for path in checkpoints]
        sizes = {payload["input_size"] for _, payload in self.parts}
        if len(sizes) > 1:
            raise ValueError("the checkpoints must share one input size to combine, got sizes "
                             f"{sorted(sizes)}")
        self.size = sizes.pop()
        names = [name for _, payload in self.parts for name in payload["lesions"]]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"two checkpoints predict {repeated}; give one model per lesion")
        self.lesions = tuple(name for name in LESIONS if name in names)

    def __call__(self, image):
        """`image` (H, W, 3) uint8 RGB -> (y_hat (C, s, s) float32 in `self.lesions` order,
        geometry).

        ValueError when no retinal disc is found.
        """
        maps, geometry = {}, None
        for model, payload in self.parts:
            x, geometry = preprocess(image, **preprocessing_arguments(payload))
            # (c, s, s)
            y_hat = probabilities(model, torch.from_numpy(x)[None].to(self.device))[0].cpu().numpy()
            maps.update(zip(payload["lesions"], y_hat))
        # (C, s, s)
        return np.stack([maps[name] for name in self.lesions]).astype(np.float32), geometry


def output_files(image_path, out, original_grid):
    """The files written for one photograph."""
    stem = Path(image_path).stem
    files = {"overlay": out / f"{stem}_overlay.png", "maps": out / f"{stem}_probabilities.npy"}
    if original_grid:
        files["original"] = out / f"{stem}_probabilities_original.npy"
    return files


def save_npy(path, array):
    with atomic_write(path) as file:
        np.save(file, array)


def predict_image(predictor, image_path, files, threshold=THRESHOLD):
    """Read, predict and write one photograph's files; ValueError / FileNotFoundError if it
    cannot."""
    image = read_image(image_path)  # (H, W, 3)
    if is_greyscale(image):
        print(f"warning: {image_path} is a greyscale photograph; the models were trained on "
              "colour fundus photographs, so its maps are unreliable", file=sys.stderr)
    y_hat, geometry = predictor(image)  # (C, s, s)
    save_npy(files["maps"], y_hat)
    if "original" in files:
        save_npy(files["original"], to_original(y_hat, geometry))  # (C, H, W)
    photo, maps = display_pair(image, y_hat, geometry)  # (d, d, 3), (C, d, d)
    save_overlay(files["overlay"], photo, maps, predictor.lesions, title=Path(image_path).name,
                 threshold=threshold)
    return y_hat


def collect_images(paths):
    """The photographs named, a folder standing for the image files inside it."""
    images = []
    for path in map(Path, paths):
        if path.is_dir():
            images += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            images.append(path)
    return images


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m u2net_mini.predict",
                                     description="Lesion maps and overlays for fundus photographs "
                                     "(by default with the shipped U²-XS-Net).",
                                     epilog="exit codes: 0 every photograph done, 1 some "
                                            "skipped, 2 bad arguments")
    parser.add_argument("images", nargs="*", help="photographs (JPEG, PNG, TIFF) or folders of "
                                                  "them")
    models = parser.add_mutually_exclusive_group()
    models.add_argument("--checkpoint", action="extend", nargs="+",
                        help="best.pt of an mt run, or the st/dt models of one run together "
                        "(default: the shipped models, see --shipped)")
    models.add_argument("--onnx", action="extend", nargs="+",
                        help="ONNX files (.onnx or .ort, fp32 or int8) written by python -m "
                             "u2net_mini.export (run with ONNX Runtime on the CPU)")
    models.add_argument("--shipped", choices=tuple(SHIPPED),
                        help="the U²-XS-Net models shipped in the package: mt (the default when "
                             "no --checkpoint or --onnx is given) or the dt pair")
    parser.add_argument("--out", required=True, help="folder for the overlays and maps")
    parser.add_argument("--original-grid", action="store_true",
                        help="also write the maps on each photograph's own grid")
    parser.add_argument("--threshold", type=float, default=THRESHOLD,
                        help=f"probability from which the overlay paints (default {THRESHOLD})")
    parser.add_argument("--overwrite", action="store_true", help="replace files an earlier "
                                                                 "prediction wrote")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="default: CUDA when present, else the CPU")
    parser.add_argument("--bf16", action="store_true",
                        help="run checkpoints in bfloat16 where the device does it natively, else "
                             "float32")
    return parser


def main(argv=None):
    """The command line; returns the exit code (0 all done, 1 some photographs skipped, 2 bad
    arguments)."""
    parser = build_parser()
    # photographs may come before, between and after the options
    args = parser.parse_intermixed_args(argv)
    # `--checkpoint A photo.jpg` gives the photograph to --checkpoint: hand such values back
    for option in ("checkpoint", "onnx"):
        values = getattr(args, option) or []
        photographs = [v for v in values
                       if Path(v).is_dir() or Path(v).suffix.lower() in IMAGE_SUFFIXES]
        setattr(args, option, [v for v in values if v not in photographs] or None)
        args.images = photographs + args.images
    if not args.images:
        parser.error("give at least one photograph or folder of photographs")
    device = ("cuda" if args.device == "cuda"
              or (args.device == "auto" and torch.cuda.is_available()) else "cpu")
    out = Path(args.out)
    images = collect_images(args.images)
    plans = {path: output_files(path, out, args.original_grid) for path in images}
    stems = [path.stem for path in images]
    clashes = sorted({stem for stem in stems if stems.count(stem) > 1})
    existing = [str(f) for files in plans.values() for f in files.values() if f.exists()]
    try:
        if not images:
            raise ValueError("no image files found in " + " ".join(args.images))
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} is a file; give a folder for the overlays and maps")
        if clashes:
            raise ValueError("photographs with the same name would write the same files: "
                             f"{clashes}")
        if existing and not args.overwrite:
            raise ValueError(f"{len(existing)} output files exist already, e.g. {existing[0]}; "
                             "use --overwrite to replace them or choose another --out")
        if not 0 < args.threshold <= 1:
            raise ValueError(f"--threshold must be in (0, 1], got {args.threshold}")
        if args.bf16 and args.onnx:
            raise ValueError("--bf16 applies to --checkpoint; an ONNX file runs as exported (see "
                             "export --fp16)")
        loader = functools.partial(load_for_prediction, bf16="auto" if args.bf16 else False)
        models = args.checkpoint or args.onnx or shipped_checkpoints(args.shipped or "mt")
        predictor = Predictor(models, "cpu" if args.onnx else device, loader=loader)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    print(f"maps: {', '.join(predictor.lesions)} (channels of the .npy files, in this order), "
          f"{predictor.size} px square")
    failed = []
    for path, files in plans.items():
        try:
            predict_image(predictor, path, files, args.threshold)
        except (ValueError, FileNotFoundError) as error:
            failed.append(path)
            print(f"skipped {path}: {error}", file=sys.stderr)
            continue
        print(f"{path} -> {files['overlay']}")
    print(f"{len(plans) - len(failed)} of {len(plans)} photographs done, written to {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
