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
| schedule | lr × 0.75 every 15 epochs from epoch 115 | `equations.lr_at_epoch` | |
| epochs | 400 | 400 | `--epochs` |
| input | 512 × 512 | 512 | `--size` |
| loss | fused + 6 side outputs, α = 0.75, γ = 1 | `losses.deep_supervision_loss` | `--alpha`, `--gamma` |
| augmentation | rotation, shift, scale, flips | `data_prep.augment` | `--augment` |
| models | st: 1 per lesion, dt: red + white, mt: 1 | `lesions.models_for_mode` | `--mode`, `--lesion` |

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

## Several processes

Under `torchrun` (the environment variables `WORLD_SIZE`, `RANK`, `LOCAL_RANK`) the model
is wrapped in DistributedDataParallel (gloo on the CPU, nccl on GPUs), every process
trains on its own share of each epoch (`DistributedSampler`; `--batch-size` is per
process) and only process 0 validates and writes. Gradients are averaged by DDP; batch
norm's running statistics, which DDP does not average, are averaged at the end of every
epoch, so every process ends with the same weights and buffers.
"""

import argparse
import csv
import io
import json
import math
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from data_prep.checks import check_positive_flag
from data_prep.dataset import LesionDataset, SquareCache, dataset_stats
from data_prep.fundus import DISC_THRESHOLD
from data_prep.idrid import EXPECTED_LAYOUT, IDRiD
from data_prep.pipeline import MASK_RULE

from data_prep.atomic import atomic_write, sweep_temporaries
from .checkpoint import load_checkpoint, load_weights, rng_state, save_checkpoint, set_rng_state
from .equations import lr_at_epoch
from .lesions import LESIONS, TASK_GROUPS, models_for_mode
from .losses import deep_supervision_loss, output_losses
from .evaluate import score_dataset
from .metrics import LesionScores, lesion_mean
from .model import MIN_SIZE, MODEL_NAMES, build_model, fused_probabilities
from .report import plot_training_curves

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
PAPER_EPOCHS = 400  # the length of the paper's schedule, which --schedule-epochs stretches
# The smallest --size and --patch: 2 × model.MIN_SIZE, so the deepest stage (stride 32)
# keeps 2 × 2 pixels, enough for batch norm's statistics with a batch of 1.
MIN_TRAIN_SIZE = 2 * MIN_SIZE
PREPROCESSING = {"clahe": True, "clahe_channel": "lab", "threshold": DISC_THRESHOLD, "mask_rule": MASK_RULE}
VAL_BINS = 2**12  # histogram bins of the per-epoch validation AUPR (the final evaluation uses 2**16)

class UsageError(Exception):
    """Bad flags, a data folder of the wrong layout or a run folder in the way: exit code 2."""


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite: training stops, the last checkpoint stays as it was."""


def group_name(lesions):
    """The folder of one model of a run: ("MA", "HE") -> "MA-HE"."""
    return "-".join(lesions)


# --------------------------------------------------------------------------- command line


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m u2net_mini.train",
        description="Train U²-Net models on IDRiD-layout data with the paper's protocol (docs/training.md).",
        epilog="exit codes: 0 done (also when --max-minutes stopped it), 1 the loss, the weights or the validation "
               "outputs became non-finite (the last good last.pt stays), 2 bad flags, data, checkpoint or run "
               "folder (nothing written), 130 interrupted (Ctrl-C; --resume continues). docs/errors.md lists "
               "every message.",
    )
    add = parser.add_argument
    add("--data", help="the data folder in IDRiD's layout (the one holding 'A. Segmentation'), e.g. "
        "data_prep/shipped/idrid; required, except with --resume (then the run's own)")
    add("--out", required=True, help="the run folder, e.g. runs/mt; must be new or empty unless --resume")
    add("--mode", choices=tuple(TASK_GROUPS), help="st: one model per lesion, dt: red MA+HE and white EX+SE, "
        "mt: one model for all four (default mt)")
    add("--lesion", choices=LESIONS, help="single-task mode only: train this lesion's model alone")
    add("--model", choices=MODEL_NAMES, help="xs (U²-XS-Net, 0.29 M), small (U²-Net†) or full (U²-Net); default xs")
    add("--size", type=int, help=f"side of the square input in pixels, at least {MIN_TRAIN_SIZE} (default 512)")
    add("--epochs", type=int, help=f"train up to this many epochs (default {DEFAULT_EPOCHS}); "
        "with --resume it may be raised to train on")
    add("--batch-size", type=int, help="photographs per batch and process (default 4; the paper gives none)")
    add("--seed", type=int, help="seeds the weights, the validation hold-out, shuffling and augmentation (default 0)")
    add("--lr", type=float, help="Adam's initial learning rate (default 1e-3); may change on --resume "
        "(recorded in run.json)")
    add("--weight-decay", type=float, help="Adam's weight decay (default 1e-4)")
    add("--alpha", type=float, help="weight of focal BCE against Dice in the loss (default 0.75)")
    add("--gamma", type=float, help="focal exponent (default 1)")
    add("--augment", choices=("paper", "none"), help="paper: random rotation, shift, scale, flips (default)")
    add("--patch", type=int, help="train on a random PATCH × PATCH window of each augmented --size square, "
        "over a lesion pixel 80 %% of the time (the CPU protocol; default: the whole square, as the paper); "
        "validation and evaluation always see the whole square")
    add("--schedule-epochs", type=int, help="stretch the paper's 400-epoch learning-rate schedule (× 0.75 every "
        "15 epochs from 115) to this many epochs, for shorter runs (default 400, the paper's)")
    add("--val", choices=("holdout", "test", "none"), help="what scores each epoch for best.pt (default holdout)")
    add("--val-fraction", type=float,
        help="share of the training photographs held out with --val holdout (default 0.1)")
    add("--resume", action="store_true", help="continue the run in --out from its last.pt files")
    add("--overwrite", action="store_true",
        help="delete the earlier run in --out (a folder with run.json) and start anew")
    add("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: CUDA when present, else the CPU")
    add("--bf16", action="store_true", help="bfloat16 autocast for the forward pass (meant for GPUs)")
    add("--channels-last", action="store_true", help="channels_last memory format (faster convolutions on GPUs)")
    add("--workers", type=int, default=None, help="DataLoader worker processes (default: 0 on the CPU, 4 on CUDA)")
    add("--max-minutes", type=float, help="stop before an epoch that would end past this many minutes "
        "(of the whole run); --resume continues")
    add("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice, one per core)")
    add("--cache", help="folder for the resized photographs (default $U2NET_MINI_CACHE or ~/.cache/u2net_mini)")
    add("--no-progress", action="store_true", help="no progress bar, only one line per epoch "
        "(the bar shows only on a terminal anyway)")
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def _check_settings(settings):
    models_for_mode(settings["mode"], settings["lesion"])  # ValueError for --lesion outside st
    if settings["size"] < MIN_TRAIN_SIZE:
        raise ValueError(f"--size must be at least {MIN_TRAIN_SIZE} pixels, got {settings['size']}")
    if settings["patch"] is not None and not MIN_TRAIN_SIZE <= settings["patch"] <= settings["size"]:
        raise ValueError(f"--patch must be between {MIN_TRAIN_SIZE} and --size {settings['size']}, got {settings['patch']}")
    for key in ("batch_size", "epochs", "schedule_epochs"):
        check_positive_flag(f"--{key.replace('_', '-')}", settings[key])
    if not 0 < settings["val_fraction"] < 1:
        raise ValueError(f"--val-fraction must be between 0 and 1, got {settings['val_fraction']}")
    if not settings["lr"] > 0 or settings["weight_decay"] < 0:
        raise ValueError(f"--lr must be > 0 and --weight-decay >= 0, "
                         f"got {settings['lr']} and {settings['weight_decay']}")
    if not 0 <= settings["alpha"] <= 1 or settings["gamma"] < 0:
        raise ValueError(f"--alpha must be in [0, 1] and --gamma >= 0, got {settings['alpha']} and {settings['gamma']}")


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
                raise UsageError(f"--resume: {run_file} lacks {key!r}; it was not written by this training script")
        saved = {**DEFAULTS, **saved}
        changed = [f"--{key.replace('_', '-')} {value} (the run has {saved[key]})"
                   for key, value in given.items() if saved[key] != value and key not in CHANGEABLE_ON_RESUME]
        if changed:
            raise UsageError("a resumed run keeps its settings (only --epochs, --data and --lr may change); "
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
                raise UsageError(f"--data {settings['data']}: photograph {name} of the {reader.split} split "
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
                      if best.is_file() else f"delete {last} to train {group_name(lesions)} from the start")
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


# --------------------------------------------------------------------------- processes and devices


class Processes:
    """This process's place among the training processes (one, or several under torchrun)."""

    def __init__(self, device_choice="auto"):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available() if device_choice == "auto" else device_choice == "cuda"
        if cuda and not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available")
        self.device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
        if cuda:
            torch.cuda.set_device(self.device)
        self.started = False
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")
            self.started = True

    @property
    def main(self):
        return self.rank == 0

    def barrier(self):
        if self.world > 1:
            dist.barrier()

    def close(self):
        if self.started:
            dist.destroy_process_group()


def average_buffers(model, world):
    """Average batch norm's running statistics over the processes (DDP averages only gradients)."""
    if world == 1:
        return
    for buffer in model.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
            buffer /= world


# --------------------------------------------------------------------------- the run folder


def prepare_run_folder(settings, args, processes, train_names):
    """Check that --out may be used (on every process, before anyone writes), then let process 0
    create it (or delete the earlier run with --overwrite) and write run.json."""
    out = Path(args.out)
    if not args.resume and out.exists():
        if not out.is_dir():
            raise UsageError(f"--out {out} is a file, not a folder")
        if any(out.iterdir()):
            if not args.overwrite:
                raise UsageError(f"--out {out} exists and is not empty: continue that run with --resume, "
                                 "replace it with --overwrite, or choose a new --out (nothing is overwritten)")
            if not (out / "run.json").is_file():
                raise UsageError(f"--overwrite deletes only a training run folder (one with run.json); "
                                 f"{out} is not one, so it is left alone")
    processes.barrier()
    if processes.main:
        if args.overwrite and out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        swept = sweep_temporaries(out)
        if swept:
            print(f"removed {len(swept)} temporary file(s) that interrupted writes had left in {out}")
        if args.resume:  # what may change on --resume: the epochs, where the data lives, the lr
            record = json.loads((out / "run.json").read_text())
            update = {key: settings[key] for key in ("epochs", "data", "lr", "lr_changes")}
            if any(record.get(key) != value for key, value in update.items()):
                record.update(update)
                with atomic_write(out / "run.json", "w") as file:
                    json.dump(record, file, indent=2)
        else:
            record = {**settings, "command": getattr(args, "command_line", None),
                      "models": [group_name(g) for g in models_for_mode(settings["mode"], settings["lesion"])],
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


# --------------------------------------------------------------------------- data


def training_stats(root, indices, size, cache_dir):
    """Per-channel mean and std (lists of floats, for run.json) of the training photographs
    `indices`, preprocessed as `PREPROCESSING` says (`dataset.dataset_stats`)."""
    mean, std = dataset_stats(root, size, cache_dir, PREPROCESSING["clahe"], PREPROCESSING["clahe_channel"],
                              PREPROCESSING["threshold"], indices=indices)  # (3,), (3,)
    return [float(v) for v in mean], [float(v) for v in std]


class Data:
    """The training set (augmented, a Subset) and the validation photographs of one model."""

    def __init__(self, lesions, settings, cache_dir, mean, std, train_indices, val_indices):
        options = {"lesions": lesions, "size": settings["size"], "mean": mean, "std": std, "cache_dir": cache_dir,
                   "clahe": PREPROCESSING["clahe"], "clahe_channel": PREPROCESSING["clahe_channel"]}
        root = settings["data"]
        self.full_train = LesionDataset(root, "train", augment=settings["augment"] == "paper",
                                        seed=settings["seed"], patch=settings["patch"], **options)
        self.train = Subset(self.full_train, train_indices)
        self.val, self.val_indices = None, []
        if settings["val"] == "holdout":
            self.val, self.val_indices = LesionDataset(root, "train", **options), val_indices
        elif settings["val"] == "test":
            self.val = LesionDataset(root, "test", **options)
            self.val_indices = list(range(len(self.val)))


# --------------------------------------------------------------------------- one epoch


def forward(net, x, bf16):
    """The seven logits (fused first) as float32, whatever the autocast precision."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        outputs = net(x)  # 7 × (B, C, H, W)
    return [logits.float() for logits in outputs]


def train_step(net, x, y, optimizer, settings, bf16, world=1):
    """One optimizer step on the batch (x, y); returns the loss and the fused output's
    loss (tensors, no host sync). `NonFiniteLoss` (on every process at once) if the loss
    is not finite; the weights are then untouched.

    The target is checked once, and the fused output's loss (logged as `train_fused_loss`)
    is the first of the per-output losses whose sum is trained, not computed again.
    """
    outputs = forward(net, x, bf16)  # 7 × (B, C, H, W)
    per_output = output_losses(outputs, y, settings["alpha"], settings["gamma"])  # (7,)
    loss = per_output.sum()
    bad = (~torch.isfinite(loss)).float().reshape(1)  # (1,)
    if world > 1:
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)  # every process stops at the same batch
    if bad.item():
        raise NonFiniteLoss(f"the loss is {loss.item()}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), per_output[0].detach()


def train_epoch(net, loader, optimizer, settings, runtime, processes, epoch, label):
    """One pass over this process's share of the training set; returns the mean losses."""
    device = processes.device
    totals = torch.zeros(3, dtype=torch.float64)  # loss, fused loss, batches
    bar = tqdm(loader, desc=f"{label} epoch {epoch + 1}/{settings['epochs']}", leave=False,
               disable=True if runtime["no_progress"] or not processes.main else None,  # None: only on a terminal
               dynamic_ncols=True)
    memory_format = torch.channels_last if runtime["channels_last"] else torch.contiguous_format
    for batch, (x, y) in enumerate(bar):
        x = x.to(device, non_blocking=True).contiguous(memory_format=memory_format)  # (B, 3, s, s)
        y = y.to(device, non_blocking=True)  # (B, C, s, s)
        try:
            loss, fused_loss = train_step(net, x, y, optimizer, settings, runtime["bf16"], processes.world)
        except NonFiniteLoss as error:
            raise NonFiniteLoss(f"{error} at epoch {epoch + 1}, batch {batch + 1}") from None
        totals += torch.tensor([*torch.stack([loss, fused_loss]).tolist(), 1.0], dtype=torch.float64)
        bar.set_postfix(loss=f"{totals[0].item() / totals[2].item():.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
    if processes.world > 1:
        dist.all_reduce(totals, op=dist.ReduceOp.SUM)
    return {"train_loss": totals[0].item() / totals[2].item(), "train_fused_loss": totals[1].item() / totals[2].item()}


@torch.no_grad()
def validate(model, data, settings, runtime, device, lesions):
    """Validation loss and AUPR per lesion (pooled over the validation photographs), scored
    by `evaluate.score_dataset` as the final evaluation scores, with coarser histograms."""
    losses = []
    memory_format = torch.channels_last if runtime["channels_last"] else torch.contiguous_format

    def predict(x, y, indices):
        outputs = forward(model, x.to(device).contiguous(memory_format=memory_format), runtime["bf16"])
        loss = deep_supervision_loss(outputs, y.to(device), settings["alpha"], settings["gamma"]).item()
        if not math.isfinite(loss) or not all(torch.isfinite(o).all() for o in outputs):
            names = ", ".join(data.val.names[i] for i in indices)
            raise NonFiniteLoss(f"the validation outputs are not finite (loss {loss}) on {names}")
        losses.append(loss)
        return fused_probabilities(outputs)  # (B, C, s, s)

    model.eval()
    scores = {"square": LesionScores(lesions, n_bins=VAL_BINS)}
    score_dataset(predict, data.val, scores, data.val_indices, settings["batch_size"])
    model.train()
    aupr = scores["square"].aupr()
    row = {"val_loss": sum(losses) / len(losses)}
    row.update({f"val_aupr_{name}": aupr[name] for name in lesions})
    row["val_aupr_mean"] = lesion_mean(aupr.values())
    return row


def learning_rate(epoch, settings):
    """The paper's schedule stretched to `schedule_epochs` E: epoch e (from 0) takes the
    paper's rate at epoch ⌊400 e / E⌋, so with E = 400 it is the paper's own
    (`equations.lr_at_epoch`) and with E = 100 the rate falls every 3.75 epochs from 28.75."""
    paper_epoch = epoch * PAPER_EPOCHS // settings["schedule_epochs"]
    return lr_at_epoch(paper_epoch, settings["lr"])


def out_of_time(deadline, epoch_seconds, processes):
    """True when an epoch as long as the last one would end past `deadline` (process 0's clock decides)."""
    if deadline is None:
        return False
    late = torch.tensor([float(time.monotonic() + epoch_seconds > deadline)], device=processes.device)
    if processes.world > 1:
        dist.broadcast(late, 0)
    return bool(late.item())


def non_finite_tensors(model):
    """Names of the model's parameters and buffers holding a NaN or an infinity."""
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    return [name for name, tensor in tensors if tensor.is_floating_point() and not torch.isfinite(tensor).all()]


def divergence_message(label, error, last_path, settings, out):
    """What stopped the run, which checkpoint is the last good one, and a command that continues."""
    lower = settings["lr"] / 10
    if last_path.is_file():
        epoch = load_checkpoint(last_path)["epoch"] + 1
        kept = f"{last_path} (epoch {epoch}) holds the last good weights (no checkpoint with non-finite values is written)"
        advice = (f"continue from it with a lower learning rate: python -m u2net_mini.train --out {out} --resume "
                  f"--lr {lower:g}")
    else:
        kept = "no epoch had finished, so there is no checkpoint"
        advice = (f"start again with a lower learning rate: python -m u2net_mini.train --out {out} --overwrite "
                  f"--data {settings['data']} --lr {lower:g} (and the run's other flags)")
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
    device = processes.device
    torch.manual_seed(settings["seed"])
    model = build_model(settings["model"], len(lesions)).to(device)
    if runtime["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])
    start, history, mean, std = 0, [], None, None
    last_path, best_path = folder / "last.pt", folder / "best.pt"
    if runtime["resume"] and last_path.is_file():
        payload = load_checkpoint(last_path, resume=True, map_location=device, expect={
            "lesions": lesions, "model_config": model.config, "input_size": settings["size"]})
        load_weights(model, payload["state_dict"])
        optimizer.load_state_dict(payload["optimizer"])
        set_rng_state(payload["rng"])
        start, history = payload["epoch"] + 1, list(payload["history"])
        mean, std = payload["mean"], payload["std"]
    if start >= settings["epochs"]:
        if processes.main:
            print(f"{label}: already trained for {start} epochs (--epochs {settings['epochs']})")
        return model
    if mean is None:
        mean, std = training_stats(settings["data"], split[0], settings["size"], runtime["cache"])
    data = Data(lesions, settings, runtime["cache"], mean, std, *split)

    net = model
    if processes.world > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    sampler = DistributedSampler(data.train, processes.world, processes.rank, shuffle=True, seed=settings["seed"])
    loader = DataLoader(data.train, batch_size=settings["batch_size"], sampler=sampler,
                        num_workers=runtime["workers"], pin_memory=device.type == "cuda")
    best = None
    for row in history:
        best = row["val_aupr_mean"] if _better(row["val_aupr_mean"], best) else best
    payload = {
        "model_config": model.config, "lesions": lesions, "input_size": settings["size"],
        "mean": mean, "std": std, "preprocessing": PREPROCESSING, "mode": settings["mode"],
        "run": {key: settings[key] for key in sorted(settings)},
        "scheduler": {"name": "lr_at_epoch", "lr0": settings["lr"], "start": 115, "every": 15, "factor": 0.75,
                      "schedule_epochs": settings["schedule_epochs"]},
    }
    previous_seconds = 0.0
    for epoch in range(start, settings["epochs"]):
        if out_of_time(runtime["deadline"], previous_seconds, processes):
            if processes.main:
                print(f"{label}: stopped before epoch {epoch + 1} of {settings['epochs']}, as it would end past "
                      f"--max-minutes; continue with --resume")
            break
        began = time.perf_counter()
        lr = learning_rate(epoch, settings)
        for group in optimizer.param_groups:
            group["lr"] = lr
        data.full_train.set_epoch(epoch)
        sampler.set_epoch(epoch)
        try:
            row = {"epoch": epoch + 1, "lr": lr}
            row.update(train_epoch(net, loader, optimizer, settings, runtime, processes, epoch, label))
            average_buffers(model, processes.world)
            broken = non_finite_tensors(model)
            if broken:  # a last step can wreck the weights while its own loss was finite
                raise NonFiniteLoss(f"after epoch {epoch + 1} the weights hold non-finite values "
                                    f"({len(broken)} tensors, e.g. {broken[0]})")
            if processes.main and data.val is not None:
                row.update(validate(model, data, settings, runtime, device, lesions))
        except NonFiniteLoss as error:
            raise NonFiniteLoss(divergence_message(label, error, last_path, settings, runtime["out"])) from error
        if not processes.main:
            continue
        if data.val is None:
            row.update({"val_loss": float("nan"), **{f"val_aupr_{n}": float("nan") for n in lesions},
                        "val_aupr_mean": float("nan")})
        row["seconds"] = time.perf_counter() - began
        history.append(row)
        payload.update(state_dict=model.state_dict(), epoch=epoch, optimizer=optimizer.state_dict(),
                       rng=rng_state(), history=history, val_aupr_mean=row["val_aupr_mean"])
        # best.pt first: a kill between the two writes then leaves last.pt one epoch behind
        # (resume repeats that epoch), never a best epoch that metrics.csv names but best.pt lacks
        if _better(row["val_aupr_mean"], best) or data.val is None:
            best = row["val_aupr_mean"]
            save_checkpoint(best_path, payload)
        save_checkpoint(last_path, payload)
        write_metrics(folder / "metrics.csv", history)
        validation = "no validation" if data.val is None else f"val mean AUPR {row['val_aupr_mean']:.3f}"
        message = (f"{label} epoch {epoch + 1}/{settings['epochs']}: loss {row['train_loss']:.4f}, "
                   f"lr {lr:.2e}, {validation}, {row['seconds']:.1f} s")
        tqdm.write(message)
        previous_seconds = row["seconds"]
    if processes.main and history:
        plot_training_curves(history, folder / "curves.png")
    return model


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
        runtime = {"resume": args.resume, "deadline": deadline, "bf16": args.bf16, "channels_last": args.channels_last,
                   "out": out,
                   "no_progress": args.no_progress, "cache": args.cache,
                   "workers": workers if workers is not None else (4 if processes.device.type == "cuda" else 0)}
        if processes.main:
            print(f"training {settings['mode']} ({settings['model']}, {settings['size']} px, "
                  f"{settings['epochs']} epochs) on {processes.device} × {processes.world} into {out}")
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
    """The command line; returns the exit code (0 done, 1 non-finite loss, 2 bad input, 130 Ctrl-C)."""
    args = parse_args(argv)
    args.command_line = "python -m u2net_mini.train " + shlex.join(sys.argv[1:] if argv is None else argv)
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
              f"continue with: python -m u2net_mini.train --out {args.out} --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
