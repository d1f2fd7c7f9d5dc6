"""
# Lesions and tasks

The four lesions of IDRiD, in the one order used everywhere in this project (arrays,
channels, tables, colours): microaneurysms **MA**, haemorrhages **HE**, hard exudates
**EX** (the paper's HX) and soft exudates **SE** (the paper's SX).

The paper trains three kinds of model (Section 3):

- single-task (`st`): one model per lesion, one output channel each;
- dual-task (`dt`): a "red" model for MA + HE and a "white" model for EX + SE,
  two output channels each (the lesions stay separate channels, they are not merged);
- multi-task (`mt`): one model with four output channels.
"""

LESIONS = ("MA", "HE", "EX", "SE")

LESION_NAMES = {
    "MA": "microaneurysms",
    "HE": "haemorrhages",
    "EX": "hard exudates",
    "SE": "soft exudates",
}

# One colour per lesion, used by every figure and overlay; chosen to stand out on the
# orange-red of a fundus photograph.
# Chosen to stand out on a fundus photograph, which is orange and red with yellow
# exudates and dark vessels: none of them is yellow, orange or red (EX is blue, against
# the yellow of the exudates themselves).
LESION_COLOURS = {"MA": "#00e5ff", "HE": "#39d353", "EX": "#2f6bff", "SE": "#ff3df2"}

# The lesion groups each mode trains, one tuple per model.
TASK_GROUPS = {
    "st": (("MA",), ("HE",), ("EX",), ("SE",)),
    "dt": (("MA", "HE"), ("EX", "SE")),
    "mt": (("MA", "HE", "EX", "SE"),),
}


def lesion_indices(lesions):
    """Channel indices of `lesions` in the project order, e.g. ("EX", "SE") -> [2, 3]."""
    lesions = tuple(lesions)
    unknown = [name for name in lesions if name not in LESIONS]
    if unknown or not lesions:
        raise ValueError(f"lesions must be a non-empty subset of {LESIONS}, got {lesions}")
    if len(set(lesions)) != len(lesions):
        raise ValueError(f"lesions must not repeat, got {lesions}")
    return [LESIONS.index(name) for name in lesions]


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
