"""Copy a trained model into the package (u2net_mini/weights) with its provenance.

Run by hand at development time, after training on the shipped data set:

    python scripts/ship_model.py runs/real-mt/MA-HE-EX-SE/best.pt --name xs_mt
    python scripts/ship_model.py runs/real-dt/MA-HE/best.pt --name xs_dt_red

writes `u2net_mini/weights/NAME.pt`, the checkpoint without its resume state (optimizer,
random states, history: an inference-only checkpoint of about 1.2 MB instead of 3.6 MB),
and `NAME.json`, its provenance: the exact training command (from the run's run.json),
the commit the shipping ran at, the SHA-256 of the data set's SHA256SUMS (which lists
every file it trained on), the epochs, the wall time, the machine, the validation scores
by which the epoch was chosen, and the model's AUPR and Dice on the real test split at
the paper's setting (the 512 px square), which tests/test_shipped.py checks again.
Existing files are replaced only with --force.
"""

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from data_prep.atomic import atomic_write
from u2net_mini.checkpoint import INFERENCE_KEYS, load_checkpoint, load_model, save_checkpoint
from u2net_mini.evaluate import score_model
from u2net_mini.roofline import processor_name
from u2net_mini.shipped import WEIGHTS_DIR


def git_commit():
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "u2net_mini",
                                     "data_prep"],
                                    capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return commit, dirty


def ship(checkpoint, name, out_dir, force, cache, command=None):
    checkpoint = Path(checkpoint)
    run_file = checkpoint.parent.parent / "run.json"
    run = json.loads(run_file.read_text())
    if not (command or run.get("command")):
        sys.exit(f"{run_file} does not record the training command; give it with --command")
    payload = load_checkpoint(checkpoint)
    targets = [out_dir / f"{name}.pt", out_dir / f"{name}.json"]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not force:
        sys.exit(f"{existing} exist; pass --force to replace them")
    history = payload["history"]
    best = history[payload["epoch"]] if payload["epoch"] < len(history) else history[-1]
    last = checkpoint.with_name("last.pt")
    # every epoch, past the chosen one
    whole_run = load_checkpoint(last)["history"] if last.is_file() else history
    data = Path(run["data"])
    sums = data / "SHA256SUMS"
    commit, dirty = git_commit()
    model, _ = load_model(checkpoint)
    scores = score_model(model, payload, data, ("test",), cache_dir=cache)
    slim = {key: payload[key] for key in INFERENCE_KEYS}
    slim["mode"] = payload.get("mode")
    record = {
        "name": name,
        "lesions": list(payload["lesions"]),
        "command": command or run.get("command"),
        "settings": {key: (os.path.relpath(value, Path.cwd()) if key == "data" else value)
                     for key, value in run.items()
                     if key not in ("train_images", "validation_images", "command")},
        "commit": commit,
        "uncommitted_changes_in_code": dirty,
        "code_note": ("the commit the model was shipped from; with uncommitted changes, the "
                      "training code is the one that lands together with these weights" if dirty
                      else "the commit the model was shipped from"),
        "data": {"folder": os.path.relpath(data, Path.cwd()),
                 "SHA256SUMS_sha256": (hashlib.sha256(sums.read_bytes()).hexdigest()
                                       if sums.is_file() else None),
                 "train_images": len(run["train_images"]),
                 "validation_images": run["validation_images"]},
        "epochs_run": len(whole_run),
        "chosen_epoch": best["epoch"],
        "chosen_by": f"val_aupr_mean on the held-out training photographs (--val {run['val']})",
        "wall_time_s": round(sum(row["seconds"] for row in whole_run), 1),
        "machine": {"cpu": processor_name(), "cores": os.cpu_count(), "torch": torch.__version__,
                    "python": platform.python_version()},
        "validation": {key: value for key, value in best.items() if key.startswith("val_")},
        "test_512px_square": {"aupr": scores.aupr(), "dice": scores.dice(),
                              "note": "IDRiD_55-81, pooled over all pixels at the 512 px square; "
                                      "reported, never used to choose"},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(targets[0], slim)
    record["checkpoint_sha256"] = hashlib.sha256(targets[0].read_bytes()).hexdigest()
    with atomic_write(targets[1], "w") as file:
        json.dump(record, file, indent=2)
        file.write("\n")
    print(json.dumps({k: record[k] for k in ("name", "chosen_epoch", "validation",
                                             "test_512px_square")}, indent=2))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="best.pt of a training run on the shipped data set")
    parser.add_argument("--name", required=True, help="file name in u2net_mini/weights, e.g. xs_mt")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--cache", default=None, help="cache folder for the resized photographs")
    parser.add_argument("--force", action="store_true", help="replace an earlier shipped model of "
                                                             "this name")
    parser.add_argument("--command", help="the training command, for a run.json written before "
                                          "train recorded it")
    args = parser.parse_args(argv)
    ship(args.checkpoint, args.name, args.out, args.force, args.cache, args.command)


if __name__ == "__main__":
    main()
