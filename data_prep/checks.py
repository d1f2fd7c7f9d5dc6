"""
# Positive integers, checked in one place

Sizes, channel counts, thread counts and batch sizes must be whole numbers of at least 1.
`check_positive_int` guards a function's argument (a `bool` is refused although Python
counts it as an int: `width=True` is a mistake, not 1); `check_positive_flag` guards a
command-line flag that argparse has already made an int. Both raise `ValueError` saying
what was expected and what came. They live in `data_prep`, the lower layer, so that both
packages can use them.
"""

import numbers


def check_positive_int(name, value, alternative=""):
    """Raise ValueError unless `value` is an int (or NumPy integer) of at least 1.

    `alternative` names what else is allowed, for the message: " or None".
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int{alternative}, got {value!r}")
    return value


def check_positive_flag(flag, value):
    """Raise ValueError unless the flag's int `value` is at least 1:
    "--batch-size must be at least 1, got 0"."""
    if value < 1:
        raise ValueError(f"{flag} must be at least 1, got {value}")
    return value
