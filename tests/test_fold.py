"""Folding batch norm: by hand on one conv, then the whole network (same outputs, fewer
parameters)."""

import pytest
import torch
from torch import nn

from u2net_mini.counting import count_parameters
from u2net_mini.fold import fold_batchnorm, fold_conv_bn
from u2net_mini.model import model_from_config, u2net_xs
from u2net_mini.random_batchnorm import randomize_batchnorm
from u2net_mini.rsu import REBNCONV, RSU4F


def hand_conv_bn(conv_bias):
    """1 -> 1 channel 3×3 conv of ones; batch norm gamma 3, beta 1, mean 0.5, var 4, eps 0."""
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=conv_bias)
    bn = nn.BatchNorm2d(1, eps=0.0).eval()
    with torch.no_grad():
        conv.weight.fill_(1.0)
        if conv_bias:
            conv.bias.fill_(0.5)
        bn.weight.fill_(3.0)
        bn.bias.fill_(1.0)
        bn.running_mean.fill_(0.5)
        bn.running_var.fill_(4.0)
    return conv, bn


def test_fold_conv_bn_by_hand():
    # s = gamma / sqrt(var + eps) = 3 / 2 = 1.5; W' = 1.5 · 1 = 1.5; b' = 1.5 (0.5 - 0.5) + 1 = 1
    folded = fold_conv_bn(*hand_conv_bn(conv_bias=True))
    assert torch.equal(folded.weight, torch.full((1, 1, 3, 3), 1.5))
    assert torch.equal(folded.bias, torch.tensor([1.0]))


def test_fold_conv_without_bias_by_hand():
    # no conv bias: b' = 1.5 (0 - 0.5) + 1 = 0.25
    conv, bn = hand_conv_bn(conv_bias=False)
    folded = fold_conv_bn(conv, bn)
    assert torch.equal(folded.bias, torch.tensor([0.25]))
    assert conv.bias is None  # the original conv is not changed
    x = torch.randn(1, 1, 4, 5)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), bn(conv(x)))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return randomize_batchnorm(u2net_xs(4), seed=0)


def test_folded_network_gives_the_same_outputs(model):
    folded = fold_batchnorm(model)
    x = torch.randn(2, 3, 45, 61)
    with torch.no_grad():
        for a, b in zip(model(x), folded(x)):
            assert (a - b).abs().max() <= 1e-5 * a.abs().max()


def test_folded_network_has_fewer_parameters(model):
    # Each REBNCONV loses gamma and beta: 2 per channel. In the b family every RSU-L has
    # (2L + 6)·b batch-norm channels; over the 11 stages 2·(7+6+5+4+4+4+4+4+5+6+7) + 66 = 178,
    # so 178·b channels and 356·b parameters fewer: 291,532 - 356·8 = 291,532 - 2,848 = 288,684.
    folded = fold_batchnorm(model)
    assert count_parameters(model) - count_parameters(folded) == 356 * 8
    assert count_parameters(folded) == 288_684
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())


def test_the_original_is_untouched(model):
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    try:
        folded = fold_batchnorm(model.train())
        assert model.training and not folded.training
    finally:
        model.eval()
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert all(isinstance(m.bn, nn.BatchNorm2d) for m in model.modules() if isinstance(m, REBNCONV))
    assert "folded" not in model.config and folded.config["folded"] is True


def test_folded_has_no_training_mode_difference(model):
    folded = fold_batchnorm(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        in_eval = folded(x)[0]
        in_train = folded.train()(x)[0]
    assert torch.equal(in_eval, in_train)


def test_folding_twice_changes_nothing(model):
    once = fold_batchnorm(model)
    twice = fold_batchnorm(once)
    assert count_parameters(twice) == count_parameters(once)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(once(x)[0], twice(x)[0])


def test_folded_config_rebuilds_a_loadable_model(model):
    folded = fold_batchnorm(model)
    rebuilt = model_from_config(folded.config)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in rebuilt.modules())
    rebuilt.load_state_dict(folded.state_dict())  # strict: same keys, no bn
    x = torch.randn(1, 3, 32, 40)
    with torch.no_grad():  # the rebuilt, folded model computes what the unfolded original does
        expected = model(x)[0]
        assert (rebuilt.eval()(x)[0] - expected).abs().max() <= 1e-5 * expected.abs().max()


def test_fold_a_single_block():
    torch.manual_seed(1)
    block = randomize_batchnorm(RSU4F(2, 3, 4), seed=1)
    x = torch.randn(1, 2, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(fold_batchnorm(block)(x), block(x), rtol=1e-5, atol=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="model must contain REBNCONV blocks .* got Linear"):
        fold_batchnorm(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="bn must have 3 features like the conv's outputs, got 4"):
        fold_conv_bn(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(4))
