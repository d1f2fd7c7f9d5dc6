"""The printed walkthrough shows the hand-computed numbers of tests/test_equations.py."""

import re

from u2net_mini import worked_example


def test_walkthrough_prints_the_hand_computed_loss():
    text = "\n".join(worked_example.explain())
    # the values of test_equations.py: w_MA, fBCE_MA, D_EX, L
    for value in ("w = r^(1/8) / sum_j r_j^(1/8) = "
                  "0.5253199", "fBCE = 0.5063316", "= 0.1836735", "= 0.1582680"):
        assert value in text
    difference = float(re.search(r"\(difference ([0-9.e+-]+)\)", text).group(1))
    assert difference < 1e-12, "the torch twin must print the same L"


def test_walkthrough_follows_its_arguments():
    # alpha = 1 leaves only the focal BCE:
    # L = 1/2 (0.5063316 * 0.5253199 + 0.0831012 * 0.4746801) = 0.1527163
    text = "\n".join(worked_example.explain(alpha=1.0))
    assert text.splitlines()[-3].endswith("= 0.1527163")
