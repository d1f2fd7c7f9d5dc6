"""
# `make demo`: the whole system on the real data it ships, on a 2-core CPU in under 10 minutes

`python -m u2net_mini.demo` runs the paper's pipeline end to end on real IDRiD, with
nothing but this repository:

1. **Table 1 on the real test split**: the U²-XS-Net multi-task model shipped in the
   package (`u2net_mini.shipped`, trained by this project on the 54 real training
   photographs) scores the 27 real test photographs of `data_prep/shipped/idrid`
   (`u2net_mini.evaluate`): AUPR per lesion and Dice, at the paper's setting (the 512 px
   square) and in the photographs' own frame, beside the paper's Table 1;
2. **a short real training run**, so the protocol is seen at work: U²-XS-Net multi-task
   on the real training photographs with the project's CPU protocol (512 px squares,
   random 256 px lesion-seeking patches, the paper's loss, augmentation and optimizer,
   the learning-rate schedule compressed to `EPOCHS` epochs; docs/training.md), with the
   per-epoch validation AUPR on held-out training photographs and the training curves.
   So that the demo ends within `--minutes` (10) even on a slow or busy machine,
   training stops early (`train --max-minutes`) when the next epoch would not leave
   `RESERVE_MINUTES` for the rest; the summary says how many epochs it trained, and
   `train --resume` on the run folder finishes them;
3. **overlays** of real test photographs by the shipped model (`u2net_mini.predict`):
   `OVERLAY_PHOTOGRAPHS`, chosen to show what it finds and what it misses;
4. prints where everything is.

`--data synthetic` runs the earlier demo instead: it paints the synthetic IDRiD-like set
(`data_prep.synthetic`, known truth), trains on it at `SYNTHETIC_SIZE` px and scores it.

Everything goes into a new folder, `runs/demo-YYYYmmdd-HHMMSS` (or `--out`, which must be
new or empty): an earlier demo is never overwritten. The resized-photograph cache lives
inside it too. docs/results.md records its time and scores. The loss walkthrough is
`python -m u2net_mini.worked_example`.

**Threads.** torch uses one thread per core. When other programs keep the cores busy,
threads that wait for each other make a step many times slower, so with `--threads auto`
the demo takes one thread when the load average shows the machine busy (the training is
then still under the time budget), and all cores otherwise.
"""

import argparse
import os
import sys
import time
from datetime import datetime
from pathlib import Path

from data_prep.shipped import idrid_root
from data_prep.synthetic import write_idrid_layout

from . import predict, train
from .checkpoint import load_checkpoint
from .evaluate import FRAME_TITLES, evaluate, evaluate_frames, write_results
from .inference import bf16_supported
from .metrics import lesion_mean
from .report import format_score, paper_table, results_table
from .shipped import shipped_checkpoints

SIZE, PATCH = 512, 256  # the real run: the paper's 512 px square, trained on 256 px patches
EPOCHS = 30  # the real run's epochs, with the learning-rate schedule compressed to them
SYNTHETIC_SIZE, SYNTHETIC_EPOCHS = 160, 40
BUDGET_MINUTES = 10.0  # the whole demo
RESERVE_MINUTES = 1.0  # kept for the overlays when the training's time is set
SYNTHETIC_RESERVE_MINUTES = 1.5  # kept for evaluation and overlays (--data synthetic)
BATCH_SIZE = 4
N_TRAIN, N_TEST = 54, 27  # as many synthetic photographs as IDRiD has real ones
SEED = 0
# Real test photographs to overlay, chosen to show successes and failures
# (docs/results.md): IDRiD_55, hundreds of hard exudates; IDRiD_59, soft exudates and
# exudates; IDRiD_61, large haemorrhages and many microaneurysms
OVERLAY_PHOTOGRAPHS = ("IDRiD_55", "IDRiD_59", "IDRiD_61")


def new_run_folder(parent="runs", now=None):
    """`parent/demo-YYYYmmdd-HHMMSS`, with -2, -3, … appended while that name is taken."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    folder = Path(parent) / f"demo-{stamp}"
    number = 2
    while folder.exists():
        folder = Path(parent) / f"demo-{stamp}-{number}"
        number += 1
    return folder


def choose_threads(choice):
    """`auto`: one thread when the 1-minute load average says the cores are busy, else all."""
    if choice != "auto":
        return int(choice)
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return 1 if load > cores - 0.5 else cores


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m u2net_mini.demo",
                                     description="The main job on the real data set it ships: "
                                                 "Table 1 of the shipped model on the real test "
                                                 "split, a short real training run, overlays.",
                                     epilog="exit codes: 0 done, 1 a step failed, 2 --out in use")
    parser.add_argument("--out", help="a new (or empty) folder (default runs/demo-YYYYmmdd-HHMMSS)")
    parser.add_argument("--data", choices=("real", "synthetic"), default="real",
                        help="real: the shipped IDRiD copy and models (default); synthetic: "
                             "paint a synthetic set and train on it")
    parser.add_argument("--size", type=int, help=f"network input of the training run in px "
                        f"(default {SIZE} real, {SYNTHETIC_SIZE} synthetic)")
    parser.add_argument("--patch", type=int, default=PATCH,
                        help=f"real training: side of the training patches (default {PATCH}; at "
                             "most --size)")
    parser.add_argument("--epochs", type=int, help=f"training epochs (default {EPOCHS} real, "
                        f"{SYNTHETIC_EPOCHS} synthetic)")
    parser.add_argument("--n-train", type=int, default=N_TRAIN,
                        help=f"--data synthetic: training photographs (default {N_TRAIN})")
    parser.add_argument("--n-test", type=int, default=N_TEST, help="--data synthetic: test "
                                                                   f"photographs ({N_TEST})")
    parser.add_argument("--threads", default="auto", help="torch CPU threads, or auto (default)")
    parser.add_argument("--minutes", type=float, default=BUDGET_MINUTES,
                        help="time for the whole demo; training stops early to keep it (default "
                             f"{BUDGET_MINUTES:g})")
    return parser


class Step:
    """Prints a step's title and, when it ends, how long it took."""

    def __init__(self, title):
        self.title = title

    def __enter__(self):
        print(f"\n== {self.title}", flush=True)
        self.began = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.began
        if exc[0] is None:
            print(f"   ({self.seconds:.0f} s)", flush=True)


def main(argv=None):
    """The demo; returns the exit code (0 done, 2 when --out is in use, 1 when a step failed)."""
    args = build_parser().parse_args(argv)
    began = time.perf_counter()
    out = Path(args.out) if args.out else new_run_folder()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        print(f"error: {out} exists and is not empty; the demo writes only into a new "
              "folder", file=sys.stderr)
        return 2
    threads = choose_threads(args.threads)
    print(f"u2net_mini demo on {args.data} data into {out} ({threads} CPU "
          f"thread{'s' * (threads > 1)})")
    if args.data == "synthetic":
        return synthetic_demo(args, out, threads, began)
    return real_demo(args, out, threads, began)


def train_briefly(argv, args, began, reserve):
    """`train.main` with --max-minutes set so that `reserve` minutes stay; the exit code."""
    minutes_left = args.minutes - reserve - (time.perf_counter() - began) / 60
    return train.main(argv + ["--max-minutes", f"{max(minutes_left, 0.1):.2f}"])


def real_demo(args, out, threads, began):
    # The demo's script, step by step as it prints: longer than 60 lines, read top to bottom.
    size, epochs = args.size or SIZE, args.epochs or EPOCHS
    patch = min(args.patch, size)
    run, cache = out / "run", out / "cache"
    test_images = idrid_root() / "A. Segmentation" / "1. Original Images" / "b. Testing Set"

    with Step("1. Table 1 on the real IDRiD test split (27 photographs): the shipped U²-XS-Net, "
              "multi-task"):
        by_frame = evaluate_frames(shipped_checkpoints("mt"), idrid_root(), ["test"],
                                   cache_dir=cache)
        table_files = write_results(by_frame, out / "eval-shipped-test",
                                    "data_prep/shipped/idrid", ["test"])
        for frame, rows in by_frame.items():
            print(f"   {FRAME_TITLES[frame]}:\n")
            print(results_table(rows))
        print("   the paper's Table 1:\n")
        print(paper_table())

    bf16 = bf16_supported("cpu")
    with Step(f"2. training U²-XS-Net on the real training photographs: {size} px squares, "
              f"{patch} px patches, "
              f"{epochs} epoch{'s' * (epochs != 1)}{', bfloat16' if bf16 else ''}, CPU"):
        code = train_briefly(["--data", str(idrid_root()), "--out", str(run), "--mode", "mt",
                              "--model", "xs", "--size", str(size), "--patch", str(patch),
                              "--epochs", str(epochs), "--schedule-epochs", str(epochs),
                              "--batch-size", str(BATCH_SIZE), "--seed", str(SEED),
                              "--device", "cpu", "--threads", str(threads), "--cache", str(cache),
                              "--channels-last", "--no-progress"] + (["--bf16"] if bf16 else []),
                             args, began, RESERVE_MINUTES)
        if code != 0:
            print(f"error: training failed (exit code {code})", file=sys.stderr)
            return 1
    folder = run / "MA-HE-EX-SE"
    if not (folder / "best.pt").is_file():
        print(f"error: not one epoch fitted in --minutes {args.minutes:g}", file=sys.stderr)
        return 1
    history = load_checkpoint(folder / "last.pt")["history"]
    last = history[-1]

    photographs = [test_images / f"{name}.jpg" for name in OVERLAY_PHOTOGRAPHS]
    with Step("3. overlays of real test photographs by the shipped model: "
              f"{', '.join(OVERLAY_PHOTOGRAPHS)}"):
        code = predict.main([*map(str, photographs), "--out", str(out / "overlays"),
                             "--device", "cpu"])
        if code != 0:
            print(f"error: prediction failed (exit code {code})", file=sys.stderr)
            return 1

    minutes = (time.perf_counter() - began) / 60
    square = by_frame["square"][0]
    print(f"\n== done in {minutes:.1f} min. Everything is in {out}/")
    print(f"   Table 1      {table_files[0]}  (shipped XS-MT, real test split, 512 px square: mean "
          "AUPR "
          f"{format_score(row_mean(square))}; the paper's XS-MT: 0.64)")
    print(f"   training     {folder / 'curves.png'}  ({len(history)} of {epochs} epochs"
          f"{'' if len(history) == epochs else ': the time ran out, --resume finishes them'}; last "
          "validation "
          f"mean AUPR {format_score(last['val_aupr_mean'])}; best.pt, last.pt, metrics.csv beside "
          "it)")
    for photograph in photographs:
        print(f"   overlay      {out / 'overlays' / (photograph.stem + '_overlay.png')}  (real "
              f"{photograph.name})")
    print("   next: docs/results.md (how the shipped model was trained, Table 1), docs/training.md "
          "(the protocol)")
    return 0


def synthetic_demo(args, out, threads, began):
    # The demo's script, step by step as it prints: longer than 60 lines, read top to bottom.
    size, epochs = args.size or SYNTHETIC_SIZE, args.epochs or SYNTHETIC_EPOCHS
    data, run, cache = out / "data", out / "run", out / "cache"
    with Step(f"1. synthetic IDRiD-like data: {args.n_train} training + {args.n_test} test "
              "photographs"):
        write_idrid_layout(data, args.n_train, args.n_test, size=size, seed=SEED)

    with Step(f"2. training U²-XS-Net, multi-task, {size} px, {epochs} epoch{'s' * (epochs != 1)}, "
              "CPU"):
        code = train_briefly(["--data", str(data), "--out", str(run), "--mode", "mt",
                              "--model", "xs", "--size", str(size), "--epochs", str(epochs),
                              "--batch-size", str(BATCH_SIZE), "--seed", str(SEED),
                              "--device", "cpu", "--threads", str(threads), "--cache", str(cache)],
                             args, began, SYNTHETIC_RESERVE_MINUTES)
        if code != 0:
            print(f"error: training failed (exit code {code})", file=sys.stderr)
            return 1
    checkpoint = run / "MA-HE-EX-SE" / "best.pt"
    if not checkpoint.is_file():
        print(f"error: not one epoch fitted in --minutes {args.minutes:g}", file=sys.stderr)
        return 1
    history = load_checkpoint(run / "MA-HE-EX-SE" / "last.pt")["history"]
    best_epoch = load_checkpoint(checkpoint)["epoch"] + 1

    with Step("3. evaluation on the synthetic test split (Table 1)"):
        synthetic_rows = evaluate([checkpoint], data, ["test"], cache_dir=cache)
        synthetic_files = write_results({"square": synthetic_rows}, out / "eval-synthetic-test",
                                        data, ["test"])
        print(results_table(synthetic_rows))

    with Step("4. sim to real: the model trained on synthetic photographs, on the real IDRiD test "
              "split"):
        real_rows = evaluate([checkpoint], idrid_root(), ["test"], cache_dir=cache)
        real_files = write_results({"square": real_rows}, out / "eval-real-test",
                                   "data_prep/shipped/idrid", ["test"])
        print(results_table(real_rows))

    with Step("5. overlays"):
        synthetic_image = sorted((data / "A. Segmentation" / "1. Original Images"
                                  / "b. Testing Set").glob("*.jpg"))[0]
        real_image = (idrid_root() / "A. Segmentation" / "1. Original Images" / "b. Testing Set"
                      / "IDRiD_55.jpg")
        overlays = {"synthetic": synthetic_image, "real": real_image}  # both are called IDRiD_55
        for kind, image in overlays.items():
            code = predict.main([str(image), "--checkpoint", str(checkpoint),
                                 "--out", str(out / "overlays" / kind), "--device", "cpu"])
            if code != 0:
                print(f"error: prediction failed (exit code {code})", file=sys.stderr)
                return 1

    minutes = (time.perf_counter() - began) / 60
    row = synthetic_rows[0]
    print(f"\n== done in {minutes:.1f} min. Everything is in {out}/")
    print(f"   data         {data}  (synthetic, IDRiD layout)")
    print(f"   model        {checkpoint}  (epoch {best_epoch} of the {len(history)} trained"
          f"{'' if len(history) == epochs else f' of {epochs}: the time ran out'}; "
          "last.pt, metrics.csv, curves.png beside it)")
    print(f"   Table 1      {synthetic_files[0]}  (synthetic test: mean AUPR "
          f"{format_score(row_mean(row))}; "
          f"PR curves {synthetic_files[1].name})")
    print(f"   sim-to-real  {real_files[0]}  (real IDRiD test split: mean AUPR "
          f"{format_score(row_mean(real_rows[0]))})")
    for kind, image in overlays.items():
        print(f"   overlay      {out / 'overlays' / kind / (image.stem + '_overlay.png')}  ({kind} "
              f"{image.name})")
    print("   next: docs/training.md (the full protocol on IDRiD), docs/results.md (recorded "
          "numbers)")
    return 0


def row_mean(row):
    return lesion_mean(row["aupr"].values())


if __name__ == "__main__":
    sys.exit(main())
