"""`make demo` at a tiny size: every step runs, everything lands where the summary says, nothing is overwritten."""

import re
from datetime import datetime
from pathlib import Path

import torch

from u2net_mini import demo


def test_tiny_demo_writes_and_lists_everything(tmp_path, capsys):
    out = tmp_path / "demo"
    threads = torch.get_num_threads()
    try:
        code = demo.main(["--out", str(out), "--size", "64", "--epochs", "1", "--n-train", "3", "--n-test", "2",
                          "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert code == 0
    assert "| xs | mt | 0.29 M | 64 px |" in printed  # the Table-1 row of the synthetic test split
    assert re.search(r"\(EX\) AUPR on IDRiD_01 \+ IDRiD_55: (0|1)\.\d{3}\n", printed)
    summary = printed[printed.index("== done"):]
    listed = [Path(path) for path in re.findall(re.escape(str(out)) + r"/\S+", summary)]
    assert len(listed) == 6 and all(path.exists() for path in listed), listed
    assert (out / "run" / "MA-HE-EX-SE" / "best.pt").is_file()
    assert (out / "overlays" / "real" / "IDRiD_55_overlay.png").is_file()
    # the test photographs are numbered after the 3 training ones
    assert (out / "overlays" / "synthetic" / "IDRiD_04_overlay.png").is_file()
    real_row = (out / "eval-real-idrid-sample" / "results.md").read_text().splitlines()[4]
    assert real_row.startswith("| xs | mt | 0.29 M | 64 px | n/a | n/a |")  # the sample has no MA or HE masks

    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert demo.main(["--out", str(out)]) == 2  # never into an earlier demo
    assert "exists and is not empty" in capsys.readouterr().err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_new_run_folder_never_reuses_a_name(tmp_path):
    now = datetime(2024, 5, 6, 7, 8, 9)
    assert demo.new_run_folder(tmp_path, now) == tmp_path / "demo-20240506-070809"
    (tmp_path / "demo-20240506-070809").mkdir()
    (tmp_path / "demo-20240506-070809-2").mkdir()
    assert demo.new_run_folder(tmp_path, now) == tmp_path / "demo-20240506-070809-3"


def test_threads_follow_the_choice():
    assert demo.choose_threads("3") == 3
    assert demo.choose_threads("auto") in (1, __import__("os").cpu_count())
