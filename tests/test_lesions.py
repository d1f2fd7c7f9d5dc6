"""Lesion order and the task modes of the paper."""

import pytest

from data_prep.lesions import LESIONS, lesion_indices
from u2net_mini.lesions import models_for_mode


def test_lesion_order_is_fixed():
    assert LESIONS == ("MA", "HE", "EX", "SE")


def test_modes_train_the_papers_models():
    assert models_for_mode("st") == (("MA",), ("HE",), ("EX",), ("SE",))
    assert models_for_mode("dt") == (("MA", "HE"), ("EX", "SE"))  # red, white
    assert models_for_mode("mt") == (("MA", "HE", "EX", "SE"),)
    assert models_for_mode("st", "EX") == (("EX",),)


def test_lesion_indices_follow_the_order():
    assert lesion_indices(("EX", "SE")) == [2, 3]


def test_bad_lesions_and_modes_raise():
    with pytest.raises(ValueError, match=r"subset of \('MA', 'HE', 'EX', 'SE'\), got \('OD',\)"):
        lesion_indices(("OD",))
    with pytest.raises(ValueError, match="must not repeat"):
        lesion_indices(("MA", "MA"))
    with pytest.raises(ValueError, match=r"mode must be one of \('st', 'dt', 'mt'\), got 'xx'"):
        models_for_mode("xx")
    with pytest.raises(ValueError, match="only be chosen in mode 'st'"):
        models_for_mode("mt", "MA")
    with pytest.raises(ValueError, match="lesion must be one of"):
        models_for_mode("st", "OD")
