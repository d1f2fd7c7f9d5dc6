"""Training: exact resume, Ctrl-C and NaN safety, run folders, checkpoints, metrics, modes.

Tiny runs: 4 synthetic training photographs at 64 px (one held out for validation, so 3
train in 2 batches of 2), the XS model, one CPU thread.
"""

import csv
import json

import numpy as np
import pytest
import torch

from data_prep.dataset import SquareCache
from data_prep.enhance import channel_stats
from data_prep.idrid import IDRiD
from data_prep.pipeline import enhance_square
from data_prep.synthetic import write_idrid_layout
from u2net_mini import train, train_loop
from u2net_mini.checkpoint import load_checkpoint, load_weights
from u2net_mini.model import model_from_config
from u2net_mini.schedule import lr_at_epoch

SIZE = 64
GROUP = "MA-HE-EX-SE"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_idrid_layout(tmp_path_factory.mktemp("data") / "idrid", n_train=4, n_test=2,
                              size=SIZE, seed=0)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def args(data, cache, out, *extra):
    return ["--data", str(data), "--out", str(out), "--size", str(SIZE), "--batch-size", "2",
            "--val-fraction", "0.25", "--cache", str(cache), "--no-progress", *extra]


@pytest.fixture(scope="module")
def two_epochs(data, cache, tmp_path_factory):
    """A run of 2 epochs, the reference for resuming."""
    out = tmp_path_factory.mktemp("runs") / "two"
    assert train.main(args(data, cache, out, "--epochs", "2")) == 0
    return out


@pytest.fixture(scope="module")
def one_epoch(data, cache, tmp_path_factory):
    """A run of 1 epoch; tests copy it before resuming."""
    out = tmp_path_factory.mktemp("runs") / "one"
    assert train.main(args(data, cache, out, "--epochs", "1")) == 0
    return out


def state(path):
    return torch.load(path, weights_only=True)


def assert_same_training_state(a, b):
    """Same weights, buffers and Adam moments, bit for bit, and the same history."""
    for key, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][key]), key
    for index, moments in a["optimizer"]["state"].items():
        for name, tensor in moments.items():
            assert torch.equal(tensor, b["optimizer"]["state"][index][name]), (index, name)
    assert a["epoch"] == b["epoch"]
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in a["history"]]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in b["history"]]


def copy_run(source, target):
    import shutil

    shutil.copytree(source, target)
    return target


def test_one_epoch_plus_resume_equals_two_epochs(data, cache, two_epochs, one_epoch, tmp_path):
    resumed = copy_run(one_epoch, tmp_path / "resumed")
    assert train.main(["--out", str(resumed), "--resume", "--epochs", "2", "--cache", str(cache),
                       "--no-progress"]) == 0
    reference = state(two_epochs / GROUP / "last.pt")
    assert reference["epoch"] == 1  # counted from 0: two epochs finished
    assert_same_training_state(state(resumed / GROUP / "last.pt"), reference)
    assert json.loads((resumed / "run.json").read_text())["epochs"] == 2


def test_ctrl_c_leaves_last_pt_intact_and_resumable(data, cache, two_epochs, one_epoch, tmp_path,
                                                    monkeypatch, capsys):
    out = tmp_path / "interrupted"
    real_loss = train_loop.output_losses
    training_steps = []

    def interrupt_in_epoch_2_batch_2(y, outputs, *rest):
        if torch.is_grad_enabled():  # a training step (validation runs without grad)
            training_steps.append(1)
            # epoch 1 had steps 1, 2; batch 1 of epoch 2 has updated the weights
            if len(training_steps) == 4:
                raise KeyboardInterrupt
        return real_loss(y, outputs, *rest)

    monkeypatch.setattr(train_loop, "output_losses", interrupt_in_epoch_2_batch_2)
    assert train.main(args(data, cache, out, "--epochs", "2")) == 130
    assert "--resume" in capsys.readouterr().err
    files = sorted(p.name for p in (out / GROUP).iterdir())
    assert files == ["best.pt", "last.pt", "metrics.csv"]  # no temporary file left behind
    assert_same_training_state(state(out / GROUP / "last.pt"), state(one_epoch / GROUP / "last.pt"))

    monkeypatch.setattr(train_loop, "output_losses", real_loss)
    assert train.main(["--out", str(out), "--resume", "--cache", str(cache), "--no-progress"]) == 0
    assert_same_training_state(state(out / GROUP / "last.pt"),
                               state(two_epochs / GROUP / "last.pt"))


def test_nan_loss_stops_naming_epoch_and_batch(data, cache, one_epoch, tmp_path, monkeypatch,
                                               capsys):
    out = tmp_path / "nan"
    real_loss = train_loop.output_losses
    training_steps = []

    def nan_in_epoch_2_batch_2(y, outputs, *rest):
        loss = real_loss(y, outputs, *rest)
        if torch.is_grad_enabled():
            training_steps.append(1)
            if len(training_steps) == 4:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(train_loop, "output_losses", nan_in_epoch_2_batch_2)
    assert train.main(args(data, cache, out, "--epochs", "3")) == 1
    message = capsys.readouterr().err
    assert "loss is nan at epoch 2, batch 2" in message
    assert f"{out / GROUP / 'last.pt'} (epoch 1) holds the last good weights" in message
    assert_same_training_state(state(out / GROUP / "last.pt"), state(one_epoch / GROUP / "last.pt"))


def test_metrics_csv_curves_and_best_checkpoint(two_epochs):
    with open(two_epochs / GROUP / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    assert list(rows[0]) == ["epoch", "lr", "train_loss", "train_fused_loss", "val_loss",
                             "val_aupr_MA", "val_aupr_HE", "val_aupr_EX", "val_aupr_SE",
                             "val_aupr_mean", "seconds"]
    assert [float(row["lr"]) for row in rows] == [lr_at_epoch(0), lr_at_epoch(1)]
    for row in rows:
        # the deep-supervision loss sums 7 outputs, the fused one among them
        assert 0 < float(row["train_fused_loss"]) < float(row["train_loss"])
        defined = [float(row[f"val_aupr_{k}"]) for k in ("MA", "HE", "EX", "SE")
                   if row[f"val_aupr_{k}"] != "nan"]
        assert float(row["val_aupr_mean"]) == pytest.approx(sum(defined) / len(defined))
    # first of equals wins
    best_epoch = max(range(2), key=lambda i: float(rows[i]["val_aupr_mean"]))
    assert state(two_epochs / GROUP / "best.pt")["epoch"] == best_epoch
    assert (two_epochs / GROUP / "curves.png").read_bytes().startswith(PNG_SIGNATURE)


def test_checkpoint_holds_what_inference_needs(data, cache, two_epochs):
    payload = load_checkpoint(two_epochs / GROUP / "best.pt",
                              expect={"lesions": ("MA", "HE", "EX", "SE")})
    assert payload["input_size"] == SIZE and payload["mode"] == "mt"
    assert payload["model_config"] == {"name": "xs", "out_ch": 4, "in_ch": 3, "width": 8}
    assert payload["preprocessing"]["clahe"] is True
    # mean and std of the training photographs only (the held-out one excluded), inside the disc
    run = json.loads((two_epochs / "run.json").read_text())
    assert len(run["train_images"]) == 3 and len(run["validation_images"]) == 1
    reader = IDRiD(data, "train")
    squares = SquareCache(reader, SIZE, cache_dir=cache)
    examples = [squares[reader.names.index(name)] for name in run["train_images"]]
    mean, std = channel_stats([enhance_square(e.image) for e in examples],
                              [e.disc for e in examples])
    np.testing.assert_allclose(payload["mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(payload["std"], std, rtol=1e-12)
    model = load_weights(model_from_config(payload["model_config"]), payload["state_dict"])
    assert model.config["out_ch"] == 4
    with pytest.raises(ValueError, match=r"holds lesions = \('MA', 'HE', 'EX', 'SE'\), expected "
                                         r"\('EX',\)"):
        load_checkpoint(two_epochs / GROUP / "best.pt", expect={"lesions": ("EX",)})


def test_single_and_dual_task_train_one_model_per_group(data, cache, tmp_path):
    assert train.main(args(data, cache, tmp_path / "st", "--mode", "st", "--lesion", "EX",
                           "--epochs", "1")) == 0
    assert sorted(p.name for p in (tmp_path / "st").iterdir()) == ["EX", "run.json"]
    assert load_checkpoint(tmp_path / "st" / "EX" / "best.pt")["model_config"]["out_ch"] == 1
    assert train.main(args(data, cache, tmp_path / "dt", "--mode", "dt", "--epochs", "1")) == 0
    assert sorted(p.name for p in (tmp_path / "dt").iterdir()) == ["EX-SE", "MA-HE", "run.json"]
    for group, lesions in (("MA-HE", ("MA", "HE")), ("EX-SE", ("EX", "SE"))):
        payload = load_checkpoint(tmp_path / "dt" / group / "last.pt",
                                  expect={"lesions": lesions, "mode": "dt"})
        assert payload["model_config"]["out_ch"] == 2


def test_wrong_data_folder_exits_2_with_the_expected_layout(cache, tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"")
    for folder in (tmp_path / "photos", tmp_path / "nowhere"):
        assert train.main(args(folder, cache, tmp_path / "out", "--epochs", "1")) == 2
        message = capsys.readouterr().err
        assert "A. Segmentation/1. Original Images/a. Training Set/IDRiD_01.jpg" in message
        assert ("2. All Segmentation Groundtruths/a. Training Set/1. Microaneurysms/"
                "IDRiD_01_MA.tif" in message)
    assert not (tmp_path / "out").exists()


def test_existing_run_folder_is_never_overwritten_silently(data, cache, two_epochs, tmp_path,
                                                           capsys):
    before = (two_epochs / GROUP / "last.pt").read_bytes()
    assert train.main(args(data, cache, two_epochs, "--epochs", "1")) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (two_epochs / GROUP / "last.pt").read_bytes() == before

    user_folder = tmp_path / "mine"
    user_folder.mkdir()
    (user_folder / "notes.txt").write_text("keep me")
    assert train.main(args(data, cache, user_folder, "--epochs", "1", "--overwrite")) == 2
    assert "not one, so it is left alone" in capsys.readouterr().err
    assert (user_folder / "notes.txt").read_text() == "keep me"

    assert train.main(["--out", str(user_folder), "--resume"]) == 2
    assert "holds no run.json" in capsys.readouterr().err
    assert train.main(["--out", str(two_epochs), "--resume", "--size", "96"]) == 2
    assert "--size 96 (the run has 64)" in capsys.readouterr().err


def test_overwrite_replaces_an_earlier_run(data, cache, one_epoch, tmp_path):
    out = copy_run(one_epoch, tmp_path / "again")
    (out / "MA-HE-EX-SE" / "stale.txt").write_text("from the earlier run")
    assert train.main(args(data, cache, out, "--epochs", "1", "--overwrite")) == 0
    assert not (out / "MA-HE-EX-SE" / "stale.txt").exists()
    assert_same_training_state(state(out / GROUP / "last.pt"), state(one_epoch / GROUP / "last.pt"))


@pytest.mark.parametrize("extra, message", [
    (["--mode", "mt", "--lesion", "EX"], "a single lesion can only be chosen in mode 'st'"),
    (["--size", "32"], "--size must be at least 64 pixels, got 32"),
    (["--val-fraction", "1.5"], "--val-fraction must be between 0 and 1, got 1.5"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--resume", "--overwrite"], "give one of them"),
])
def test_bad_flags_exit_2(data, cache, tmp_path, capsys, extra, message):
    assert train.main(args(data, cache, tmp_path / "out", *extra)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_split_train_val_is_seeded_and_disjoint():
    settings = {"val": "holdout", "val_fraction": 0.1, "seed": 0}
    train_part, val_part = train.split_train_val(54, settings)
    assert len(val_part) == 5 and len(train_part) == 49  # round(0.1 * 54) = 5
    assert sorted(train_part + val_part) == list(range(54))
    assert train.split_train_val(54, settings) == (train_part, val_part)
    assert train.split_train_val(54, {**settings, "seed": 1})[1] != val_part
    # at least one
    assert train.split_train_val(3, {**settings, "val_fraction": 0.01})[1].__len__() == 1
    assert train.split_train_val(5, {**settings, "val": "test"}) == ([0, 1, 2, 3, 4], [])
    with pytest.raises(train.UsageError, match="needs at least 2 training photographs, found 1"):
        train.split_train_val(1, settings)


def test_max_minutes_stops_between_epochs_and_resume_continues(data, cache, one_epoch, tmp_path,
                                                               capsys):
    out = tmp_path / "budget"
    assert train.main(args(data, cache, out, "--epochs", "1", "--max-minutes", "1e-6")) == 0
    assert "stopped before epoch 1 of 1" in capsys.readouterr().out
    assert (out / "run.json").is_file() and not (out / GROUP / "last.pt").exists()
    assert train.main(["--out", str(out), "--resume", "--cache", str(cache), "--no-progress"]) == 0
    assert_same_training_state(state(out / GROUP / "last.pt"), state(one_epoch / GROUP / "last.pt"))


def test_out_of_time_looks_one_epoch_ahead():
    class OneProcess:
        world, device = 1, torch.device("cpu")

    now = train.time.monotonic()
    assert not train.out_of_time(None, 1e9, OneProcess)
    # an epoch of 10 s ends before the deadline
    assert not train.out_of_time(now + 100, 10, OneProcess)
    assert train.out_of_time(now + 5, 10, OneProcess)  # it would end 5 s past it


def test_validation_on_the_test_split_or_none(data, cache, tmp_path):
    assert train.main(args(data, cache, tmp_path / "none", "--val", "none", "--epochs", "1")) == 0
    run = json.loads((tmp_path / "none" / "run.json").read_text())
    assert len(run["train_images"]) == 4 and run["validation_images"] == []  # all four train
    with open(tmp_path / "none" / GROUP / "metrics.csv") as file:
        [row] = list(csv.DictReader(file))
    assert row["val_aupr_mean"] == "nan"
    assert state(tmp_path / "none" / GROUP / "best.pt")["epoch"] == 0  # best.pt is the last epoch

    assert train.main(args(data, cache, tmp_path / "test", "--val", "test", "--epochs", "1")) == 0
    with open(tmp_path / "test" / GROUP / "metrics.csv") as file:
        [row] = list(csv.DictReader(file))
    # scored on the two test photographs, which show hard exudates
    assert 0 < float(row["val_aupr_EX"]) <= 1
