"""Checkpoints: atomic writes, weights_only round trips, clear errors on any mismatch."""

import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from data_prep.atomic import atomic_write
from u2net_mini import checkpoint
from u2net_mini.checkpoint import (
    FORMAT_VERSION,
    load_checkpoint,
    load_weights,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


class TinyNet(nn.Module):
    """A stand-in for the U²-Net: a conv, a batch norm (with buffers) and a head."""

    def __init__(self, width=4, out_ch=2):
        super().__init__()
        self.config = {"name": "tiny", "out_ch": out_ch, "in_ch": 3, "width": width}
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.norm = nn.BatchNorm2d(width)
        self.head = nn.Conv2d(width, out_ch, 1)

    def forward(self, x):
        return self.head(torch.relu(self.norm(self.conv(x))))


def make_payload(model, **changes):
    payload = {
        "model_config": dict(model.config),
        "state_dict": model.state_dict(),
        "lesions": ("EX", "SE"),
        "input_size": 64,
        "mean": [0.5, 0.25, 0.125],
        "std": [0.2, 0.1, 0.05],
        "preprocessing": {"clahe": True, "clip_limit": 2.0},
    }
    payload.update(changes)
    return payload


@pytest.fixture
def model():
    torch.manual_seed(0)
    net = TinyNet()
    net.norm.running_mean.uniform_(-1, 1)  # non-default buffers, so the round trip tests them
    return net


def test_round_trip_restores_outputs_and_metadata(tmp_path, model):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    model.eval()
    path = save_checkpoint(tmp_path / "run" / "last.pt", make_payload(
        model, epoch=3, optimizer=optimizer.state_dict(), scheduler={"lr": 7.5e-4},
        rng=rng_state(), history=[{"epoch": 1, "loss": 0.5}]))
    loaded = load_checkpoint(path, expect={"lesions": ["EX", "SE"], "input_size": 64}, resume=True)
    assert loaded["format_version"] == FORMAT_VERSION
    assert loaded["lesions"] == ("EX", "SE") and loaded["mean"] == [0.5, 0.25, 0.125]
    assert loaded["model_config"] == model.config and loaded["epoch"] == 3
    twin = load_weights(TinyNet(), loaded["state_dict"]).eval()
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(twin(x), model(x), rtol=0, atol=0)
    optimizer_twin = torch.optim.Adam(twin.parameters())
    optimizer_twin.load_state_dict(loaded["optimizer"])
    assert optimizer_twin.param_groups[0]["weight_decay"] == 1e-4
    torch.testing.assert_close(optimizer_twin.state_dict()["state"][0]["exp_avg"],
                               optimizer.state_dict()["state"][0]["exp_avg"], rtol=0, atol=0)


def test_rng_state_round_trip_through_a_checkpoint(tmp_path, model):
    generator = np.random.default_rng(11)
    torch_generator = torch.Generator().manual_seed(12)
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = rng_state([generator, torch_generator])

    def draw():
        return (random.random(), np.random.rand(), torch.rand(1).item(),
                generator.random(), torch.rand(1, generator=torch_generator).item())

    expected = draw()
    save_checkpoint(tmp_path / "c.pt", make_payload(model, rng=state))
    loaded = load_checkpoint(tmp_path / "c.pt")["rng"]
    draw()  # move every generator on
    set_rng_state(loaded, [generator, torch_generator])
    assert draw() == expected
    with pytest.raises(ValueError, match="holds 2 generators, got 1"):
        set_rng_state(loaded, [generator])


def test_failed_write_leaves_the_old_checkpoint_intact(tmp_path, model, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pt", make_payload(model))
    old_bytes = path.read_bytes()

    def save_half_then_fail(obj, file):
        file.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, make_payload(model, input_size=128))
    assert path.read_bytes() == old_bytes
    assert os.listdir(tmp_path) == ["last.pt"]  # the temporary file is gone


def test_unpicklable_payload_is_refused_before_writing(tmp_path, model):
    path = save_checkpoint(tmp_path / "last.pt", make_payload(model))
    old_bytes = path.read_bytes()
    with pytest.raises(ValueError, match=r"payload\['history'\]\[0\]\['f'\] is a "
                                         r"builtins.function"):
        save_checkpoint(path, make_payload(model, history=[{"f": lambda: 0}]))
    with pytest.raises(ValueError, match=r"payload\['rng'\] is a numpy.ndarray.*tolist"):
        save_checkpoint(path, make_payload(model, rng=np.zeros(3)))
    with pytest.raises(ValueError, match=r"payload\['best'\] is a numpy.float64"):
        save_checkpoint(path, make_payload(model, best=np.float64(0.5)))
    assert path.read_bytes() == old_bytes and os.listdir(tmp_path) == ["last.pt"]


def test_atomic_write_text_and_errors(tmp_path):
    target = tmp_path / "table.md"
    with atomic_write(target, "w") as file:
        file.write("| a |\n")
    assert target.read_text() == "| a |\n"
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target, "w") as file:
            file.write("half")
            raise KeyboardInterrupt  # Ctrl-C in the middle of a write
    assert target.read_text() == "| a |\n" and os.listdir(tmp_path) == ["table.md"]
    with pytest.raises(ValueError, match="mode must be"):
        with atomic_write(target, "a"):
            pass
    with pytest.raises(ValueError, match="is a folder"):
        with atomic_write(tmp_path):
            pass


def test_atomic_write_gives_usual_permissions(tmp_path):
    # the temporary file is private (0o600); the result gets the umask's mode, or keeps
    # the mode of the file it replaces
    old_umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "new.png") as file:
            file.write(b"x")
        assert (tmp_path / "new.png").stat().st_mode & 0o777 == 0o644
        (tmp_path / "new.png").chmod(0o640)
        with atomic_write(tmp_path / "new.png") as file:
            file.write(b"y")
        assert (tmp_path / "new.png").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old_umask)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"lesions": ("EX", "XX")}, "lesions must be a non-empty subset"),
        ({"lesions": ("EX",)}, r"out_ch = 2 but 1 lesions"),
        ({"input_size": 64.0}, "input_size must be a positive int"),
        ({"mean": [0.5, 0.5]}, "mean must be a list of 3 finite floats"),
        ({"std": [0.2, 0.0, 0.1]}, "std must be positive"),
        ({"state_dict": {}}, "state_dict must be a non-empty dict"),
        ({"preprocessing": None}, "preprocessing must be a dict"),
        ({"format_version": 99}, r"payload\['format_version'\] must be 1 or absent"),
    ],
)
def test_malformed_payload_is_refused(tmp_path, model, changes, match):
    with pytest.raises(ValueError, match=match):
        save_checkpoint(tmp_path / "c.pt", make_payload(model, **changes))
    assert not (tmp_path / "c.pt").exists()


def test_missing_inference_key_is_refused(tmp_path, model):
    payload = make_payload(model)
    del payload["std"]
    with pytest.raises(ValueError, match=r"lacks \['std'\]"):
        save_checkpoint(tmp_path / "c.pt", payload)


def test_files_that_are_not_our_checkpoints(tmp_path, model):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a u2net_mini checkpoint: it is truncated, damaged or "
                                         "not a torch file") \
            as not_torch:
        load_checkpoint(tmp_path / "text.pt")
    # torch's advice to load unsafely is not passed on
    assert "weights_only" not in str(not_torch.value)
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    with pytest.raises(ValueError, match="looks like a bare state_dict"):
        load_checkpoint(tmp_path / "bare.pt")
    torch.save({"model": TinyNet}, tmp_path / "code.pt")  # would run code: weights_only refuses
    with pytest.raises(ValueError, match="can run code from the file") as refused:
        load_checkpoint(tmp_path / "code.pt")
    assert "weights_only" not in str(refused.value)  # never the advice to load it unsafely


def test_wrong_format_version_and_expectations(tmp_path, model):
    payload = make_payload(model, format="u2net_mini checkpoint", format_version=FORMAT_VERSION + 1)
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ValueError, match=f"format version {FORMAT_VERSION + 1}.*reads version "
                                         f"{FORMAT_VERSION}"):
        load_checkpoint(tmp_path / "future.pt")
    path = save_checkpoint(tmp_path / "c.pt", make_payload(model))
    with pytest.raises(ValueError, match=r"holds lesions = \('EX', 'SE'\), expected \('MA', "
                                         r"'HE'\)"):
        load_checkpoint(path, expect={"lesions": ("MA", "HE")})
    with pytest.raises(ValueError, match=r"has no 'epoch'"):
        load_checkpoint(path, expect={"epoch": 3})
    with pytest.raises(ValueError, match=r"cannot resume training: it lacks \['epoch', "
                                         r"'optimizer'"):
        load_checkpoint(path, resume=True)


def test_mismatched_state_dict_names_every_difference(model):
    other = TinyNet(width=6, out_ch=2)
    state_dict = dict(model.state_dict())
    state_dict["extra.weight"] = torch.zeros(1)
    del state_dict["head.bias"]
    with pytest.raises(ValueError) as error:
        load_weights(other, state_dict)
    message = str(error.value)
    assert "1 missing keys: head.bias" in message
    assert "1 unexpected keys: extra.weight" in message
    assert "conv.weight: checkpoint (4, 3, 3, 3), model (6, 3, 3, 3)" in message


def test_a_mismatch_loads_nothing(model):
    # same shapes, one key missing: torch's strict loading would copy the other tensors
    # before complaining; load_weights must leave the model untouched
    other = TinyNet()
    before = {key: value.clone() for key, value in other.state_dict().items()}
    state_dict = dict(model.state_dict())
    del state_dict["norm.running_var"]
    with pytest.raises(ValueError, match="1 missing keys: norm.running_var"):
        load_weights(other, state_dict)
    for key, value in other.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def test_wrapper_prefix_gets_a_hint(model):
    wrapped = {f"module.{key}": value for key, value in model.state_dict().items()}
    with pytest.raises(ValueError, match="DistributedDataParallel wrapper"):
        load_weights(TinyNet(), wrapped)


def test_preprocessing_arguments_are_the_checkpoints_and_defaults_for_older_ones():
    payload = {"input_size": 256, "mean": [0.1, 0.2, 0.3], "std": [1.0, 2.0, 3.0],
               "preprocessing": {"clahe": False, "clahe_channel": "green", "threshold": 12}}
    assert checkpoint.preprocessing_arguments(payload) == {
        "size": 256, "mean": [0.1, 0.2, 0.3], "std": [1.0, 2.0, 3.0],
        "clahe": False, "clahe_channel": "green", "threshold": 12}
    older = {**payload, "preprocessing": {}}  # written before these options were recorded
    arguments = checkpoint.preprocessing_arguments(older)
    assert (arguments["clahe"], arguments["clahe_channel"]) == (True, "lab")
    assert "threshold" not in arguments
