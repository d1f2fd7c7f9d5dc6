"""
# A training run: its flags and settings, its data, its folder

What `python -m u2net_mini.train` checks before it trains, so that bad input stops it
with exit code 2 before anything is written: the flags over the defaults, or `run.json`'s
settings on `--resume` (`resolve_settings`); every photograph and mask of the data
(`check_data`); the last checkpoints to resume from (`check_resume_checkpoints`); and the
run folder (`prepare_run_folder`, which then writes `run.json`). Also the validation
hold-out (`split_train_val`) and `metrics.csv` (`write_metrics`). docs/training.md lists
the flags, docs/errors.md every message.
"""

import argparse
import csv
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np

from data_prep.atomic import atomic_write, sweep_temporaries
from data_prep.checks import check_positive_flag
from data_prep.dataset import SquareCache
from data_prep.fundus import DISC_THRESHOLD
from data_prep.idrid import EXPECTED_LAYOUT, IDRiD
from data_prep.pipeline import MASK_RULE

from .checkpoint import load_checkpoint
from .lesions import LESIONS, TASK_GROUPS, models_for_mode
from .model import MIN_SIZE, MODEL_NAMES

# Settings that define a run; on --resume they come from run.json and may not change,
# except those of CHANGEABLE_ON_RESUME (--lr: the schedule's lr₀ from the next epoch on,
# e.g. after a divergence; each change is recorded in run.json's "lr_changes").
DEFAULTS = {
    "mode": "mt", "lesion": None, "model": "xs", "size": 512, "batch_size": 4, "seed": 0,
    "lr": 1e-3, "weight_decay": 1e-4, "alpha": 0.75, "gamma": 1.0,
    "augment": "paper", "val": "holdout", "val_fraction": 0.1,
    "patch": None, "schedule_epochs": 400,
}
CHANGEABLE_ON_RESUME = ("lr",)
DEFAULT_EPOCHS = 400
# The smallest --size and --patch: 2 × model.MIN_SIZE, so the deepest stage (stride 32)
# keeps 2 × 2 pixels, enough for batch norm's statistics with a batch of 1.
MIN_TRAIN_SIZE = 2 * MIN_SIZE
PREPROCESSING = {"clahe": True, "clahe_channel": "lab", "threshold": DISC_THRESHOLD,
                 "mask_rule": MASK_RULE}


class UsageError(Exception):
    """Bad flags, a data folder of the wrong layout or a run folder in the way: exit code 2."""

def group_name(lesions):
    """The folder of one model of a run: ("MA", "HE") -> "MA-HE"."""
    return "-".join(lesions)

def build_parser():
    # Long by nature: one add_argument per flag, each with its help text; nothing to split.
    parser = argparse.ArgumentParser(
        prog="python -m u2net_mini.train",
        description="Train U²-Net models on IDRiD-layout data with the paper's protocol "
                    "(docs/training.md).",
        epilog="exit codes: 0 done (also when --max-minutes stopped it), 1 the loss, the "
               "weights or the validation outputs became non-finite (the last good last.pt "
               "stays), 2 bad flags, data, checkpoint or run folder (nothing written), 130 "
               "interrupted (Ctrl-C; --resume continues). docs/errors.md lists every message.",
    )
    add = parser.add_argument
    add("--data", help="the data folder in IDRiD's layout (the one holding 'A. Segmentation'), "
                       "e.g. data_prep/shipped/idrid; required, except with --resume (then the "
                       "run's own)")
    add("--out", required=True, help="the run folder, e.g. runs/mt; must be new or empty unless "
                                     "--resume")
    add("--mode", choices=tuple(TASK_GROUPS), help="st: one model per lesion, dt: red MA+HE and "
                                                   "white EX+SE, "
        "mt: one model for all four (default mt)")
    add("--lesion", choices=LESIONS, help="single-task mode only: train this lesion's model alone")
    add("--model", choices=MODEL_NAMES, help="xs (U²-XS-Net, 0.29 M), small (U²-Net†) or full "
                                             "(U²-Net); default xs")
    add("--size", type=int, help=f"side of the square input in pixels, at least {MIN_TRAIN_SIZE} "
                                 "(default 512)")
    add("--epochs", type=int, help=f"train up to this many epochs (default {DEFAULT_EPOCHS}); "
        "with --resume it may be raised to train on")
    add("--batch-size", type=int, help="photographs per batch and process (default 4; the paper "
                                       "gives none)")
    add("--seed", type=int, help="seeds the weights, the validation hold-out, shuffling and "
                                 "augmentation (default 0)")
    add("--lr", type=float, help="Adam's initial learning rate (default 1e-3); may change on "
                                 "--resume "
        "(recorded in run.json)")
    add("--weight-decay", type=float, help="Adam's weight decay (default 1e-4)")
    add("--alpha", type=float, help="weight of focal BCE against Dice in the loss (default 0.75)")
    add("--gamma", type=float, help="focal exponent (default 1)")
    add("--augment", choices=("paper", "none"), help="paper: random rotation, shift, scale, flips "
                                                     "(default)")
    add("--patch", type=int, help="train on a random PATCH × PATCH window of each augmented "
                                  "--size square, over a lesion pixel 80 %% of the time (the CPU "
                                  "protocol; default: the whole square, as the paper); validation "
                                  "and evaluation always see the whole square")
    add("--schedule-epochs", type=int, help="stretch the paper's 400-epoch learning-rate schedule "
                                            "(× 0.75 every "
        "15 epochs from 115) to this many epochs, for shorter runs (default 400, the paper's)")
    add("--val", choices=("holdout", "test", "none"), help="what scores each epoch for best.pt "
                                                           "(default holdout)")
    add("--val-fraction", type=float,
        help="share of the training photographs held out with --val holdout (default 0.1)")
    add("--resume", action="store_true", help="continue the run in --out from its last.pt files")
    add("--overwrite", action="store_true",
        help="delete the earlier run in --out (a folder with run.json) and start anew")
    add("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: CUDA when "
                                                                          "present, else the CPU")
    add("--bf16", action="store_true", help="bfloat16 autocast for the forward pass (meant for "
                                            "GPUs)")
    add("--channels-last", action="store_true", help="channels_last memory format (faster "
                                                     "convolutions on GPUs)")
    add("--workers", type=int, default=None, help="DataLoader worker processes (default: 0 on the "
                                                  "CPU, 4 on CUDA)")
    add("--max-minutes", type=float, help="stop before an epoch that would end past this many "
                                          "minutes "
        "(of the whole run); --resume continues")
    add("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice, "
                                                  "one per core)")
    add("--cache", help="folder for the resized photographs (default $U2NET_MINI_CACHE or "
                        "~/.cache/u2net_mini)")
    add("--no-progress", action="store_true", help="no progress bar, only one line per epoch "
        "(the bar shows only on a terminal anyway)")
    return parser

def parse_args(argv=None):
    return build_parser().parse_args(argv)

def _check_settings(settings):
    models_for_mode(settings["mode"], settings["lesion"])  # ValueError for --lesion outside st
    if settings["size"] < MIN_TRAIN_SIZE:
        raise ValueError(f"--size must be at least {MIN_TRAIN_SIZE} pixels, got {settings['size']}")
    if (settings["patch"] is not None
            and not MIN_TRAIN_SIZE <= settings["patch"] <= settings["size"]):
        raise ValueError(f"--patch must be between {MIN_TRAIN_SIZE} and --size {settings['size']}, "
                         f"got {settings['patch']}")
    for key in ("batch_size", "epochs", "schedule_epochs"):
        check_positive_flag(f"--{key.replace('_', '-')}", settings[key])
    if not 0 < settings["val_fraction"] < 1:
        raise ValueError(f"--val-fraction must be between 0 and 1, got {settings['val_fraction']}")
    if not settings["lr"] > 0 or settings["weight_decay"] < 0:
        raise ValueError(f"--lr must be > 0 and --weight-decay >= 0, "
                         f"got {settings['lr']} and {settings['weight_decay']}")
    if not 0 <= settings["alpha"] <= 1 or settings["gamma"] < 0:
        raise ValueError(f"--alpha must be in [0, 1] and --gamma >= 0, got {settings['alpha']} and "
                         f"{settings['gamma']}")

def resolve_settings(args):
    """The run's settings: the flags over the defaults, or run.json's on --resume.

    On --resume a setting given again must equal the saved one (UsageError otherwise);
    `--epochs` may grow and `--data` may point to where the data set has moved.
    """
    out = Path(args.out)
    given = {key: getattr(args, key) for key in DEFAULTS if getattr(args, key) is not None}
    if args.resume and args.overwrite:
        raise UsageError("--resume continues a run and --overwrite deletes it: give one of them")
    if args.resume:
        run_file = out / "run.json"
        if not run_file.is_file():
            raise UsageError(f"--resume: {out} holds no run.json, so there is no run to continue")
        try:
            saved = json.loads(run_file.read_text())
        except json.JSONDecodeError as error:
            raise UsageError(f"--resume: {run_file} is not readable JSON ({error})") from error
        for key in ("data", "epochs"):
            if key not in saved:
                raise UsageError(f"--resume: {run_file} lacks {key!r}; it was not written by this "
                                 "training script")
        saved = {**DEFAULTS, **saved}
        changed = [f"--{key.replace('_', '-')} {value} (the run has {saved[key]})"
                   for key, value in given.items()
                   if saved[key] != value and key not in CHANGEABLE_ON_RESUME]
        if changed:
            raise UsageError("a resumed run keeps its settings (only --epochs, --data and --lr may "
                             "change); "
                             "these differ: " + ", ".join(changed))
        settings = {key: saved[key] for key in DEFAULTS}
        settings["lr_changes"] = list(saved.get("lr_changes", []))
        if "lr" in given and given["lr"] != saved["lr"]:
            settings["lr"] = given["lr"]
            settings["lr_changes"].append({"from": saved["lr"], "to": given["lr"],
                                           "at": time.strftime("%Y-%m-%d %H:%M:%S")})
        settings["data"] = str(Path(args.data).resolve()) if args.data else saved["data"]
        settings["epochs"] = args.epochs if args.epochs is not None else saved["epochs"]
    else:
        if not args.data:
            raise UsageError("--data is required (the folder in IDRiD's layout)")
        settings = {**DEFAULTS, **given, "data": str(Path(args.data).resolve())}
        settings["epochs"] = args.epochs if args.epochs is not None else DEFAULT_EPOCHS
    try:
        _check_settings(settings)
    except ValueError as error:
        raise UsageError(str(error)) from error
    return settings

def check_data(settings, cache_dir):
    """The training photographs' names, once every photograph and mask of the splits the run
    reads has been decoded, checked and cropped into the cache (which later epochs read).

    UsageError with the expected layout for a wrong folder, and naming the file for a
    photograph or mask that cannot be read, has the wrong size or holds no retinal disc:
    all before the run folder is touched.
    """
    splits = ("train", "test") if settings["val"] == "test" else ("train",)
    try:
        readers = [IDRiD(settings["data"], split) for split in splits]
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(f"--data {settings['data']}: {error}\n{EXPECTED_LAYOUT}") from error
    for reader in readers:
        cache = SquareCache(reader, settings["size"], PREPROCESSING["threshold"], cache_dir)
        for i, name in enumerate(reader.names):
            try:
                cache[i]
            except (FileNotFoundError, ValueError) as error:
                raise UsageError(f"--data {settings['data']}: photograph {name} of the "
                                 f"{reader.split} split "
                                 f"cannot be used: {error}") from error
    return readers[0].names

def check_resume_checkpoints(settings, out):
    """On --resume: every model's last.pt that exists must load; UsageError naming it otherwise."""
    for lesions in models_for_mode(settings["mode"], settings["lesion"]):
        last = Path(out) / group_name(lesions) / "last.pt"
        if not last.exists():
            continue
        try:
            load_checkpoint(last, resume=True)
        except (ValueError, FileNotFoundError) as error:
            best = last.with_name("best.pt")
            advice = (f"{best} may be intact: copy it to {last} to resume from its epoch"
                      if best.is_file() else f"delete {last} to train {group_name(lesions)} from "
                                             "the start")
            raise UsageError(f"--resume: {error}. Nothing was changed; {advice}") from error

def split_train_val(n_images, settings):
    """(train indices, validation indices) into the training split; seeded by --seed."""
    everything = list(range(n_images))
    if settings["val"] != "holdout":
        return everything, []
    if n_images < 2:
        raise UsageError(f"--val holdout needs at least 2 training photographs, found {n_images}; "
                         "use --val none or test")
    n_val = min(n_images - 1, max(1, round(settings["val_fraction"] * n_images)))
    order = np.random.default_rng(settings["seed"]).permutation(n_images)  # (N,)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())

def prepare_run_folder(settings, args, processes, train_names):
    """Check that --out may be used (on every process, before anyone writes), then let process 0
    create it (or delete the earlier run with --overwrite) and write run.json."""
    out = Path(args.out)
    if not args.resume and out.exists():
        if not out.is_dir():
            raise UsageError(f"--out {out} is a file, not a folder")
        if any(out.iterdir()):
            if not args.overwrite:
                raise UsageError(f"--out {out} exists and is not empty: continue that run with "
                                 "--resume, "
                                 "replace it with --overwrite, or choose a new --out (nothing is "
                                 "overwritten)")
            if not (out / "run.json").is_file():
                raise UsageError("--overwrite deletes only a training run folder (one with "
                                 "run.json); "
                                 f"{out} is not one, so it is left alone")
    processes.barrier()
    if processes.main:
        if args.overwrite and out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        swept = sweep_temporaries(out)
        if swept:
            print(f"removed {len(swept)} temporary file(s) that interrupted writes had left in "
                  f"{out}")
        if args.resume:  # what may change on --resume: the epochs, where the data lives, the lr
            record = json.loads((out / "run.json").read_text())
            update = {key: settings[key] for key in ("epochs", "data", "lr", "lr_changes")}
            if any(record.get(key) != value for key, value in update.items()):
                record.update(update)
                with atomic_write(out / "run.json", "w") as file:
                    json.dump(record, file, indent=2)
        else:
            record = {**settings, "command": getattr(args, "command_line", None),
                      "models": [group_name(g)
                                 for g in models_for_mode(settings["mode"], settings["lesion"])],
                      "train_images": train_names[0], "validation_images": train_names[1]}
            with atomic_write(out / "run.json", "w") as file:
                json.dump(record, file, indent=2)
    processes.barrier()
    return out

def write_metrics(path, history):
    """metrics.csv, one row per finished epoch, rewritten whole (atomically) after every epoch."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    with atomic_write(path, "w") as file:
        file.write(buffer.getvalue())
