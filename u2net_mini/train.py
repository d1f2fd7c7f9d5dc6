r"""
# Training: the paper's protocol as one script

    python -m u2net_mini.train --data /path/to/IDRiD --mode mt --out runs/mt
    torchrun --nproc_per_node 2 -m u2net_mini.train --data ... --out runs/mt   # several processes

trains the U²-Net of Siebert & Rostalski (MIDL 2021, Section 3) on photographs in IDRiD's
layout (the real data set or `data_prep.synthetic`'s). docs/training.md is the user's guide.

## The paper's protocol, and the flags that change it

| | paper | here (default) | flag |
|---|---|---|---|
| optimizer | Adam, lr 1e-3, weight decay 1e-4 | the same | `--lr`, `--weight-decay` |
| schedule | lr × 0.75 every 15 epochs from epoch 115 | `schedule.lr_at_epoch` | |
| epochs | 400 | 400 | `--epochs` |
| input | 512 × 512 | 512 | `--size` |
| loss | fused + 6 sides, α 0.75, γ 1 | `losses.deep_supervision_loss` | `--alpha`, `--gamma` |
| augmentation | rotation, shift, scale, flips | `data_prep.augment` | `--augment` |
| models | st: 1 per lesion, dt: red + white, mt: 1 | `models_for_mode` | `--mode`, `--lesion` |

## What the paper leaves open, and what we chose

- **Validation.** IDRiD has a training and a test split only, and `best.pt` needs a score
  to be the best by. By default (`--val holdout`) a seeded 10 % of the training
  photographs (`--val-fraction`, at least one) is held out of training and scores every
  epoch; the held-out names are in `run.json`. `--val test` scores on the test split
  instead (all training photographs train, but `best.pt` is then chosen on the test set
  and its test score is optimistic); `--val none` trains on everything and `best.pt` is
  simply the last epoch.
- **Normalization.** Mean and std per channel of the photographs that train (held-out
  ones excluded), inside the retinal disc, after CLAHE; saved in every checkpoint.
- **Batch size** is not given in the paper; 4 photographs per process by default.
- **Epochs are counted from 1** in `metrics.csv`, messages and the progress bar; the
  checkpoint's `epoch` is the last finished epoch counted from 0 (resume starts at
  `epoch + 1`), and `lr_at_epoch` takes the epoch counted from 0.

## Where the parts live

| file | what |
|---|---|
| `training_run.py` | flags, settings, `--resume` and data checks, the run folder, `metrics.csv` |
| `train_loop.py` | one step, one epoch, validation |
| `processes.py` | one process or several under `torchrun` (DDP) |
| this file | one model, epoch after epoch (`train_model`); the whole run (`run`, `main`) |
"""

import math
import shlex
import sys
import time

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from data_prep.checks import check_positive_flag

from .checkpoint import load_checkpoint, load_weights, rng_state, save_checkpoint, set_rng_state
from .lesions import models_for_mode
from .model import build_model
from .processes import Processes, average_buffers, main_says, out_of_time
from .report import plot_training_curves
from .schedule import stretched_lr
from .train_loop import (
    Data,
    NonFiniteLoss,
    non_finite_tensors,
    train_epoch,
    training_stats,
    validate,
)
from .training_run import (
    PREPROCESSING,
    UsageError,
    build_parser,
    check_data,
    check_resume_checkpoints,
    group_name,
    parse_args,
    prepare_run_folder,
    resolve_settings,
    split_train_val,
    write_metrics,
)

__all__ = ["build_parser", "main", "parse_args", "run", "train_model", "NonFiniteLoss",
           "UsageError"]


def learning_rate(epoch, settings):
    """The rate of `epoch` (from 0): the paper's schedule, stretched to --schedule-epochs."""
    return stretched_lr(epoch, settings["lr"], settings["schedule_epochs"])


def divergence_message(label, error, last_path, settings, out):
    """What stopped the run, which checkpoint is the last good one, and a command that continues."""
    lower = settings["lr"] / 10
    if last_path.is_file():
        epoch = load_checkpoint(last_path)["epoch"] + 1
        kept = (f"{last_path} (epoch {epoch}) holds the last good weights "
                "(no checkpoint with non-finite values is written)")
        advice = ("continue from it with a lower learning rate: "
                  f"python -m u2net_mini.train --out {out} --resume --lr {lower:g}")
    else:
        kept = "no epoch had finished, so there is no checkpoint"
        advice = ("start again with a lower learning rate: "
                  f"python -m u2net_mini.train --out {out} --overwrite --data {settings['data']} "
                  f"--lr {lower:g} (and the run's other flags)")
    return f"training {label} stopped: {error}; {kept}. Check the data, or {advice}"


def _better(score, best):
    if best is None:
        return True
    if math.isnan(score):
        return False
    return math.isnan(best) or score > best


# --------------------------------------------------------------------------- one model


def train_model(lesions, settings, runtime, processes, folder, split):
    """Train (or resume) the model of `lesions` in `folder`; returns the model (not wrapped)."""
    label = group_name(lesions)
    model, optimizer, start, history, mean, std = _start(lesions, settings, runtime,
                                                         processes.device, folder)
    if start >= settings["epochs"]:
        if processes.main:
            print(f"{label}: already trained for {start} epochs (--epochs {settings['epochs']})")
        return model
    if mean is None:
        mean, std = training_stats(settings["data"], split[0], settings["size"], runtime["cache"])
    data = Data(lesions, settings, runtime["cache"], mean, std, *split)
    net, sampler, loader = _parallel(model, data, settings, runtime, processes)
    best = None
    for row in history:
        best = row["val_aupr_mean"] if _better(row["val_aupr_mean"], best) else best
    payload = {
        "model_config": model.config, "lesions": lesions, "input_size": settings["size"],
        "mean": mean, "std": std, "preprocessing": PREPROCESSING, "mode": settings["mode"],
        "run": {key: settings[key] for key in sorted(settings)},
        "scheduler": {"name": "lr_at_epoch", "lr0": settings["lr"], "start": 115, "every": 15,
                      "factor": 0.75, "schedule_epochs": settings["schedule_epochs"]},
    }
    previous_seconds = 0.0
    for epoch in range(start, settings["epochs"]):
        if out_of_time(runtime["deadline"], previous_seconds, processes):
            if processes.main:
                print(f"{label}: stopped before epoch {epoch + 1} of {settings['epochs']}, as it "
                      "would end past --max-minutes; continue with --resume")
            break
        began = time.perf_counter()
        lr = learning_rate(epoch, settings)
        for group in optimizer.param_groups:
            group["lr"] = lr
        data.full_train.set_epoch(epoch)
        sampler.set_epoch(epoch)
        row = {"epoch": epoch + 1, "lr": lr}
        row.update(_train_and_validate(net, model, loader, optimizer, data, settings, runtime,
                                       processes, epoch, label, folder / "last.pt"))
        if not processes.main:
            continue
        row["seconds"] = time.perf_counter() - began
        history.append(row)
        payload.update(state_dict=model.state_dict(), epoch=epoch, optimizer=optimizer.state_dict(),
                       rng=rng_state(), history=history, val_aupr_mean=row["val_aupr_mean"])
        # best.pt first: a kill between the two writes then leaves last.pt one epoch behind
        # (resume repeats that epoch), never a best epoch that metrics.csv names but best.pt lacks
        if _better(row["val_aupr_mean"], best) or data.val is None:
            best = row["val_aupr_mean"]
            save_checkpoint(folder / "best.pt", payload)
        save_checkpoint(folder / "last.pt", payload)
        write_metrics(folder / "metrics.csv", history)
        _report_epoch(label, row, settings, data.val is not None)
        previous_seconds = row["seconds"]
    if processes.main and history:
        plot_training_curves(history, folder / "curves.png")
    return model


def _start(lesions, settings, runtime, device, folder):
    """(model, optimizer, first epoch, history, mean, std): fresh, or from last.pt on --resume
    (mean and std None when they are still to be measured)."""
    torch.manual_seed(settings["seed"])
    model = build_model(settings["model"], len(lesions)).to(device)
    if runtime["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"],
                                 weight_decay=settings["weight_decay"])
    last_path = folder / "last.pt"
    if not (runtime["resume"] and last_path.is_file()):
        return model, optimizer, 0, [], None, None
    payload = load_checkpoint(last_path, resume=True, map_location=device, expect={
        "lesions": lesions, "model_config": model.config, "input_size": settings["size"]})
    load_weights(model, payload["state_dict"])
    optimizer.load_state_dict(payload["optimizer"])
    set_rng_state(payload["rng"])
    start, history = payload["epoch"] + 1, list(payload["history"])
    return model, optimizer, start, history, payload["mean"], payload["std"]


def _parallel(model, data, settings, runtime, processes):
    """(net, sampler, loader): the model as this process trains it (DDP-wrapped under
    torchrun) and this process's share of the training photographs."""
    device = processes.device
    net = model
    if processes.world > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=device_ids)
    sampler = DistributedSampler(data.train, processes.world, processes.rank, shuffle=True,
                                 seed=settings["seed"])
    loader = DataLoader(data.train, batch_size=settings["batch_size"], sampler=sampler,
                        num_workers=runtime["workers"], pin_memory=device.type == "cuda")
    return net, sampler, loader


def _train_and_validate(net, model, loader, optimizer, data, settings, runtime, processes, epoch,
                        label, last_path):
    """One epoch's metrics.csv columns after `lr`: its losses and (process 0) validation.
    `NonFiniteLoss` with the advice of `divergence_message` when anything became non-finite."""
    lesions = data.lesions
    try:
        row = train_epoch(net, loader, optimizer, settings, runtime, processes, epoch, label)
        average_buffers(model, processes.world)
        broken = non_finite_tensors(model)
        if broken:  # a last step can wreck the weights while its own loss was finite
            raise NonFiniteLoss(f"after epoch {epoch + 1} the weights hold non-finite values "
                                f"({len(broken)} tensors, e.g. {broken[0]})")
        failed = None
        if processes.main and data.val is not None:
            try:
                row.update(validate(model, data, settings, runtime, processes.device, lesions))
            except NonFiniteLoss as error:
                failed = error
        if main_says(failed is not None, processes):  # every process stops, not process 0 alone
            raise failed or NonFiniteLoss(f"process 0's validation after epoch {epoch + 1} "
                                          f"gave non-finite outputs")
    except NonFiniteLoss as error:
        message = divergence_message(label, error, last_path, settings, runtime["out"])
        raise NonFiniteLoss(message) from error
    if data.val is None:
        row.update({"val_loss": float("nan"), **{f"val_aupr_{n}": float("nan") for n in lesions},
                    "val_aupr_mean": float("nan")})
    return row


def _report_epoch(label, row, settings, validated):
    validation = f"val mean AUPR {row['val_aupr_mean']:.3f}" if validated else "no validation"
    tqdm.write(f"{label} epoch {row['epoch']}/{settings['epochs']}: loss {row['train_loss']:.4f}, "
               f"lr {row['lr']:.2e}, {validation}, {row['seconds']:.1f} s")


# --------------------------------------------------------------------------- the whole run


def run(args):
    """Train every model of the run; returns {folder name: model} (on every process)."""
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise UsageError(f"--max-minutes must be positive, got {args.max_minutes}")
    deadline = None if args.max_minutes is None else time.monotonic() + 60 * args.max_minutes
    settings = resolve_settings(args)
    workers = args.workers
    if args.threads is not None:
        try:
            check_positive_flag("--threads", args.threads)
        except ValueError as error:
            raise UsageError(str(error)) from error
        torch.set_num_threads(args.threads)
    processes = Processes(args.device)
    try:
        names = check_data(settings, args.cache)
        if args.resume:
            check_resume_checkpoints(settings, args.out)
        train_indices, val_indices = split_train_val(len(names), settings)
        out = prepare_run_folder(settings, args, processes, (
            [names[i] for i in train_indices], [names[i] for i in val_indices]))
        if workers is None:
            workers = 4 if processes.device.type == "cuda" else 0
        runtime = {"resume": args.resume, "deadline": deadline, "bf16": args.bf16,
                   "channels_last": args.channels_last, "out": out,
                   "no_progress": args.no_progress, "cache": args.cache, "workers": workers}
        if processes.main:
            print(f"training {settings['mode']} ({settings['model']}, {settings['size']} px, "
                  f"{settings['epochs']} epochs) on {processes.device} × {processes.world} "
                  f"into {out}")
        models = {}
        for lesions in models_for_mode(settings["mode"], settings["lesion"]):
            folder = out / group_name(lesions)
            models[group_name(lesions)] = train_model(lesions, settings, runtime, processes, folder,
                                                      (train_indices, val_indices))
        processes.barrier()
        return models
    finally:
        processes.close()


def main(argv=None):
    """The command line; returns the exit code (0 done, 1 non-finite loss, 2 bad input,
    130 Ctrl-C)."""
    args = parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    args.command_line = "python -m u2net_mini.train " + shlex.join(given)
    try:
        run(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except NonFiniteLoss as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: every finished epoch is in the last.pt files under {args.out}; "
              f"continue with: python -m u2net_mini.train --out {args.out} --resume",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
