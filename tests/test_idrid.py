"""Tests for data_prep.idrid: the reader of IDRiD's folder layout, and the mask encoding."""

import hashlib

import cv2
import numpy as np
import pytest
from PIL import Image

from data_prep.fundus import fundus_mask
from data_prep.idrid import IDRiD, image_folder, mask_folder, read_mask, write_mask
from data_prep.lesions import LESIONS
from data_prep.shipped import idrid_root


def tiny_fundus(seed, height=48, width=64):
    """A small photograph-like image (orange disc cut at top and bottom, on black) and
    (4, H, W) masks with a dot of MA and a blob of EX inside the disc."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 12, size=(height, width, 3), dtype=np.uint8)  # (H, W, 3) dark noise
    cv2.circle(image, (width // 2, height // 2), 28, (170, 80, 40), -1)
    masks = np.zeros((4, height, width), dtype=bool)  # (4, H, W)
    x, y = width // 2 + int(rng.integers(-8, 9)), height // 2 + int(rng.integers(-8, 9))
    masks[0, y, x] = True  # one microaneurysm pixel
    masks[2, y - 8 : y - 4, x + 3 : x + 8] = True  # an exudate, 4 x 5 px
    image[masks[0]] = (90, 20, 10)
    image[masks[2]] = (250, 220, 90)
    return image, masks


def write_layout(root, names_by_split, seed=0, absent=()):
    """Write a tiny IDRiD-layout folder: JPEG photographs and 1-bit palette TIFF masks,
    no mask file for the (name, lesion) pairs in `absent`. Returns {name: (image, masks)}."""
    written = {}
    for split, names in names_by_split.items():
        image_folder(root, split).mkdir(parents=True, exist_ok=True)
        for k, name in enumerate(names):
            image, masks = tiny_fundus(seed + k)
            ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                    [cv2.IMWRITE_JPEG_QUALITY, 95])
            (image_folder(root, split) / f"{name}.jpg").write_bytes(jpeg.tobytes())
            for lesion, mask in zip(LESIONS, masks):
                if (name, lesion) in absent:
                    continue
                mask_folder(root, split, lesion).mkdir(parents=True, exist_ok=True)
                write_mask(mask_folder(root, split, lesion) / f"{name}_{lesion}.tif", mask)
            written[name] = (image, masks)
    return written


def test_the_shipped_data_set_reads_in_the_official_layout():
    train, test = IDRiD(idrid_root(), "train"), IDRiD(idrid_root(), "test")
    assert train.names == [f"IDRiD_{n:02d}" for n in range(1, 55)]
    assert test.names == [f"IDRiD_{n:02d}" for n in range(55, 82)]
    # mask files per lesion, as IDRiD's own table: MA, HE, EX, SE
    assert sum(train.mask_present(i) for i in range(len(train))).tolist() == [54, 53, 54, 26]
    assert sum(test.mask_present(i) for i in range(len(test))).tolist() == [27, 27, 27, 14]
    assert train.mask_present(train.names.index("IDRiD_43")).tolist() == [True, False, True, False]
    item = train[0]
    assert item["name"] == "IDRiD_01"
    assert item["image"].shape == (712, 1072, 3) and item["image"].dtype == np.uint8
    assert item["masks"].shape == (4, 712, 1072) and item["masks"].dtype == bool
    assert item["present"].tolist() == [True, True, True, False]  # IDRiD_01 has no soft exudates
    assert item["masks"].any(axis=(1, 2)).tolist() == [True, True, True, False]
    # lesions lie on the retina, never in the black surround
    assert not (item["masks"].any(axis=0) & ~fundus_mask(item["image"])).any()
    # RGB, not OpenCV's BGR: a fundus photograph is far redder than blue
    disc = fundus_mask(item["image"])
    assert item["image"][disc, 0].mean() > 2 * item["image"][disc, 2].mean()


def test_the_shipped_files_match_their_checksums_and_licence():
    root = idrid_root()
    listed = {}
    for line in (root / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    on_disk = ({p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
               - {"SHA256SUMS"})
    assert set(listed) == on_disk  # nothing unlisted, nothing missing
    assert (len([n for n in listed if n.endswith(".jpg")]) == 81
            and len([n for n in listed if n.endswith(".tif")]) == 282)
    for name, digest in listed.items():
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest, name
    assert "Creative Commons Attribution 4.0" in (root / "LICENSE.txt").read_text()


def test_the_shipped_masks_are_encoded_like_idrid():
    path = mask_folder(idrid_root(), "train", "MA") / "IDRiD_01_MA.tif"
    with Image.open(path) as image:
        assert image.mode == "P" and image.tag_v2[258] == (1,)  # palette, 1 bit per pixel
        assert image.tag_v2[259] == 8  # Deflate
        assert image.getpalette()[:6] == [0, 0, 0, 255, 0, 0]  # index 0 black, 1 red
        assert set(np.unique(np.array(image))) == {0, 1}
    # so > 0, not > 127
    assert set(np.unique(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))) == {0, 76}


@pytest.mark.parametrize("deflate", [False, True])
@pytest.mark.parametrize("shape", [(5, 13), (1, 1), (37, 64)])
def test_write_mask_round_trip(tmp_path, shape, deflate):
    mask = np.random.default_rng(0).random(shape) < 0.4  # widths not a multiple of 8, too
    path = tmp_path / "m.tif"
    write_mask(path, mask, deflate=deflate)
    # OpenCV's libtiff reads it
    assert set(np.unique(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))) <= {0, 76}
    assert np.array_equal(read_mask(path), mask)
    with Image.open(path) as image:
        assert (image.mode == "P" and image.tag_v2[258] == (1,)
                and image.tag_v2[259] == (8 if deflate else 1))
    assert np.array_equal(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 0, mask)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_write_mask_refuses_a_non_bool_mask(tmp_path):
    with pytest.raises(ValueError, match=r"mask must be a non-empty \(H, W\) bool array, got "
                                         r"uint8"):
        write_mask(tmp_path / "m.tif", np.zeros((4, 4), np.uint8))


def test_a_synthetic_layout_with_other_names_and_missing_masks(tmp_path):
    written = write_layout(
        tmp_path, {"train": ["IDRiD_03", "IDRiD_01", "IDRiD_02"], "test": ["IDRiD_09"]},
        absent={("IDRiD_02", "SE")}
    )
    train = IDRiD(tmp_path, "train")
    assert train.names == ["IDRiD_01", "IDRiD_02", "IDRiD_03"]  # sorted
    item = train[1]
    assert item["name"] == "IDRiD_02" and item["present"].tolist() == [True, True, True, False]
    image, masks = written["IDRiD_02"]
    masks[3] = False  # no file: absent
    assert np.array_equal(item["masks"], masks)
    assert np.abs(item["image"].astype(int) - image).mean() < 3  # JPEG, quality 95
    assert train[-1]["name"] == "IDRiD_03"
    assert len(IDRiD(tmp_path / "A. Segmentation", "test")) == 1  # the inner folder works too


def test_a_missing_lesion_folder_means_absent(tmp_path):
    write_layout(tmp_path, {"train": ["a"]})
    for path in mask_folder(tmp_path, "train", "HE").iterdir():
        path.unlink()
    mask_folder(tmp_path, "train", "HE").rmdir()
    item = IDRiD(tmp_path)[0]
    assert item["present"].tolist() == [True, False, True, True] and not item["masks"][1].any()


def test_a_wrong_root_says_what_was_expected_and_found(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"does not have the IDRiD layout: expected the folder "
                       r"'A. Segmentation/1. Original Images/a. Training Set', found only "
                       r"\['images', 'notes.txt'\]"):
        IDRiD(tmp_path)


def test_a_missing_groundtruth_folder_is_a_wrong_layout(tmp_path):
    image_folder(tmp_path, "test").mkdir(parents=True)
    with pytest.raises(ValueError, match="expected the folder 'A. Segmentation/2. All Segmentation "
                                         "Groundtruths/b. Testing Set'"):
        IDRiD(tmp_path, "test")


def test_a_missing_root_and_a_bad_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        IDRiD(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'test'\), got 'val'"):
        IDRiD(tmp_path, "val")


def test_no_photographs(tmp_path):
    write_layout(tmp_path, {"train": ["a"]})
    (image_folder(tmp_path, "train") / "a.jpg").rename(image_folder(tmp_path, "train") / "a.txt")
    with pytest.raises(ValueError, match="no .jpg photographs in"):
        IDRiD(tmp_path)


def test_an_unreadable_photograph_is_named(tmp_path):
    write_layout(tmp_path, {"train": ["IDRiD_01", "IDRiD_02"]})
    (image_folder(tmp_path, "train") / "IDRiD_02.jpg").write_bytes(b"not a jpeg")
    reader = IDRiD(tmp_path)
    assert reader[0]["name"] == "IDRiD_01"  # lazy: the broken file does not stop the others
    with pytest.raises(ValueError, match=r"cannot read image .*IDRiD_02\.jpg"):
        reader[1]


def test_an_unreadable_mask_is_named(tmp_path):
    write_layout(tmp_path, {"train": ["IDRiD_01"]})
    (mask_folder(tmp_path, "train", "EX") / "IDRiD_01_EX.tif").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match=r"cannot read mask .*IDRiD_01_EX\.tif"):
        IDRiD(tmp_path)[0]


def test_a_mask_of_another_size_is_refused(tmp_path):
    write_layout(tmp_path, {"train": ["IDRiD_01"]})
    write_mask(mask_folder(tmp_path, "train", "HE") / "IDRiD_01_HE.tif", np.zeros((24, 32), bool))
    with pytest.raises(ValueError, match=r"IDRiD_01_HE\.tif has shape \(24, 32\) but its image "
                                         r"IDRiD_01\.jpg has shape \(48, 64\)"):
        IDRiD(tmp_path)[0]


def test_index_out_of_range(tmp_path):
    write_layout(tmp_path, {"train": ["a"]})
    with pytest.raises(IndexError, match="index 1 out of range for 1 photographs"):
        IDRiD(tmp_path)[1]
