"""
# Reporting: the Table-1-style results table, PR curves and training curves

Table 1 of the paper lists, per model and training mode, the AUPR of each lesion and
their mean. `results_table` prints the same kind of table in Markdown for the runs of this
project, adding what a reader needs to compare them: the parameter count, the input
size, and the Dice coefficient at threshold 0.5 (which the paper does not report; it
shows what a thresholded map, as in an overlay, gets right).

Figures are drawn on a bare `matplotlib.figure.Figure` (Agg canvas, no pyplot, no global
state, no display needed) and written atomically as PNG.
"""

import math

from matplotlib.figure import Figure

from data_prep.atomic import atomic_write

from .lesions import LESION_COLOURS, LESIONS
from .metrics import lesion_mean

ROW_KEYS = ("model", "mode", "params", "input_size", "aupr", "dice")

# Table 1 of Siebert & Rostalski (MIDL 2021): AUPR on IDRiD's test split at 512 × 512.
# The paper writes HX and SX for hard and soft exudates (EX and SE here). U²-Net-ST is
# quoted with its mean only.
PAPER_TABLE_1 = (
    {"model": "U²-XS-Net", "mode": "st",
     "aupr": {"MA": 0.41, "HE": 0.68, "EX": 0.87, "SE": 0.68}, "mean": 0.66},
    {"model": "U²-XS-Net", "mode": "dt",
     "aupr": {"MA": 0.41, "HE": 0.69, "EX": 0.83, "SE": 0.74}, "mean": 0.67},
    {"model": "U²-XS-Net", "mode": "mt",
     "aupr": {"MA": 0.36, "HE": 0.62, "EX": 0.85, "SE": 0.74}, "mean": 0.64},
    {"model": "U²-Net", "mode": "st", "aupr": {}, "mean": 0.68},
)


def format_params(count):
    """291532 -> "0.29 M": millions with two decimals, as the paper writes them."""
    if type(count) is not int or count < 0:
        raise ValueError(f"params must be a non-negative int, got {count!r}")
    return f"{count / 1e6:.2f} M"


def format_score(value):
    """0.71234 -> "0.712"; nan -> "n/a" (undefined: no positive pixel)."""
    value = float(value)
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def results_table(rows, lesions=LESIONS):
    """A Markdown table with one line per evaluated model (or group of models).

    Each row is a dict with `model` (e.g. "xs"), `mode` ("st", "dt", "mt"), `params` (int,
    all models of the row together), `input_size` (int, pixels), and `aupr`, `dice`:
    {lesion: value} for the lesions the row evaluated. A lesion a row did not evaluate is
    shown as "–"; the means run over the lesions the row evaluated.
    """
    if isinstance(rows, dict):
        rows = [rows]
    if not rows:
        raise ValueError("results_table needs at least one row")
    header = (["Model", "Mode", "Params", "Input"] + [f"AUPR {name}" for name in lesions]
              + ["mean AUPR"] + [f"Dice {name}" for name in lesions] + ["mean Dice"])
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * 4 + ["---:"] * (len(header) - 4)) + "|"]
    for index, row in enumerate(rows):
        missing = [key for key in ROW_KEYS if key not in row]
        if missing:
            raise ValueError(f"row {index} lacks {missing}; a row needs {ROW_KEYS}")
        unknown = [name for name in list(row["aupr"]) + list(row["dice"]) if name not in lesions]
        if unknown:
            raise ValueError(f"row {index} has scores for {sorted(set(unknown))}, not among "
                             f"{lesions}")
        if type(row["input_size"]) is not int or row["input_size"] <= 0:
            raise ValueError(f"row {index}: input_size must be a positive int, got "
                             f"{row['input_size']!r}")
        cells = [str(row["model"]), str(row["mode"]), format_params(row["params"]),
                 f"{row['input_size']} px"]
        for metric in ("aupr", "dice"):
            scores = row[metric]
            cells += [format_score(scores[name]) if name in scores else "–" for name in lesions]
            cells.append(format_score(lesion_mean(scores.values())))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paper_table(lesions=LESIONS):
    """The paper's Table 1 as Markdown, in the columns of `results_table`'s AUPR part."""
    header = ["Paper (Table 1)", "Mode"] + [f"AUPR {name}" for name in lesions] + ["mean AUPR"]
    lines = ["| " + " | ".join(header) + " |",
             "|---|---|" + "|".join(["---:"] * (len(lesions) + 1)) + "|"]
    for row in PAPER_TABLE_1:
        cells = [row["model"], row["mode"]] + [f"{row['aupr'][name]:.2f}" if name in row["aupr"]
                                               else "–" for name in lesions]
        lines.append("| " + " | ".join(cells + [f"{row['mean']:.2f}"]) + " |")
    return "\n".join(lines) + "\n"


def pr_curve_figure(curves, aupr=None, title="Precision-recall curves"):
    """A figure with one PR curve per lesion: `curves` is {lesion: (precision, recall)}."""
    if not curves:
        raise ValueError("pr_curve_figure needs at least one curve")
    figure = Figure(figsize=(5, 5), dpi=100)
    axes = figure.add_subplot()
    for name, (precision, recall) in curves.items():
        if len(precision) != len(recall):
            raise ValueError(f"{name}: precision and recall differ in length, {len(precision)} and "
                             f"{len(recall)}")
        label = (name if aupr is None or name not in aupr
                 else f"{name} (AUPR {format_score(aupr[name])})")
        axes.plot(recall, precision, color=LESION_COLOURS.get(name), label=label, linewidth=1.5)
    axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left")
    return figure


def _columns(history):
    """{column: [float per epoch]} from a list of per-epoch dicts (e.g. csv rows) or a dict of
    lists."""
    if isinstance(history, dict):
        columns = {key: list(values) for key, values in history.items()}
    else:
        history = list(history)
        if not history:
            raise ValueError("the training history is empty: no finished epoch to plot")
        columns = {key: [row.get(key, "") for row in history] for key in history[0]}
    return {key: [float("nan") if v in ("", None) else float(v) for v in values]
            for key, values in columns.items()}


def training_curve_figure(history):
    """Loss, validation AUPR and learning rate per epoch, one panel each.

    `history` holds an `epoch` column, loss columns (names ending in "loss"), optionally
    AUPR columns (names containing "aupr", e.g. `val_aupr_EX`) and `lr`.
    """
    columns = _columns(history)
    if "epoch" not in columns:
        raise ValueError(f"the training history needs an 'epoch' column, got {sorted(columns)}")
    losses = [key for key in columns if key.endswith("loss")]
    auprs = [key for key in columns if "aupr" in key]
    if not losses:
        raise ValueError("the training history needs a column ending in 'loss', got "
                         f"{sorted(columns)}")
    panels = [("loss", losses)] + ([("validation AUPR", auprs)] if auprs else []) + (
        [("learning rate", ["lr"])] if "lr" in columns else [])
    figure = Figure(figsize=(4.5 * len(panels), 3.5), dpi=100, layout="constrained")
    epochs = columns["epoch"]
    for position, (ylabel, keys) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), position)
        for key in keys:
            suffix = key.rsplit("_", 1)[-1]
            if suffix == "mean":  # the mean over lesions, drawn apart from the lesions
                axes.plot(epochs, columns[key], label=key, color="black", linestyle="--")
            else:
                axes.plot(epochs, columns[key], label=key, color=LESION_COLOURS.get(suffix))
        axes.set(xlabel="epoch", ylabel=ylabel)
        if ylabel == "loss" and all(v > 0 for key in keys for v in columns[key]
                                    if not math.isnan(v)):
            axes.set_yscale("log")
        if ylabel == "validation AUPR":
            axes.set_ylim(0, 1)
        axes.grid(alpha=0.3)
        if len(keys) > 1:
            axes.legend(fontsize="small")
    return figure


def save_figure(figure, path):
    """Write `figure` as a PNG atomically; returns the path."""
    with atomic_write(path) as file:
        figure.savefig(file, format="png")
    return path


def plot_pr_curves(curves, path, aupr=None):
    """`pr_curve_figure` written to `path` (PNG)."""
    return save_figure(pr_curve_figure(curves, aupr), path)


def plot_training_curves(history, path):
    """`training_curve_figure` written to `path` (PNG)."""
    return save_figure(training_curve_figure(history), path)
