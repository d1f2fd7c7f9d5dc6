"""int8 export and the mobile runtime: the file computes the model's y_hat in 8 bits, small.

Tolerances. int8 is compared by the **mean** |Δy_hat| against torch in fp32, at most 0.01
(`export.INT8_MEAN_TOLERANCE`): quantizing activations to 256 levels moves a pixel whose
logit sits near a step by up to ~0.4, so a largest-difference bar would have to be loose
enough to pass a broken graph; the mean of a correct one is 1e-4 to 1e-3 (measured on the
shipped model), of a graph with a wrong scale 0.1 or more. The `.ort` file runs the same
graph in the same runtime: 1e-5 (`export.ORT_TOLERANCE`).
"""

import hashlib
import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from u2net_mini import export, quantize
from u2net_mini.checkpoint import load_model, save_checkpoint
from u2net_mini.export import export_onnx, main, torch_probabilities
from u2net_mini.inference import METADATA_KEY, OnnxSession, load_session
from u2net_mini.lesions import LESIONS
from u2net_mini.model import build_model
from u2net_mini.quantize import (
    Calibration,
    _short_name,
    compact,
    kept_float_nodes,
    optimized_graph,
    to_ort_bytes,
)

XS_WEIGHTS = 288_684  # after folding batch norm (docs/performance.md)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("xs", 4).eval()


@pytest.fixture(scope="module")
def random_batches():
    rng = np.random.default_rng(0)
    return [
        rng.standard_normal((1, 3, 64, 64)).astype(np.float32) for _ in range(3)
    ]  # 3 × (1, 3, 64, 64)


@pytest.fixture(scope="module")
def int8_file(model, random_batches, tmp_path_factory):
    path = tmp_path_factory.mktemp("int8") / "xs_int8.onnx"
    report = export_onnx(
        model,
        path,
        calibration=Calibration(random_batches[:2], {"count": 2}),
        ort_path=path.with_suffix(".ort"),
    )
    return path, report


# ---------------------------------------------------------------------------------------
# Compacting, by hand.


def test_short_names_are_distinct_and_short():
    # index = 52 h + t: letter t, then h in base 62
    assert [_short_name(i) for i in (0, 25, 26, 51, 52, 53, 104)] == [
        "a",
        "z",
        "A",
        "Z",
        "a1",
        "b1",
        "a2",
    ]
    names = [_short_name(i) for i in range(52 * 62)]
    assert len(set(names)) == len(names) and max(map(len, names)) == 2


def _one_conv_graph(weight):
    """y = Conv(x, W): x (1, 1, 1, 2), W (2, 1, 1, 2) float32, no bias."""
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "a_long_weight_name"], ["y"])],
        "one_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 1, 1])],
        [numpy_helper.from_array(weight, "a_long_weight_name")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_compact_stores_a_float_convolution_in_int8_per_output_channel():
    weight = np.array([[[[1.27, -0.5]]], [[[0.0, 0.0]]]], np.float32)  # (2, 1, 1, 2)
    proto = _one_conv_graph(weight)
    compact(proto.graph)
    onnx.checker.check_model(proto)
    tensors = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    [dequantize] = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]
    q, scale = tensors[dequantize.input[0]], tensors[dequantize.input[1]]
    # channel 0: max |W| = 1.27 -> s = 1.27 / 127 = 0.01;
    #            q = round(1.27 / 0.01, -0.5 / 0.01) = (127, -50)
    # channel 1: all zero -> s = 1 (any scale would do), q = (0, 0)
    assert q.dtype == np.int8 and q.reshape(2, 2).tolist() == [[127, -50], [0, 0]]
    np.testing.assert_allclose(scale, [0.01, 1.0], rtol=1e-6)
    assert len(dequantize.input) == 2  # no zero point: 0 is the default
    assert all(len(t.name) <= 2 for t in proto.graph.initializer)  # short names
    # x = (1, 2): y_0 = 1.27 - 1.0 = 0.27, y_1 = 0
    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    y = session.run(None, {"x": np.array([[[[1.0, 2.0]]]], np.float32)})[0]  # (1, 2, 1, 1)
    np.testing.assert_allclose(y.ravel(), [0.27, 0.0], atol=1e-6)


def test_compact_never_gives_a_tensor_the_inputs_or_outputs_name():
    proto = _one_conv_graph(np.ones((2, 1, 1, 2), np.float32))
    graph = proto.graph
    for index in range(60):  # enough tensors that the short names pass "x" and "y"
        graph.initializer.append(numpy_helper.from_array(np.zeros(1, np.float32), f"extra_{index}"))
        graph.node.append(helper.make_node("Identity", [f"extra_{index}"], [f"out_{index}"]))
        graph.output.append(helper.make_tensor_value_info(f"out_{index}", TensorProto.FLOAT, [1]))
    graph.output[0].name, graph.node[0].output[0] = "y", "y"
    compact(graph)
    initializer_names = [t.name for t in graph.initializer]
    assert "x" not in initializer_names and len(set(initializer_names)) == len(initializer_names)
    onnx.checker.check_model(proto)


def test_the_fused_logits_and_the_sigmoid_stay_float(model):
    graph = onnx.load_from_string(export.to_onnx_bytes(model)).graph
    kept = kept_float_nodes(graph)
    weights = {node.name: node.input[1] for node in graph.node if node.op_type == "Conv"}
    assert [weights[name] for name in kept if name in weights] == ["model.fuse.weight"]
    assert [node.op_type for node in graph.node if node.name in kept] == ["Conv", "Sigmoid"]


def test_int8_graph_never_rounds_the_fused_logits_or_y_hat(int8_file):
    path, _ = int8_file
    graph = onnx.load(str(path)).graph
    producer = {output: node for node in graph.node for output in node.output}
    [sigmoid] = [node for node in graph.node if node.op_type == "Sigmoid"]
    assert sigmoid.output[0] == "y_hat"  # no QuantizeLinear after it
    # z_fused straight from the fusion, not dequantized
    assert producer[sigmoid.input[0]].op_type == "Conv"


# ---------------------------------------------------------------------------------------
# The int8 file of a random model.


def test_int8_file_holds_every_weight_in_8_bits_and_is_small(model, int8_file):
    path, report = int8_file
    fp32 = onnx.load_from_string(export.to_onnx_bytes(model)).graph
    kernels = sum(numpy_helper.to_array(t).size for t in fp32.initializer if len(t.dims) == 4)
    biases = sum(numpy_helper.to_array(t).size for t in fp32.initializer if len(t.dims) == 1)
    assert kernels + biases == XS_WEIGHTS
    proto = onnx.load(str(path))
    sizes = {}
    for tensor in proto.graph.initializer:
        array = numpy_helper.to_array(tensor)
        sizes[array.dtype.name] = sizes.get(array.dtype.name, 0) + array.size
    assert sizes["int8"] == kernels  # every kernel in 8 bits, and no zero point (all are 0)
    assert sizes["float32"] < 0.05 * XS_WEIGHTS  # scales, and the kept convolutions' biases
    assert report["int8"] and report["bytes"] == path.stat().st_size <= 400_000  # 0.4 MB
    ops = {node.op_type for node in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_int8_agrees_with_torch_on_inputs_it_was_not_calibrated_on(
    model, int8_file, random_batches
):
    path, report = int8_file
    session = OnnxSession(path)
    x = random_batches[2]  # (1, 3, 64, 64): not among the two calibration batches
    difference = np.abs(session(x) - torch_probabilities(model, x))  # (1, 4, 64, 64)
    assert difference.mean() <= export.INT8_MEAN_TOLERANCE
    assert report["mean_abs_diff"] <= export.INT8_MEAN_TOLERANCE and report["tolerance"] == 0.01


def test_int8_metadata_records_the_calibration(int8_file):
    path, _ = int8_file
    metadata = json.loads(
        OnnxSession(path).session.get_modelmeta().custom_metadata_map[METADATA_KEY]
    )
    assert metadata["int8"] == {"count": 2}
    assert metadata["model_config"]["name"] == "xs"


def test_a_broken_quantization_is_refused_and_nothing_written(
    model, random_batches, tmp_path, monkeypatch
):
    def wrong_scale(fp32_bytes, batches):  # every weight's per-channel scale twice too large
        proto = original(fp32_bytes, batches)
        for tensor in proto.graph.initializer:
            array = numpy_helper.to_array(tensor)
            if array.dtype == np.float32 and array.ndim == 1:
                tensor.CopyFrom(numpy_helper.from_array(array * 2, tensor.name))
        return proto

    original = quantize.quantize_int8
    monkeypatch.setattr(quantize, "quantize_int8", wrong_scale)
    with pytest.raises(ValueError, match="int8 and torch differ by .* on average > 0.01"):
        export_onnx(model, tmp_path / "bad.onnx", calibration=Calibration(random_batches[:1]))
    assert not list(tmp_path.iterdir())


def test_fp16_and_int8_exclude_each_other(model, random_batches, tmp_path):
    with pytest.raises(ValueError, match="fp16 weights and int8 exclude each other"):
        export_onnx(
            model, tmp_path / "x.onnx", fp16=True, calibration=Calibration(random_batches[:1])
        )
    with pytest.raises(ValueError, match="calibration needs at least one batch"):
        Calibration([])


# ---------------------------------------------------------------------------------------
# ONNX Runtime Mobile (.ort).


def test_the_mobile_file_loads_and_agrees_with_eager(model, int8_file, random_batches):
    path, report = int8_file
    ort_path = path.with_suffix(".ort")
    assert (
        report["ort_path"] == str(ort_path) and report["ort_max_abs_diff"] <= export.ORT_TOLERANCE
    )
    # the flatbuffer identifier of ONNX Runtime's format
    assert ort_path.read_bytes()[4:8] == b"ORTM"
    session = OnnxSession(ort_path)
    x = random_batches[2]
    assert np.abs(session(x) - torch_probabilities(model, x)).mean() <= export.INT8_MEAN_TOLERANCE
    np.testing.assert_allclose(session(x), OnnxSession(path)(x), atol=export.ORT_TOLERANCE)
    # the metadata travels into the .ort file
    assert session.payload["model_config"]["name"] == "xs"


def test_an_fp32_mobile_file_matches_eager_to_float_precision(model, tmp_path):
    report = export_onnx(model, tmp_path / "xs.onnx", ort_path=tmp_path / "xs.ort")
    x = np.random.default_rng(1).standard_normal((1, 3, 48, 40), dtype=np.float32)  # (1, 3, 48, 40)
    mobile = OnnxSession(tmp_path / "xs.ort")
    assert np.abs(mobile(x) - torch_probabilities(model, x)).max() <= export.TOLERANCE[False]
    assert report["ort_bytes"] == (tmp_path / "xs.ort").stat().st_size
    with pytest.raises(ValueError, match=r"must be a \.ort file"):
        export_onnx(model, tmp_path / "other.onnx", ort_path=tmp_path / "xs.onnx")
    before = (tmp_path / "xs.ort").read_bytes()
    with pytest.raises(FileExistsError, match="xs.ort exists"):
        export_onnx(model, tmp_path / "other.onnx", ort_path=tmp_path / "xs.ort")
    assert (tmp_path / "xs.ort").read_bytes() == before and not (tmp_path / "other.onnx").exists()


def test_the_mobile_graph_leaves_out_the_x86_only_layout(model, monkeypatch):
    fp32 = export.to_onnx_bytes(model)  # float convolutions: what the blocked layout rewrites
    def domains(data):
        return {node.domain for node in onnx.load_from_string(data).graph.node}

    assert "com.microsoft.nchwc" not in domains(optimized_graph(fp32, "ONNX"))
    # what ONNX Runtime does on x86 by default
    monkeypatch.setattr(quantize, "X86_ONLY_OPTIMIZERS", ())
    assert "com.microsoft.nchwc" in domains(optimized_graph(fp32, "ONNX"))


# ---------------------------------------------------------------------------------------
# The command line, on a checkpoint and synthetic photographs.


@pytest.fixture(scope="module")
def checkpoint_and_data(model, tmp_path_factory):
    from data_prep.synthetic import write_idrid_layout

    folder = tmp_path_factory.mktemp("cli")
    write_idrid_layout(folder / "data", n_train=3, n_test=1, size=64)
    payload = {
        "model_config": dict(model.config),
        "state_dict": model.state_dict(),
        "lesions": LESIONS,
        "input_size": 64,
        "mean": [0.3, 0.2, 0.1],
        "std": [0.2, 0.1, 0.1],
        "preprocessing": {"clahe": True},
    }
    return save_checkpoint(folder / "best.pt", payload), folder / "data"


def test_command_line_int8_with_ort(checkpoint_and_data, tmp_path, capsys):
    checkpoint, data = checkpoint_and_data
    out = tmp_path / "m.onnx"
    assert (
        main(
            [
                "--checkpoint",
                str(checkpoint),
                "--onnx",
                str(out),
                "--int8",
                "--calibration-data",
                str(data),
                "--calibration-photos",
                "2",
                "--ort",
                str(tmp_path / "m.ort"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "(int8)" in printed and "calibrated on 2 photographs of the train split" in printed
    assert "ONNX Runtime Mobile format" in printed
    record = json.loads(OnnxSession(out).session.get_modelmeta().custom_metadata_map[METADATA_KEY])[
        "int8"
    ]
    assert record["photographs"] == [
        "IDRiD_01",
        "IDRiD_03",
    ]  # evenly spaced over the 3 training photographs
    assert record["count"] == 2 and record["input_size"] == 64 and record["split"] == "train"
    mobile = load_session(tmp_path / "m.ort")  # by its suffix, as predict --onnx loads it
    assert mobile.payload["input_size"] == 64 and mobile.payload["lesions"] == LESIONS


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--int8", "--calibration-photos", "0"],
            "calibration photographs must be a positive int, got 0",
        ),
        (
            ["--int8", "--calibration-photos", "9"],
            "9 calibration photographs asked for, the train split",
        ),
        (["--calibration-photos", "2"], "go with --int8"),
        (["--int8", "--fp16"], "not allowed with argument"),
    ],
)
def test_command_line_refuses(checkpoint_and_data, tmp_path, capsys, extra, message):
    checkpoint, data = checkpoint_and_data
    argv = [
        "--checkpoint",
        str(checkpoint),
        "--onnx",
        str(tmp_path / "m.onnx"),
        "--calibration-data",
        str(data),
    ]
    if "--int8" not in extra:
        argv = argv[:-2]  # --calibration-data alone is the error under test
    try:
        code = main(argv + extra)
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


# ---------------------------------------------------------------------------------------
# The shipped int8 model.


def test_the_shipped_int8_model_is_what_its_record_says():
    from u2net_mini.shipped import WEIGHTS_DIR, provenance

    path = WEIGHTS_DIR / "xs_mt_int8.onnx"
    record = provenance("xs_mt_int8")
    data = path.read_bytes()
    assert len(data) == record["bytes"] <= 400_000
    assert hashlib.sha256(data).hexdigest() == record["sha256"]
    assert (
        record["from_sha256"] == hashlib.sha256((WEIGHTS_DIR / "xs_mt.pt").read_bytes()).hexdigest()
    )
    calibration = record["calibration"]
    assert (
        calibration["count"] == len(calibration["photographs"]) == 16
        and calibration["split"] == "train"
    )
    assert not set(calibration["photographs"]) & {
        f"IDRiD_{n}" for n in range(55, 82)
    }  # never the test split
    test = record["test_512px_square"]
    assert test["images"] == 27 and set(test["aupr"]["int8"]) == set(LESIONS)
    assert max(test["shift"]["int8"].values()) <= 0.01  # shipped only within the limit


def test_the_shipped_int8_model_agrees_with_the_fp32_one_on_a_test_photograph():
    from data_prep.shipped import idrid_root
    from u2net_mini.quantize import calibration_batches
    from u2net_mini.shipped import WEIGHTS_DIR, shipped_checkpoints

    model, payload = load_model(shipped_checkpoints("mt")[0])
    # IDRiD_55: (1, 3, 512, 512)
    _, [x] = calibration_batches(payload, idrid_root(), count=1, split="test")
    reference = torch_probabilities(model, x)  # (1, 4, 512, 512)
    for session in (
        OnnxSession(WEIGHTS_DIR / "xs_mt_int8.onnx"),
        OnnxSession(to_ort_bytes((WEIGHTS_DIR / "xs_mt_int8.onnx").read_bytes())),
    ):
        assert np.abs(session(x) - reference).mean() <= export.INT8_MEAN_TOLERANCE


@pytest.mark.slow
def test_the_shipped_int8_model_reaches_its_recorded_test_aupr(tmp_path):
    from data_prep.dataset import LesionDataset
    from data_prep.shipped import idrid_root
    from u2net_mini.metrics import LesionScores
    from u2net_mini.shipped import WEIGHTS_DIR, provenance

    session = OnnxSession(WEIGHTS_DIR / "xs_mt_int8.onnx")
    payload = session.payload
    data = LesionDataset(
        idrid_root(),
        "test",
        size=payload["input_size"],
        mean=payload["mean"],
        std=payload["std"],
        cache_dir=tmp_path,
    )
    scores = LesionScores(LESIONS)
    for i in range(len(data)):
        x, y = data[i]  # (3, 512, 512), (4, 512, 512)
        scores.update(y.numpy(), session(x[None].numpy())[0], data.present[i])
    recorded = provenance("xs_mt_int8")["test_512px_square"]["aupr"]["int8"]
    for lesion, value in scores.aupr().items():
        assert value == pytest.approx(recorded[lesion], abs=5e-4), lesion
