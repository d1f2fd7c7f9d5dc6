"""`make demo` at a tiny size: every step runs, everything lands where the summary says,
nothing is overwritten."""

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
import torch

from u2net_mini import demo


def run_demo(argv):
    threads = torch.get_num_threads()
    try:
        return demo.main(argv + ["--threads", "1"])
    finally:
        torch.set_num_threads(threads)


def listed_paths(printed, out):
    summary = printed[printed.index("== done"):]
    return [Path(path) for path in re.findall(re.escape(str(out)) + r"/\S+", summary)]


@pytest.mark.slow
def test_real_demo_prints_table_1_trains_and_draws_overlays(tmp_path, capsys):
    out = tmp_path / "demo"
    assert run_demo(["--out", str(out), "--size", "64", "--patch", "64", "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    # the shipped model's real-test row, in both frames, beside the paper's rows
    assert printed.count("| xs | mt | 0.29 M | 512 px |") == 2
    assert "| U²-XS-Net | mt | 0.36 | 0.62 | 0.85 | 0.74 | 0.64 |" in printed
    table = (out / "eval-shipped-test" / "results.md").read_text()
    assert "512 px square" in table and "photograph's own frame" in table
    listed = listed_paths(printed, out)
    assert len(listed) == 5 and all(path.exists() for path in listed), listed
    assert [p.name for p in listed[2:]] == [f"{name}_overlay.png"
                                            for name in demo.OVERLAY_PHOTOGRAPHS]
    run = json.loads((out / "run" / "run.json").read_text())
    assert (run["size"], run["patch"], run["schedule_epochs"]) == (64, 64, 1)
    assert len(run["train_images"]) + len(run["validation_images"]) == 54  # the real training split

    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert demo.main(["--out", str(out)]) == 2  # never into an earlier demo
    assert "exists and is not empty" in capsys.readouterr().err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


@pytest.mark.slow
def test_synthetic_demo_writes_and_lists_everything(tmp_path, capsys):
    out = tmp_path / "demo"
    code = run_demo(["--out", str(out), "--data", "synthetic", "--size", "64", "--epochs", "1",
                     "--n-train", "3", "--n-test", "2"])
    printed = capsys.readouterr().out
    assert code == 0
    # synthetic test, then the real test split
    assert printed.count("| xs | mt | 0.29 M | 64 px |") == 2
    listed = listed_paths(printed, out)
    assert len(listed) == 6 and all(path.exists() for path in listed), listed
    assert (out / "run" / "MA-HE-EX-SE" / "best.pt").is_file()
    assert (out / "overlays" / "real" / "IDRiD_55_overlay.png").is_file()
    # the test photographs are numbered after the 3 training ones
    assert (out / "overlays" / "synthetic" / "IDRiD_04_overlay.png").is_file()


def test_new_run_folder_never_reuses_a_name(tmp_path):
    now = datetime(2024, 5, 6, 7, 8, 9)
    assert demo.new_run_folder(tmp_path, now) == tmp_path / "demo-20240506-070809"
    (tmp_path / "demo-20240506-070809").mkdir()
    (tmp_path / "demo-20240506-070809-2").mkdir()
    assert demo.new_run_folder(tmp_path, now) == tmp_path / "demo-20240506-070809-3"


def test_threads_follow_the_choice(monkeypatch):
    assert demo.choose_threads("3") == 3
    monkeypatch.setattr(demo.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(demo.os, "getloadavg", lambda: (3.6, 0.0, 0.0))
    assert demo.choose_threads("auto") == 1  # load 3.6 > 4 - 0.5: the cores are busy, take one
    monkeypatch.setattr(demo.os, "getloadavg", lambda: (3.4, 0.0, 0.0))
    assert demo.choose_threads("auto") == 4  # load 3.4 leaves room: take all four
