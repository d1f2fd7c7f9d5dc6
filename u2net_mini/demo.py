"""
# `make demo`: the whole system on built-in data, on a 2-core CPU in under 10 minutes

`python -m u2net_mini.demo` runs the paper's pipeline end to end, with nothing but this
repository:

1. paints the synthetic IDRiD-like set (`data_prep.synthetic`: 54 training and 27 test
   photographs, in IDRiD's layout);
2. trains U²-XS-Net multi-task on the CPU (`u2net_mini.train`), small and short:
   `SIZE` px instead of 512, `EPOCHS` epochs instead of 400, otherwise the paper's
   protocol (Adam 1e-3, deep supervision, α = 0.75, γ = 1, augmentation). So that the
   demo ends within `--minutes` (10) even on a slow or busy machine, training stops
   early (`train --max-minutes`) when the next epoch would not leave 1.5 minutes for the
   rest; the summary then says how many epochs it trained, and `train --resume` on the
   run folder finishes them;
3. evaluates `best.pt` on the synthetic test split (`u2net_mini.evaluate`, the Table-1
   row) and, as a sim-to-real figure, on the two real IDRiD photographs shipped in
   `data_prep/samples` (hard exudates only: the sample has EX masks alone);
4. writes overlays (`u2net_mini.predict`) for a synthetic test photograph and the real
   IDRiD_55;
5. prints where everything is.

Everything goes into a new folder, `runs/demo-YYYYmmdd-HHMMSS` (or `--out`, which must be
new or empty): an earlier demo is never overwritten. The resized-photograph cache lives
inside it too. docs/results.md records its time and scores. The loss walkthrough that
this command printed before training existed is `python -m u2net_mini.worked_example`.

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

from data_prep.samples import sample_root
from data_prep.synthetic import write_idrid_layout

from . import predict, train
from .checkpoint import load_checkpoint
from .evaluate import evaluate, write_results
from .report import format_score, results_table

SIZE = 160  # network input, px
EPOCHS = 40
BUDGET_MINUTES = 10.0  # the whole demo
RESERVE_MINUTES = 1.5  # kept for evaluation and overlays when the training's time is set
BATCH_SIZE = 4
N_TRAIN, N_TEST = 54, 27  # as many photographs as IDRiD
SEED = 0


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
                                     description="The main job: synthetic data, training, Table 1, overlays.")
    parser.add_argument("--out", help="a new (or empty) folder (default runs/demo-YYYYmmdd-HHMMSS)")
    parser.add_argument("--size", type=int, default=SIZE, help=f"network input in px (default {SIZE})")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"training epochs (default {EPOCHS})")
    parser.add_argument("--n-train", type=int, default=N_TRAIN, help=f"synthetic training photographs ({N_TRAIN})")
    parser.add_argument("--n-test", type=int, default=N_TEST, help=f"synthetic test photographs ({N_TEST})")
    parser.add_argument("--threads", default="auto", help="torch CPU threads, or auto (default)")
    parser.add_argument("--minutes", type=float, default=BUDGET_MINUTES,
                        help=f"time for the whole demo; training stops early to keep it (default {BUDGET_MINUTES:g})")
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
        print(f"error: {out} exists and is not empty; the demo writes only into a new folder", file=sys.stderr)
        return 2
    threads = choose_threads(args.threads)
    data, run, cache = out / "data", out / "run", out / "cache"
    print(f"u2net_mini demo into {out} ({threads} CPU thread{'s' * (threads > 1)})")

    with Step(f"1. synthetic IDRiD-like data: {args.n_train} training + {args.n_test} test photographs"):
        write_idrid_layout(data, args.n_train, args.n_test, size=args.size, seed=SEED)

    with Step(f"2. training U²-XS-Net, multi-task, {args.size} px, {args.epochs} epoch{'s' * (args.epochs != 1)}, CPU"):
        minutes_left = args.minutes - RESERVE_MINUTES - (time.perf_counter() - began) / 60
        code = train.main(["--data", str(data), "--out", str(run), "--mode", "mt", "--model", "xs",
                           "--size", str(args.size), "--epochs", str(args.epochs), "--batch-size", str(BATCH_SIZE),
                           "--seed", str(SEED), "--device", "cpu", "--threads", str(threads), "--cache", str(cache),
                           "--max-minutes", f"{max(minutes_left, 0.1):.2f}"])
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
        synthetic_files = write_results(synthetic_rows, out / "eval-synthetic-test", data, ["test"])
        print(results_table(synthetic_rows))

    with Step("4. sim to real: the two real IDRiD photographs (EX masks only)"):
        real_rows = evaluate([checkpoint], sample_root(), ["train", "test"], cache_dir=cache)
        real_files = write_results(real_rows, out / "eval-real-idrid-sample", "data_prep/samples/idrid",
                                   ["train", "test"])
        print(f"   hard exudates (EX) AUPR on IDRiD_01 + IDRiD_55: {format_score(real_rows[0]['aupr']['EX'])}")

    with Step("5. overlays"):
        synthetic_image = sorted((data / "A. Segmentation" / "1. Original Images" / "b. Testing Set").glob("*.jpg"))[0]
        real_image = sample_root() / "A. Segmentation" / "1. Original Images" / "b. Testing Set" / "IDRiD_55.jpg"
        overlays = {"synthetic": synthetic_image, "real": real_image}  # both are called IDRiD_55
        for kind, image in overlays.items():
            code = predict.main([str(image), "--checkpoint", str(checkpoint), "--out", str(out / "overlays" / kind),
                                 "--device", "cpu"])
            if code != 0:
                print(f"error: prediction failed (exit code {code})", file=sys.stderr)
                return 1

    minutes = (time.perf_counter() - began) / 60
    row = synthetic_rows[0]
    print(f"\n== done in {minutes:.1f} min. Everything is in {out}/")
    print(f"   data         {data}  (synthetic, IDRiD layout)")
    print(f"   model        {checkpoint}  (epoch {best_epoch} of the {len(history)} trained"
          f"{'' if len(history) == args.epochs else f' of {args.epochs}: the time ran out'}; "
          "last.pt, metrics.csv, curves.png beside it)")
    print(f"   Table 1      {synthetic_files[0]}  (synthetic test: mean AUPR {format_score(row_mean(row))}; "
          f"PR curves {synthetic_files[1].name})")
    print(f"   sim-to-real  {real_files[0]}  (real IDRiD sample: EX AUPR {format_score(real_rows[0]['aupr']['EX'])})")
    for kind, image in overlays.items():
        print(f"   overlay      {out / 'overlays' / kind / (image.stem + '_overlay.png')}  ({kind} {image.name})")
    print("   next: docs/training.md (the full protocol on IDRiD), docs/results.md (recorded numbers)")
    return 0


def row_mean(row):
    values = list(row["aupr"].values())
    return sum(values) / len(values)


if __name__ == "__main__":
    sys.exit(main())
