"""Regenerate the figures of docs/data.md: a real IDRiD photograph beside a synthetic one.

    python scripts/make_data_figure.py            # writes docs/figures/data_*.png

The real photograph is IDRiD_55 of the shipped, downscaled IDRiD copy (data_prep/shipped,
CC BY 4.0, Porwal et al. 2018), with its lesion masks. The PNGs are quantized to 256
colours to stay small.
"""

import argparse
import io
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from PIL import Image  # noqa: E402

from data_prep.atomic import atomic_write  # noqa: E402
from data_prep.idrid import IDRiD  # noqa: E402
from data_prep.pipeline import prepare_example  # noqa: E402
from data_prep.shipped import idrid_root  # noqa: E402
from data_prep.synthetic import make_fundus  # noqa: E402
from u2net_mini.lesions import LESION_COLOURS, LESION_NAMES, LESIONS  # noqa: E402

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"
SEED = 8  # a synthetic photograph in IDRiD's colours that shows all four lesions well
DEMO_SIZE = 160  # the size a laptop trains at
DPI = 85


def overlay(image, masks):
    """`image` (H, W, 3) uint8 with each lesion's pixels painted in its colour: (H, W, 3)."""
    out = image.copy()  # (H, W, 3)
    for name, mask in zip(LESIONS, masks):
        # (3,)
        rgb = np.array([int(LESION_COLOURS[name][i : i + 2], 16) for i in (1, 3, 5)], np.uint8)
        out[mask] = rgb
    return out


def save_png(figure, path):
    """Render `figure`, quantize it to 256 colours and write it atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    rgb = Image.open(buffer).convert("RGB")
    # 250 colours for the photographs, plus the lesion colours, black and white exactly;
    # dithered, so smooth shading shows no bands.
    colours = rgb.quantize(250, method=Image.Quantize.MEDIANCUT).getpalette()[: 3 * 250]
    for hex_colour in [*LESION_COLOURS.values(), "#000000", "#ffffff"]:
        colours += [int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]
    palette = Image.new("P", (1, 1))
    palette.putpalette(colours)
    picture = rgb.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
    with atomic_write(path) as file:
        picture.save(file, format="PNG", optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} kB)")


def real_vs_synthetic(path):
    real = IDRiD(idrid_root(), "test")[0]  # IDRiD_55, 1072 x 712
    width = real["image"].shape[1]
    image, masks = make_fundus(SEED, width, frame="idrid", presence=dict.fromkeys(LESIONS, True))
    small = prepare_example(image, masks, DEMO_SIZE)  # what a laptop demo trains on
    figure, axes = plt.subplots(2, 3, figsize=(13.5, 6.6),
                                gridspec_kw={"width_ratios": [1.5, 1.5, 1]})
    panels = [
        (real["image"], f"real: {real['name']} (1072 × 712, downscaled)"),
        (image, f"synthetic: make_fundus({SEED}, {width}, frame='idrid')"),
        (small.image, f"synthetic, cropped and shrunk to {DEMO_SIZE} px"),
        (overlay(real["image"], real["masks"]), "real, its masks (drawn by ophthalmologists)"),
        (overlay(image, masks), "synthetic, its four masks"),
        (overlay(small.image, small.masks), f"at {DEMO_SIZE} px: every lesion still has pixels"),
    ]
    for ax, (picture, title) in zip(axes.ravel(), panels):
        ax.imshow(picture,
                  interpolation="nearest" if picture.shape[0] <= DEMO_SIZE else "antialiased")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    handles = [Patch(color=LESION_COLOURS[k], label=f"{k}: {LESION_NAMES[k]}") for k in LESIONS]
    figure.legend(handles=handles, loc="lower center", ncol=4, fontsize=9, frameon=False)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    save_png(figure, path)


def lesion_close_ups(path):
    """Close-ups of each lesion kind in a synthetic photograph, without and with its mask."""
    image, masks = make_fundus(SEED, 512, presence=dict.fromkeys(LESIONS, True))
    figure, axes = plt.subplots(2, 4, figsize=(10, 5.2))
    half = 40  # a 80 x 80 px window
    for column, (name, mask) in enumerate(zip(LESIONS, masks)):
        # the window centred where this lesion is densest (a Gaussian-weighted count)
        density = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), half / 2)  # (H, W)
        y, x = np.unravel_index(np.argmax(density), density.shape)
        y0, x0 = np.clip([y - half, x - half], 0, np.array(mask.shape) - 2 * half)
        window = (slice(y0, y0 + 2 * half), slice(x0, x0 + 2 * half))
        one = np.zeros_like(masks)  # (4, H, W)
        one[column] = mask
        axes[0, column].imshow(image[window], interpolation="nearest")
        axes[0, column].set_title(f"{name}: {LESION_NAMES[name]}", fontsize=9)
        axes[1, column].imshow(overlay(image, one)[window], interpolation="nearest")
        for ax in axes[:, column]:
            ax.axis("off")
    figure.suptitle(f"make_fundus({SEED}, 512): 80 × 80 px close-ups, photograph and "
                    "mask", fontsize=10)
    figure.tight_layout()
    save_png(figure, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=FIGURES, help="folder for the PNG files")
    args = parser.parse_args(argv)
    real_vs_synthetic(args.out / "data_real_vs_synthetic.png")
    lesion_close_ups(args.out / "data_lesion_close_ups.png")


if __name__ == "__main__":
    main()
