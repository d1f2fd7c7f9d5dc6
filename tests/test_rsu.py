"""REBNCONV, RSU-L and RSU-4F: hand-computed outputs, parameter counts, shapes, structure."""

import pytest
import torch

from u2net_mini.counting import count_parameters
from u2net_mini.rsu import REBNCONV, RSU, RSU4F, make_block


def hand_rebnconv(dilation, beta):
    """1 → 1 channel, all-ones 3×3 kernel, bias 0, batch norm with mean 1, var 4, eps 0."""
    block = REBNCONV(1, 1, dilation).eval()
    with torch.no_grad():
        block.conv.weight.fill_(1.0)
        block.conv.bias.zero_()
        block.bn.running_mean.fill_(1.0)
        block.bn.running_var.fill_(4.0)
        block.bn.eps = 0.0
        block.bn.weight.fill_(1.0)
        block.bn.bias.fill_(beta)
    return block


def test_rebnconv_by_hand():
    # Input 3×3 of ones, padding 1: the conv sums the ones under the kernel,
    # centre 9, edge 6, corner 4. Batch norm: (s - 1) / 2 + beta with beta = -2:
    # centre 4 - 2 = 2, edge 2.5 - 2 = 0.5, corner 1.5 - 2 = -0.5 -> ReLU -> 0.
    block = hand_rebnconv(dilation=1, beta=-2.0)
    y = block(torch.ones(1, 1, 3, 3))
    expected = torch.tensor([[0.0, 0.5, 0.0], [0.5, 2.0, 0.5], [0.0, 0.5, 0.0]])
    torch.testing.assert_close(y[0, 0], expected)


def test_rebnconv_dilation_by_hand():
    # Dilation 2, padding 2, 5×5 ones: taps at offsets -2, 0, 2 per axis.
    # Centre (2, 2): all 9 taps inside -> 9; corner (0, 0): rows/cols {0, 2} inside -> 4;
    # (0, 2): rows {0, 2} × cols {0, 2, 4} -> 6; (1, 1): rows {1, 3} × cols {1, 3} -> 4.
    # Batch norm with beta = 0: (s - 1) / 2 -> 4, 1.5, 2.5, 1.5.
    block = hand_rebnconv(dilation=2, beta=0.0)
    y = block(torch.ones(1, 1, 5, 5))[0, 0]
    assert y.shape == (5, 5)
    assert y[2, 2].item() == 4.0
    assert y[0, 0].item() == 1.5
    assert y[0, 2].item() == 2.5
    assert y[1, 1].item() == 1.5


def test_rebnconv_parameters_by_hand():
    # 2 -> 3 channels: weights 3·2·3·3 = 54, bias 3, batch-norm gamma and beta 3 + 3 -> 63
    assert count_parameters(REBNCONV(2, 3)) == 63


def test_rsu4_parameters_by_hand():
    # RSU-4 with in = mid = out = 1: every REBNCONV a -> c has 9·a·c + 3·c parameters.
    # conv_in 1->1: 12; encoder 3 × (1->1): 36; bottom 1->1: 12; decoder 3 × (2->1): 3 · 21 = 63
    # total 12 + 36 + 12 + 63 = 123
    assert count_parameters(RSU(4, 1, 1, 1)) == 123
    assert count_parameters(RSU4F(1, 1, 1)) == 123  # same convs, other dilations


@pytest.mark.parametrize("height", [4, 5, 6, 7])
@pytest.mark.parametrize("in_ch", [3, 24])
def test_rsu_parameters_match_closed_form(height, in_ch):
    # mid = b, out = 4b: conv_in 36·in·b + 12b; encoder level 0: 36b² + 3b;
    # L - 2 more encoder levels and the bottom: (L - 1)(9b² + 3b);
    # L - 2 decoder levels 2b -> b: (L - 2)(18b² + 3b); last decoder 2b -> 4b: 72b² + 12b.
    # Sum: 36·in·b + (27L + 63) b² + (6L + 18) b.
    b = 6
    expected = 36 * in_ch * b + (27 * height + 63) * b**2 + (6 * height + 18) * b
    assert count_parameters(RSU(height, in_ch, b, 4 * b)) == expected


def dilations(block):
    """Dilations of a block's convs in the order they run."""
    down = [block.conv_in] + list(block.encoder) + [block.bottom]
    up = list(reversed(block.decoder))
    return [conv.conv.dilation[0] for conv in down + up]


def test_dilations():
    assert dilations(RSU4F(2, 2, 2)) == [1, 1, 2, 4, 8, 4, 2, 1]
    assert dilations(RSU(5, 2, 2, 2)) == [1, 1, 1, 1, 1, 2, 1, 1, 1, 1]


@pytest.mark.parametrize("kind", ["RSU-7", "RSU-6", "RSU-5", "RSU-4", "RSU-4F"])
@pytest.mark.parametrize("size", [(16, 16), (13, 21), (1, 5)])
def test_rsu_keeps_size_odd_sizes_too(kind, size):
    block = make_block(kind, 3, 4, 5).eval()
    with torch.no_grad():
        y = block(torch.randn(2, 3, *size))
    assert y.shape == (2, 5, *size)


@pytest.mark.parametrize(
    "height, size, bottom_size",
    [
        (7, 64, 2),  # 6 encoder levels, 5 poolings: 64 -> 32 -> 16 -> 8 -> 4 -> 2
        (5, 13, 2),  # 4 encoder levels, 3 poolings in ceil mode: 13 -> 7 -> 4 -> 2
        (4, 5, 2),  # 3 encoder levels, 2 poolings in ceil mode: 5 -> 3 -> 2
    ],
)
def test_rsu_pools_height_minus_2_times(height, size, bottom_size):
    seen = []
    block = RSU(height, 1, 2, 1).eval()
    block.bottom.register_forward_hook(
        lambda module, inputs, output: seen.append(tuple(inputs[0].shape[2:])))
    with torch.no_grad():
        block(torch.randn(1, 1, size, size))
    assert seen == [(bottom_size, bottom_size)]


def test_rsu4f_never_pools():
    seen = []
    block = RSU4F(1, 2, 1).eval()
    block.bottom.register_forward_hook(
        lambda module, inputs, output: seen.append(tuple(inputs[0].shape[2:])))
    with torch.no_grad():
        block(torch.randn(1, 1, 9, 11))
    assert seen == [(9, 11)]


@pytest.mark.parametrize("kind", ["RSU-6", "RSU-4F"])
def test_residual_without_u_branch_is_the_input_conv(kind):
    # Zero the last decoder conv and its batch-norm shift: U(F_1(x)) = relu(0) = 0,
    # so H_RSU(x) = U(F_1(x)) + F_1(x) = F_1(x).
    block = make_block(kind, 3, 4, 5).eval()
    with torch.no_grad():
        last = block.decoder[0]
        last.conv.weight.zero_()
        last.conv.bias.zero_()
        last.bn.bias.zero_()
        x = torch.randn(1, 3, 12, 10)
        torch.testing.assert_close(block(x), block.conv_in(x))
        assert not torch.allclose(block(x), torch.zeros(1))  # F_1(x) itself is not trivial


def test_bad_arguments():
    with pytest.raises(ValueError, match="height must be one of"):
        RSU(3, 1, 1, 1)
    with pytest.raises(ValueError, match="only RSU-4 has a dilated form"):
        RSU(5, 1, 1, 1, dilated=True)
    with pytest.raises(ValueError, match="mid_ch must be a positive int, got 0"):
        RSU(4, 1, 0, 1)
    with pytest.raises(ValueError, match="in_ch must be a positive int"):
        REBNCONV(2.5, 1)
    with pytest.raises(ValueError, match="dilation must be a positive int"):
        REBNCONV(1, 1, dilation=0)
    with pytest.raises(ValueError, match="kind must be one of"):
        make_block("RSU-8", 1, 1, 1)
