"""The training loop does what the paper's protocol needs: its steps lower the loss, the
decayed learning rate reaches Adam, and every flag of the CPU protocol runs.

Tiny runs as in test_train.py: synthetic photographs at 64 px, the XS model, one thread.
"""

import pytest
import torch

import data_prep.dataset
from data_prep.synthetic import write_idrid_layout
from u2net_mini import losses, train, train_loop
from u2net_mini.model import U2Net, build_model

SIZE = 64
LOSS_SETTINGS = {"alpha": 0.75, "gamma": 1.0}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data") / "idrid"
    return write_idrid_layout(folder, n_train=3, n_test=1, size=SIZE, seed=0)


def args(data, out, cache, *extra):
    return ["--data", str(data), "--out", str(out), "--size", str(SIZE), "--batch-size", "2",
            "--cache", str(cache), "--no-progress", *extra]


def fixed_batch():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, SIZE, SIZE, generator=generator)  # (B, 3, s, s)
    y = (torch.rand(2, 4, SIZE, SIZE, generator=generator) < 0.05).float()  # (B, C, s, s)
    return x, y


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = build_model("xs", 4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    x, y = fixed_batch()
    # train_step returns the loss before its update: losses[i] is the loss after i steps
    history = [train_loop.train_step(model, x, y, optimizer, LOSS_SETTINGS, bf16=False)[0].item()
               for _ in range(6)]
    assert all(later < earlier for earlier, later in zip(history, history[1:])), history
    assert history[-1] < 0.8 * history[0], history  # 0.94 -> 0.62 when this was written


def test_a_step_checks_the_target_once_and_logs_the_fused_loss_it_trained(monkeypatch):
    checked = []
    real_check = losses.check_target

    def counting_check(y):
        checked.append(1)
        return real_check(y)

    monkeypatch.setattr(losses, "check_target", counting_check)
    torch.manual_seed(0)
    model = build_model("xs", 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the weights stay as they are
    x, y = fixed_batch()
    loss, fused_loss = train_loop.train_step(model, x, y, optimizer, LOSS_SETTINGS, bf16=False)
    assert len(checked) == 1  # seven outputs, one check (each a host sync on a GPU)
    outputs = model(x)  # 7 × (B, C, s, s), the same weights and batch statistics
    with torch.no_grad():
        torch.testing.assert_close(fused_loss, losses.lesion_loss(y, outputs[0]))
        torch.testing.assert_close(loss, losses.deep_supervision_loss(y, outputs))


def test_the_decayed_rate_reaches_adam_at_epochs_115_and_130(data, tmp_path, monkeypatch):
    seen = {}  # epoch (from 0) -> Adam's learning rate while that epoch trains

    def record_rate(net, loader, optimizer, settings, runtime, processes, epoch, label):
        seen[epoch] = optimizer.param_groups[0]["lr"]
        return {"train_loss": 0.0, "train_fused_loss": 0.0}  # no work: only the rate matters

    monkeypatch.setattr(train, "train_epoch", record_rate)
    # 131 epochs of files would take seconds
    for writer in ("save_checkpoint", "write_metrics", "plot_training_curves"):
        monkeypatch.setattr(train, writer, lambda *rest: None)
    command = args(data, tmp_path / "run", tmp_path / "cache", "--epochs", "131", "--val", "none")
    assert train.main(command) == 0
    # lr_0 = 1e-3 until epoch 114; x 0.75 at 115 -> 7.5e-4; x 0.75 again at 130 -> 5.625e-4
    expected = [1e-3, 1e-3, 7.5e-4, 7.5e-4, 5.625e-4]
    assert [seen[e] for e in (0, 114, 115, 129, 130)] == pytest.approx(expected)


def test_bf16_channels_last_and_no_augmentation_train_on_the_cpu(data, tmp_path, monkeypatch):
    calls = []
    real_forward = U2Net.forward

    def spying_forward(self, x):
        calls.append({"autocast": torch.is_autocast_enabled("cpu"),
                      "dtype": torch.get_autocast_dtype("cpu"),
                      "channels_last": x.is_contiguous(memory_format=torch.channels_last)
                      and not x.is_contiguous()})
        return real_forward(self, x)

    def no_augmentation(*rest):
        raise AssertionError("--augment none must not augment")

    monkeypatch.setattr(U2Net, "forward", spying_forward)
    monkeypatch.setattr(data_prep.dataset, "augment_example", no_augmentation)
    out = tmp_path / "run"
    assert train.main(args(data, out, tmp_path / "cache", "--epochs", "1", "--val", "none",
                           "--bf16", "--channels-last", "--augment", "none")) == 0
    assert calls and all(call["autocast"] and call["channels_last"] for call in calls)
    assert {call["dtype"] for call in calls} == {torch.bfloat16}
    history = torch.load(out / "MA-HE-EX-SE" / "last.pt", weights_only=True)["history"]
    assert torch.isfinite(torch.tensor(history[0]["train_loss"]))
