"""Counting (parameters and MACs by hand, the closed form P(b, k)) and exact receptive fields."""

import numpy as np
import pytest
import torch
from torch import nn

from u2net_mini.counting import conv_macs, conv_macs_per_layer, count_parameters, parameter_formula
from u2net_mini.model import U2Net, u2net_full, u2net_small, u2net_xs
from u2net_mini.receptive_field import (
    block_receptive_field,
    block_windows,
    input_windows,
    receptive_fields,
)
from u2net_mini.rsu import REBNCONV, RSU, RSU4F

# --- parameters ---------------------------------------------------------------------------


def test_count_parameters_by_hand():
    # conv 3 -> 8, 3×3: 8·3·3·3 = 216 weights + 8 biases = 224
    assert count_parameters(nn.Conv2d(3, 8, 3)) == 224
    # batch norm over 8 channels: gamma 8 + beta 8 = 16 (running mean and var are buffers)
    assert count_parameters(nn.BatchNorm2d(8)) == 16
    # a frozen parameter is not trainable
    conv = nn.Conv2d(3, 8, 3)
    conv.bias.requires_grad_(False)
    assert count_parameters(conv) == 216


def test_parameter_formula_by_hand():
    # P(8, 4) = 4365·64 + 642·8 + 216·8·4 + 6·16 + 7·4
    #         = 279,360 + 5,136 + 6,912 + 96 + 28 = 291,532
    assert parameter_formula(8, 4) == 291_532
    # P(1, 1) = 4365 + 642 + 216 + 6 + 7 = 5,236
    assert parameter_formula(1, 1) == 5_236
    # one input channel instead of 3 removes 36·b·2 = 72·b: P(8, 4) - 576
    assert parameter_formula(8, 4, in_ch=1) == 291_532 - 576


@pytest.mark.parametrize("b", [1, 3, 8, 16])
@pytest.mark.parametrize("k", [1, 2, 4, 7])
def test_parameter_formula_matches_the_modules(b, k):
    assert count_parameters(U2Net(out_ch=k, width=b)) == parameter_formula(b, k)


@pytest.mark.parametrize("in_ch", [1, 4])
def test_parameter_formula_input_channels(in_ch):
    assert (count_parameters(U2Net(out_ch=2, width=3, in_ch=in_ch))
            == parameter_formula(3, 2, in_ch=in_ch))


def test_the_paper_full_count_is_not_hit_exactly():
    # The paper quotes 43.87 M for U²-Net; the original widths give 44,009,869 at out_ch = 1,
    # 0.32 % more, and more outputs only add parameters.
    full = count_parameters(u2net_full(1))
    assert full == 44_009_869
    assert 0.003 < full / 43.87e6 - 1 < 0.004


def test_parameter_formula_bad_input():
    with pytest.raises(ValueError, match="b must be a positive int, got 0"):
        parameter_formula(0, 1)
    with pytest.raises(ValueError, match="k must be a positive int, got 2.0"):
        parameter_formula(8, 2.0)


# --- multiply-accumulates ------------------------------------------------------------------


@pytest.mark.parametrize(
    "conv, size, expected",
    [
        # 3 -> 8, 3×3, padding 1 on 5×7: 8·5·7 = 280 outputs × 3·3·3 = 27 -> 7,560
        (nn.Conv2d(3, 8, 3, padding=1), (5, 7), 7_560),
        # 2 -> 4, 3×3, stride 2, no padding on 7×9: out 3×4, 4·12 = 48 outputs × 2·9 = 18 -> 864
        (nn.Conv2d(2, 4, 3, stride=2), (7, 9), 864),
        # 4 -> 6, 1×1, 2 groups on 2×2: 6·4 = 24 outputs × (4/2)·1 = 2 -> 48
        (nn.Conv2d(4, 6, 1, groups=2), (2, 2), 48),
        # dilation 2, padding 2 keeps 6×6: 1·36 outputs × 1·9 -> 324
        (nn.Conv2d(1, 1, 3, padding=2, dilation=2), (6, 6), 324),
    ],
)
def test_conv_macs_of_one_conv_by_hand(conv, size, expected):
    assert conv_macs(conv, *size) == expected


def test_conv_macs_inside_the_network_by_hand():
    per_layer = conv_macs_per_layer(u2net_xs(4), 512, 512)
    # En_1's input conv, 3 -> 32 at 512×512: 32·512·512 outputs × 3·9 = 226,492,416
    assert per_layer["encoders.0.conv_in.conv"] == 32 * 512 * 512 * 27 == 226_492_416
    # side 1 on De_1 (32 -> 4, stride 1): 4·512·512 × 32·9 = 301,989,888
    assert per_layer["sides.0"] == 301_989_888
    # side 6 on En_6 (stride 32, 16×16): 4·16·16 × 288 = 294,912
    assert per_layer["sides.5"] == 294_912
    # fuse, 24 -> 4, 1×1: 4·512·512 × 24 = 25,165,824
    assert per_layer["fuse"] == 25_165_824
    # RSU-L has 2L convs (input, L - 1 down, bottom, L - 1 up): 2·(7+6+5+4+4+4 + 4+4+5+6+7) = 112,
    # plus 6 sides and the fuse: 119
    assert len(per_layer) == 119


def test_conv_macs_of_xs_at_512():
    macs = conv_macs(u2net_xs(4), 512, 512)
    assert round(macs / 1e9, 1) == 13.1  # the "about 13.1 G"
    # Sizes that are multiples of 32 scale every map, so twice the side is four times the work.
    assert conv_macs(u2net_xs(4), 1024, 1024) == 4 * macs


def test_conv_macs_of_a_float64_model_equals_float32():
    # the placeholder input takes the parameters' dtype; a float32 one made float64 convs fail
    assert conv_macs(u2net_xs(1).double(), 64, 64) == conv_macs(u2net_xs(1), 64, 64)


def test_conv_macs_leaves_the_model_alone():
    model = u2net_xs(1).train()
    conv_macs(model, 64, 64)
    assert model.training
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())


def test_conv_macs_bad_input():
    with pytest.raises(ValueError, match="height must be a positive int, got 0"):
        conv_macs(u2net_xs(1), 0, 64)
    with pytest.raises(ValueError, match="model must contain an nn.Conv2d"):
        conv_macs(nn.ReLU(), 8, 8)


# --- receptive fields ----------------------------------------------------------------------


@pytest.mark.parametrize("dilation, expected", [(1, 3), (2, 5), (8, 17)])  # 1 + 2·d
def test_rebnconv_receptive_field_by_hand(dilation, expected):
    assert block_receptive_field(REBNCONV(1, 1, dilation)) == expected


def test_rsu4f_receptive_field_by_hand():
    # No pooling, so each 3×3 conv with dilation d adds 2d:
    # conv_in 3; encoder d = 1, 2, 4: 5, 9, 17; bottom d = 8: 33;
    # decoder d = 4, 2, 1 (the skips are narrower): 41, 45, 47; the residual adds nothing.
    assert block_receptive_field(RSU4F(1, 1, 1)) == 47


def test_rsu4_receptive_field_by_hand():
    # With the jump j (input pixels between neighbours): a conv adds 2·d·j, a 2×2 pooling
    # adds j (then j doubles), resizing up adds the deeper j.
    # conv_in 3, enc0 5 | pool 6 (j 2) | enc1 10 | pool 12 (j 4) | enc2 20 | bottom d 2: 36
    # | dec2 44 | up 48 (j 2) | dec1 52 | up 54 (j 1) | dec0 56
    assert block_receptive_field(RSU(4, 1, 1, 1)) == 56


def positive_weights(model, seed):
    """Weights > 0, biases 0: with a zero input every activation is 0, and an input pixel
    of 1 reaches exactly the outputs that depend on it (no ReLU or max-pool can hide it)."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, module.weight.shape)
                                                     / fan_in))
                module.bias.zero_()
    return model.double().eval()


def column_probes(n, columns, height=32):
    """One input per column: zeros except that column, which is 1."""
    x = torch.zeros(len(columns), 1, height, n, dtype=torch.float64)  # (B, 1, H, W)
    for i, column in enumerate(columns):
        if isinstance(column, tuple):
            for c in column:
                x[i, :, :, c] = 1.0
        else:
            x[i, :, :, column] = 1.0
    return x


def test_block_windows_are_exact():
    # RSU-7: its window's ends reach the output, one pixel further does not.
    block = positive_weights(RSU(7, 1, 2, 1), seed=0)
    n, centre = 1024, 517
    lo, hi = block_windows(block, n)
    x = column_probes(n, [lo[centre], hi[centre], (lo[centre] - 1, hi[centre] + 1)], height=1)
    with torch.no_grad():
        y = block(x)[:, 0, 0, centre]  # (3,)
    assert y[0] > 0 and y[1] > 0
    assert y[2] == 0


def test_network_windows_are_exact():
    # The fused output of the whole net: the two ends of the computed window reach it,
    # the pixels just outside do not (both probed in one input, as every effect is >= 0).
    model = positive_weights(U2Net(out_ch=1, width=1, in_ch=1), seed=1)
    n = 8192
    centre = n // 2
    lo, hi = input_windows(model, n)["fused"]
    x = column_probes(n, [lo[centre], hi[centre], (lo[centre] - 1, hi[centre] + 1)])
    with torch.no_grad():
        fused = model(x)[0][:, 0, 16, centre]  # (3,)
    assert fused[0] > 0 and fused[1] > 0
    assert fused[2] == 0


def test_receptive_fields_table():
    table = receptive_fields(u2net_xs(4))
    names = [row.stage for row in table]
    assert names == (
        [f"En_{i}" for i in range(1, 7)] + [f"De_{i}" for i in range(5, 0, -1)]
        + [f"side_{i}" for i in range(1, 7)] + ["fused"]
    )
    strides = {row.stage: row.stride for row in table}
    assert [strides[f"En_{i}"] for i in range(1, 7)] == [1, 2, 4, 8, 16, 32]
    assert [strides[f"De_{i}"] for i in range(1, 6)] == [1, 2, 4, 8, 16]
    assert {strides[f"side_{i}"] for i in range(1, 7)} == {strides["fused"]} == {1}
    fields = [row.receptive_field for row in table]
    # Each stage sees more than the one before it, up to De_1; the fused head sees what its
    # widest side sees.
    assert fields[:11] == sorted(fields[:11]) and len(set(fields[:11])) == 11
    assert fields[-1] == max(fields[11:17])
    # En_1 is an RSU-7 on the image
    assert fields[0] == block_receptive_field(RSU(7, 1, 1, 1))


def test_receptive_fields_depend_on_topology_only():
    assert (receptive_fields(u2net_xs(1)) == receptive_fields(u2net_small(2))
            == receptive_fields(u2net_full(1)))


def test_receptive_field_bad_input():
    with pytest.raises(ValueError, match="model must be a U2Net"):
        receptive_fields(RSU(4, 1, 1, 1))
    with pytest.raises(ValueError, match="length must be an int >= 64"):
        receptive_fields(u2net_xs(1), length=10)
    with pytest.raises(ValueError, match="block must be an RSU or a REBNCONV"):
        block_receptive_field(nn.Conv2d(1, 1, 3))
    with pytest.raises(ValueError, match="does not fit in 64 pixels"):
        block_receptive_field(RSU(7, 1, 1, 1), length=64)
