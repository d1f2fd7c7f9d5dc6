"""Two training processes (DDP over gloo on the CPU) end with the same weights and buffers.

Each process sees its own share of the training photographs (DistributedSampler), so
their batch-norm running statistics differ during the epoch; the training script averages
them at the end of the epoch, and DDP averages the gradients. Process 0 alone writes.
"""

import socket

import pytest
import torch
import torch.multiprocessing as mp

from data_prep.synthetic import write_idrid_layout
from u2net_mini import train

GROUP = "MA-HE-EX-SE"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_as_process(rank, world, port, argv, result_folder):
    """What torchrun does for each process: set the environment, then run the script."""
    import os

    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    models = train.run(train.parse_args(argv))
    torch.save({key: value.clone() for key, value in models[GROUP].state_dict().items()},
               f"{result_folder}/rank{rank}.pt")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_idrid_layout(tmp_path_factory.mktemp("data") / "idrid", n_train=5, n_test=1,
                              size=64, seed=0)


def test_two_processes_end_with_identical_weights(data, tmp_path):
    out = tmp_path / "run"
    # 5 photographs, 1 held out: each process trains on 2 of the 4, one batch of 2
    argv = ["--data", str(data), "--out", str(out), "--size", "64", "--epochs", "1",
            "--batch-size", "2", "--val-fraction", "0.2", "--cache", str(tmp_path / "cache"),
            "--no-progress", "--device", "cpu"]
    mp.spawn(train_as_process, args=(2, free_port(), argv, str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    saved = torch.load(out / GROUP / "last.pt", weights_only=True)
    running_means = [key for key in rank0 if key.endswith("running_mean")]
    assert running_means, "the model has batch norm buffers to compare"
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
        assert torch.equal(rank0[key], saved["state_dict"][key]), key
    assert saved["epoch"] == 0 and len(saved["history"]) == 1
    assert sorted(p.name for p in (out / GROUP).iterdir()) == ["best.pt", "curves.png", "last.pt",
                                                               "metrics.csv"]
