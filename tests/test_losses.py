"""The torch loss (u2net_mini/losses.py) held to the NumPy definition (u2net_mini/equations.py)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from u2net_mini import equations as E
from u2net_mini import losses as L


def random_case(rng, shape):
    """Random float64 logits and a binary target, with one channel empty and one all positive."""
    logits = rng.normal(0, 3, shape)  # (B, C, H, W)
    target = (rng.random(shape) < rng.uniform(0.05, 0.5)).astype(np.float64)  # (B, C, H, W)
    if shape[1] >= 2:
        target[:, 0] = 0  # a lesion absent from the whole batch
        target[:, 1] = 1  # a lesion covering every pixel
    return logits, target


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


SHAPES = [(1, 1, 2, 2), (2, 2, 3, 5), (1, 4, 7, 3), (3, 3, 4, 4), (2, 4, 16, 9)]


@pytest.mark.parametrize("draw", range(20))
def test_torch_equals_numpy_on_random_float64(draw):
    rng = np.random.default_rng(draw)
    logits, target = random_case(rng, SHAPES[draw % len(SHAPES)])
    gamma, alpha, smooth = rng.choice([0.0, 1.0, 2.0]), rng.uniform(0, 1), rng.choice([1.0, 0.1])
    z, y = torch.from_numpy(logits), torch.from_numpy(target)
    y_hat = sigmoid(logits)
    pairs = [
        (L.class_weights(y), E.class_weights(target)),
        (L.focal_bce(y, z, gamma), E.focal_bce(target, y_hat, gamma)),
        (L.dice_loss(y, z, smooth), E.dice_loss(target, y_hat, smooth)),
        (L.lesion_loss(y, z, alpha, gamma, smooth),
         E.lesion_loss(target, y_hat, alpha, gamma, smooth)),
        (
            L.deep_supervision_loss(y, [z, z / 2, -z], alpha, gamma, smooth),
            E.deep_supervision_loss(target, [y_hat, sigmoid(logits / 2), sigmoid(-logits)],
                                    alpha, gamma, smooth),
        ),
    ]
    for torch_value, numpy_value in pairs:
        np.testing.assert_allclose(torch_value.numpy(), numpy_value, rtol=1e-10, atol=1e-14)


def test_gamma_zero_equals_torch_bce_with_logits():
    rng = np.random.default_rng(0)
    logits, target = random_case(rng, (2, 3, 5, 4))
    z, y = torch.from_numpy(logits), torch.from_numpy(target)
    expected = F.binary_cross_entropy_with_logits(z, y, reduction="none").mean(dim=(0, 2, 3))
    torch.testing.assert_close(L.focal_bce(y, z, gamma=0.0), expected, rtol=1e-12, atol=1e-14)


def test_extreme_logits_give_finite_loss_and_gradients():
    # y_hat = sigmoid(-100) ~ 3.7e-44 where y = 1: log-sigmoid gives -100, not log(0)
    z = torch.tensor([[[[100.0, -100.0], [-100.0, 100.0]]]], requires_grad=True)
    y = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    loss = L.deep_supervision_loss(y, [z] * 7)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(z.grad).all()
    # fBCE: two pixels wrong by 100 with factor ~1 -> (100 + 100) / 4 = 50
    torch.testing.assert_close(L.focal_bce(y, z.detach()), torch.tensor([50.0]))


def test_class_weights_carry_no_gradient():
    y = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]], requires_grad=True)
    assert not L.class_weights(y).requires_grad


def test_gradcheck_on_the_loss_in_float64():
    rng = np.random.default_rng(3)
    logits, target = random_case(rng, (1, 3, 3, 2))
    z = torch.from_numpy(logits).requires_grad_(True)
    y = torch.from_numpy(target)
    assert torch.autograd.gradcheck(lambda z: L.deep_supervision_loss(y, [z, 2 * z]), (z,))
    for gamma in (0.0, 1.0, 2.0):
        assert torch.autograd.gradcheck(lambda z, gamma=gamma: L.focal_bce(y, z, gamma).sum(), (z,))
    assert torch.autograd.gradcheck(lambda z: L.dice_loss(y, z).sum(), (z,))


def test_numpy_central_differences_agree_with_torch_gradient():
    rng = np.random.default_rng(4)
    logits, target = random_case(rng, (2, 2, 2, 3))
    z = torch.from_numpy(logits).requires_grad_(True)
    L.lesion_loss(torch.from_numpy(target), z).backward()
    step = 1e-6
    numeric = np.zeros_like(logits)
    for index in np.ndindex(logits.shape):
        up, down = logits.copy(), logits.copy()
        up[index] += step
        down[index] -= step
        # d L / d z = (L(z + h) - L(z - h)) / 2h, through the NumPy definition
        numeric[index] = (E.lesion_loss(target, sigmoid(up))
                          - E.lesion_loss(target, sigmoid(down))) / (2 * step)
    np.testing.assert_allclose(z.grad.numpy(), numeric, rtol=1e-5, atol=1e-9)


def test_float32_logits_give_float32_loss():
    z = torch.zeros(1, 2, 4, 4)
    y = torch.zeros(1, 2, 4, 4)
    assert L.lesion_loss(y, z).dtype == torch.float32


def test_bad_input_raises():
    z = torch.zeros(1, 2, 2, 2)
    with pytest.raises(ValueError, match=r"same shape, got \(1, 2, 2, 2\) and \(1, 1, 2, 2\)"):
        L.lesion_loss(torch.zeros(1, 1, 2, 2), z)
    with pytest.raises(ValueError, match=r"logits must be 4-D \(B, C, H, W\), got shape \(2, 2\)"):
        L.focal_bce(torch.zeros(2, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"y must be binary \(0 or 1\)"):
        L.dice_loss(torch.full((1, 2, 2, 2), 0.5), z)
    with pytest.raises(ValueError, match="at least one output"):
        L.deep_supervision_loss(torch.zeros(1, 2, 2, 2), [])
    with pytest.raises(ValueError, match="alpha must be in"):
        L.lesion_loss(torch.zeros_like(z), z, alpha=-0.1)
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        L.focal_bce(torch.zeros_like(z), z, gamma=-1)
    with pytest.raises(ValueError, match="smooth must be > 0"):
        L.dice_loss(torch.zeros_like(z), z, smooth=0)


def test_output_losses_are_each_outputs_lesion_loss_and_sum_to_the_total():
    # a fused loss equals the sum of its parts: L_total = sum_m L(z^(m), y)
    logits, y = random_case(np.random.default_rng(11), (2, 3, 4, 4))
    outputs = [torch.from_numpy(logits * scale) for scale in (1.0, 0.5, -2.0)]  # 3 × (B, C, H, W)
    y = torch.from_numpy(y)
    per_output = L.output_losses(y, outputs)  # (3,)
    assert per_output.shape == (3,)
    for m, z in enumerate(outputs):
        torch.testing.assert_close(per_output[m], L.lesion_loss(y, z), rtol=0, atol=1e-15)
    total = L.deep_supervision_loss(y, outputs)
    torch.testing.assert_close(per_output.sum(), total, rtol=0, atol=0)


def test_the_target_is_checked_once_for_all_outputs(monkeypatch):
    checked = []
    real_check = L.check_target

    def counting_check(y):
        checked.append(1)
        return real_check(y)

    monkeypatch.setattr(L, "check_target", counting_check)
    L.output_losses(torch.zeros(1, 2, 4, 4), [torch.zeros(1, 2, 4, 4)] * 7)
    assert len(checked) == 1  # seven outputs, one check (each is a host sync on a GPU)


def test_check_target_returns_its_argument_like_the_numpy_twin():
    y = torch.tensor([[[[1.0, 0.0]]]])  # (1, 1, 1, 2)
    assert L.check_target(y) is y
    np.testing.assert_array_equal(E.check_target(y.numpy()), y.numpy())
