"""The fast inference paths compute what the model as trained computes.

Tolerances: float64 through the optimized torch model, 1e-10 (folding reorders a few
multiplications); float32 sessions, 1e-5 on y_hat for torch, 1e-4 for ONNX Runtime
(its own convolution kernels sum in another order); CUDA against CPU, 1e-4 with TF32 off.
"""

import json
import os

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from u2net_mini import inference
from u2net_mini.checkpoint import save_checkpoint
from u2net_mini.export import export_onnx
from u2net_mini.inference import (
    METADATA_KEY,
    PAYLOAD_KEYS,
    ConvReLU,
    OnnxSession,
    TorchSession,
    bf16_supported,
    check_batch,
    load_for_prediction,
    load_session,
    optimize_model,
    reuse_freed_memory,
)
from u2net_mini.model import build_model
from u2net_mini.random_batchnorm import randomize_batchnorm
from u2net_mini.rsu import REBNCONV

LESION_PAIR = ("EX", "SE")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return randomize_batchnorm(build_model("xs", 2))


@pytest.fixture(scope="module")
def x():
    # (2, 3, 64, 64)
    return np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)


def payload_for(model):
    return {"model_config": dict(model.config), "state_dict": model.state_dict(),
            "lesions": LESION_PAIR, "input_size": 64, "mean": [0.5, 0.4, 0.3],
            "std": [0.2, 0.2, 0.1], "preprocessing": {"clahe": True}}


@pytest.fixture(scope="module")
def onnx_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "xs.onnx"
    export_onnx(model, path, payload_for(model))
    return path


def test_optimized_model_equals_the_model_in_float64(model):
    model64 = build_model("xs", 2).double()
    model64.load_state_dict({k: v.double() if v.is_floating_point() else v
                             for k, v in model.state_dict().items()})
    model64.eval()
    optimized = optimize_model(model64)
    # (1, 3, 48, 64) float64
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 3, 48, 64)))
    with torch.no_grad():
        expected = model64(x)
        found = optimized(x.contiguous(memory_format=torch.channels_last))
    assert len(found) == 7  # fused and six sides, all unchanged
    for a, b in zip(found, expected):
        assert torch.allclose(a, b, rtol=0, atol=1e-10)


def test_optimize_model_replaces_every_block_and_leaves_the_original(model):
    before = {key: value.clone() for key, value in model.state_dict().items()}
    blocks = sum(isinstance(m, REBNCONV) for m in model.modules())
    optimized = optimize_model(model)
    # 11 stages: RSU-7, -6, -5, -4 have 2L blocks, RSU-4F has 8: 2·(14+12+10+8)+3·8
    assert blocks == 112
    assert sum(isinstance(m, ConvReLU) for m in optimized.modules()) == blocks
    assert not any(isinstance(m, (REBNCONV, nn.BatchNorm2d)) for m in optimized.modules())
    assert optimized.sides[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not optimized.training
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_y_hat_is_the_sigmoid_of_the_fused_logits(model, x):
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.from_numpy(x))[0]).numpy()  # (2, 2, 64, 64)
    found = TorchSession(model, optimize=False)(x)
    assert found.shape == (2, 2, 64, 64) and found.dtype == np.float32
    np.testing.assert_array_equal(found, expected)


def test_optimized_session_equals_eager(model, x):
    eager = TorchSession(model, optimize=False)(x)
    fast = TorchSession(model, optimize=True)(x)
    assert fast.flags["C_CONTIGUOUS"]  # NCHW again, although the model ran channels_last
    assert np.abs(fast - eager).max() <= 1e-5


def test_session_takes_tensors_and_float64(model, x):
    session = TorchSession(model)
    expected = session(x)
    np.testing.assert_allclose(session(torch.from_numpy(x)), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(session(x.astype(np.float64)), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((1, 3, 64, 64), dtype=np.uint8), "float array"),
    (torch.zeros(1, 3, 64, 64, dtype=torch.int64), "float tensor"),
    ([[0.0]], "NumPy array or a torch tensor"),
    (np.zeros((3, 64, 64), dtype=np.float32), r"add the batch axis"),
    (np.zeros((1, 4, 64, 64), dtype=np.float32), r"\(B, 3, H, W\), got \(1, 4, 64, 64\)"),
    (np.zeros((1, 3, 16, 64), dtype=np.float32), "H and W >= 32, got 16×64"),
])
def test_bad_batches_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        check_batch(bad)


@pytest.mark.skipif(not bf16_supported("cpu"), reason="this CPU has no native bfloat16")
def test_bf16_session_stays_close_to_fp32(model, x):
    fp32 = TorchSession(model)(x)
    bf16 = TorchSession(model, bf16=True)(x)
    assert bf16.dtype == np.float32  # computed in bf16, handed back in fp32
    assert 0 < np.abs(bf16 - fp32).max() <= 1e-2  # 8 significant bits: it does differ, a little


def test_bf16_auto_follows_the_cpu(model, onnx_file, tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "best.pt", payload_for(model))
    assert load_session(path, bf16="auto").dtype == (torch.bfloat16 if bf16_supported("cpu")
                                                     else torch.float32)
    monkeypatch.setattr(inference, "bf16_supported", lambda device: False)
    assert load_session(path, bf16="auto").dtype == torch.float32
    assert isinstance(load_session(onnx_file, bf16="auto"), OnnxSession)  # ONNX runs fp32, no error
    with pytest.raises(ValueError, match="bf16 must be False, True or 'auto', got 'yes'"):
        load_session(path, bf16="yes")


def test_bf16_refusals(model, onnx_file, monkeypatch):
    with pytest.raises(ValueError, match="bf16=True needs optimize=True"):
        TorchSession(model, optimize=False, bf16=True)
    with pytest.raises(ValueError, match="an ONNX file runs in fp32"):
        load_session(onnx_file, bf16=True)
    monkeypatch.setattr(inference, "bf16_supported", lambda device: False)
    with pytest.raises(ValueError, match="bfloat16 is not supported natively on cpu"):
        TorchSession(model, bf16=True)


def test_threads_must_be_positive(model):
    with pytest.raises(ValueError, match="threads must be a positive int"):
        TorchSession(model, threads=0)
    with pytest.raises(ValueError, match="threads must be a positive int"):
        OnnxSession(b"", threads=-1)


def test_checkpoint_session_carries_the_payload_without_weights(model, x, tmp_path):
    path = save_checkpoint(tmp_path / "best.pt", payload_for(model))
    session, payload = load_for_prediction(path)
    assert isinstance(session, TorchSession) and payload is session.payload
    assert set(payload) == set(PAYLOAD_KEYS)  # everything preprocessing needs, no state_dict
    assert payload["lesions"] == LESION_PAIR and payload["input_size"] == 64
    assert np.abs(session(x) - TorchSession(model, optimize=False)(x)).max() <= 1e-5


def test_onnx_session_equals_torch_at_a_new_size_and_batch(model, onnx_file):
    session = load_session(onnx_file)
    assert isinstance(session, OnnxSession)
    # (3, 3, 96, 128)
    x = np.random.default_rng(2).standard_normal((3, 3, 96, 128)).astype(np.float32)
    found = session(x)
    assert found.shape == (3, 2, 96, 128) and found.dtype == np.float32
    assert np.abs(found - TorchSession(model, optimize=False)(x)).max() <= 1e-4


def test_onnx_session_reads_the_payload_from_metadata(onnx_file):
    session, payload = load_for_prediction(onnx_file)
    assert payload["lesions"] == LESION_PAIR
    assert (payload["input_size"] == 64 and payload["mean"] == [0.5, 0.4, 0.3]
            and payload["std"] == [0.2, 0.2, 0.1])
    assert payload["preprocessing"] == {"clahe": True}
    assert payload["model_config"]["name"] == "xs" and payload["model_config"]["out_ch"] == 2


def test_onnx_without_metadata_cannot_predict(model, onnx_file, tmp_path):
    proto = onnx.load(onnx_file)
    proto.ClearField("metadata_props")
    onnx.helper.set_model_props(proto,
                                {METADATA_KEY: json.dumps({"model_config": dict(model.config)})})
    path = tmp_path / "bare.onnx"
    onnx.save(proto, path)  # what export_onnx(model, path) stores without a payload
    assert OnnxSession(path).payload["model_config"]["out_ch"] == 2
    with pytest.raises(ValueError, match=r"lacks the metadata \['lesions'"):
        load_session(path)


def test_load_session_errors(onnx_file, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint or ONNX file"):
        load_session(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="no ONNX file"):
        OnnxSession(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="runs on the CPU"):
        load_session(onnx_file, device="cuda")
    with pytest.raises(ValueError, match="ONNX Runtime cannot load"):
        OnnxSession(b"not an onnx model")
    with pytest.raises(ValueError, match="path to a .onnx file or its bytes"):
        OnnxSession(42)


def _rss_bytes():
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm") or not reuse_freed_memory(True),
                    reason="needs Linux with glibc's malloc")
def test_reuse_keeps_freed_maps_until_turned_off():
    reuse_freed_memory(True)
    block = np.ones(64 << 20, dtype=np.uint8)  # 64 MiB, touched
    before_free = _rss_bytes()
    del block
    kept = _rss_bytes()
    assert before_free - kept < 16 << 20  # freed, but still in the heap for the next map
    reuse_freed_memory(False)  # back to glibc's thresholds, and the heap trimmed
    assert kept - _rss_bytes() > 48 << 20
    reuse_freed_memory(True)


def _cuda():
    return torch.cuda.is_available()


@pytest.mark.cuda
@pytest.mark.skipif(not _cuda(), reason="needs CUDA")
def test_cuda_forward_equals_cpu_forward(model, x):
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # TF32 rounds to 10 mantissa bits; compare in true fp32
    try:
        cpu = TorchSession(model, optimize=False)(x)
        eager = TorchSession(build_model("xs", 2).eval(), optimize=False, device="cuda")
        eager.model.load_state_dict(model.state_dict())
        fast = TorchSession(model, optimize=True, device="cuda")
        assert np.abs(eager(x) - cpu).max() <= 1e-4
        assert np.abs(fast(x) - cpu).max() <= 1e-4
    finally:
        torch.backends.cudnn.allow_tf32 = tf32


@pytest.mark.cuda
@pytest.mark.skipif(not _cuda(), reason="needs CUDA")
def test_cuda_bf16_autocast_stays_close(model, x):
    cpu = TorchSession(model, optimize=False)(x)
    fast = optimize_model(model).cuda()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        logits = fast(torch.from_numpy(x).cuda().contiguous(memory_format=torch.channels_last))[0]
    y_hat = torch.sigmoid(logits.float()).cpu().numpy()  # (2, 2, 64, 64)
    assert np.abs(y_hat - cpu).max() <= 2e-2  # bf16 keeps 8 mantissa bits: ~0.4 % per value
