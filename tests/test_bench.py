"""The benchmark's figures: counted ones checked exactly, timed ones only for their presence.

No timing is asserted: this machine is shared, and a test must not fail on a busy minute.
"""

import json

import numpy as np
import pytest
import torch
from torch import nn

from u2net_mini import bench, precisions, roofline
from u2net_mini.bench import PeakMemory, benchmark, main
from u2net_mini.counting import conv_macs, count_parameters
from u2net_mini.inference import TorchSession, bf16_supported
from u2net_mini.lesions import LESIONS
from u2net_mini.model import build_model
from u2net_mini.roofline import disk_bytes, memory_traffic

TIMED_FIELDS = {"status", "latency_ms_median", "latency_ms_min", "latency_ms_all", "fps",
                "throughput_ips",
                "peak_memory_mb", "max_abs_diff_vs_eager", "speedup_vs_eager"}


@pytest.fixture(scope="module")
def result():
    return benchmark("xs", size=64, runs=2, warmup=0, throughput_batch=2,
                     paths=("eager", "optimized", "onnxruntime"), log=lambda text: None)


def test_model_figures_are_the_counted_ones(result):
    torch.manual_seed(0)
    model = build_model("xs", 4)
    figures = result["model"]
    assert figures["parameters"] == count_parameters(model) == 291_532
    assert figures["conv_macs"] == conv_macs(model, 64, 64)
    assert figures["gflop"] == round(2 * figures["conv_macs"] / 1e9, 2)  # 1 MAC = 2 FLOP
    # weights, buffers, and the zip around them
    assert 4 * figures["parameters"] < figures["disk_bytes"]["fp32"]
    assert figures["disk_bytes"]["fp16"] < 0.6 * figures["disk_bytes"]["fp32"]
    # no batch-norm pass
    assert figures["traffic_bytes"]["optimized"] < figures["traffic_bytes"]["eager"]


def test_every_path_has_its_figures_and_agrees_with_eager(result):
    assert set(result["paths"]) == {"eager", "optimized", "onnxruntime"}
    for name, row in result["paths"].items():
        assert TIMED_FIELDS <= set(row), name
        assert row["status"] == "ok" and len(row["latency_ms_all"]) == 2
        assert row["latency_ms_min"] <= row["latency_ms_median"]
        assert row["max_abs_diff_vs_eager"] <= 1e-4, name
        assert row["page_faults"] >= 0, name  # of one warm call
    assert result["paths"]["eager"]["speedup_vs_eager"] == 1.0
    assert result["paths"]["onnxruntime"]["onnx_bytes"] > 4 * 288_684  # the folded fp32 weights
    assert result["best"] in result["paths"]


def test_cpu_features_are_read_from_the_flags():
    flags = "fpu avx2 avx512f avx512_vnni avx512_bf16 sse4_2".split()
    assert roofline.cpu_features(flags) == ["avx2", "avx512f", "avx512_vnni", "avx512_bf16"]
    assert roofline.cpu_features([]) == []


def test_context_is_recorded(result):
    assert result["input"] == {"size": 64, "batch": 1, "throughput_batch": 2, "device": "cpu",
                               "runs": 2, "warmup": 0}
    machine = result["machine"]
    assert machine["matmul_gflops_fp32"] > 0 and machine["copy_bandwidth_gbs"] > 0
    assert len(result["load_average_before"]) == 3
    # floors: t >= FLOP / rate and t >= bytes / bandwidth, in ms
    flop_ms = 2 * result["model"]["conv_macs"] / (machine["matmul_gflops_fp32"] * 1e9) * 1000
    assert result["floors_ms"]["arithmetic"] == pytest.approx(flop_ms, abs=0.051)


class Tiny(nn.Module):
    """1 input channel, a 1×1 conv without bias, a ReLU, an in-place ReLU and a view."""

    in_ch = 1

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        return torch.relu_(h).view(-1)


def test_memory_traffic_by_hand():
    # x (1, 1, 2, 2) float32 = 16 B. conv: x 16 B + weight 4 B + out 16 B = 36 B.
    # relu: 16 B in + 16 B out = 32 B. relu_: 16 B read + 16 B written = 32 B. view: 0.
    assert memory_traffic(Tiny(), 2) == {"convolution": 36, "relu": 32, "relu_": 32}


def test_disk_bytes_fp16_is_smaller():
    sizes = disk_bytes(nn.Linear(1000, 10))  # 10 010 floats: 40 040 B in fp32, 20 020 B in fp16
    assert sizes["fp32"] - sizes["fp16"] >= 20_020 - 128  # zip records are padded to 64 B


def test_peak_memory_sees_a_large_block():
    with PeakMemory("cpu") as memory:
        block = np.ones(64 << 20, dtype=np.uint8)  # 64 MiB, touched
        import time

        time.sleep(0.02)  # the sampler looks every 0.5 ms
        del block
    assert memory.peak_bytes is None or memory.peak_bytes >= 60 << 20


def test_failing_compile_is_skipped_with_its_reason(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", broken)
    result = benchmark("xs", size=32, runs=1, warmup=0, throughput_batch=1,
                       paths=("eager", "compile"), log=lambda text: None)
    row = result["paths"]["compile"]
    reason = "torch.compile failed: RuntimeError: no C++ compiler"
    assert row == {"status": "skipped", "reason": reason}
    assert result["best"] == "eager"


@pytest.mark.parametrize("kwargs, match", [
    ({"model_name": "xl"}, r"model must be one of \('xs', 'small', 'full'\), got 'xl'"),
    ({"size": 16}, "size must be an int >= 32, got 16"),
    ({"runs": 0}, "runs must be an int >= 1, got 0"),
    ({"paths": ("eager", "fastest")}, "paths must be a non-empty selection"),
    ({"paths": ()}, "paths must be a non-empty selection"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        benchmark(**kwargs)


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_an_error():
    with pytest.raises(ValueError, match="torch sees no CUDA device"):
        benchmark(device="cuda")


def test_command_line_writes_json_and_a_table(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--model", "xs", "--size", "32", "--runs", "1", "--warmup", "0",
                 "--throughput-batch", "1", "--paths", "eager,folded", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| eager |" in table and "| folded |" in table
    features = roofline.cpu_features()
    # the header names the instruction sets
    assert (", ".join(features) if features else "none of") in table
    saved = json.loads(out.read_text())
    assert set(saved["paths"]) == {"eager", "folded"} and saved["input"]["size"] == 32
    assert main(["--paths", "eager,nothing"]) == 2
    assert "paths must be a non-empty selection" in capsys.readouterr().err


def test_every_named_path_is_buildable_or_refused():
    assert set(bench.DEFAULT_PATHS) <= set(bench.PATHS)
    assert "compile" not in bench.DEFAULT_PATHS  # minutes of compiling: only by name
    with pytest.raises(ValueError, match="path must be one of"):
        bench.build_path("fastest", build_model("xs", 1), "cpu", torch.zeros(1, 3, 32, 32))


def test_precision_aupr_scores_every_precision_on_the_same_photographs(tmp_path):
    from data_prep.dataset import LesionDataset
    from data_prep.synthetic import write_idrid_layout
    from u2net_mini.checkpoint import save_checkpoint
    from u2net_mini.metrics import LesionScores

    write_idrid_layout(tmp_path / "data", n_train=2, n_test=2, size=64)
    torch.manual_seed(0)
    model = build_model("xs", 4).eval()
    payload = {"model_config": dict(model.config), "state_dict": model.state_dict(),
               "lesions": LESIONS, "input_size": 64, "mean": [0.3, 0.2, 0.1],
               "std": [0.2, 0.1, 0.1], "preprocessing": {"clahe": True}}
    checkpoint = save_checkpoint(tmp_path / "best.pt", payload)
    check = precisions.precision_aupr(checkpoint, tmp_path / "data", cache_dir=tmp_path / "cache")
    assert check["images"] == 2 and precisions.AUPR_LIMITS == {"bf16": 0.005, "int8": 0.01}
    assert check["limit"] == {name: precisions.AUPR_LIMITS[name] for name in check["shift"]}
    assert set(check["aupr"]) == {"fp32", "int8"} | ({"bf16"} if bf16_supported("cpu") else set())
    # fp32 is the model as trained: the same AUPR as eager y_hat on the same inputs
    data = LesionDataset(tmp_path / "data", "test", size=64, mean=payload["mean"],
                         std=payload["std"],
                         cache_dir=tmp_path / "cache")
    eager = LesionScores(LESIONS)
    for i in range(len(data)):
        x, y = data[i]
        eager.update(y.numpy(), TorchSession(model, optimize=False)(x[None])[0], data.present[i])
    for lesion, value in eager.aupr().items():
        assert check["aupr"]["fp32"][lesion] == pytest.approx(value, abs=1e-6, nan_ok=True)
        for name in check["shift"]:
            shift = abs(check["aupr"][name][lesion] - value)
            assert check["shift"][name][lesion] == pytest.approx(shift,
                                                                 abs=1e-6, nan_ok=True)
    for name in check["shift"]:
        assert check["within_limit"][name] == (check["max_shift"][name] <= check["limit"][name])
    table = precisions.aupr_table(check)
    header = "| precision | MA | HE | EX | SE | mean | largest shift from fp32 |"
    assert table.splitlines()[0] == header
    assert "| int8 | " in table and ("within 0.01" in table or "beyond 0.01" in table)
    with pytest.raises(ValueError, match="precisions must include fp32"):
        precisions.precision_aupr(checkpoint, tmp_path / "data", precisions=("int8",))


def test_the_default_run_includes_int8_and_its_roofline():
    result = benchmark("xs", size=32, runs=1, warmup=0, throughput_batch=1, log=lambda text: None)
    assert set(result["paths"]) == set(bench.DEFAULT_PATHS) and "int8" in result["paths"]
    row = result["paths"]["int8"]
    assert row["status"] == "ok" and row["onnx_bytes"] <= 400_000  # every weight in 8 bits
    assert row["max_abs_diff_vs_eager"] < 0.5  # 8-bit activations: per pixel up to a few tenths
    machine = result["machine"]
    assert machine["matmul_gops_int8"] > 0 and machine["matmul_gflops_bf16"] > 0
    # the int8 floor is the same MACs at the int8 rate: 2 MAC / rate, in ms
    expected = 1000 * 2 * result["model"]["conv_macs"] / (machine["matmul_gops_int8"] * 1e9)
    assert result["floors_ms"]["arithmetic_int8"] == pytest.approx(expected, abs=0.051)


def test_checkpoint_needs_data(capsys):
    assert main(["--checkpoint", "best.pt"]) == 2
    assert "give --checkpoint and --data together" in capsys.readouterr().err
