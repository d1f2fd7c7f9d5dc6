"""The NumPy forward pass: each layer by hand, each layer and block against torch, the whole net."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from u2net_mini import model, reference
from u2net_mini.fold import fold_batchnorm
from u2net_mini.model import u2net_xs
from u2net_mini.random_batchnorm import randomize_batchnorm
from u2net_mini.reference import (
    batchnorm_eval,
    conv2d,
    forward_numpy,
    max_pool_2x2,
    numpy_state_dict,
    rebnconv,
    relu,
    resize_bilinear,
    rsu,
)
from u2net_mini.rsu import REBNCONV, RSU, RSU4F


def relative_error(actual, expected):
    return np.abs(actual - expected).max() / np.abs(expected).max()


# --- layers by hand -------------------------------------------------------------------

X3 = np.arange(9.0).reshape(1, 1, 3, 3)  # [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
ONES3 = np.ones((1, 1, 3, 3))


def test_conv2d_by_hand():
    # Padding 1, bias 1: centre 0+1+…+8 = 36 -> 37; corner 0+1+3+4 = 8 -> 9;
    # top edge 0+1+2+3+4+5 = 15 -> 16; left edge 0+1+3+4+6+7 = 21 -> 22.
    y = conv2d(X3, ONES3, bias=np.array([1.0]), padding=1)
    assert y.shape == (1, 1, 3, 3)
    assert (y[0, 0, 1, 1], y[0, 0, 0, 0], y[0, 0, 0, 1], y[0, 0, 1, 0]) == (37, 9, 16, 22)
    # No padding: only the centre position fits -> [[36]]
    np.testing.assert_array_equal(conv2d(X3, ONES3), [[[[36.0]]]])


def test_conv2d_dilation_by_hand():
    # Dilation 2, padding 2: taps at offsets -2, 0, 2.
    # (0, 0) sees the four corners 0 + 2 + 6 + 8 = 16; (1, 1) sees only itself: 4.
    y = conv2d(X3, ONES3, padding=2, dilation=2)
    assert y.shape == (1, 1, 3, 3)
    assert (y[0, 0, 0, 0], y[0, 0, 1, 1]) == (16, 4)


def test_conv2d_is_cross_correlation():
    # kernel [1, 10] on [1, 2, 3]: 1·1 + 10·2 = 21, 1·2 + 10·3 = 32 (no kernel flip)
    y = conv2d(np.array([[[[1.0, 2.0, 3.0]]]]), np.array([[[[1.0, 10.0]]]]))
    np.testing.assert_array_equal(y, [[[[21.0, 32.0]]]])


def test_batchnorm_eval_and_relu_by_hand():
    # gamma (x - mu) / sqrt(var + eps) + beta with eps = 0:
    # 2 (3 - 1) / 2 + 1 = 3 and 2 (-5 - 1) / 2 + 1 = -5
    x = np.array([3.0, -5.0]).reshape(1, 1, 1, 2)
    y = batchnorm_eval(x, np.array([2.0]), np.array([1.0]), np.array([1.0]), np.array([4.0]),
                       eps=0.0)
    np.testing.assert_array_equal(y, [[[[3.0, -5.0]]]])
    np.testing.assert_array_equal(relu(y), [[[[3.0, 0.0]]]])


def test_max_pool_ceil_mode_by_hand():
    # 3×3 in 2×2 windows with ceil: {0,1,3,4} -> 4, {2,5} -> 5, {6,7} -> 7, {8} -> 8
    np.testing.assert_array_equal(max_pool_2x2(X3), [[[[4.0, 5.0], [7.0, 8.0]]]])
    # a single row pools alone along H: [-1, -2, -3] -> [max(-1, -2), -3]
    np.testing.assert_array_equal(max_pool_2x2(np.array([[[[-1.0, -2.0, -3.0]]]])),
                                  [[[[-1.0, -3.0]]]])


def test_resize_bilinear_by_hand():
    # Upsampling [0, 4] to 4 pixels: source s = (o + 0.5)/2 - 0.5 = -0.25, 0.25, 0.75, 1.25
    # -> clamp to 0: 0; 0.75·0 + 0.25·4 = 1; 0.25·0 + 0.75·4 = 3; past the last pixel: 4
    np.testing.assert_allclose(resize_bilinear(np.array([[[[0.0, 4.0]]]]), (1, 4)),
                               [[[[0.0, 1.0, 3.0, 4.0]]]])
    # Downsampling [0, 2, 4, 6] to 2: s = (o + 0.5)·2 - 0.5 = 0.5, 2.5
    # -> (0 + 2)/2 = 1, (4 + 6)/2 = 5
    np.testing.assert_allclose(resize_bilinear(np.array([[[[0.0, 2.0, 4.0, 6.0]]]]), (1, 2)),
                               [[[[1.0, 5.0]]]])


# --- layers against torch, float64 -------------------------------------------------------


@pytest.mark.parametrize(
    "in_ch, out_ch, kernel, dilation, padding",
    [(3, 5, 3, 1, 1), (4, 2, 3, 2, 2), (2, 3, 3, 8, 8), (6, 4, 1, 1, 0), (2, 2, 3, 1, 0)],
)
def test_conv2d_matches_torch(in_ch, out_ch, kernel, dilation, padding):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, in_ch, 11, 17))  # (B, C, H, W)
    weight = rng.normal(size=(out_ch, in_ch, kernel, kernel))  # (O, C, k, k)
    bias = rng.normal(size=out_ch)  # (O,)
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(bias),
                        padding=padding, dilation=dilation)
    np.testing.assert_allclose(conv2d(x, weight, bias, padding, dilation), expected.numpy(),
                               rtol=1e-12, atol=1e-12)


def test_batchnorm_eval_matches_torch():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 4, 5))
    gamma, beta, mean = rng.normal(size=(3, 3))
    var = rng.uniform(0.1, 2.0, size=3)
    expected = F.batch_norm(*(torch.from_numpy(a) for a in (x, mean, var, gamma, beta)),
                            training=False)
    np.testing.assert_allclose(batchnorm_eval(x, gamma, beta, mean, var), expected.numpy(),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size", [(7, 10), (1, 1), (6, 4)])
def test_max_pool_matches_torch(size):
    x = np.random.default_rng(2).normal(size=(2, 3, *size))
    expected = F.max_pool2d(torch.from_numpy(x), 2, 2, ceil_mode=True)
    np.testing.assert_array_equal(max_pool_2x2(x), expected.numpy())


@pytest.mark.parametrize("size_in, size_out", [((5, 7), (9, 13)), ((9, 13), (5, 7)),
                                               ((4, 4), (4, 4)), ((3, 5), (7, 2)),
                                               ((2, 2), (45, 61))])
def test_resize_bilinear_matches_torch(size_in, size_out):
    x = np.random.default_rng(3).normal(size=(1, 2, *size_in))
    expected = F.interpolate(torch.from_numpy(x), size=size_out, mode="bilinear",
                             align_corners=False)
    np.testing.assert_allclose(resize_bilinear(x, size_out), expected.numpy(),
                               rtol=1e-12, atol=1e-12)


# --- blocks and the whole network against torch ------------------------------------------


@pytest.mark.parametrize("dilation", [1, 3])
def test_rebnconv_matches_torch(dilation):
    torch.manual_seed(0)
    block = randomize_batchnorm(REBNCONV(3, 4, dilation), seed=4).double()
    x = np.random.default_rng(5).normal(size=(2, 3, 9, 12))
    with torch.no_grad():
        expected = block(torch.from_numpy(x)).numpy()
    state = {f"block.{name}": value for name, value in numpy_state_dict(block).items()}
    assert relative_error(rebnconv(state, "block", x, dilation), expected) <= 1e-9


@pytest.mark.parametrize("height, dilated", [(4, False), (5, False), (6, False), (7, False),
                                             (4, True)])
def test_rsu_matches_torch(height, dilated):
    torch.manual_seed(height)
    block = randomize_batchnorm(RSU(height, 3, 4, 5, dilated=dilated), seed=height).double()
    x = np.random.default_rng(6).normal(size=(2, 3, 13, 21))
    with torch.no_grad():
        expected = block(torch.from_numpy(x)).numpy()  # (2, 5, 13, 21)
        residual = block.conv_in(torch.from_numpy(x)).numpy()  # (2, 5, 13, 21): F_1(x)
    assert relative_error(expected, residual) > 0.05  # the U-branch adds something
    state = {f"block.{name}": value for name, value in numpy_state_dict(block).items()}
    assert relative_error(rsu(state, "block", x, height, dilated), expected) <= 1e-9


def test_rsu4f_class_matches_numpy_dilated_rsu():
    torch.manual_seed(1)
    block = randomize_batchnorm(RSU4F(2, 3, 2), seed=1).double()
    x = np.random.default_rng(7).normal(size=(1, 2, 17, 17))
    with torch.no_grad():
        expected = block(torch.from_numpy(x)).numpy()
    state = {f"b.{name}": value for name, value in numpy_state_dict(block).items()}
    assert relative_error(rsu(state, "b", x, 4, dilated=True), expected) <= 1e-9
    # and the dilations matter: the same weights as a plain RSU-4 give something else
    assert relative_error(rsu(state, "b", x, 4, dilated=False), expected) > 1e-3


@pytest.fixture(scope="module")
def xs_model():
    torch.manual_seed(0)
    return randomize_batchnorm(u2net_xs(4), seed=0)


@pytest.mark.parametrize("size", [(64, 64), (45, 61)])
@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-4), (torch.float64, 1e-9)])
def test_whole_network_matches_torch(xs_model, size, dtype, tolerance):
    model = copy.deepcopy(xs_model).to(dtype)  # a copy: the module-wide fixture stays float32
    x = np.random.default_rng(8).normal(size=(1, 3, *size)).astype(
        torch.empty(0, dtype=dtype).numpy().dtype)
    with torch.no_grad():
        expected = [output.numpy() for output in model(torch.from_numpy(x))]
    actual = forward_numpy(numpy_state_dict(model), model.config, x)
    assert len(actual) == 7
    for a, e in zip(actual, expected):
        assert a.shape == e.shape == (1, 4, *size)
        assert a.dtype == x.dtype
        assert e.std() > 1e-3  # the logits vary over the image: the comparison is not of constants
        assert relative_error(a, e) <= tolerance


def test_folded_state_dict_runs_in_numpy(xs_model):
    # fold_batchnorm drops the bn keys; forward_numpy then skips batch norm and must
    # still give the unfolded torch model's output.
    model = copy.deepcopy(xs_model).double()
    x = np.random.default_rng(9).normal(size=(1, 3, 33, 40))
    with torch.no_grad():
        expected = model(torch.from_numpy(x))[0].numpy()
    folded_state = numpy_state_dict(fold_batchnorm(model))
    assert not any(".bn." in name for name in folded_state)
    assert relative_error(forward_numpy(folded_state, model.config, x)[0], expected) <= 1e-9


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, message",
    [
        (np.zeros((3, 64, 64)), r"x must be 4-D \(B, 3, H, W\), got shape \(3, 64, 64\)"),
        (np.zeros((1, 4, 64, 64)), r"x must have 3 channels \(dim 1\), got shape \(1, 4, 64, 64\)"),
        (np.zeros((1, 3, 64, 20)), "x must have H and W >= 32, got 64×20"),
        (np.zeros((1, 3, 32, 32), dtype=np.uint8), "x must be a floating-point array, got dtype "
                                                   "uint8"),
    ],
)
def test_forward_numpy_bad_input(x, message):
    with pytest.raises(ValueError, match=message):
        forward_numpy({}, {"name": "xs", "out_ch": 1, "in_ch": 3}, x)


def test_forward_numpy_bad_state_and_config():
    x = np.zeros((1, 3, 32, 32))
    with pytest.raises(ValueError, match="state dict must contain "
                                         "'encoders.0.conv_in.conv.weight'"):
        forward_numpy({}, {"name": "xs", "out_ch": 1, "in_ch": 3}, x)
    with pytest.raises(ValueError, match="config must be a dict like model.config, got list"):
        forward_numpy({}, [], x)


def test_conv2d_bad_input():
    with pytest.raises(ValueError, match="weight must have 3 input channels like x"):
        conv2d(np.zeros((1, 3, 5, 5)), np.zeros((2, 4, 3, 3)))
    with pytest.raises(ValueError, match="x and weight must be 4-D"):
        conv2d(np.zeros((3, 5, 5)), np.zeros((2, 3, 3, 3)))
    with pytest.raises(ValueError, match="does not fit"):
        conv2d(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 3, 3)))


def test_randomize_batchnorm_moves_every_statistic_reproducibly():
    first = randomize_batchnorm(REBNCONV(2, 6), seed=7)
    # an int or a Generator
    again = randomize_batchnorm(REBNCONV(2, 6), seed=np.random.default_rng(7))
    assert not first.training
    for name in ("running_mean", "running_var", "weight", "bias"):
        value = getattr(first.bn, name)
        torch.testing.assert_close(value, getattr(again.bn, name))
        default = 1.0 if name in ("running_var", "weight") else 0.0
        assert (value != default).all(), f"{name} still at its default {default}"
    assert (first.bn.bias > 0).all()  # positive shift: few dead ReLUs


def test_the_numpy_pass_has_the_models_smallest_input():
    # one meaning of MIN_SIZE: 2^5 = 32, five 2 × 2 poolings from En_1 to En_6
    assert reference.MIN_SIZE == model.MIN_SIZE == 2**5


def test_the_lessons_still_find_randomize_batchnorm_in_reference():
    assert reference.randomize_batchnorm is randomize_batchnorm
