"""Bad input and faults: every command answers with a clear message and its documented exit
code, writes nothing it should not, and keeps its promises (docs/errors.md lists the cases).

Tiny data: 4 synthetic training and 2 test photographs at 64 px, copied and damaged per case.
"""

import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from data_prep.idrid import IDRiD, image_folder, mask_folder
from data_prep.synthetic import make_fundus, write_idrid_layout
from u2net_mini import evaluate, predict, train
from u2net_mini.checkpoint import load_checkpoint

SIZE = 64
GROUP = "MA-HE-EX-SE"


@pytest.fixture(scope="module")
def clean_data(tmp_path_factory):
    return write_idrid_layout(tmp_path_factory.mktemp("data") / "idrid", n_train=4, n_test=2,
                              size=SIZE, seed=0)


@pytest.fixture(scope="module")
def trained(clean_data, tmp_path_factory):
    """A finished 1-epoch run: its best.pt serves evaluate and predict, its folder --resume."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert train.main(train_args(clean_data, out, tmp_path_factory.mktemp("cache"),
                                 "--epochs", "1")) == 0
    return out


def train_args(data, out, cache, *extra):
    return ["--data", str(data), "--out", str(out), "--size", str(SIZE), "--batch-size", "2",
            "--val-fraction", "0.25", "--cache", str(cache), "--no-progress", *extra]


def damaged(clean_data, tmp_path, damage):
    """A copy of the data set with `damage(root)` applied."""
    root = shutil.copytree(clean_data, tmp_path / "data")
    damage(root)
    return root


def first_photo(root, split="train"):
    return (image_folder(root, split) / "IDRiD_01.jpg" if split == "train"
            else sorted(image_folder(root, split).iterdir())[0])


def first_mask(root):
    return next(p for p in sorted(mask_folder(root, "train", "EX").iterdir()))


def empty_photo(root):
    first_photo(root).write_bytes(b"")


def corrupt_photo(root):
    first_photo(root).write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")


def truncated_mask(root):
    path = first_mask(root)
    path.write_bytes(path.read_bytes()[:40])


def wrong_size_mask(root):
    path = first_mask(root)
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(path)


def tiff_names(root):
    for split in ("train", "test"):
        for lesion in ("MA", "HE", "EX", "SE"):
            for path in mask_folder(root, split, lesion).glob("*.tif"):
                path.rename(path.with_name(path.stem.upper().replace("IDRID", "IDRiD") + ".TIFF"))


def unknown_mask_names(root):
    for path in root.rglob("*.tif"):
        path.rename(path.with_name(path.stem + "_mask.png"))


# -------------------------------------------------------------- the table: exit codes and messages

def evil_checkpoint(path):
    torch.save({"format": "u2net_mini checkpoint", "payload": RunsCode()}, path)
    return path


def grey_photo(folder):
    image, _ = make_fundus(3, 96, frame="idrid")  # (64, 96, 3)
    Image.fromarray(image).convert("L").save(folder / "grey.png")
    return folder / "grey.png"


def case(command, code, message, build):
    return pytest.param(command, code, message, build,
                        id=f"{command.__name__.split('.')[-1]}-{build.__name__}")


def train_on(damage):
    def build(clean_data, trained, tmp_path):
        root = damaged(clean_data, tmp_path, damage)
        return train_args(root, tmp_path / "run", tmp_path / "cache", "--epochs", "1")
    build.__name__ = damage.__name__
    return build


def wrong_root(clean_data, trained, tmp_path):
    return train_args(tmp_path, tmp_path / "run", tmp_path / "cache")


def resume_truncated_last(clean_data, trained, tmp_path):
    out = shutil.copytree(trained, tmp_path / "run")
    last = out / GROUP / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    return ["--out", str(out), "--resume", "--epochs", "2"]


def resume_without_run_json(clean_data, trained, tmp_path):
    (tmp_path / "run").mkdir()
    return ["--out", str(tmp_path / "run"), "--resume"]


def out_not_empty(clean_data, trained, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    return train_args(clean_data, tmp_path / "run", tmp_path / "cache")


def diverging(clean_data, trained, tmp_path):
    return train_args(clean_data, tmp_path / "run", tmp_path / "cache", "--epochs", "2",
                      "--lr", "1e9")


def evaluate_empty_photo(clean_data, trained, tmp_path):
    root = damaged(clean_data, tmp_path, lambda r: first_photo(r, "test").write_bytes(b""))
    return ["--checkpoint", str(trained / GROUP / "best.pt"), "--data", str(root),
            "--out", str(tmp_path / "ev")]


def evaluate_out_is_a_file(clean_data, trained, tmp_path):
    (tmp_path / "taken.md").write_text("mine")
    return ["--checkpoint", str(trained / GROUP / "best.pt"), "--data", str(clean_data),
            "--out", str(tmp_path / "taken.md")]


def evaluate_untrusted_checkpoint(clean_data, trained, tmp_path):
    return ["--checkpoint", str(evil_checkpoint(tmp_path / "evil.pt")), "--data", str(clean_data),
            "--out", str(tmp_path / "ev")]


def evaluate_missing_checkpoint(clean_data, trained, tmp_path):
    return ["--checkpoint", str(tmp_path / "none.pt"), "--data", str(clean_data),
            "--out", str(tmp_path / "ev")]


def predict_empty_photo_among_good(clean_data, trained, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a_empty.jpg").write_bytes(b"")
    shutil.copy(first_photo(clean_data, "test"), photos / "b_good.jpg")
    return [str(photos), "--checkpoint", str(trained / GROUP / "best.pt"),
            "--out", str(tmp_path / "maps")]


def predict_untrusted_checkpoint(clean_data, trained, tmp_path):
    return [str(first_photo(clean_data, "test")),
            "--checkpoint", str(evil_checkpoint(tmp_path / "evil.pt")),
            "--out", str(tmp_path / "maps")]


def predict_outputs_exist(clean_data, trained, tmp_path):
    photo = first_photo(clean_data, "test")
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / f"{photo.stem}_overlay.png").write_bytes(b"mine")
    return [str(photo), "--checkpoint", str(trained / GROUP / "best.pt"),
            "--out", str(tmp_path / "maps")]


def predict_out_is_a_file(clean_data, trained, tmp_path):
    (tmp_path / "maps").write_text("mine")
    return [str(first_photo(clean_data, "test")), "--checkpoint", str(trained / GROUP / "best.pt"),
            "--out", str(tmp_path / "maps")]


def predict_greyscale(clean_data, trained, tmp_path):
    return [str(grey_photo(tmp_path)), "--checkpoint", str(trained / GROUP / "best.pt"),
            "--out", str(tmp_path / "maps")]


CASES = [
    case(train, 2, "does not have the IDRiD layout", wrong_root),
    case(train, 2, "no mask file for any photograph of 'train'", train_on(unknown_mask_names)),
    case(train, 2, "photograph IDRiD_01 of the train split cannot be used: cannot read "
                   "image", train_on(empty_photo)),
    case(train, 2, "photograph IDRiD_01 of the train split cannot be used: cannot read "
                   "image", train_on(corrupt_photo)),
    case(train, 2, "cannot read mask", train_on(truncated_mask)),
    case(train, 2, "has shape (10, 12) but its image", train_on(wrong_size_mask)),
    case(train, 2, "is not a u2net_mini checkpoint: it is truncated", resume_truncated_last),
    case(train, 2, "holds no run.json, so there is no run to continue", resume_without_run_json),
    case(train, 2, "exists and is not empty", out_not_empty),
    case(train, 1, "no epoch had finished, so there is no checkpoint", diverging),
    case(evaluate, 2, "the file is empty (0 bytes)", evaluate_empty_photo),
    case(evaluate, 2, "is a file; give a folder", evaluate_out_is_a_file),
    case(evaluate, 2, "can run code from the file", evaluate_untrusted_checkpoint),
    case(evaluate, 2, "no checkpoint at", evaluate_missing_checkpoint),
    case(predict, 1, "the file is empty (0 bytes)", predict_empty_photo_among_good),
    case(predict, 2, "can run code from the file", predict_untrusted_checkpoint),
    case(predict, 2, "output files exist already", predict_outputs_exist),
    case(predict, 2, "is a file; give a folder", predict_out_is_a_file),
    case(predict, 0, "is a greyscale photograph", predict_greyscale),
]


@pytest.mark.parametrize("command, code, message, build", CASES)
def test_exit_code_and_message(clean_data, trained, tmp_path, capsys, command, code, message,
                               build):
    argv = build(clean_data, trained, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    assert command.main(argv + (["--no-progress"] if command is train else [])) == code
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err
    # nothing the user had is rewritten (a failing train leaves no new run folder either)
    assert all(p.stat().st_mtime_ns == t for p, t in before.items() if p.exists())
    if command is train and code == 2 and "--resume" not in argv and build is not out_not_empty:
        assert not (tmp_path / "run").exists()


def test_masks_named_tiff_in_any_case_are_read(clean_data, tmp_path):
    root = damaged(clean_data, tmp_path, tiff_names)
    renamed, original = IDRiD(root, "train"), IDRiD(clean_data, "train")
    for i in range(len(original)):
        assert renamed.mask_present(i).tolist() == original.mask_present(i).tolist()
        assert np.array_equal(renamed[i]["masks"], original[i]["masks"])
    assert renamed.mask_path(0, "EX").suffix == ".TIFF"


def test_unknown_mask_names_are_refused_naming_what_was_looked_for(clean_data, tmp_path):
    root = damaged(clean_data, tmp_path, unknown_mask_names)
    with pytest.raises(ValueError, match=r"looked for '<photograph>_<lesion>\.tif' \(or \.tiff, "
                                         r"any case\), e\.g\. 'IDRiD_01_MA\.tif'.*found \d+ other "
                                         r"files, e\.g\."):
        IDRiD(root, "train")


# --------------------------------------------------------------------------- divergence

def test_a_diverging_run_with_validation_stops_cleanly(clean_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main(train_args(clean_data, out, tmp_path / "cache", "--epochs", "2",
                                 "--lr", "1e9")) == 1
    err = capsys.readouterr().err
    assert "stopped" in err and "Traceback" not in err
    assert "no epoch had finished, so there is no checkpoint" in err and "--lr 1e+08" in err
    assert not (out / GROUP / "last.pt").exists() and not (out / GROUP / "best.pt").exists()


def test_weights_wrecked_by_the_last_step_are_never_saved_and_the_advice_works(
        clean_data, tmp_path, capsys, monkeypatch):
    out, cache = tmp_path / "run", tmp_path / "cache"
    real_epoch = train.train_epoch

    def wreck_epoch_2(net, loader, optimizer, settings, runtime, processes, epoch, label):
        row = real_epoch(net, loader, optimizer, settings, runtime, processes, epoch, label)
        if epoch == 1:  # the epoch's losses were finite, then its last update broke a weight
            with torch.no_grad():
                next(net.parameters()).fill_(float("nan"))
        return row

    monkeypatch.setattr(train, "train_epoch", wreck_epoch_2)
    assert train.main(train_args(clean_data, out, cache, "--epochs", "3", "--val", "none")) == 1
    err = capsys.readouterr().err
    last = out / GROUP / "last.pt"
    assert f"{last} (epoch 1) holds the last good weights" in err
    for name in ("last.pt", "best.pt"):
        payload = load_checkpoint(out / GROUP / name)
        assert payload["epoch"] == 0 and all(torch.isfinite(t).all()
                                             for t in payload["state_dict"].values())
    command = err[err.index("python -m u2net_mini.train"):].split()
    assert command[3:7] == ["--out", str(out), "--resume", "--lr"] and command[7] == "0.0001"
    monkeypatch.setattr(train, "train_epoch", real_epoch)
    # the advice, followed
    assert train.main(command[3:] + ["--cache", str(cache), "--no-progress"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["lr"] == 1e-4 and [(c["from"], c["to"]) for c in run["lr_changes"]] == [(1e-3, 1e-4)]
    assert [row["lr"] for row in load_checkpoint(last)["history"]] == [1e-3, 1e-4, 1e-4]


def test_other_settings_still_cannot_change_on_resume(trained, tmp_path, capsys):
    out = shutil.copytree(trained, tmp_path / "run")
    assert train.main(["--out", str(out), "--resume", "--alpha", "0.5"]) == 2
    assert "only --epochs, --data and --lr may change" in capsys.readouterr().err


# --------------------------------------------------------------------------- checkpoints

def test_best_pt_is_written_before_last_pt(clean_data, tmp_path, monkeypatch):
    order = []
    real_save = train.save_checkpoint
    monkeypatch.setattr(train, "save_checkpoint",
                        lambda path, payload: (order.append(path.name),
                                               real_save(path, payload))[1])
    assert train.main(train_args(clean_data, tmp_path / "run", tmp_path / "cache",
                                 "--epochs", "2")) == 0
    assert order[:2] == ["best.pt", "last.pt"] and order[-1] == "last.pt"


def test_a_truncated_last_pt_on_resume_is_refused_with_advice(trained, tmp_path, capsys):
    out = shutil.copytree(trained, tmp_path / "run")
    last = out / GROUP / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert train.main(["--out", str(out), "--resume", "--epochs", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is not a u2net_mini checkpoint: it is truncated" in err and "copy it to" in err
    assert before == {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}  # nothing changed


def test_stale_temporary_files_are_swept_on_resume(trained, tmp_path, capsys):
    out = shutil.copytree(trained, tmp_path / "run")
    stale = [out / GROUP / ".last.pt.a1b2c3.tmp", out / ".run.json.x9y8.tmp"]
    for path in stale:
        path.write_bytes(b"half a write")
    # already trained: nothing to do
    assert train.main(["--out", str(out), "--resume", "--no-progress"]) == 0
    assert not any(path.exists() for path in stale)
    assert "removed 2 temporary file(s)" in capsys.readouterr().out


class RunsCode:
    def __reduce__(self):
        return (os.getcwd, ())


def test_an_untrusted_checkpoint_is_refused_without_advice_to_disable_safe_loading(
        trained, clean_data, tmp_path, capsys):
    evil = tmp_path / "evil.pt"
    torch.save({"format": "u2net_mini checkpoint", "payload": RunsCode()}, evil)
    photo = first_photo(clean_data, "test")
    for command, argv in ((evaluate.main, ["--checkpoint", str(evil), "--data", str(clean_data)]),
                          (predict.main, [str(photo), "--checkpoint", str(evil),
                                          "--out", str(tmp_path / "maps")])):
        assert command(argv) == 2
        err = capsys.readouterr().err
        assert "can run code from the file" in err and "weights_only" not in err
    with pytest.raises(pickle.UnpicklingError):
        torch.load(evil, weights_only=True)  # what the message explains


# --------------------------------------------------------------------------- evaluate and predict

def test_evaluate_refuses_an_out_that_is_a_file_before_evaluating(trained, clean_data, tmp_path,
                                                                  capsys):
    taken = tmp_path / "results.md"
    taken.write_text("mine")
    argv = ["--checkpoint", str(trained / GROUP / "best.pt"), "--data", str(clean_data),
            "--out", str(taken)]
    assert evaluate.main(argv) == 2
    assert "is a file" in capsys.readouterr().err and taken.read_text() == "mine"


def test_predict_skips_a_bad_photograph_and_goes_on(trained, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a_empty.jpg").write_bytes(b"")
    image, _ = make_fundus(3, 96, frame="idrid")  # (64, 96, 3)
    Image.fromarray(image).save(photos / "b_good.jpg")
    assert predict.main([str(photos), "--checkpoint", str(trained / GROUP / "best.pt"),
                         "--out", str(tmp_path / "maps")]) == 1
    captured = capsys.readouterr()
    assert "skipped" in captured.err and "the file is empty (0 bytes)" in captured.err
    assert (tmp_path / "maps" / "b_good_overlay.png").is_file()
    assert "1 of 2 photographs done" in captured.out


def test_predict_warns_about_a_greyscale_photograph(trained, tmp_path, capsys):
    image, _ = make_fundus(3, 96, frame="idrid")  # (64, 96, 3)
    Image.fromarray(image).convert("L").save(tmp_path / "grey.png")
    assert predict.main([str(tmp_path / "grey.png"), "--checkpoint",
                         str(trained / GROUP / "best.pt"), "--out", str(tmp_path / "maps")]) == 0
    assert "grey.png is a greyscale photograph" in capsys.readouterr().err


def test_predict_checkpoint_does_not_swallow_the_photograph(trained, clean_data, tmp_path):
    photo = first_photo(clean_data, "test")
    assert predict.main(["--checkpoint", str(trained / GROUP / "best.pt"), str(photo),
                         "--out", str(tmp_path / "maps")]) == 0
    assert (tmp_path / "maps" / f"{photo.stem}_overlay.png").is_file()


@pytest.mark.parametrize("module, needed", [
    (train, ["exit codes", "required, except with "
                           "--resume", "--device", "--batch-size", "default 4"]),
    (evaluate, ["exit codes", "--device", "--batch-size", "(default 4)"]),
    (predict, ["exit codes", "--device", "(default 0.5)"]),
])
def test_help_pages_give_defaults_and_exit_codes(module, needed):
    text = module.build_parser().format_help()
    for phrase in needed:
        assert phrase in " ".join(text.split()), phrase
