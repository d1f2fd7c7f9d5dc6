"""u2net_mini: the lightweight U²-Net for diabetic-retinopathy lesion segmentation.

After Siebert & Rostalski, "Multi-task lesion segmentation with a lightweight U²-Net to
enhance explainability of mobile screening systems for diabetic retinopathy", MIDL 2021.

## Reading order: the paper, section by section, and where it lives

| paper | file |
|---|---|
| IDRiD and its four lesions (Sec. 2) | `data_prep/idrid.py`, `data_prep/lesions.py` |
| preprocessing (Sec. 2) | `data_prep/`: `fundus`, `enhance`, `pipeline`, `augment`, `dataset` |
| the RSU block (Sec. 3) | `rsu.py` |
| U²-Net, U²-XS-Net (Sec. 3) | `model.py`; NumPy `reference.py`; `counting`, `receptive_field` |
| the loss (Sec. 3) | `equations.py` (NumPy, the definition), `losses.py` (torch) |
| st, dt and mt models (Sec. 3) | `lesions.py` |
| training (Sec. 3) | `train.py` (`training_run`, `train_loop`, `processes`), `schedule.py` |
| AUPR, Table 1 (Sec. 4) | `metrics.py`, `evaluate.py`, `report.py` |
| maps and overlays (Sec. 4-5) | `predict.py`, `overlay.py`, `shipped.py` |
| mobile (Sec. 5) | `fold.py`, `inference.py`, `export.py`, `quantize.py` (int8, the phone's |
| | format), `bench.py` (`inference_paths`, `measure`), `roofline.py`, `precisions.py` |

Tools: `checkpoint.py` (saving and loading), `random_batchnorm.py` (for comparing forward
passes), `worked_example.py` (the loss by hand), `demo.py` (`make demo`); the synthetic
data set is `data_prep/synthetic/`. `data_prep` never imports `u2net_mini`.
"""

from .lesions import LESIONS, TASK_GROUPS
from .shipped import lesion_maps, shipped_checkpoints

__all__ = ["LESIONS", "TASK_GROUPS", "lesion_maps", "shipped_checkpoints"]
