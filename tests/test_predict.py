"""Prediction and overlays: blending by hand, the maps the files hold, skipped images, combined
models."""

import numpy as np
import pytest
import torch
from PIL import Image

from data_prep.fundus import to_original
from data_prep.idrid import read_image
from data_prep.pipeline import preprocess
from data_prep.shipped import idrid_root
from data_prep.synthetic import make_fundus
from u2net_mini import predict
from u2net_mini.checkpoint import load_model, save_checkpoint
from u2net_mini.export import export_onnx
from u2net_mini.model import build_model
from u2net_mini.overlay import blend, colour_rgb, display_pair, outline

SIZE = 64
MEAN, STD = [0.4, 0.25, 0.15], [0.25, 0.15, 0.1]


def make_checkpoint(path, lesions, size=SIZE, seed=0):
    torch.manual_seed(seed)
    model = build_model("xs", len(lesions))
    return save_checkpoint(path, {
        "model_config": model.config, "state_dict": model.state_dict(), "lesions": lesions,
        "input_size": size, "mean": MEAN, "std": STD,
        "preprocessing": {"clahe": True, "clahe_channel": "lab", "threshold": 30}})


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {"mt": make_checkpoint(folder / "mt.pt", ("MA", "HE", "EX", "SE")),
            "EX": make_checkpoint(folder / "ex.pt", ("EX",), seed=1),
            "MA": make_checkpoint(folder / "ma.pt", ("MA",), seed=2),
            "MA-96": make_checkpoint(folder / "ma96.pt", ("MA",), size=96)}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A synthetic photograph as JPEG and as PNG (96 × 64, IDRiD's frame), an unreadable file and
    a grey image."""
    folder = tmp_path_factory.mktemp("photos")
    image, _ = make_fundus(5, 96, frame="idrid")  # (64, 96, 3)
    Image.fromarray(image).save(folder / "fundus.jpg", quality=95)
    Image.fromarray(image).save(folder / "fundus_copy.png")
    (folder / "notes.jpg").write_text("not a photograph")
    Image.fromarray(np.full((50, 70, 3), 128, dtype=np.uint8)).save(folder / "grey.png")
    return folder


def test_colour_of_a_lesion():
    assert colour_rgb("EX").tolist() == [47, 107, 255]  # "#2f6bff": 2f = 47, 6b = 107, ff = 255
    with pytest.raises(ValueError, match="lesion must be one of"):
        colour_rgb("OD")


def test_blend_by_hand():
    # (1, 3, 3)
    photo = np.array([[[100, 100, 100], [100, 100, 100], [10, 20, 30]]], dtype=np.uint8)
    # (1, 1, 3): EX sure, below the threshold, at the threshold
    y_hat = np.array([[[1.0, 0.4, 0.5]]])
    out = blend(photo, y_hat, ("EX",), threshold=0.5, opacity=0.5)
    # a = 0.5 * 1.0 = 0.5: 0.5 * 100 + 0.5 * (47, 107, 255) = (73.5, 103.5, 177.5) -> (74, 104, 178)
    # (np.rint rounds halves to even)
    assert out[0, 0].tolist() == [74, 104, 178]
    assert out[0, 1].tolist() == [100, 100, 100]  # 0.4 < t: untouched
    # a = 0.5 * 0.5 = 0.25:
    # 0.75 * (10, 20, 30) + 0.25 * (47, 107, 255) = (19.25, 41.75, 86.25) -> (19, 42, 86)
    assert out[0, 2].tolist() == [19, 42, 86]


def test_blend_paints_the_later_lesion_on_top():
    photo = np.zeros((1, 1, 3), dtype=np.uint8)
    both = np.ones((2, 1, 1))  # MA and SE sure at the same pixel
    # opacity 1: MA's colour is replaced completely by SE's (255, 61, 242) ("#ff3df2")
    assert blend(photo, both, ("MA", "SE"), opacity=1.0)[0, 0].tolist() == [255, 61, 242]


def test_outline_draws_the_boundary_of_each_painted_region():
    photo = np.zeros((5, 5, 3), dtype=np.uint8)
    y_hat = np.zeros((2, 5, 5))
    y_hat[0, 1:4, 1:4] = 0.9  # a 3 x 3 MA region: 8 boundary pixels around one inner pixel
    y_hat[1, 0, 4] = 0.6  # a one-pixel HE region at the corner: all boundary
    out = outline(photo, y_hat, ("MA", "HE"), threshold=0.5)
    ma, he = colour_rgb("MA").tolist(), colour_rgb("HE").tolist()
    boundary = [(r, c) for r in range(1, 4) for c in range(1, 4) if (r, c) != (2, 2)]
    assert all(out[r, c].tolist() == ma for r, c in boundary)
    assert out[2, 2].tolist() == [0, 0, 0]  # the inner pixel keeps the photograph
    assert out[0, 4].tolist() == he and out[0, 0].tolist() == [0, 0, 0]
    assert photo.sum() == 0  # the input is not changed in place


@pytest.mark.parametrize("y_hat, lesions, message", [
    (np.zeros((2, 2, 2)), ("EX",), r"y_hat must have shape \(1, 2, 2\)"),
    (np.full((1, 2, 2), 1.5), ("EX",), r"probabilities in \[0, 1\]"),
    (np.zeros((1, 2, 2)), ("OD",), "lesions must be a non-empty subset"),
])
def test_blend_rejects_bad_input(y_hat, lesions, message):
    with pytest.raises(ValueError, match=message):
        blend(np.zeros((2, 2, 3), dtype=np.uint8), y_hat, lesions)


def test_display_pair_keeps_the_disc_and_the_maps_aligned():
    image = read_image(idrid_root() / "A. Segmentation" / "1. Original Images" / "b. Testing Set"
                       / "IDRiD_55.jpg")
    _, geometry = preprocess(image, SIZE)
    y_hat = np.zeros((1, SIZE, SIZE), dtype=np.float32)  # (1, s, s)
    y_hat[0, :, : SIZE // 2] = 1  # the left half
    photo, maps = display_pair(image, y_hat, geometry)
    side = min(geometry.side, 768)  # the crop's own side (712 px high), as it is under 768
    assert photo.shape == (side, side, 3) and maps.shape == (1, side, side)
    assert maps[0, :, : side // 2 - 8].min() == 1 and maps[0, :, side // 2 + 8:].max() == 0


def test_files_hold_the_models_maps_and_bad_images_are_skipped(checkpoints, photos, tmp_path,
                                                               capsys):
    out = tmp_path / "out"
    argv = [str(photos / name) for name in ("notes.jpg", "fundus.jpg", "grey.png", "missing.png")]
    assert predict.main(argv + ["--checkpoint", str(checkpoints["mt"]), "--out", str(out),
                                "--original-grid"]) == 1
    err = capsys.readouterr().err
    assert "skipped" in err and "notes.jpg: cannot read image" in err
    assert "grey.png: no retinal disc found" in err and "missing.png does not exist" in err
    assert sorted(p.name for p in out.iterdir()) == [
        "fundus_overlay.png", "fundus_probabilities.npy", "fundus_probabilities_original.npy"]
    image = read_image(photos / "fundus.jpg")  # (64, 96, 3)
    model, payload = load_model(checkpoints["mt"])
    x, geometry = preprocess(image, SIZE, MEAN, STD)  # (3, s, s)
    expected = predict.probabilities(model, torch.from_numpy(x)[None])[0].numpy()  # (4, s, s)
    maps = np.load(out / "fundus_probabilities.npy")
    assert maps.dtype == np.float32 and maps.shape == (4, SIZE, SIZE)
    # the fast path (folded batch norm, channels_last) against the plain eager model
    np.testing.assert_allclose(maps, expected, rtol=0, atol=1e-5)
    original = np.load(out / "fundus_probabilities_original.npy")
    assert original.shape == (4, 64, 96)
    np.testing.assert_array_equal(original, to_original(maps, geometry))
    assert (out / "fundus_overlay.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_an_onnx_file_predicts_the_checkpoints_maps(checkpoints, photos, tmp_path):
    model, payload = load_model(checkpoints["mt"])
    onnx_file = tmp_path / "mt.onnx"
    export_onnx(model, onnx_file, payload=payload)
    out = tmp_path / "out"
    assert predict.main([str(photos / "fundus.jpg"), "--onnx", str(onnx_file),
                         "--out", str(out)]) == 0
    x, _ = preprocess(read_image(photos / "fundus.jpg"), SIZE, MEAN, STD)  # (3, s, s)
    expected = predict.probabilities(model, torch.from_numpy(x)[None])[0].numpy()  # (4, s, s)
    np.testing.assert_allclose(np.load(out / "fundus_probabilities.npy"), expected,
                               rtol=0, atol=1e-4)


def test_bf16_maps_stay_close_to_float32(checkpoints, photos, tmp_path):
    # bf16 where this CPU has it, float32 elsewhere: either way within bf16's rounding
    argv = [str(photos / "fundus.jpg"), "--checkpoint", str(checkpoints["mt"])]
    assert predict.main(argv + ["--out", str(tmp_path / "fp32")]) == 0
    assert predict.main(argv + ["--out", str(tmp_path / "bf16"), "--bf16"]) == 0
    fp32 = np.load(tmp_path / "fp32" / "fundus_probabilities.npy")
    bf16 = np.load(tmp_path / "bf16" / "fundus_probabilities.npy")
    np.testing.assert_allclose(bf16, fp32, rtol=0, atol=1e-2)


def test_bf16_with_onnx_is_refused(checkpoints, photos, tmp_path, capsys):
    argv = [str(photos / "fundus.jpg"), "--onnx", str(tmp_path / "m.onnx"), "--bf16",
            "--out", str(tmp_path / "out")]
    assert predict.main(argv) == 2
    assert "--bf16 applies to --checkpoint" in capsys.readouterr().err


def test_checkpoint_and_onnx_together_are_refused(checkpoints, photos, tmp_path, capsys):
    argv = [str(photos / "fundus.jpg"), "--checkpoint", str(checkpoints["mt"]), "--onnx", "m.onnx",
            "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as stop:
        predict.main(argv)
    assert stop.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_existing_files_are_not_overwritten_unless_asked(checkpoints, photos, tmp_path, capsys):
    argv = [str(photos), "--checkpoint", str(checkpoints["EX"]), "--out", str(tmp_path)]
    (tmp_path / "fundus_overlay.png").write_bytes(b"mine")
    assert predict.main(argv) == 2
    assert "output files exist already" in capsys.readouterr().err
    assert (tmp_path / "fundus_overlay.png").read_bytes() == b"mine"
    assert predict.main(argv + ["--overwrite"]) == 1  # the folder holds notes.jpg and grey.png too
    assert (tmp_path / "fundus_overlay.png").read_bytes().startswith(b"\x89PNG")
    assert np.load(tmp_path / "fundus_copy_probabilities.npy").shape == (1, SIZE, SIZE)


def test_checkpoints_combine_into_one_set_of_maps(checkpoints, photos):
    image = read_image(photos / "fundus.jpg")
    both, _ = predict.Predictor([checkpoints["EX"], checkpoints["MA"]])(image)
    # project order
    assert predict.Predictor([checkpoints["EX"], checkpoints["MA"]]).lesions == ("MA", "EX")
    alone_ex, _ = predict.Predictor([checkpoints["EX"]])(image)
    alone_ma, _ = predict.Predictor([checkpoints["MA"]])(image)
    np.testing.assert_array_equal(both, np.concatenate([alone_ma, alone_ex]))
    with pytest.raises(ValueError, match=r"two checkpoints predict \['MA'\]"):
        predict.Predictor([checkpoints["MA"], checkpoints["mt"]])
    with pytest.raises(ValueError, match=r"share one input size to combine, got sizes \[64, 96\]"):
        predict.Predictor([checkpoints["EX"], checkpoints["MA-96"]])


def test_bad_arguments_exit_2(checkpoints, photos, tmp_path, capsys):
    cases = [
        ([str(photos / "fundus.jpg"), "--checkpoint", str(tmp_path / "no.pt")],
         "no checkpoint or ONNX file at"),
        ([str(tmp_path / "empty"), "--checkpoint", str(checkpoints["EX"])], "no image files found"),
        ([str(photos / "fundus.jpg"), str(photos / "sub" / "fundus.png"),
          "--checkpoint", str(checkpoints["EX"])],
         "the same name would write the same files: ['fundus']"),
        ([str(photos / "fundus.jpg"), "--checkpoint", str(checkpoints["EX"]), "--threshold", "0"],
         "--threshold"),
    ]
    (tmp_path / "empty").mkdir()
    for argv, message in cases:
        assert predict.main(argv + ["--out", str(tmp_path / "out")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
