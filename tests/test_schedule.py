"""The paper's learning-rate schedule (u2net_mini/schedule.py), by hand."""

import pytest

from u2net_mini.schedule import lr_at_epoch, stretched_lr

RTOL = 1e-6


@pytest.mark.parametrize(
    "epoch, expected",
    [
        (0, 1e-3),
        (114, 1e-3),  # last epoch before the decay
        (115, 7.5e-4),  # 1e-3 * 0.75^(floor(0/15) + 1)
        (129, 7.5e-4),  # 1e-3 * 0.75^(floor(14/15) + 1)
        (130, 5.625e-4),  # 1e-3 * 0.75^(floor(15/15) + 1) = 1e-3 * 0.5625
        (399, 4.2282826e-6),  # 1e-3 * 0.75^(floor(284/15) + 1) = 1e-3 * 0.75^19
    ],
)
def test_lr_at_epoch(epoch, expected):
    assert lr_at_epoch(epoch) == pytest.approx(expected, rel=RTOL)


@pytest.mark.parametrize(
    "epoch, expected",
    [
        (28, 1e-3),  # floor(400 * 28 / 100) = 112: not yet decayed
        (29, 7.5e-4),  # floor(400 * 29 / 100) = 116 -> 1e-3 * 0.75
        (33, 5.625e-4),  # floor(400 * 33 / 100) = 132 -> 1e-3 * 0.75^2
    ],
)
def test_a_100_epoch_run_takes_the_papers_rate_at_four_times_its_epoch(epoch, expected):
    assert stretched_lr(epoch, 1e-3, 100) == pytest.approx(expected, rel=RTOL)
    assert stretched_lr(epoch * 4, 1e-3, 400) == lr_at_epoch(epoch * 4)  # E = 400: the paper's own


def test_bad_epochs():
    with pytest.raises(ValueError, match="non-negative integer, got -1"):
        lr_at_epoch(-1)
    with pytest.raises(ValueError, match="non-negative integer, got 1.5"):
        lr_at_epoch(1.5)


def test_a_stretch_that_does_not_divide_400_rounds_after_multiplying():
    # E = 150: epoch 44 -> floor(400 * 44 / 150) = floor(117.33) = 117 -> 1e-3 * 0.75
    # (rounding 400 / 150 first would give 2 * 44 = 88, still undecayed)
    assert stretched_lr(44, 1e-3, 150) == pytest.approx(7.5e-4, rel=RTOL)
    assert stretched_lr(43, 1e-3, 150) == 1e-3  # floor(114.67) = 114
