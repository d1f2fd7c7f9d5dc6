"""Two training processes (DDP over gloo on the CPU): the same weights, and one verdict.

Each process sees its own share of the training photographs (DistributedSampler), so
their batch-norm running statistics differ during the epoch; the training script averages
them at the end of the epoch, and DDP averages the gradients. Process 0 alone writes.

Only process 0 validates. If its validation outputs are not finite, it stops; the other
process must learn so and stop too with the same reason. Without that, it goes on into the
next epoch and meets a partner that has gone at its first collective: here gloo sees the
closed connection and the process dies of a connection error; a backend that does not see
it waits out its timeout (30 minutes by default). `processes.main_says` broadcasts the
verdict. That test gives the processes `HANG_SECONDS` and kills them after that, so a hang
fails it instead of stalling the suite.
"""

import socket
import time

import pytest
import torch
import torch.multiprocessing as mp

from data_prep.synthetic import write_idrid_layout
from u2net_mini import train

GROUP = "MA-HE-EX-SE"
HANG_SECONDS = 120  # two epochs of the NaN run take a few seconds; a hang lasts 30 minutes


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def as_torchrun_process(rank, world, port):
    """What torchrun sets for each process, and one torch thread each."""
    import os

    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)


def train_as_process(rank, world, port, argv, result_folder):
    """What torchrun does for each process: set the environment, then run the script."""
    as_torchrun_process(rank, world, port)
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


def train_with_nan_validation(rank, world, port, argv, result_folder):
    """torchrun's environment, then training whose validation outputs (no grad) are NaN."""
    from u2net_mini import train_loop

    as_torchrun_process(rank, world, port)
    real_forward = train_loop.forward

    def forward(model, x, bf16):
        outputs = real_forward(model, x, bf16)
        if torch.is_grad_enabled():  # a training step: untouched
            return outputs
        return [z * float("nan") for z in outputs]  # validation runs without grad

    train_loop.forward = forward
    try:
        train.run(train.parse_args(argv))
        outcome = "finished"
    except train_loop.NonFiniteLoss as error:
        outcome = f"NonFiniteLoss: {error}"
    with open(f"{result_folder}/rank{rank}.txt", "w") as file:
        file.write(outcome)


@pytest.mark.slow
def test_non_finite_validation_on_process_0_stops_both(data, tmp_path):
    argv = ["--data", str(data), "--out", str(tmp_path / "run"), "--size", "64", "--epochs", "2",
            "--batch-size", "2", "--val-fraction", "0.2", "--cache", str(tmp_path / "cache"),
            "--no-progress", "--device", "cpu"]
    context = mp.start_processes(train_with_nan_validation,
                                 args=(2, free_port(), argv, str(tmp_path)), nprocs=2,
                                 join=False, start_method="spawn")
    deadline = time.monotonic() + HANG_SECONDS
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the processes were still running after {HANG_SECONDS} s: one waits "
                        f"for the other")
    outcomes = {rank: (tmp_path / f"rank{rank}.txt").read_text() for rank in (0, 1)}
    assert outcomes[0].startswith("NonFiniteLoss") and "validation outputs are not" in outcomes[0]
    assert outcomes[1].startswith("NonFiniteLoss") and "process 0's validation" in outcomes[1]
    assert not (tmp_path / "run" / "MA-HE-EX-SE" / "last.pt").exists()  # nothing non-finite saved
