"""The results table's cells, and the PR and training-curve figures."""

import math

import numpy as np
import pytest

from u2net_mini.report import (
    LESION_COLOURS,
    format_params,
    format_score,
    plot_pr_curves,
    plot_training_curves,
    pr_curve_figure,
    results_table,
    training_curve_figure,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

MT_ROW = {
    "model": "xs", "mode": "mt", "params": 291532, "input_size": 512,
    "aupr": {"MA": 0.4, "HE": 0.6, "EX": 0.8, "SE": 0.7},
    "dice": {"MA": 0.25, "HE": 0.5, "EX": 0.75, "SE": 0.5},
}


def cells(line):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_table_cells_by_hand():
    st_row = {"model": "xs", "mode": "st", "params": 4 * 286237, "input_size": 256,
              "aupr": {"EX": 0.81234, "SE": float("nan")}, "dice": {"EX": 0.5, "SE": 1.0}}
    lines = results_table([MT_ROW, st_row]).splitlines()
    assert cells(lines[0]) == ["Model", "Mode", "Params", "Input", "AUPR MA", "AUPR HE", "AUPR EX",
                               "AUPR SE", "mean AUPR", "Dice MA", "Dice HE", "Dice EX", "Dice SE",
                               "mean Dice"]
    assert set(cells(lines[1])[:4]) == {"---"} and set(cells(lines[1])[4:]) == {"---:"}
    # mean AUPR (0.4 + 0.6 + 0.8 + 0.7) / 4 = 0.625; mean Dice (0.25 + 0.5 + 0.75 + 0.5) / 4 = 0.5
    assert cells(lines[2]) == ["xs", "mt", "0.29 M", "512 px", "0.400", "0.600", "0.800", "0.700",
                               "0.625", "0.250", "0.500", "0.750", "0.500", "0.500"]
    # 4 x 286,237 = 1,144,948 -> 1.14 M; lesions not evaluated -> "–"; a nan AUPR -> "n/a"
    # left out of the mean (metrics.lesion_mean): 0.81234 / 1 -> 0.812;
    # mean Dice (0.5 + 1.0) / 2 = 0.75
    assert cells(lines[3]) == ["xs", "st", "1.14 M", "256 px", "–", "–", "0.812", "n/a", "0.812",
                               "–", "–", "0.500", "1.000", "0.750"]
    assert len(lines) == 4


def test_table_accepts_one_row_and_a_subset_of_lesions():
    white = {"model": "xs", "mode": "dt", "params": 287990, "input_size": 512,
             "aupr": {"EX": 0.8, "SE": 0.6}, "dice": {"EX": 0.7, "SE": 0.5}}
    lines = results_table(white, lesions=("EX", "SE")).splitlines()
    assert cells(lines[0])[4:7] == ["AUPR EX", "AUPR SE", "mean AUPR"]
    # 287,990 -> 0.29 M; mean AUPR (0.8 + 0.6) / 2 = 0.7; mean Dice (0.7 + 0.5) / 2 = 0.6
    assert cells(lines[2]) == ["xs", "dt", "0.29 M", "512 px", "0.800", "0.600", "0.700",
                               "0.700", "0.500", "0.600"]
    with pytest.raises(ValueError, match=r"scores for \['HE', 'MA'\], not among \('EX', 'SE'\)"):
        results_table(MT_ROW, lesions=("EX", "SE"))


@pytest.mark.parametrize(
    "count, text",
    [(291532, "0.29 M"), (44009869, "44.01 M"), (1131181, "1.13 M"), (0, "0.00 M")],
)
def test_format_params(count, text):
    assert format_params(count) == text


def test_format_score():
    assert format_score(0.71249) == "0.712" and format_score(0.7125001) == "0.713"
    assert format_score(math.nan) == "n/a" and format_score(np.float32(1)) == "1.000"


@pytest.mark.parametrize(
    "rows, match",
    [
        ([], "at least one row"),
        ([{k: v for k, v in MT_ROW.items() if k != "dice"}], r"row 0 lacks \['dice'\]"),
        ([{**MT_ROW, "params": 2.9e5}], "params must be a non-negative int"),
        ([{**MT_ROW, "input_size": "512"}], "input_size must be a positive int"),
        ([{**MT_ROW, "aupr": {"XX": 0.1}}], r"scores for \['XX'\]"),
    ],
)
def test_table_bad_rows(rows, match):
    with pytest.raises(ValueError, match=match):
        results_table(rows)


def test_pr_figure_has_one_coloured_curve_per_lesion():
    curves = {"EX": (np.array([1.0, 0.5]), np.array([0.5, 1.0])),
              "SE": (np.array([0.8, 0.4, 0.3]), np.array([0.2, 0.6, 1.0]))}
    figure = pr_curve_figure(curves, aupr={"EX": 0.75})
    lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["EX (AUPR 0.750)", "SE"]
    assert lines[0].get_color() == LESION_COLOURS["EX"]
    np.testing.assert_array_equal(lines[1].get_xdata(), [0.2, 0.6, 1.0])  # recall on x
    with pytest.raises(ValueError, match="differ in length, 2 and 3"):
        pr_curve_figure({"EX": ([1.0, 0.5], [0.1, 0.5, 1.0])})
    with pytest.raises(ValueError, match="at least one curve"):
        pr_curve_figure({})


def test_training_figure_panels_from_csv_rows():
    # rows as csv.DictReader gives them: strings, an empty cell for an epoch not validated
    rows = [
        {"epoch": "1", "train_loss": "2.0", "val_loss": "", "lr": "0.001",
         "val_aupr_EX": "", "seconds": "3"},
        {"epoch": "2", "train_loss": "1.0", "val_loss": "1.5", "lr": "0.00075",
         "val_aupr_EX": "0.4", "seconds": "3"},
    ]
    figure = training_curve_figure(rows)
    assert [axes.get_ylabel() for axes in figure.axes] == ["loss", "validation AUPR",
                                                           "learning rate"]
    loss_lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in loss_lines] == ["train_loss", "val_loss"]
    assert np.isnan(loss_lines[1].get_ydata()[0]) and loss_lines[1].get_ydata()[1] == 1.5
    assert figure.axes[0].get_yscale() == "log"
    assert figure.axes[1].get_lines()[0].get_color() == LESION_COLOURS["EX"]
    mean_line = training_curve_figure({"epoch": [1], "loss": [1.0],
                                       "val_aupr_mean": [0.5]}).axes[1].get_lines()[0]
    assert (mean_line.get_color(), mean_line.get_linestyle()) == ("black", "--")
    # only losses (and a negative one: no log scale) -> one panel
    figure = training_curve_figure({"epoch": [1, 2], "loss": [0.5, -0.1]})
    assert len(figure.axes) == 1 and figure.axes[0].get_yscale() == "linear"


@pytest.mark.parametrize(
    "history, match",
    [
        ([], "history is empty"),
        ({"loss": [1.0]}, "needs an 'epoch' column"),
        ({"epoch": [1], "lr": [0.1]}, "column ending in 'loss'"),
    ],
)
def test_training_figure_bad_history(history, match):
    with pytest.raises(ValueError, match=match):
        training_curve_figure(history)


def test_pngs_are_written(tmp_path):
    curves = {"MA": (np.array([1.0, 0.2]), np.array([0.1, 1.0]))}
    pr_path = plot_pr_curves(curves, tmp_path / "figures" / "pr.png", aupr={"MA": 0.3})
    curve_path = plot_training_curves({"epoch": [1, 2, 3], "loss": [3.0, 2.0, 1.5]},
                                      tmp_path / "curves.png")
    for path in (pr_path, curve_path):
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["curves.png", "figures", "pr.png"]
