"""
# Training processes: one, or several under torchrun

Under `torchrun` (the environment variables `WORLD_SIZE`, `RANK`, `LOCAL_RANK`) training
runs in several processes: the model is wrapped in DistributedDataParallel (gloo on the
CPU, nccl on GPUs), every process trains on its own share of each epoch and only process
0 validates and writes. Gradients are averaged by DDP; batch norm's running statistics,
which DDP does not average, are averaged here at the end of every epoch
(`average_buffers`), so every process ends with the same weights and buffers. Process 0's
clock decides when `--max-minutes` stops the run (`out_of_time`).
"""

import os
import time

import torch
import torch.distributed as dist

from .training_run import UsageError


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

def main_says(flag, processes):
    """Process 0's `flag` (a bool), on every process: a verdict only process 0 can reach
    (its validation, its clock) that every process must act on together, or the others
    would wait at the next collective for a process that has stopped."""
    flag = torch.tensor([float(flag)], device=processes.device)
    if processes.world > 1:
        dist.broadcast(flag, 0)
    return bool(flag.item())


def out_of_time(deadline, epoch_seconds, processes):
    """True when an epoch as long as the last one would end past `deadline` (process 0's
    clock decides)."""
    if deadline is None:
        return False
    return main_says(time.monotonic() + epoch_seconds > deadline, processes)
