"""ONNX export: the file computes the model's y_hat, at any size, and is written safely.

Tolerances: ONNX Runtime against torch (the unfolded model in eval mode), 1e-4 on y_hat in
fp32 (the export's own bar); 1e-2 with fp16 weights (rounding each weight to 11
significant bits moves y_hat by ~1e-5 for this model).
"""

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto

from u2net_mini import export
from u2net_mini.checkpoint import save_checkpoint
from u2net_mini.counting import count_parameters
from u2net_mini.export import FusedProbability, export_onnx, main, to_onnx_bytes
from u2net_mini.fold import fold_batchnorm
from u2net_mini.inference import OnnxSession
from u2net_mini.lesions import LESIONS
from u2net_mini.model import build_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = build_model("xs", 4).eval()
    with torch.no_grad():  # running statistics away from (0, 1), so that folding is tested
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model


@pytest.fixture(scope="module")
def onnx_bytes(model):
    return to_onnx_bytes(model)


@pytest.fixture
def cached_trace(monkeypatch, onnx_bytes):
    """export_onnx without tracing again: the graph of the module's model, already made."""
    monkeypatch.setattr(export, "to_onnx_bytes", lambda model, opset=export.OPSET: onnx_bytes)


def payload_for(model):
    return {"model_config": dict(model.config), "state_dict": model.state_dict(),
            "lesions": LESIONS, "input_size": 512, "mean": [0.1, 0.2, 0.3], "std": [1.0, 1.0, 1.0],
            "preprocessing": {"clahe": True}}


def test_graph_is_the_fused_probability_with_dynamic_sizes(onnx_bytes):
    graph = onnx.load_from_string(onnx_bytes).graph
    (x,), (y_hat,) = graph.input, graph.output
    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    assert (x.name, dims(x)) == ("x", ["B", 3, "H", "W"])
    assert (y_hat.name, dims(y_hat)) == ("y_hat", ["B", 4, "H", "W"])
    assert graph.node[-1].op_type == "Sigmoid"  # the probability, not the logits
    assert not any(node.op_type == "BatchNormalization" for node in graph.node)  # folded


def test_export_writes_a_checked_file_of_the_expected_size(model, cached_trace, tmp_path):
    report = export_onnx(model, tmp_path / "xs.onnx", payload_for(model))
    # 288 684: 291 532 less γ and β of 1424 channels
    weights = count_parameters(fold_batchnorm(model))
    assert weights == 291_532 - 2 * 1424
    assert report["bytes"] == (tmp_path / "xs.onnx").stat().st_size
    # fp32 weights plus a small graph: ~1.3 MB
    assert 4 * weights < report["bytes"] < 1.2 * 4 * weights
    assert report["max_abs_diff"] <= 1e-4 and report["tolerance"] == 1e-4


def test_round_trip_at_a_size_and_batch_never_traced(model, cached_trace, tmp_path):
    path = tmp_path / "xs.onnx"
    export_onnx(model, path, payload_for(model))
    x = np.random.default_rng(3).standard_normal((3, 3, 96, 112), dtype=np.float32)
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.from_numpy(x))[0]).numpy()  # (3, 4, 96, 112)
    found = OnnxSession(path)(x)
    assert found.shape == (3, 4, 96, 112)
    assert np.abs(found - expected).max() <= 1e-4


def test_metadata_carries_the_payload_without_weights(model, cached_trace, tmp_path):
    path = tmp_path / "xs.onnx"
    export_onnx(model, path, payload_for(model))
    payload = OnnxSession(path).payload
    assert payload["lesions"] == LESIONS and payload["input_size"] == 512
    assert payload["mean"] == [0.1, 0.2, 0.3] and payload["preprocessing"] == {"clahe": True}
    assert payload["model_config"] == model.config and "state_dict" not in payload


def test_existing_file_is_kept_unless_overwrite(model, cached_trace, tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"a user's file")
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True"):
        export_onnx(model, path)
    assert path.read_bytes() == b"a user's file"
    export_onnx(model, path, overwrite=True)
    assert onnx.load(path).graph.output[0].name == "y_hat"


def test_disagreement_writes_nothing(model, cached_trace, monkeypatch, tmp_path):
    def zeros(model, x):
        return np.zeros((2, 4) + x.shape[2:], np.float32)  # (2, 4, H, W)

    monkeypatch.setattr(export, "torch_probabilities", zeros)
    with pytest.raises(ValueError, match=r"differ by .* > 0.0001; nothing written"):
        export_onnx(model, tmp_path / "xs.onnx")
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one


def test_output_must_be_onnx(model, tmp_path):
    with pytest.raises(ValueError, match=r"must be a .onnx file, got .*model.pt"):
        export_onnx(model, tmp_path / "model.pt")


def test_fp16_weights_halve_the_file_and_stay_close(model, cached_trace, tmp_path):
    fp32 = export_onnx(model, tmp_path / "fp32.onnx")
    fp16 = export_onnx(model, tmp_path / "fp16.onnx", fp16=True)
    graph = onnx.load(tmp_path / "fp16.onnx").graph
    assert not any(t.data_type == TensorProto.FLOAT for t in graph.initializer)
    assert any(t.data_type == TensorProto.FLOAT16 for t in graph.initializer)
    assert fp16["bytes"] < 0.65 * fp32["bytes"]  # weights halve; the graph itself does not
    assert fp16["max_abs_diff"] <= 1e-2 and fp16["tolerance"] == 1e-2
    x = np.random.default_rng(4).standard_normal((1, 3, 64, 64), dtype=np.float32)
    np.testing.assert_allclose(OnnxSession(tmp_path / "fp16.onnx")(x),
                               OnnxSession(tmp_path / "fp32.onnx")(x), rtol=0, atol=1e-2)


def test_fused_probability_is_the_sigmoid_of_the_fused_output(model):
    x = torch.from_numpy(np.random.default_rng(5).standard_normal((1, 3, 64, 64), dtype=np.float32))
    with torch.no_grad():
        wrapped = FusedProbability(model)(x).numpy()  # (1, 4, 64, 64)
        logits = [z.numpy() for z in model(x)]  # 7 × (1, 4, 64, 64): fused first, then sides
    # $\hat y = 1 / (1 + e^{-z_{fused}})$ in NumPy, not through the module under test
    np.testing.assert_allclose(wrapped, 1 / (1 + np.exp(-logits[0])), rtol=0, atol=1e-6)
    assert all(np.abs(wrapped - 1 / (1 + np.exp(-z))).max() > 1e-3 for z in logits[1:])


def test_command_line(model, cached_trace, tmp_path, capsys):
    checkpoint = save_checkpoint(tmp_path / "best.pt", payload_for(model))
    out = tmp_path / "model.onnx"
    assert main(["--checkpoint", str(checkpoint), "--onnx", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}: 1.3" in printed and "MB (fp32), lesions MA, HE, EX, SE" in printed
    assert "ONNX Runtime vs torch: max |Δy_hat| =" in printed
    assert main(["--checkpoint", str(checkpoint), "--onnx", str(out)]) == 2  # refuses to overwrite
    assert "exists" in capsys.readouterr().err
    missing = ["--checkpoint", str(tmp_path / "missing.pt"), "--onnx", str(tmp_path / "m.onnx")]
    assert main(missing) == 2
    assert "no checkpoint at" in capsys.readouterr().err
