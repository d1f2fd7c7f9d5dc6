"""
# Evaluation: the paper's Table 1 for trained checkpoints

    python -m u2net_mini.evaluate --checkpoint runs/mt/MA-HE-EX-SE/best.pt --data DIR --split test
    python -m u2net_mini.evaluate --checkpoint runs/st/*/best.pt --data DIR --split test

prints a Table-1-style Markdown table (`report.results_table`: AUPR per lesion and their
mean, the paper's numbers, plus Dice at 0.5, parameters, input size, mode) and writes it
with the PR curves (PNG) to `--out` (default: `eval-SPLIT` in the checkpoints' common
folder; running again replaces the files it wrote there, never a checkpoint).

Checkpoints of one mode, model and input size make **one row**: the four single-task
models of an `st` run, or the red and white models of a `dt` run, together predict the
four lesions, and their parameters add up, as in the paper's table. A checkpoint whose
lesions the row already has (best.pt and last.pt of one run) starts a new row.

How it scores (`metrics.LesionScores`): the test photographs go through the training
preprocessing at the checkpoint's input size, and AUPR and Dice are pooled over every
pixel of every photograph **on the network's square** (the disc cropped, padded and
resized to s × s, masks resized by the `"preserve"` rule), as the paper evaluated at its
512 × 512 input. A photograph without a mask file for a lesion counts as all negative
for it (`--missing skip` leaves it out). `--split train test` pools both splits, e.g. for
the two real photographs shipped in `data_prep/samples`.
"""

import argparse
import os
import sys
from pathlib import Path

import torch

from data_prep.dataset import LesionDataset
from data_prep.idrid import IDRiD

from .atomic import atomic_write
from .counting import count_parameters
from .lesions import LESIONS
from .metrics import LesionScores
from .checkpoint import load_model
from .predict import probabilities
from .report import plot_pr_curves, results_table
from .train import EXPECTED_LAYOUT

MODE_BY_COUNT = {1: "st", 2: "dt", 4: "mt"}


def score_model(model, payload, root, splits=("test",), device="cpu", batch_size=4, cache_dir=None,
                missing="negative"):
    """`LesionScores` of one model over the photographs of `splits`, pooled."""
    lesions = payload["lesions"]
    options = payload["preprocessing"]
    scores = LesionScores(lesions, missing=missing)
    for split in splits:
        data = LesionDataset(root, split, lesions=lesions, size=payload["input_size"], mean=payload["mean"],
                             std=payload["std"], cache_dir=cache_dir, clahe=options.get("clahe", True),
                             clahe_channel=options.get("clahe_channel", "lab"),
                             **({"threshold": options["threshold"]} if "threshold" in options else {}))
        for start in range(0, len(data), batch_size):
            indices = list(range(start, min(start + batch_size, len(data))))
            pairs = [data[i] for i in indices]
            x = torch.stack([p[0] for p in pairs]).to(device)  # (B, 3, s, s)
            y = torch.stack([p[1] for p in pairs])  # (B, C, s, s)
            y_hat = probabilities(model, x).cpu().numpy()  # (B, C, s, s)
            scores.update(y.numpy(), y_hat, data.present[indices])
    return scores


def evaluate(checkpoints, root, splits=("test",), device="cpu", batch_size=4, cache_dir=None, missing="negative"):
    """Rows for `report.results_table`, plus `curves` {lesion: (precision, recall)}, `images`
    {lesion: photographs scored} and `checkpoints`.

    Checkpoints of one (model, mode, input size) share a row while their lesions do not
    repeat (the st or dt models of a run); a checkpoint whose lesions the row already has
    starts a new row (e.g. best.pt and last.pt of one run: two rows, "xs #1", "xs #2").
    """
    rows = []
    for path in checkpoints:
        model, payload = load_model(path, device)
        lesions = payload["lesions"]
        mode = payload.get("mode", MODE_BY_COUNT.get(len(lesions), "custom"))
        key = (payload["model_config"]["name"], mode, payload["input_size"])
        # the first row of this kind still missing these lesions, else a new row
        row = next((r for r in rows if r["key"] == key and not set(lesions) & set(r["aupr"])), None)
        if row is None:
            row = {"key": key, "model": key[0], "mode": mode, "params": 0, "input_size": key[2],
                   "aupr": {}, "dice": {}, "curves": {}, "images": {}, "checkpoints": []}
            rows.append(row)
        results = score_model(model, payload, root, splits, device, batch_size, cache_dir, missing)
        row["aupr"].update(results.aupr())
        row["dice"].update(results.dice())
        row["curves"].update(results.pr_curves())
        row["images"].update(results.results()["n_images"])
        row["params"] += count_parameters(model)
        row["checkpoints"].append(str(path))
    for row in rows:  # lesions in the project order, whatever order the checkpoints came in
        for metric in ("aupr", "dice", "curves", "images"):
            row[metric] = {name: row[metric][name] for name in LESIONS if name in row[metric]}
        twins = [r for r in rows if r["key"] == row["key"]]
        if len(twins) > 1:  # several rows of one kind (e.g. best.pt and last.pt): number them
            row["model"] = f"{row['key'][0]} #{twins.index(row) + 1}"
    return rows


def default_out(checkpoints, splits):
    common = Path(os.path.commonpath([str(Path(c).resolve().parent) for c in checkpoints]))
    return common / f"eval-{'+'.join(splits)}"


def write_results(rows, out, data, splits):
    """results.md (the table and what it scored) and one PR-curve PNG per row; returns the paths."""
    table = results_table(rows)
    lines = [f"# Results on {data} ({' + '.join(splits)})", "", table]
    for number, row in enumerate(rows, start=1):
        lines.append(f"- row {number} ({row['model']} {row['mode']} {row['input_size']} px): "
                     + ", ".join(row["checkpoints"]))
    paths = [out / "results.md"]
    with atomic_write(paths[0], "w") as file:
        file.write("\n".join(lines) + "\n")
    for row in rows:
        name = "pr_curves.png" if len(rows) == 1 else f"pr_curves_row{rows.index(row) + 1}.png"
        paths.append(plot_pr_curves(row["curves"], out / name, aupr=row["aupr"]))
    return paths


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m u2net_mini.evaluate",
                                     description="Table 1 (AUPR per lesion) and PR curves for checkpoints.")
    parser.add_argument("--checkpoint", nargs="+", required=True, help="one or more checkpoints (e.g. best.pt)")
    parser.add_argument("--data", required=True, help="the data folder in IDRiD's layout")
    parser.add_argument("--split", nargs="+", choices=("train", "test"), default=["test"],
                        help="the split(s) to score, pooled (default test)")
    parser.add_argument("--out", help="folder for results.md and the PR curves (default: eval-SPLIT next to "
                        "the checkpoints)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--missing", choices=("negative", "skip"), default="negative",
                        help="a photograph without a lesion's mask file: all negative (default) or left out")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--cache", help="folder for the resized photographs (as in training)")
    return parser


def main(argv=None):
    """The command line; returns the exit code (0 done, 2 bad arguments or data)."""
    args = build_parser().parse_args(argv)
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    splits = list(dict.fromkeys(args.split))
    try:
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
        for split in splits:
            try:
                IDRiD(args.data, split)
            except (ValueError, FileNotFoundError) as error:  # a wrong folder: say what layout was expected
                raise ValueError(f"--data {args.data}: {error}\n{EXPECTED_LAYOUT}") from error
        rows = evaluate(args.checkpoint, args.data, splits, device, args.batch_size, args.cache, args.missing)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else default_out(args.checkpoint, splits)
    paths = write_results(rows, out, args.data, splits)
    print(results_table(rows))
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
