"""U²-Net: exact parameter counts, configs, output shapes, gradients, input checks."""

import numpy as np
import pytest
import torch
from torch import nn

from u2net_mini.counting import count_parameters
from u2net_mini.model import (
    U2Net,
    build_model,
    fused_probabilities,
    model_from_config,
    stage_channels,
    u2net_full,
    u2net_small,
    u2net_xs,
)
from u2net_mini.rsu import REBNCONV


@pytest.mark.parametrize(
    "factory, out_ch, expected",
    [
        (u2net_full, 1, 44_009_869),
        (u2net_small, 1, 1_131_181),
        (u2net_xs, 1, 286_237),
        (u2net_xs, 2, 287_990),
        (u2net_xs, 4, 291_532),  # the paper's 0.29 M
    ],
)
def test_parameter_counts_are_exact(factory, out_ch, expected):
    assert count_parameters(factory(out_ch)) == expected


def test_full_widths_are_the_original_u2net():
    channels = stage_channels("full")
    assert channels["En_1"] == (3, 32, 64)
    assert channels["En_5"] == channels["En_6"] == (512, 256, 512)
    assert channels["De_5"] == (1024, 256, 512)
    assert channels["De_1"] == (128, 16, 64)
    # every decoder reads the upsampled deeper output and the skip: in = out(deeper) + out(skip)
    deeper = {"De_5": "En_6", "De_4": "De_5", "De_3": "De_4", "De_2": "De_3", "De_1": "De_2"}
    for decoder, source in deeper.items():
        skip = "En_" + decoder[-1]
        assert channels[decoder][0] == channels[source][2] + channels[skip][2]


def test_family_widths_have_one_knob():
    channels = stage_channels(8, in_ch=1)
    assert channels["En_1"] == (1, 8, 32)
    assert {channels[s] for s in ("En_2", "En_3", "En_4", "En_5", "En_6")} == {(32, 8, 32)}
    assert {channels[s] for s in ("De_1", "De_2", "De_3", "De_4", "De_5")} == {(64, 8, 32)}


@pytest.mark.parametrize("name, width", [("xs", 8), ("small", 16), ("full", "full")])
def test_build_model_and_config(name, width):
    model = build_model(name, 4)
    assert model.config == {"name": name, "out_ch": 4, "in_ch": 3, "width": width}
    assert (model.out_ch, model.in_ch) == (4, 3)


@pytest.mark.parametrize(
    "config, built",
    [
        ({"name": "xs", "out_ch": 4, "in_ch": 3}, lambda: U2Net(4, 8, 3)),  # width from the name
        ({"name": "small", "out_ch": 2, "in_ch": 1, "width": 16}, lambda: U2Net(2, 16, 1)),
        ({"name": "custom", "out_ch": 1, "in_ch": 3, "width": 5}, lambda: U2Net(1, 5, 3)),
    ],
)
def test_model_from_config_rebuilds_the_constructors_architecture(config, built):
    # the rebuilt model against one made by the constructor itself, not by model_from_config
    original = built()
    rebuilt = model_from_config(config)
    assert rebuilt.config == original.config
    shapes = {k: v.shape for k, v in original.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
    assert model_from_config(rebuilt.config).config == rebuilt.config  # a config round-trips


def test_custom_width_is_named_custom():
    assert U2Net(out_ch=2, width=5).config == {"name": "custom", "out_ch": 2, "in_ch": 3,
                                               "width": 5}


@pytest.mark.parametrize(
    "config, message",
    [
        ([("name", "xs")], "config must be a dict"),
        ({"name": "xs", "out_ch": 1, "lesions": "MA"}, r"unknown keys \['lesions'\]"),
        ({"name": "xs"}, r"missing \['out_ch'\]"),
        ({"name": "custom", "out_ch": 1}, "must give 'width'"),
        ({"name": "xs", "out_ch": 1, "width": 16}, "does not fit width 16, which is 'small'"),
        ({"name": "xs", "out_ch": 0}, "out_ch must be a positive int, got 0"),
    ],
)
def test_bad_config(config, message):
    with pytest.raises(ValueError, match=message):
        model_from_config(config)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="model name must be one of"):
        build_model("tiny", 1)
    with pytest.raises(ValueError, match="width must be a positive int"):
        U2Net(1, width=0)
    with pytest.raises(ValueError, match="width must be a positive int"):
        U2Net(1, width="huge")
    with pytest.raises(ValueError, match="in_ch must be a positive int, got True"):
        U2Net(1, 8, in_ch=True)
    with pytest.raises(ValueError, match="out_ch must be a positive int"):
        u2net_xs(1.0)


@pytest.mark.parametrize("size", [(64, 64), (45, 61), (32, 33)])
def test_seven_outputs_of_input_size(size):
    model = u2net_xs(4).eval()
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, *size))
    assert isinstance(outputs, tuple) and len(outputs) == 7
    assert all(output.shape == (2, 4, *size) for output in outputs)


def test_odd_large_size():
    model = u2net_xs(1).eval()
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 333, 517))
    assert all(output.shape == (1, 1, 333, 517) for output in outputs)


@pytest.mark.parametrize("factory", [u2net_full, u2net_small])
def test_wider_models_run_at_the_smallest_size(factory):
    # The full widths differ per stage, so a side head wired to the wrong stage would fail here.
    model = factory(2, in_ch=1).eval()
    with torch.no_grad():
        outputs = model(torch.randn(1, 1, 32, 35))
    assert [tuple(output.shape) for output in outputs] == [(1, 2, 32, 35)] * 7


def test_fused_is_the_1x1_conv_of_the_sides():
    # fused = W_fuse * [side 1, …, side 6] + b_fuse: the first output is made from the other six.
    torch.manual_seed(0)
    model = u2net_xs(2).eval()
    with torch.no_grad():
        fused, *sides = model(torch.randn(1, 3, 40, 36))
        torch.testing.assert_close(fused, model.fuse(torch.cat(sides, dim=1)))
    assert len(sides) == 6


def test_logits_not_probabilities():
    # No sigmoid inside: logits take values outside [0, 1].
    torch.manual_seed(0)
    model = u2net_xs(1).eval()
    with torch.no_grad():
        model.fuse.bias.fill_(-3.0)  # pushes the fused logits below 0
        fused, *_ = model(torch.randn(1, 3, 32, 32))
    assert fused.min() < 0


def test_eval_mode_treats_batch_items_independently():
    torch.manual_seed(0)
    model = u2net_xs(1).eval()
    x = torch.randn(3, 3, 32, 48)
    with torch.no_grad():
        together = model(x)[0]
        alone = torch.cat([model(x[i : i + 1])[0] for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


def test_one_backward_pass_reaches_every_parameter():
    torch.manual_seed(0)
    model = u2net_xs(2).double().eval()
    outputs = model(torch.randn(2, 3, 32, 32, dtype=torch.float64))
    y = (torch.rand(2, 2, 32, 32, dtype=torch.float64) > 0.5).double()
    loss = sum(nn.functional.binary_cross_entropy_with_logits(logits, y) for logits in outputs)
    loss.backward()
    silent = [name for name, p in model.named_parameters()
              if p.grad is None or not p.grad.abs().sum() > 0]
    assert silent == []


def test_training_mode_batch_norm_cancels_the_conv_bias():
    # In training, batch norm subtracts the batch mean of conv(x) + b, so b cancels and its
    # gradient is zero (to rounding); every other parameter still learns.
    torch.manual_seed(0)
    model = u2net_xs(1).double().train()
    outputs = model(torch.randn(2, 3, 32, 32, dtype=torch.float64))
    sum(output.square().mean() for output in outputs).backward()
    conv_biases = {f"{name}.conv.bias" for name, m in model.named_modules()
                   if isinstance(m, REBNCONV)}
    for name, p in model.named_parameters():
        if name in conv_biases:
            assert p.grad.abs().max() < 1e-10, name
        else:
            assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    "shape, message",
    [
        ((3, 64, 64), r"x must be 4-D \(B, 3, H, W\), got shape \(3, 64, 64\)"),
        ((1, 1, 64, 64), r"x must have 3 channels \(dim 1\), got shape \(1, 1, 64, 64\)"),
        ((1, 3, 31, 64), "x must have H and W >= 32, got 31×64"),
        ((1, 3, 64, 16), "x must have H and W >= 32, got 64×16"),
    ],
)
def test_bad_input(shape, message):
    model = u2net_xs(1)
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(shape))


def test_the_prediction_is_the_sigmoid_of_the_fused_output_alone():
    # sigma(0) = 0.5, sigma(ln 3) = 3 / (3 + 1) = 0.75; the side output (100) is not used
    fused = torch.tensor([[[[0.0, float(np.log(3))]]]], dtype=torch.bfloat16)  # (1, 1, 1, 2)
    side = torch.full((1, 1, 1, 2), 100.0)  # (1, 1, 1, 2)
    y_hat = fused_probabilities([fused, side])
    assert y_hat.dtype == torch.float32  # whatever autocast gave the logits
    # ln 3 in bfloat16
    torch.testing.assert_close(y_hat, torch.tensor([[[[0.5, 0.75]]]]), rtol=0, atol=2e-3)
