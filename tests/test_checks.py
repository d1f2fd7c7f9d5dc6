"""The one guard for positive integers (data_prep/checks.py)."""

import numpy as np
import pytest

from data_prep.checks import check_positive_flag, check_positive_int


def test_positive_ints_pass_and_come_back():
    assert check_positive_int("size", 1) == 1
    assert check_positive_int("size", np.int64(512)) == 512  # a NumPy integer is an integer


@pytest.mark.parametrize(
    "value, shown",
    [(0, "0"), (-3, "-3"), (2.0, "2.0"), (True, "True"), ("4", "'4'"), (None, "None")],
)
def test_anything_else_is_refused_saying_what_came(value, shown):
    with pytest.raises(ValueError, match=f"^width must be a positive int or 'full', got {shown}$"):
        check_positive_int("width", value, " or 'full'")


def test_a_flag_below_one_is_refused_by_name():
    assert check_positive_flag("--epochs", 1) == 1
    with pytest.raises(ValueError, match=r"^--batch-size must be at least 1, got 0$"):
        check_positive_flag("--batch-size", 0)
