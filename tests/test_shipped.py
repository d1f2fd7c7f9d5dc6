"""The models shipped in the package: they load, they are what their provenance says, they
reach their recorded real-test AUPR, and the one-line call and `predict` use them."""

import hashlib
import json

import numpy as np
import pytest

from data_prep.fundus import to_original
from data_prep.idrid import IDRiD, read_image
from data_prep.shipped import idrid_root
from u2net_mini import lesion_maps, predict, shipped_checkpoints
from u2net_mini.checkpoint import load_checkpoint, load_model
from u2net_mini.counting import count_parameters
from u2net_mini.evaluate import score_model
from u2net_mini.lesions import LESIONS
from u2net_mini.shipped import SHIPPED, WEIGHTS_DIR, provenance

SHIPPED_NAMES = [name for names in SHIPPED.values() for name in names
                 if (WEIGHTS_DIR / f"{name}.pt").is_file()]


def test_the_multi_task_model_ships():
    [path] = shipped_checkpoints("mt")
    assert path.name == "xs_mt.pt" and "xs_mt" in SHIPPED_NAMES


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_a_shipped_model_is_what_its_provenance_says(name):
    path = WEIGHTS_DIR / f"{name}.pt"
    record = provenance(name)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == record["checkpoint_sha256"]
    model, payload = load_model(path)
    assert (payload["model_config"]["name"] == "xs"
            and tuple(payload["lesions"]) == tuple(record["lesions"]))
    # docs/model.md
    assert count_parameters(model) == {4: 291_532, 2: 287_990}[len(payload["lesions"])]
    # inference only: no resume state
    assert payload["input_size"] == 512 and "optimizer" not in payload
    # trained on the shipped data set: its checksum list is the one the provenance names
    sums = (idrid_root() / "SHA256SUMS").read_bytes()
    assert hashlib.sha256(sums).hexdigest() == record["data"]["SHA256SUMS_sha256"]
    assert record["command"].startswith("python -m u2net_mini.train ")
    # chosen on held-out training photographs, never the test split
    assert record["settings"]["val"] == "holdout"
    assert record["data"]["train_images"] + len(record["data"]["validation_images"]) == 54
    assert not set(record["data"]["validation_images"]) & {f"IDRiD_{n}" for n in range(55, 82)}
    assert record["epochs_run"] >= record["chosen_epoch"] >= 1


@pytest.mark.slow
def test_the_shipped_multi_task_model_reaches_its_recorded_test_aupr(tmp_path):
    [path] = shipped_checkpoints("mt")
    model, payload = load_model(path)
    scores = score_model(model, payload, idrid_root(), ("test",), cache_dir=tmp_path)
    recorded = provenance("xs_mt")["test_512px_square"]
    for name, value in scores.aupr().items():
        assert value == pytest.approx(recorded["aupr"][name], abs=5e-4), name  # the third decimal
    assert np.mean(list(scores.aupr().values())) == pytest.approx(
        np.mean(list(recorded["aupr"].values())), abs=5e-4)


def test_lesion_maps_gives_the_four_maps_on_the_photographs_own_grid():
    path = IDRiD(idrid_root(), "test").image_path(0)
    maps = lesion_maps(path)
    assert maps.shape == (4, 712, 1072) and maps.dtype == np.float32
    assert 0 <= maps.min() and maps.max() <= 1
    # the same as the predictor's square maps laid back by hand
    y_hat, geometry = predict.Predictor(shipped_checkpoints("mt"))(read_image(path))
    np.testing.assert_array_equal(maps, to_original(y_hat, geometry))
    # an array works as a path does
    np.testing.assert_array_equal(lesion_maps(read_image(path)), maps)
    with pytest.raises(ValueError, match=r"photo must be a path or an \(H, W, 3\) uint8 RGB array, "
                                         r"got float64"):
        lesion_maps(np.zeros((8, 8, 3)))


def test_predict_without_a_checkpoint_uses_the_shipped_model(tmp_path, capsys):
    photo = IDRiD(idrid_root(), "test").image_path(0)
    assert predict.main([str(photo), "--out", str(tmp_path)]) == 0
    assert f"maps: {', '.join(LESIONS)}" in capsys.readouterr().out
    maps = np.load(tmp_path / f"{photo.stem}_probabilities.npy")
    expected, _ = predict.Predictor(shipped_checkpoints("mt"))(read_image(photo))
    np.testing.assert_array_equal(maps, expected)


def test_shipped_checkpoints_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match=r"mode must be one of \('mt', 'dt'\), got 'st'"):
        shipped_checkpoints("st")


def test_the_provenance_file_is_plain_json():
    for name in SHIPPED_NAMES:
        json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
        load_checkpoint(WEIGHTS_DIR / f"{name}.pt")  # weights_only loading: no code runs
