"""scripts/gpu_check.py: its dry run goes through every step on the CPU and writes the JSON."""

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_check = load_script()
VARIANTS = ("fp32_eager", "fp32_channels_last", "bf16_channels_last", "fp32_cuda_graph",
            "bf16_cuda_graph", "bf16_large_batch")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "dry.json"
    assert gpu_check.main(["--dry-run", "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_dry_run_runs_the_cuda_tests_which_skip_on_the_cpu(dry_run):
    tests = dry_run["tests"]
    assert tests["returncode"] == 0, tests
    assert "-m cuda tests/test_inference.py" in tests["command"]
    assert "skipped" in tests["summary"]


def test_dry_run_measures_every_inference_variant(dry_run):
    assert dry_run["dry_run"] is True and dry_run["size"] == 64 and dry_run["out_ch"] == 4
    assert set(dry_run["inference"]) == {"xs", "small"}
    for name, variants in dry_run["inference"].items():
        assert tuple(variants) == VARIANTS, name
        for variant in ("fp32_eager", "fp32_channels_last", "bf16_channels_last"):
            assert variants[variant]["status"] == "ok" and variants[variant]["fps"] > 0
        assert variants["fp32_eager"]["max_abs_diff_vs_fp32_eager"] == 0.0
        # folded, same function
        assert variants["fp32_channels_last"]["max_abs_diff_vs_fp32_eager"] <= 1e-4
        # 8 mantissa bits
        assert variants["bf16_channels_last"]["max_abs_diff_vs_fp32_eager"] <= 5e-2
        assert variants["fp32_cuda_graph"] == {"status": "skipped", "reason": "CUDA graphs need "
                                                                              "CUDA"}
        assert variants["bf16_large_batch"]["batch"] == 2


def test_dry_run_trains_in_both_precisions(dry_run):
    for label in ("fp32", "bf16_autocast"):
        row = dry_run["training"][label]
        assert row["status"] == "ok" and row["steps"] == 2 and row["batch"] == 2
        assert row["images_per_s"] > 0
        assert math.isfinite(row["loss_first"]) and math.isfinite(row["loss_last"])


def test_budget_skips_what_does_not_fit():
    result = gpu_check.gpu_check(dry_run=True, budget=0.0, run_tests=False, log=lambda text: None)
    assert result["tests"] == {"status": "skipped", "reason": "--skip-tests"}
    assert all(row == {"status": "skipped", "reason": "time budget"}
               for variants in result["inference"].values() for row in variants.values())
    assert result["training"]["fp32"] == {"status": "skipped", "reason": "time budget"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without "
                                                      "CUDA")
def test_full_run_needs_cuda(tmp_path, capsys):
    assert gpu_check.main(["--json", str(tmp_path / "gpu.json")]) == 2
    assert "pass --dry-run" in capsys.readouterr().err
    assert not (tmp_path / "gpu.json").exists()
