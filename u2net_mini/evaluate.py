"""
# Evaluation: the paper's Table 1 for trained checkpoints

    python -m u2net_mini.evaluate                  # the shipped XS-MT, shipped real test split
    python -m u2net_mini.evaluate --shipped dt           # the shipped dual-task pair
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
512 × 512 input: the **square** frame. The **photo** frame (`--frame photo`, or `both`,
the default) scores the same maps laid back on each uncropped photograph
(`fundus.to_original`: 0 outside the disc) against the masks as stored, at the
photograph's own size, which is what a user of `predict --original-grid` gets; it weighs
every lesion by its area in the photograph rather than on the square (MA, enlarged by
the mask rule on the square, counts less). A photograph without a mask file for a lesion
counts as all negative for it (`--missing skip` leaves it out). `--split train test`
pools both splits.

With no `--checkpoint` it scores the models shipped in the package (`u2net_mini.shipped`,
`--shipped mt|dt`), and with no `--data` the real data set shipped in
`data_prep/shipped/idrid`; the paper's Table 1 is printed beside the results.
"""

import argparse
import os
import sys
from pathlib import Path

import torch

from data_prep.atomic import atomic_write
from data_prep.checks import check_positive_flag
from data_prep.dataset import LesionDataset
from data_prep.fundus import to_original
from data_prep.idrid import EXPECTED_LAYOUT, IDRiD
from data_prep.shipped import idrid_root

from .checkpoint import load_model, preprocessing_arguments
from .counting import count_parameters
from .lesions import LESIONS
from .metrics import LesionScores
from .predict import probabilities
from .report import paper_table, plot_pr_curves, results_table
from .shipped import SHIPPED, shipped_checkpoints

MODE_BY_COUNT = {1: "st", 2: "dt", 4: "mt"}
FRAMES = ("square", "photo")
FRAME_TITLES = {
    "square": "the paper's setting: the 512 px square (disc cropped, padded, resized)",
    "photo": "the photograph's own frame: maps laid back on the uncropped photograph, "
             "against the masks as stored",
}


def score_model(model, payload, root, splits=("test",), device="cpu", batch_size=4, cache_dir=None,
                missing="negative"):
    """`LesionScores` of one model over the photographs of `splits`, pooled, on the square."""
    scores = score_frames(model, payload, root, splits, ("square",), device, batch_size,
                          cache_dir, missing)
    return scores["square"]


def score_frames(model, payload, root, splits=("test",), frames=FRAMES, device="cpu", batch_size=4,
                 cache_dir=None, missing="negative"):
    """{frame: `LesionScores`} of one model over the photographs of `splits`, pooled.

    `frames`: "square" (the network's s × s input, the paper's setting) and/or "photo"
    (the maps laid back on each photograph's own pixel grid, against its stored masks).
    """
    unknown = [frame for frame in frames if frame not in FRAMES]
    if unknown or not frames:
        raise ValueError(f"frames must be some of {FRAMES}, got {tuple(frames)}")
    scores = {frame: LesionScores(payload["lesions"], missing=missing) for frame in frames}
    for split in splits:
        data = LesionDataset(root, split, lesions=payload["lesions"], cache_dir=cache_dir,
                             **preprocessing_arguments(payload))
        def predict(x, y, indices):
            return probabilities(model, x.to(device))  # (B, C, s, s)

        score_dataset(predict, data, scores, batch_size=batch_size)
    return scores


def score_dataset(predict, data, scores, indices=None, batch_size=4):
    """Add the maps of the photographs `indices` (default all) of the `LesionDataset` `data`
    to `scores` {frame: `LesionScores`}; returns `scores`.

    `predict(x, y, indices)` -> y_hat (B, C, s, s) for x (B, 3, s, s) and the target y
    (B, C, s, s) of those photographs (training's validation also takes its loss there).
    """
    indices = list(range(len(data))) if indices is None else list(indices)
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        pairs = [data[i] for i in chunk]
        x = torch.stack([p[0] for p in pairs])  # (B, 3, s, s)
        y = torch.stack([p[1] for p in pairs])  # (B, C, s, s)
        y_hat = predict(x, y, chunk).cpu().numpy()  # (B, C, s, s)
        if "square" in scores:
            scores["square"].update(y.numpy(), y_hat, data.present[chunk])
        if "photo" in scores:  # photographs differ in size: one at a time
            for i, maps in zip(chunk, y_hat):
                geometry = data.example(i).geometry
                on_photo = to_original(maps, geometry)  # (C, H, W)
                masks = data.reader.masks(i, (geometry.height, geometry.width))  # (4, H, W)
                truth = masks[data.channels]  # (C, H, W)
                scores["photo"].update(truth[None], on_photo[None], data.present[[i]])
    return scores


def evaluate(checkpoints, root, splits=("test",), device="cpu", batch_size=4, cache_dir=None,
             missing="negative", frame="square"):
    """Rows for `report.results_table`, plus `curves` {lesion: (precision, recall)}, `images`
    {lesion: photographs scored} and `checkpoints`, scored in `frame` ("square" or "photo").
    `evaluate_frames` scores both frames in one pass.

    Checkpoints of one (model, mode, input size) share a row while their lesions do not
    repeat (the st or dt models of a run); a checkpoint whose lesions the row already has
    starts a new row (e.g. best.pt and last.pt of one run: two rows, "xs #1", "xs #2").
    """
    rows = evaluate_frames(checkpoints, root, splits, (frame,), device, batch_size, cache_dir,
                           missing)
    return rows[frame]


def evaluate_frames(checkpoints, root, splits=("test",), frames=FRAMES, device="cpu", batch_size=4,
                    cache_dir=None, missing="negative"):
    """{frame: rows} as `evaluate` gives them, every frame from one forward pass per photograph."""
    by_frame = {frame: [] for frame in frames}
    for path in checkpoints:
        model, payload = load_model(path, device)
        results = score_frames(model, payload, root, splits, frames, device, batch_size, cache_dir,
                               missing)
        for frame in frames:
            _add_to_rows(by_frame[frame], path, model, payload, results[frame])
    for rows in by_frame.values():
        _finish_rows(rows)
    return by_frame


def _add_to_rows(rows, path, model, payload, results):
    """Put one checkpoint's scores into the first row of its kind still missing its lesions."""
    lesions = payload["lesions"]
    mode = payload.get("mode", MODE_BY_COUNT.get(len(lesions), "custom"))
    key = (payload["model_config"]["name"], mode, payload["input_size"])
    # the first row of this kind still missing these lesions, else a new row
    row = next((r for r in rows if r["key"] == key and not set(lesions) & set(r["aupr"])), None)
    if row is None:
        row = {"key": key, "model": key[0], "mode": mode, "params": 0, "input_size": key[2],
               "aupr": {}, "dice": {}, "curves": {}, "images": {}, "checkpoints": []}
        rows.append(row)
    row["aupr"].update(results.aupr())
    row["dice"].update(results.dice())
    row["curves"].update(results.pr_curves())
    row["images"].update(results.results()["n_images"])
    row["params"] += count_parameters(model)
    row["checkpoints"].append(str(path))


def _finish_rows(rows):
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


def write_results(by_frame, out, data, splits):
    """results.md (a table per frame, what it scored, the paper's Table 1) and one PR-curve
    PNG per frame and row; returns the paths. `by_frame`: {frame: rows} of `evaluate_frames`."""
    lines = [f"# Results on {data} ({' + '.join(splits)})", ""]
    paths = [out / "results.md"]
    for frame, rows in by_frame.items():
        lines += [f"## {FRAME_TITLES[frame]}", "", results_table(rows)]
        for number, row in enumerate(rows, start=1):
            lines.append(f"- row {number} ({row['model']} {row['mode']} {row['input_size']} px): "
                         + ", ".join(row["checkpoints"]))
            suffix = "" if len(rows) == 1 else f"_row{number}"
            name = f"pr_curves_{frame}{suffix}.png"
            paths.append(plot_pr_curves(row["curves"], out / name, aupr=row["aupr"]))
        lines.append("")
    lines += ["## The paper's Table 1 (IDRiD test split, 512 × 512)", "", paper_table()]
    with atomic_write(paths[0], "w") as file:
        file.write("\n".join(lines))
    return paths


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m u2net_mini.evaluate",
        description="Table 1 (AUPR per lesion, Dice at 0.5) and PR curves for checkpoints, "
                    "beside the paper's. With no arguments: the shipped XS-MT on the shipped real "
                    "IDRiD test split.",
        epilog="exit codes: 0 done, 2 bad arguments, checkpoint or data")
    add = parser.add_argument
    add("--checkpoint", nargs="+",
        help="one or more checkpoints (e.g. best.pt); default: the shipped models of --shipped")
    add("--shipped", choices=tuple(SHIPPED), default="mt",
        help="which shipped models to score when no --checkpoint is given (default mt)")
    add("--data", default=str(idrid_root()),
        help="the data folder in IDRiD's layout (default: the shipped real data set)")
    add("--split", nargs="+", choices=("train", "test"), default=["test"],
        help="the split(s) to score, pooled (default test)")
    add("--frame", choices=(*FRAMES, "both"), default="both",
        help="square: the network's 512 px square, as the paper; photo: the maps on each "
        "uncropped photograph against its stored masks; both (default)")
    add("--out", help="folder for results.md and the PR curves (default: eval-SPLIT next to "
        "the checkpoints; runs/eval-shipped-MODE-SPLIT for the shipped models)")
    add("--batch-size", type=int, default=4, help="photographs per forward pass (default 4)")
    add("--missing", choices=("negative", "skip"), default="negative",
        help="a photograph without a lesion's mask file: all negative (default) or left out")
    add("--device", choices=("auto", "cpu", "cuda"), default="auto",
        help="default: CUDA when present, else the CPU")
    add("--cache", help="folder for the resized photographs (as in training)")
    return parser


def main(argv=None):
    """The command line; returns the exit code (0 done, 2 bad arguments or data)."""
    args = build_parser().parse_args(argv)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = "cuda" if cuda else "cpu"
    splits = list(dict.fromkeys(args.split))
    frames = FRAMES if args.frame == "both" else (args.frame,)
    try:
        checkpoints = args.checkpoint or shipped_checkpoints(args.shipped)
        if args.out:
            out = Path(args.out)
        elif args.checkpoint:
            out = default_out(checkpoints, splits)
        else:
            out = Path("runs") / f"eval-shipped-{args.shipped}-{'+'.join(splits)}"
        if out.exists() and not out.is_dir():
            raise ValueError(
                f"--out {out} is a file; give a folder (new, or one an earlier evaluation wrote)")
        check_positive_flag("--batch-size", args.batch_size)
        for split in splits:
            try:
                IDRiD(args.data, split)
            except (ValueError, FileNotFoundError) as error:  # say what layout was expected
                raise ValueError(f"--data {args.data}: {error}\n{EXPECTED_LAYOUT}") from error
        by_frame = evaluate_frames(checkpoints, args.data, splits, frames, device,
                                   args.batch_size, args.cache, args.missing)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    paths = write_results(by_frame, out, args.data, splits)
    for frame, rows in by_frame.items():
        print(f"{' + '.join(splits)} split, {FRAME_TITLES[frame]}:\n")
        print(results_table(rows))
    print("the paper's Table 1 (IDRiD test split, 512 x 512):\n")
    print(paper_table())
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
