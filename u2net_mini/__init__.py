"""u2net_mini: the lightweight U²-Net for diabetic-retinopathy lesion segmentation.

After Siebert & Rostalski, "Multi-task lesion segmentation with a lightweight U²-Net to
enhance explainability of mobile screening systems for diabetic retinopathy", MIDL 2021.
"""

from .lesions import LESIONS, TASK_GROUPS
from .shipped import lesion_maps, shipped_checkpoints

__all__ = ["LESIONS", "TASK_GROUPS", "lesion_maps", "shipped_checkpoints"]
