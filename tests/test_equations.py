"""The NumPy loss (u2net_mini/equations.py) against arithmetic a person can redo by hand.

Every case is at most 2 × 2 pixels; the arithmetic sits beside the expected literal.
The running example, B = 1, two lesions:

    MA: y = [[1, 0], [0, 0]]   y_hat = [[0.5, 0.5], [0.2, 0.8]]
    EX: y = [[1, 1], [0, 0]]   y_hat = [[0.9, 0.6], [0.1, 0.3]]
"""

import numpy as np
import pytest
import torch

from u2net_mini import equations as E

RTOL = 1e-6

Y = np.array([[[[1, 0], [0, 0]], [[1, 1], [0, 0]]]], dtype=float)  # (1, 2, 2, 2)
Y_HAT = np.array([[[[0.5, 0.5], [0.2, 0.8]], [[0.9, 0.6], [0.1, 0.3]]]])  # (1, 2, 2, 2)


# --- class weights -------------------------------------------------------------------

@pytest.mark.parametrize(
    "y, expected",
    [
        # pos = 1, neg = 3 -> r = 3 / 2 = 1.5; one channel -> w = 1
        (np.array([[[[1, 0], [0, 0]]]]), [1.0]),
        # MA: r = 3 / (1 + 1) = 1.5, 1.5^(1/8) = 1.0519895
        # EX: r = 2 / (2 + 1) = 0.6666667, (2/3)^(1/8) = 0.9505798
        # sum = 2.0025693 -> w = 1.0519895 / 2.0025693 = 0.5253199,
        #                        0.9505798 / 2.0025693 = 0.4746801
        (Y, [0.5253199, 0.4746801]),
        # MA empty: r = 4 / 1 = 4, 4^(1/8) = 1.0905077
        # EX full:  r = 0 / 5 = 0, 0^(1/8) = 0 -> all weight on MA
        (np.array([[[[0, 0], [0, 0]], [[1, 1], [1, 1]]]]), [1.0, 0.0]),
    ],
)
def test_class_weights_by_hand(y, expected):
    np.testing.assert_allclose(E.class_weights(y), expected, rtol=RTOL, atol=1e-12)


def test_class_weights_sum_over_the_batch_not_one_image():
    # image 1: MA [[1,0],[0,0]]; image 2: MA all 0 -> pos = 1, neg = 7 over the batch
    # r = 7 / 2 = 3.5 for MA;
    # EX has [[1,1],[1,1]] and [[0,0],[0,0]] -> pos = 4, neg = 4, r = 4 / 5 = 0.8
    # 3.5^(1/8) = 1.1695223, 0.8^(1/8) = 0.9724925 -> w = 1.1695223 / 2.1420148 = 0.5459917
    y = np.zeros((2, 2, 2, 2))
    y[0, 0, 0, 0] = 1
    y[0, 1] = 1
    np.testing.assert_allclose(E.class_weights(y)[0], 0.5459917, rtol=RTOL)


def test_class_weights_all_positive_is_uniform_not_nan():
    # every r_k = 0 -> 0/0; the documented choice is 1/C
    weights = E.class_weights(np.ones((1, 4, 2, 2)))
    np.testing.assert_array_equal(weights, [0.25, 0.25, 0.25, 0.25])


def test_balanced_classes_give_equal_weights_and_weights_sum_to_one():
    rng = np.random.default_rng(0)
    one_channel = (rng.random((2, 1, 8, 8)) < 0.1).astype(float)
    balanced = np.repeat(one_channel, 3, axis=1)  # three channels with the same counts
    np.testing.assert_allclose(E.class_weights(balanced), [1 / 3] * 3, rtol=1e-12)
    unbalanced = (rng.random((2, 4, 8, 8)) < [[[[0.01]], [[0.1]], [[0.3]], [[0.5]]]]).astype(float)
    weights = E.class_weights(unbalanced)
    assert weights.sum() == pytest.approx(1.0, rel=1e-12)
    assert np.all(np.diff(weights) < 0), "rarer lesions must get larger weights"


# --- focal BCE -----------------------------------------------------------------------

def test_focal_bce_by_hand():
    # gamma = 1, MA:
    #   y=1, y_hat=0.5: (1 - 0.5) * log 0.5 = 0.5 * -0.6931472 = -0.3465736
    #   y=0, y_hat=0.5:  0.5 * log(1 - 0.5)                     = -0.3465736
    #   y=0, y_hat=0.2:  0.2 * log 0.8 = 0.2 * -0.2231436       = -0.0446287
    #   y=0, y_hat=0.8:  0.8 * log 0.2 = 0.8 * -1.6094379       = -1.2875503
    #   fBCE = -(sum) / 4 = 2.0253262 / 4                        =  0.5063316
    # EX:
    #   y=1, y_hat=0.9: 0.1 * log 0.9 = -0.0105361
    #   y=1, y_hat=0.6: 0.4 * log 0.6 = -0.2043302
    #   y=0, y_hat=0.1: 0.1 * log 0.9 = -0.0105361
    #   y=0, y_hat=0.3: 0.3 * log 0.7 = -0.1070025
    #   fBCE = 0.3324048 / 4          =  0.0831012
    np.testing.assert_allclose(E.focal_bce(Y, Y_HAT, gamma=1.0), [0.5063316, 0.0831012], rtol=RTOL)


def test_focal_bce_gamma_zero_is_plain_bce():
    # gamma = 0, one pixel y=1, y_hat=0.25: -log 0.25 = 1.3862944
    np.testing.assert_allclose(E.focal_bce([[[[1]]]], [[[[0.25]]]], gamma=0.0), [1.3862944],
                               rtol=RTOL)
    rng = np.random.default_rng(1)
    y = (rng.random((2, 3, 4, 4)) < 0.3).astype(float)
    y_hat = rng.uniform(0.01, 0.99, y.shape)
    bce = -(y * np.log(y_hat) + (1 - y) * np.log(1 - y_hat)).mean(axis=(0, 2, 3))
    np.testing.assert_allclose(E.focal_bce(y, y_hat, gamma=0.0), bce, rtol=1e-12)


def test_focal_bce_easy_pixels_lose_weight_as_gamma_grows():
    # an easy background pixel y=0, y_hat=0.1: gamma=0: -log 0.9 = 0.1053605;
    # gamma=1: 0.1 * 0.1053605
    losses = [E.focal_bce([[[[0]]]], [[[[0.1]]]], gamma=g)[0] for g in (0.0, 1.0, 2.0)]
    np.testing.assert_allclose(losses, [0.1053605, 0.01053605, 0.001053605], rtol=RTOL)


def test_focal_bce_certain_and_right_is_zero():
    # y_hat = y exactly: every term is 0 * log 0 = 0 (its limit), not NaN
    np.testing.assert_array_equal(E.focal_bce(Y, Y), [0.0, 0.0])


# --- Dice ----------------------------------------------------------------------------

def test_dice_loss_by_hand():
    # s = 1
    # MA: sum y*y_hat = 0.5, sum y = 1, sum y_hat = 2.0 -> 1 - (2*0.5 + 1) / (3 + 1) = 1 - 2/4 = 0.5
    # EX: sum y*y_hat = 1.5, sum y = 2, sum y_hat = 1.9
    #     -> 1 - (3 + 1) / (3.9 + 1) = 1 - 0.8163265 = 0.1836735
    np.testing.assert_allclose(E.dice_loss(Y, Y_HAT, smooth=1.0), [0.5, 0.1836735], rtol=RTOL)


def test_dice_loss_perfect_prediction_is_zero_and_near_perfect_tends_to_zero():
    np.testing.assert_array_equal(E.dice_loss(Y, Y, smooth=1.0), [0.0, 0.0])
    # y_hat = 0.999 on the lesion, 0.001 elsewhere:
    # D -> 1 - 2*0.999*P / (P + 0.999*P + 0.001*Q) as s -> 0
    near = np.where(Y == 1, 0.999, 0.001)
    losses = [E.dice_loss(Y, near, smooth=s) for s in (1.0, 1e-3, 1e-9)]
    # MA: 2 sum y y_hat = 1.998, sum y + sum y_hat = 2.002; s pulls the ratio towards 1:
    # s = 1: 1 - 2.998 / 3.002 = 0.0013324; s = 1e-3: 1 - 1.999 / 2.003 = 0.0019970
    np.testing.assert_allclose([losses[0][0], losses[1][0]], [0.0013324, 0.0019970], rtol=1e-4)
    assert np.all(losses[-1] < 2e-3)
    # MA with s -> 0: 1 - 1.998 / (1 + 0.999 + 0.003) = 1 - 1.998 / 2.002 = 0.0019980
    np.testing.assert_allclose(losses[-1][0], 0.0019980, rtol=1e-4)


def test_dice_loss_empty_channel_predicted_empty_is_zero():
    # sum y = 0, sum y_hat = 0 -> 1 - s / s = 0
    np.testing.assert_array_equal(E.dice_loss(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2))),
                                  [0.0])


# --- the paper's loss L and deep supervision -------------------------------------------

def test_lesion_loss_by_hand():
    # alpha = 0.75:
    # MA: 0.75 * 0.5063316 + 0.25 * 0.5       = 0.3797487 + 0.125     = 0.5047487
    # EX: 0.75 * 0.0831012 + 0.25 * 0.1836735 = 0.0623259 + 0.0459184 = 0.1082443
    # L = 1/2 * (0.5047487 * 0.5253199 + 0.1082443 * 0.4746801)
    #   = 1/2 * (0.2651546 + 0.0513814) = 0.1582680
    assert E.lesion_loss(Y, Y_HAT) == pytest.approx(0.1582680, rel=RTOL)


def test_alpha_one_leaves_only_focal_bce_and_alpha_zero_only_dice():
    weights = E.class_weights(Y)
    only_bce = (E.focal_bce(Y, Y_HAT) * weights).sum() / 2
    only_dice = (E.dice_loss(Y, Y_HAT) * weights).sum() / 2
    assert E.lesion_loss(Y, Y_HAT, alpha=1.0) == pytest.approx(only_bce, rel=1e-12)
    assert E.lesion_loss(Y, Y_HAT, alpha=0.0) == pytest.approx(only_dice, rel=1e-12)
    # and the mixture is linear in alpha: 0.75 * bce + 0.25 * dice
    assert E.lesion_loss(Y, Y_HAT, alpha=0.75) == pytest.approx(0.75 * only_bce + 0.25 * only_dice,
                                                                rel=1e-12)


def test_seven_identical_outputs_give_seven_times_the_loss():
    assert E.deep_supervision_loss(Y, [Y_HAT] * 7) == pytest.approx(7 * 0.1582680, rel=RTOL)


def test_deep_supervision_is_the_sum_of_its_parts():
    rng = np.random.default_rng(2)
    outputs = [rng.uniform(0.01, 0.99, Y.shape) for _ in range(7)]
    parts = sum(E.lesion_loss(Y, y_hat) for y_hat in outputs)
    assert E.deep_supervision_loss(Y, outputs) == pytest.approx(parts, rel=1e-12)


# --- bad input -----------------------------------------------------------------------

def test_shapes_that_differ_raise():
    with pytest.raises(ValueError, match=r"same shape, got \(1, 2, 2, 2\) and \(1, 1, 2, 2\)"):
        E.lesion_loss(Y, Y_HAT[:, :1])


def test_wrong_number_of_dimensions_raises():
    with pytest.raises(ValueError, match=r"y must be 4-D \(B, C, H, W\), got shape \(2, 2\)"):
        E.class_weights(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"y_hat must be 4-D"):
        E.focal_bce(Y, Y_HAT[0])


def test_target_outside_zero_one_raises():
    with pytest.raises(ValueError, match=r"y must be binary \(0 or 1\), got a value 0.5"):
        E.dice_loss(Y * 0.5, Y_HAT)


@pytest.mark.parametrize("bad", [1.5, -0.1, np.nan])
def test_probabilities_outside_unit_interval_raise(bad):
    y_hat = Y_HAT.copy()
    y_hat[0, 0, 0, 0] = bad
    with pytest.raises(ValueError, match=r"y_hat must be probabilities in \[0, 1\]"):
        E.focal_bce(Y, y_hat)


def test_bad_hyperparameters_raise():
    with pytest.raises(ValueError, match="alpha must be in"):
        E.lesion_loss(Y, Y_HAT, alpha=1.5)
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        E.focal_bce(Y, Y_HAT, gamma=-1)
    with pytest.raises(ValueError, match="smooth must be > 0"):
        E.dice_loss(Y, Y_HAT, smooth=0)
    with pytest.raises(ValueError, match="at least one output"):
        E.deep_supervision_loss(Y, [])


def adam_on_scaled_parabola(scale, weight_decay, steps=3000, lr=0.01):
    """θ after `steps` of torch Adam on scale · (θ − 1)², from θ = 0, and the path it took."""
    theta = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam([theta], lr=lr, weight_decay=weight_decay)
    path = []
    for _ in range(steps):
        optimizer.zero_grad()
        (scale * (theta - 1) ** 2).sum().backward()
        optimizer.step()
        path.append(theta.item())
    return theta.item(), np.array(path)


def test_a_constant_loss_factor_matters_to_adam_only_through_weight_decay():
    # Without decay, c (θ − 1)² with c = 1 and c = 1/4 (one lesion, or four with the
    # paper's 1/C) gives the same Adam path: Adam divides by the gradient's RMS.
    _, path_1 = adam_on_scaled_parabola(1.0, 0.0, steps=300)
    _, path_4 = adam_on_scaled_parabola(0.25, 0.0, steps=300)
    np.testing.assert_allclose(path_1, path_4, atol=1e-4)
    # With L2 decay λ, the step follows 2c(θ − 1) + λθ, which is 0 at θ* = 2c / (2c + λ).
    # λ = 0.5 makes it visible: c = 1 -> 2 / 2.5 = 0.8; c = 1/4 -> 0.5 / 1.0 = 0.5.
    theta_1, _ = adam_on_scaled_parabola(1.0, 0.5)
    theta_4, _ = adam_on_scaled_parabola(0.25, 0.5)
    assert theta_1 == pytest.approx(0.8, abs=0.01) and theta_4 == pytest.approx(0.5, abs=0.01)
