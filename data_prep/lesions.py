"""
# The lesions

The four lesions of IDRiD, in the one order used everywhere in this project (arrays,
channels, tables, colours): microaneurysms **MA**, haemorrhages **HE**, hard exudates
**EX** (the paper's HX) and soft exudates **SE** (the paper's SX).

This vocabulary lives in `data_prep`, the lower layer, because the data set's masks are
named by it; `u2net_mini.lesions` adds the paper's tasks (which lesions each model
learns) and re-exports these names.
"""

LESIONS = ("MA", "HE", "EX", "SE")

LESION_NAMES = {
    "MA": "microaneurysms",
    "HE": "haemorrhages",
    "EX": "hard exudates",
    "SE": "soft exudates",
}

# One colour per lesion, used by every figure and overlay. A fundus photograph is orange
# and red with yellow exudates and dark vessels, so none of them is yellow, orange or red
# (EX is blue, against the yellow of the exudates themselves).
LESION_COLOURS = {"MA": "#00e5ff", "HE": "#39d353", "EX": "#2f6bff", "SE": "#ff3df2"}


def lesion_indices(lesions):
    """Channel indices of `lesions` in the project order, e.g. ("EX", "SE") -> [2, 3]."""
    lesions = tuple(lesions)
    unknown = [name for name in lesions if name not in LESIONS]
    if unknown or not lesions:
        raise ValueError(f"lesions must be a non-empty subset of {LESIONS}, got {lesions}")
    if len(set(lesions)) != len(lesions):
        raise ValueError(f"lesions must not repeat, got {lesions}")
    return [LESIONS.index(name) for name in lesions]
