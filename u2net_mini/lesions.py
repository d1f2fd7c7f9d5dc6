"""
# Lesions and tasks

The four lesions, MA, HE, EX and SE in that order, are the data's vocabulary and live in
`data_prep/lesions.py` (re-exported here: `LESIONS`, `LESION_NAMES`, `LESION_COLOURS`,
`lesion_indices`). This file adds the paper's tasks, the lesions each model learns
(Section 3):

- single-task (`st`): one model per lesion, one output channel each;
- dual-task (`dt`): a "red" model for MA + HE and a "white" model for EX + SE,
  two output channels each (the lesions stay separate channels, they are not merged);
- multi-task (`mt`): one model with four output channels.
"""

from data_prep.lesions import LESION_COLOURS, LESION_NAMES, LESIONS, lesion_indices

__all__ = ["LESIONS", "LESION_NAMES", "LESION_COLOURS", "TASK_GROUPS", "lesion_indices",
           "models_for_mode"]

# The lesion groups each mode trains, one tuple per model.
TASK_GROUPS = {
    "st": (("MA",), ("HE",), ("EX",), ("SE",)),
    "dt": (("MA", "HE"), ("EX", "SE")),
    "mt": (("MA", "HE", "EX", "SE"),),
}


def models_for_mode(mode, lesion=None):
    """The lesion groups that `mode` trains: one tuple per model.

    `lesion` narrows single-task mode to one lesion ("st", "EX" -> (("EX",),)).
    """
    if mode not in TASK_GROUPS:
        raise ValueError(f"mode must be one of {tuple(TASK_GROUPS)}, got {mode!r}")
    if lesion is None:
        return TASK_GROUPS[mode]
    if mode != "st":
        raise ValueError(f"a single lesion can only be chosen in mode 'st', got mode {mode!r}")
    if lesion not in LESIONS:
        raise ValueError(f"lesion must be one of {LESIONS}, got {lesion!r}")
    return ((lesion,),)
