"""
# The shipped models: U²-XS-Net trained on real IDRiD, ready to use

    from u2net_mini import lesion_maps
    y_hat = lesion_maps("photo.jpg")  # (4, H, W) float32: MA, HE, EX, SE, photograph's pixels

The package carries the weights of U²-XS-Net trained by this project on the 54 real
training photographs of IDRiD (`data_prep/shipped/idrid`), as inference-only checkpoints
(`u2net_mini.checkpoint`'s format without the resume state, about 1.2 MB each) in
`u2net_mini/weights/`, each beside a provenance file (`NAME.json`: the exact training
command, the commit, the data checksum, epochs, wall time, machine and validation
scores). How they were trained and what they score on the real test split:
docs/results.md.

| mode | files | lesions |
|---|---|---|
| `mt` | `xs_mt.pt` | one network for MA, HE, EX, SE |
| `dt` | `xs_dt_red.pt`, `xs_dt_white.pt` | red: MA + HE; white: EX + SE |
| int8 | `xs_mt_int8.onnx` (0.39 MB) | `xs_mt` in 8 bits, for ONNX Runtime and phones |

`shipped_checkpoints(mode)` gives the files (for `--checkpoint`, `predict.Predictor`,
`evaluate.evaluate`); `python -m u2net_mini.predict photo.jpg --out maps` uses the
multi-task model when no checkpoint is named; `predict --onnx
u2net_mini/weights/xs_mt_int8.onnx` runs its int8 twin (`xs_mt_int8.json`: calibration,
AUPR in fp32, bf16 and int8; docs/performance.md). Nothing is ever downloaded.
"""

import functools
import json
from pathlib import Path

import numpy as np

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
SHIPPED = {"mt": ("xs_mt",), "dt": ("xs_dt_red", "xs_dt_white")}
DEFAULT_MODE = "mt"


def shipped_checkpoints(mode=DEFAULT_MODE):
    """The checkpoint files of the shipped `mode` ("mt" or "dt"), as a list of Paths.

    FileNotFoundError when this copy of the package lacks them (a partial install).
    """
    if mode not in SHIPPED:
        raise ValueError(f"mode must be one of {tuple(SHIPPED)}, got {mode!r}")
    paths = [WEIGHTS_DIR / f"{name}.pt" for name in SHIPPED[mode]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"the shipped {mode} weights are missing from this installation: "
                                f"{missing}")
    return paths


def provenance(name):
    """The provenance record (a dict) of the shipped model `name`, e.g. "xs_mt"."""
    path = WEIGHTS_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no provenance file {path}; shipped models are "
                                f"{sorted(sum(SHIPPED.values(), ()))}")
    return json.loads(path.read_text())


def lesion_maps(photo, mode=DEFAULT_MODE, device="cpu"):
    """The lesion probabilities of one fundus photograph, on its own pixel grid.

    `photo`: a path (JPEG, PNG, TIFF) or an (H, W, 3) uint8 RGB array. Returns (C, H, W)
    float32 in [0, 1], one channel per lesion in the order MA, HE, EX, SE, from the
    shipped `mode` models (0 outside the cropped retinal disc). ValueError when no
    retinal disc is found.
    """
    from data_prep.fundus import to_original
    from data_prep.idrid import read_image

    image = read_image(photo) if isinstance(photo, (str, Path)) else np.asarray(photo)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"photo must be a path or an (H, W, 3) uint8 RGB array, got {image.dtype} "
                         f"{image.shape}")
    y_hat, geometry = _predictor(mode, str(device))(image)  # (C, s, s)
    return to_original(y_hat, geometry)  # (C, H, W)


@functools.lru_cache(maxsize=4)
def _predictor(mode, device):
    """The shipped models of `mode` loaded once per process and device, for `lesion_maps`."""
    from .predict import Predictor

    return Predictor(shipped_checkpoints(mode), device)
