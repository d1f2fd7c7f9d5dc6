"""Evaluation: the table's numbers equal the exact metrics, rows combine st models, bad input
exits 2.

The checkpoints are untrained XS models (seeded): what is tested is the bookkeeping from
checkpoint to table, which does not need a good model.
"""

import math

import pytest
import torch

from data_prep.dataset import LesionDataset
from data_prep.shipped import idrid_root
from data_prep.synthetic import write_idrid_layout
from u2net_mini import evaluate
from u2net_mini.checkpoint import load_model, save_checkpoint
from u2net_mini.counting import count_parameters
from u2net_mini.metrics import aupr, dice_score
from u2net_mini.model import build_model
from u2net_mini.predict import probabilities

SIZE = 64
MEAN, STD = [0.4, 0.25, 0.15], [0.25, 0.15, 0.1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_idrid_layout(tmp_path_factory.mktemp("data") / "idrid", n_train=1, n_test=3,
                              size=SIZE, seed=3)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def make_checkpoint(path, lesions, mode, seed=0):
    torch.manual_seed(seed)
    model = build_model("xs", len(lesions))
    return save_checkpoint(path, {
        "model_config": model.config, "state_dict": model.state_dict(), "lesions": lesions,
        "input_size": SIZE, "mean": MEAN, "std": STD, "preprocessing": {"clahe": True},
        "mode": mode})


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    made = {"mt": make_checkpoint(folder / "mt" / "best.pt", ("MA", "HE", "EX", "SE"), "mt")}
    # deliberately not in the project order
    for seed, lesion in enumerate(("SE", "MA", "EX", "HE")):
        made[lesion] = make_checkpoint(folder / "st" / lesion / "best.pt", (lesion,), "st", seed)
    return made


def exact_maps(checkpoint, data, cache):
    """Targets and probabilities of the test photographs, computed directly."""
    model, payload = load_model(checkpoint)
    test = LesionDataset(data, "test", lesions=payload["lesions"], size=SIZE, mean=MEAN, std=STD,
                         cache_dir=cache)
    x = torch.stack([test[i][0] for i in range(len(test))])  # (3, 3, s, s)
    y = torch.stack([test[i][1] for i in range(len(test))]).numpy()  # (3, C, s, s)
    return y, probabilities(model, x).numpy()  # (3, C, s, s)


def test_row_scores_equal_the_exact_metrics(checkpoints, data, cache):
    [row] = evaluate.evaluate([checkpoints["mt"]], data, ["test"], cache_dir=cache)
    y, y_hat = exact_maps(checkpoints["mt"], data, cache)
    assert (row["mode"] == "mt" and row["input_size"] == SIZE
            and row["images"] == dict.fromkeys(row["aupr"], 3))
    assert row["params"] == count_parameters(build_model("xs", 4))
    for k, name in enumerate(("MA", "HE", "EX", "SE")):
        if y[:, k].any():  # the histogram AUPR stays within 1e-3 of the exact one
            assert abs(row["aupr"][name] - aupr(y[:, k], y_hat[:, k])) < 1e-3, name
        else:
            assert math.isnan(row["aupr"][name])
        assert row["dice"][name] == dice_score(y[:, k], y_hat[:, k]), name


def test_single_task_checkpoints_make_one_row(checkpoints, data, cache):
    st = [checkpoints[name] for name in ("SE", "MA", "EX", "HE")]
    [row] = evaluate.evaluate(st, data, ["test"], cache_dir=cache)
    assert row["mode"] == "st" and list(row["aupr"]) == ["MA", "HE", "EX", "SE"]  # project order
    assert row["params"] == 4 * count_parameters(build_model("xs", 1))
    [alone] = evaluate.evaluate([checkpoints["EX"]], data, ["test"], cache_dir=cache)
    assert row["aupr"]["EX"] == alone["aupr"]["EX"] and list(alone["aupr"]) == ["EX"]


def test_a_repeated_lesion_starts_a_new_row(checkpoints, data, cache):
    rows = evaluate.evaluate([checkpoints["mt"], checkpoints["mt"], checkpoints["EX"]], data,
                             ["test"], cache_dir=cache)
    assert [(r["model"], r["mode"]) for r in rows] == [("xs #1", "mt"), ("xs #2", "mt"),
                                                       ("xs", "st")]
    assert [r["checkpoints"] for r in rows] == [[str(checkpoints[k])] for k in ("mt", "mt", "EX")]
    assert rows[1]["params"] == count_parameters(build_model("xs", 4))  # one model's, not two


def test_command_line_prints_and_writes_the_table(checkpoints, data, cache, capsys):
    assert evaluate.main(["--checkpoint", str(checkpoints["mt"]), "--data", str(data),
                          "--cache", str(cache)]) == 0
    printed = capsys.readouterr().out
    folder = checkpoints["mt"].parent / "eval-test"
    table = (folder / "results.md").read_text()
    assert ("| Model | Mode | Params | Input | AUPR MA |" in printed
            and "| xs | mt | 0.29 M | 64 px |" in printed)
    assert "| xs | mt | 0.29 M | 64 px |" in table and str(checkpoints["mt"]) in table
    for frame in ("square", "photo"):
        assert (folder / f"pr_curves_{frame}.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert ("| U²-XS-Net | mt | 0.36 | 0.62 | 0.85 | 0.74 | 0.64 |" in printed
            and "photograph's own frame" in table)


def test_splits_pool_the_real_photographs(checkpoints, cache):
    [row] = evaluate.evaluate([checkpoints["mt"]], idrid_root(), ["train", "test"], cache_dir=cache)
    # missing masks count as all negative
    assert row["images"] == {"MA": 81, "HE": 81, "EX": 81, "SE": 81}
    [skipped] = evaluate.evaluate([checkpoints["mt"]], idrid_root(), ["train", "test"],
                                  cache_dir=cache, missing="skip")
    # IDRiD's mask files per lesion
    assert skipped["images"] == {"MA": 81, "HE": 80, "EX": 81, "SE": 40}
    # every photograph has an MA mask: nothing to skip
    assert skipped["aupr"]["MA"] == row["aupr"]["MA"]


class HalfEverywhere(torch.nn.Module):
    """A stand-in network whose fused logits are 0 everywhere: y_hat = 0.5 at every pixel."""

    def forward(self, x):
        return [torch.zeros(x.shape[0], 1, *x.shape[2:])]  # (B, 1, s, s)


def test_a_constant_map_scores_the_share_of_lesion_pixels_in_each_frame(cache):
    # With one score for every pixel, AUPR is the precision at recall 1: positives / pixels
    # scored. On the square that is every pixel of every square; on the photograph, the maps
    # laid back are 0.5 inside the disc's crop box and 0 outside, so AUPR is positives /
    # pixels inside the boxes (every lesion pixel lies inside its box).
    payload = {"lesions": ("EX",), "input_size": SIZE, "mean": MEAN, "std": STD,
               "preprocessing": {"clahe": True}}
    scores = evaluate.score_frames(HalfEverywhere(), payload, idrid_root(), ["test"],
                                   cache_dir=cache)
    test = LesionDataset(idrid_root(), "test", lesions=("EX",), size=SIZE, mean=MEAN, std=STD,
                         cache_dir=cache)
    square_positives = sum(int(test.example(i).masks[2].sum()) for i in range(len(test)))
    photo_positives = sum(int(test.reader[i]["masks"][2].sum()) for i in range(len(test)))
    boxes = [test.example(i).geometry.box for i in range(len(test))]  # (x0, y0, x1, y1)
    box_pixels = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes)
    assert scores["square"].aupr()["EX"] == pytest.approx(
        square_positives / (len(test) * SIZE * SIZE), rel=1e-9)
    assert scores["photo"].aupr()["EX"] == pytest.approx(photo_positives / box_pixels, rel=1e-9)
    with pytest.raises(ValueError, match=r"frames must be some of \('square', 'photo'\), got "
                                         r"\('disc',\)"):
        evaluate.score_frames(HalfEverywhere(), payload, idrid_root(), ["test"], frames=("disc",),
                              cache_dir=cache)


def test_bad_input_exits_2(checkpoints, data, cache, tmp_path, capsys):
    cases = [
        (["--checkpoint", str(tmp_path / "none.pt"), "--data", str(data)], "no checkpoint at"),
        (["--checkpoint", str(checkpoints["mt"]), "--data", str(tmp_path)],
         "does not have the IDRiD layout"),
        (["--checkpoint", str(checkpoints["mt"]), "--data", str(data), "--batch-size", "0"],
         "at least 1"),
    ]
    torch.save(build_model("xs", 1).state_dict(), tmp_path / "bare.pt")
    cases.append((["--checkpoint", str(tmp_path / "bare.pt"), "--data", str(data)],
                  "looks like a bare state_dict"))
    for argv, message in cases:
        assert evaluate.main(argv + ["--cache", str(cache), "--out", str(tmp_path / "out")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_default_out_is_next_to_the_checkpoints(tmp_path):
    paths = [tmp_path / "st" / "MA" / "best.pt", tmp_path / "st" / "EX" / "best.pt"]
    assert evaluate.default_out(paths, ["test"]) == (tmp_path / "st" / "eval-test").resolve()
    assert evaluate.default_out(paths[:1], ["train", "test"]).name == "eval-train+test"
