"""Tests for data_prep.dataset: the cached, normalized, augmented training data set."""

import os

import numpy as np
import pytest
import torch
from test_idrid import write_layout

import data_prep.dataset as dataset_module
from data_prep.augment import augment
from data_prep.dataset import LesionDataset, dataset_stats, default_cache_dir
from data_prep.enhance import channel_stats, clahe
from data_prep.idrid import IDRiD, mask_folder, write_mask
from data_prep.pipeline import enhance_square, preprocess, to_input
from data_prep.shipped import idrid_root

SIZE = 32


@pytest.fixture
def layout(tmp_path):
    root = tmp_path / "data"
    write_layout(
        root,
        {"train": ["IDRiD_01", "IDRiD_02", "IDRiD_03"], "test": ["IDRiD_04", "IDRiD_05"]},
        absent={("IDRiD_02", "SE"), ("IDRiD_03", "HE")},
    )
    return root, tmp_path / "cache"


def snapshot(folder):
    """Every file under `folder` with its size and modification time."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_items_are_image_and_target_tensors(layout):
    root, cache = layout
    data = LesionDataset(root, "train", size=SIZE, cache_dir=cache)
    assert len(data) == 3 and data.names == ["IDRiD_01", "IDRiD_02", "IDRiD_03"]
    x, y = data[0]
    assert x.dtype == torch.float32 and x.shape == (3, SIZE, SIZE)
    assert y.dtype == torch.float32 and y.shape == (4, SIZE, SIZE)
    assert set(torch.unique(y).tolist()) <= {0.0, 1.0}
    # the present table: IDRiD_02 has no SE file, IDRiD_03 no HE file
    assert data.present.tolist() == [[True] * 4, [True, True, True, False],
                                     [True, False, True, True]]


@pytest.mark.parametrize("lesions", [("MA",), ("EX", "SE"), ("MA", "HE"), ("MA", "HE", "EX", "SE")])
def test_the_target_holds_the_chosen_lesions_in_order(layout, lesions):
    root, cache = layout
    data = LesionDataset(root, "train", lesions=lesions, size=SIZE, cache_dir=cache)
    channels = ["MA", "HE", "EX", "SE"]
    for i in range(len(data)):
        _, y = data[i]
        all_four = data.example(i).masks  # (4, s, s)
        expected = np.stack([all_four[channels.index(name)] for name in lesions]).astype(np.float32)
        assert np.array_equal(y.numpy(), expected)
    assert data.present.shape == (3, len(lesions))


def test_an_item_is_exactly_what_preprocess_gives_for_prediction(layout):
    root, cache = layout
    data = LesionDataset(root, "test", size=SIZE, cache_dir=cache, mean=(0.4, 0.3, 0.2),
                         std=(0.2, 0.1, 0.1))
    reader = IDRiD(root, "test")
    for i in range(len(data)):
        x, _ = data[i]
        expected, geometry = preprocess(reader[i]["image"], SIZE, data.mean, data.std)
        assert np.array_equal(x.numpy(), expected)
        assert geometry == data.example(i).geometry


def test_the_cache_is_used_and_the_data_folder_untouched(layout, monkeypatch):
    root, cache = layout
    before = snapshot(root)
    LesionDataset(root, "train", size=SIZE, cache_dir=cache, mean=(0.5,) * 3, std=(0.2,) * 3)
    assert snapshot(root) == before  # nothing written in the user's data
    entries = sorted(p.name for p in cache.rglob("*.npz"))
    assert entries == ["IDRiD_01.npz", "IDRiD_02.npz", "IDRiD_03.npz"]

    def no_decoding(self, i):
        raise AssertionError("a cached photograph was decoded again")

    monkeypatch.setattr(dataset_module.IDRiD, "__getitem__", no_decoding)
    again = LesionDataset(root, "train", size=SIZE, cache_dir=cache, mean=(0.5,) * 3,
                          std=(0.2,) * 3)
    x, y = again[2]
    assert x.shape == (3, SIZE, SIZE)


def test_a_changed_mask_file_rebuilds_its_entry(layout):
    root, cache = layout
    data = LesionDataset(root, "train", lesions=("EX",), size=SIZE, cache_dir=cache,
                         mean=(0.5,) * 3, std=(0.2,) * 3)
    assert data[0][1].sum() > 0
    path = mask_folder(root, "train", "EX") / "IDRiD_01_EX.tif"
    write_mask(path, np.zeros((48, 64), bool))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # surely newer
    assert data[0][1].sum() == 0


def test_each_size_has_its_own_cache_folder(layout):
    root, cache = layout
    stats = {"mean": (0.5,) * 3, "std": (0.2,) * 3}
    LesionDataset(root, "test", size=SIZE, cache_dir=cache, **stats)
    LesionDataset(root, "test", size=24, cache_dir=cache, **stats)
    folders = sorted(p.name for p in cache.iterdir())
    assert (len(folders) == 2 and "-24px-" in folders[0] + folders[1]
            and "-32px-" in folders[0] + folders[1])


def test_stats_come_from_the_training_squares_inside_the_disc(layout):
    root, cache = layout
    train = LesionDataset(root, "train", size=SIZE, cache_dir=cache)
    examples = [train.example(i) for i in range(len(train))]
    mean, std = channel_stats([clahe(e.image) for e in examples], [e.disc for e in examples])
    assert np.allclose(train.mean, mean) and np.allclose(train.std, std)
    assert np.allclose(dataset_stats(root, SIZE, cache), (mean, std))
    # the test split is normalized with the training split's numbers, not its own
    test = LesionDataset(root, "test", size=SIZE, cache_dir=cache)
    assert np.array_equal(test.mean, train.mean) and np.array_equal(test.std, train.std)
    # inside the training discs the inputs have mean 0 and std 1
    inside = np.concatenate([train[i][0].numpy()[:, e.disc] for i, e in enumerate(examples)],
                            axis=1)  # (3, n)
    assert (np.allclose(inside.mean(axis=1), 0, atol=1e-5)
            and np.allclose(inside.std(axis=1), 1, atol=1e-4))


def test_stats_of_some_training_photographs_leave_the_others_out(layout):
    # training measures only the photographs that train (the held-out ones excluded)
    root, cache = layout
    train = LesionDataset(root, "train", size=SIZE, cache_dir=cache)
    kept = [train.example(i) for i in (0, 2)]
    mean, std = channel_stats([clahe(e.image) for e in kept], [e.disc for e in kept])
    assert np.array_equal(np.stack(dataset_stats(root, SIZE, cache, indices=[0, 2])),
                          np.stack((mean, std)))
    assert not np.allclose(dataset_stats(root, SIZE, cache, indices=[0, 2]),
                           dataset_stats(root, SIZE, cache))


def test_clahe_off_and_green_change_the_input(layout):
    root, cache = layout
    stats = {"mean": (0.5,) * 3, "std": (0.2,) * 3}
    inputs = [LesionDataset(root, "train", size=SIZE, cache_dir=cache, clahe=c, clahe_channel=ch,
                            **stats)[0][0]
              for c, ch in [(True, "lab"), (False, "lab"), (True, "green")]]
    assert not torch.equal(inputs[0], inputs[1]) and not torch.equal(inputs[0], inputs[2])
    assert torch.equal(inputs[1][[0, 2]], inputs[2][[0, 2]])  # green CLAHE leaves red and blue


def test_augmentation_is_the_papers_drawn_from_seed_epoch_and_index(layout):
    root, cache = layout
    stats = {"mean": (0.5,) * 3, "std": (0.2,) * 3}
    data = LesionDataset(root, "train", size=SIZE, cache_dir=cache, augment=True, seed=4, **stats)
    data.set_epoch(2)
    x, y = data[1]
    example = data.example(1)
    square, masks = augment(enhance_square(example.image), example.masks,
                            np.random.default_rng([4, 2, 1]))
    assert np.array_equal(y.numpy(), masks.astype(np.float32))
    assert np.array_equal(x.numpy(), to_input(square, data.mean, data.std))
    assert torch.equal(data[1][0], x)  # the same epoch gives the same draw
    data.set_epoch(3)
    assert not torch.equal(data[1][0], x)  # another epoch another
    plain = LesionDataset(root, "train", size=SIZE, cache_dir=cache, **stats)
    assert torch.equal(plain[1][0], plain[1][0]) and not torch.equal(plain[1][0], x)


def test_dataloader_workers_give_the_same_batches(layout):
    root, cache = layout
    data = LesionDataset(root, "train", size=SIZE, cache_dir=cache, augment=True, mean=(0.5,) * 3,
                         std=(0.2,) * 3)
    data.set_epoch(5)
    batches = {}
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(data, batch_size=2, num_workers=workers)
        batches[workers] = [(x, y) for x, y in loader]
    for (x0, y0), (x2, y2) in zip(batches[0], batches[2]):
        assert torch.equal(x0, x2) and torch.equal(y0, y2)
    assert [len(x) for x, _ in batches[2]] == [2, 1]


def test_the_shipped_data_set_as_a_data_set(tmp_path):
    before = snapshot(idrid_root())
    data = LesionDataset(idrid_root(), "test", lesions=("EX", "SE"), size=64, cache_dir=tmp_path,
                         mean=(0.5, 0.3, 0.2), std=(0.2, 0.2, 0.2))
    x, y = data[0]
    # every EX, 14 SE masks
    assert len(data) == 27 and data.present.sum(axis=0).tolist() == [27, 14]
    assert x.shape == (3, 64, 64) and y.shape == (2, 64, 64) and y[0].sum() > 0
    assert snapshot(idrid_root()) == before


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("U2NET_MINI_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "u2net_mini"
    monkeypatch.setenv("U2NET_MINI_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mean": (0.5,) * 3}, "give both mean and std, or neither"),
        ({"lesions": ("MA", "OD")}, "lesions must be a non-empty subset of"),
        ({"size": 0}, "size must be a positive int, got 0"),
        ({"clahe_channel": "blue"}, r"clahe_channel must be one of \('lab', 'green'\), got 'blue'"),
        ({"mean": (0.5, 0.5), "std": (1, 1)}, "mean and std must be 3 values each"),
        ({"mean": (0.5,) * 3, "std": (1, 0, 1)}, "std positive"),
    ],
)
def test_bad_settings_are_refused(layout, kwargs, match):
    root, cache = layout
    with pytest.raises(ValueError, match=match):
        LesionDataset(root, "train", cache_dir=cache, **{"size": SIZE, **kwargs})


def test_index_out_of_range(layout):
    root, cache = layout
    data = LesionDataset(root, "test", size=SIZE, cache_dir=cache, mean=(0.5,) * 3, std=(0.2,) * 3)
    with pytest.raises(IndexError, match="index 2 out of range for 2 photographs"):
        data[2]
