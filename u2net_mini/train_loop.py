"""
# The training loop: one step, one epoch, validation

`train_step` is one Adam step on a batch, on the paper's loss over the fused and the six
side outputs (`losses.output_losses`, whose first entry, the fused output's loss, is
logged as `train_fused_loss`); `train_epoch` runs it over this process's share of the
training photographs; `validate` scores the held-out photographs after every epoch with
the evaluation's own code (`evaluate.score_dataset`), with coarser histograms.
`train.py` puts these together into a run.
"""

import math

import torch
import torch.distributed as dist
from torch.utils.data import Subset
from tqdm import tqdm

from data_prep.dataset import LesionDataset, dataset_stats

from .evaluate import score_dataset
from .losses import deep_supervision_loss, output_losses
from .metrics import LesionScores, lesion_mean
from .model import fused_probabilities
from .training_run import PREPROCESSING

# Histogram bins of the per-epoch validation AUPR (the final evaluation uses 2**16).
VAL_BINS = 2**12


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite: training stops, the last checkpoint stays as it was."""

def training_stats(root, indices, size, cache_dir):
    """Per-channel mean and std (lists of floats, for run.json) of the training photographs
    `indices`, preprocessed as `PREPROCESSING` says (`dataset.dataset_stats`)."""
    options = PREPROCESSING
    mean, std = dataset_stats(root, size, cache_dir, options["clahe"], options["clahe_channel"],
                              PREPROCESSING["threshold"], indices=indices)  # (3,), (3,)
    return [float(v) for v in mean], [float(v) for v in std]

class Data:
    """The training set (augmented, a Subset) and the validation photographs of one model."""

    def __init__(self, lesions, settings, cache_dir, mean, std, train_indices, val_indices):
        options = {"lesions": lesions, "size": settings["size"], "mean": mean, "std": std,
                   "cache_dir": cache_dir, "clahe": PREPROCESSING["clahe"],
                   "clahe_channel": PREPROCESSING["clahe_channel"]}
        root = settings["data"]
        self.lesions = lesions
        self.full_train = LesionDataset(root, "train", augment=settings["augment"] == "paper",
                                        seed=settings["seed"], patch=settings["patch"], **options)
        self.train = Subset(self.full_train, train_indices)
        self.val, self.val_indices = None, []
        if settings["val"] == "holdout":
            self.val, self.val_indices = LesionDataset(root, "train", **options), val_indices
        elif settings["val"] == "test":
            self.val = LesionDataset(root, "test", **options)
            self.val_indices = list(range(len(self.val)))

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
    per_output = output_losses(y, outputs, settings["alpha"], settings["gamma"])  # (7,)
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
               # None: only on a terminal
               disable=True if runtime["no_progress"] or not processes.main else None,
               dynamic_ncols=True)
    memory_format = torch.channels_last if runtime["channels_last"] else torch.contiguous_format
    for batch, (x, y) in enumerate(bar):
        x = x.to(device, non_blocking=True).contiguous(memory_format=memory_format)  # (B, 3, s, s)
        y = y.to(device, non_blocking=True)  # (B, C, s, s)
        try:
            loss, fused_loss = train_step(net, x, y, optimizer, settings, runtime["bf16"],
                                          processes.world)
        except NonFiniteLoss as error:
            raise NonFiniteLoss(f"{error} at epoch {epoch + 1}, batch {batch + 1}") from None
        losses = torch.stack([loss, fused_loss]).tolist()  # one host sync for both
        totals += torch.tensor([*losses, 1.0], dtype=torch.float64)
        bar.set_postfix(loss=f"{totals[0].item() / totals[2].item():.4f}",
                        lr=f"{optimizer.param_groups[0]['lr']:.2e}")
    if processes.world > 1:
        dist.all_reduce(totals, op=dist.ReduceOp.SUM)
    loss, fused_loss, batches = totals.tolist()
    return {"train_loss": loss / batches, "train_fused_loss": fused_loss / batches}

@torch.no_grad()
def validate(model, data, settings, runtime, device, lesions):
    """Validation loss and AUPR per lesion (pooled over the validation photographs), scored
    by `evaluate.score_dataset` as the final evaluation scores, with coarser histograms."""
    losses = []
    memory_format = torch.channels_last if runtime["channels_last"] else torch.contiguous_format

    def predict(x, y, indices):
        x = x.to(device).contiguous(memory_format=memory_format)  # (B, 3, s, s)
        outputs = forward(model, x, runtime["bf16"])  # 7 × (B, C, s, s)
        loss = deep_supervision_loss(y.to(device), outputs, settings["alpha"], settings["gamma"])
        loss = loss.item()
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

def non_finite_tensors(model):
    """Names of the model's parameters and buffers holding a NaN or an infinity."""
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    return [name for name, tensor in tensors
            if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
