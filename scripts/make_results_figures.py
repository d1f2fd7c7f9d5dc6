"""Regenerate the figures of docs/results.md: training curves and real-test overlays.

    python scripts/make_results_figures.py --runs runs/real-mt/MA-HE-EX-SE \
        runs/real-dt/MA-HE runs/real-dt/EX-SE

writes docs/figures/results_curves_<model>.png from each run folder's metrics.csv, and
docs/figures/results_overlays.png: the shipped multi-task model on the real test
photographs of `u2net_mini.demo.OVERLAY_PHOTOGRAPHS`, the ophthalmologists' masks (left)
beside the model's overlay (`u2net_mini.overlay`: fill and outline at p ≥ 0.5, right).
PNGs are quantized to 256 colours to stay small (`make_data_figure.save_png`).
"""

import argparse
import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_data_figure import FIGURES, overlay, save_png  # noqa: E402

from data_prep.fundus import pad_to_square  # noqa: E402
from data_prep.idrid import IDRiD  # noqa: E402
from data_prep.pipeline import resize_mask  # noqa: E402
from data_prep.shipped import idrid_root  # noqa: E402
from u2net_mini.demo import OVERLAY_PHOTOGRAPHS  # noqa: E402
from u2net_mini.lesions import LESION_COLOURS, LESION_NAMES, LESIONS  # noqa: E402
from u2net_mini.overlay import blend, display_pair, outline  # noqa: E402
from u2net_mini.predict import Predictor  # noqa: E402
from u2net_mini.report import training_curve_figure  # noqa: E402
from u2net_mini.shipped import shipped_checkpoints  # noqa: E402


def curves(folder):
    with open(Path(folder) / "metrics.csv", newline="") as file:
        history = list(csv.DictReader(file))
    figure = training_curve_figure(history)
    figure.suptitle(f"{Path(folder).parent.name}/{Path(folder).name}: {len(history)} epochs")
    path = FIGURES / f"results_curves_{Path(folder).parent.name}-{Path(folder).name}.png"
    save_png(figure, path)


def overlays():
    test = IDRiD(idrid_root(), "test")
    predictor = Predictor(shipped_checkpoints("mt"))
    figure, axes = plt.subplots(len(OVERLAY_PHOTOGRAPHS), 2,
                                figsize=(10, 5 * len(OVERLAY_PHOTOGRAPHS)))
    for row, name in zip(axes, OVERLAY_PHOTOGRAPHS):
        item = test[test.names.index(name)]
        y_hat, geometry = predictor(item["image"])  # (4, 512, 512)
        photo, maps = display_pair(item["image"], y_hat, geometry)  # (d, d, 3), (4, d, d)
        box = item["masks"][:, geometry.y0:geometry.y1, geometry.x0:geometry.x1]  # (4, h, w)
        truth = [resize_mask(pad_to_square(mask), photo.shape[:2]) for mask in box]  # 4 × (d, d)
        row[0].imshow(overlay(photo, truth))
        row[0].set_title(f"{name}: the masks", fontsize=10)
        row[1].imshow(outline(blend(photo, maps, LESIONS), maps, LESIONS))
        row[1].set_title(f"{name}: shipped XS-MT, p ≥ 0.5", fontsize=10)
        for ax in row:
            ax.axis("off")
    handles = [Patch(color=LESION_COLOURS[k], label=f"{k}: {LESION_NAMES[k]}") for k in LESIONS]
    figure.legend(handles=handles, loc="lower center", ncol=4, frameon=False)
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    save_png(figure, FIGURES / "results_overlays.png")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", default=[], help="model folders holding metrics.csv")
    args = parser.parse_args(argv)
    for folder in args.runs:
        curves(folder)
    overlays()


if __name__ == "__main__":
    main()
