"""The synthetic IDRiD-like data set (data_prep/synthetic/): drawing, lesions, layout on disk."""

import cv2
import numpy as np
import pytest
from PIL import Image

from data_prep.fundus import fundus_mask
from data_prep.idrid import IDRiD
from data_prep.lesions import LESIONS
from data_prep.synthetic import data_set as S
from data_prep.synthetic.draw import Canvas, bandpass_noise, smooth_field
from data_prep.synthetic.lesions import PAINT_ORDER, min_diameter, paint_lesions
from data_prep.synthetic.retina import IDRID_ASPECT, make_anatomy

ALL = dict.fromkeys(LESIONS, True)
NONE = dict.fromkeys(LESIONS, False)
MA, HE, EX, SE = range(4)
S_FOLDERS = ["1. Microaneurysms", "2. Haemorrhages", "3. Hard Exudates", "4. Soft Exudates"]


# ---- the rasteriser: coverage by hand -------------------------------------------------


def test_canvas_half_covered_column():
    # A rectangle from x = -0.5 to x = 0 (pixel 0 spans -0.5..0.5) over both rows:
    # column 0 is half covered, column 1 not at all -> [[0.5, 0], [0.5, 0]].
    canvas = Canvas(2, 2, ss=4)
    canvas.polygon(np.array([[-0.5, -0.5], [0.0, -0.5], [0.0, 1.5], [-0.5, 1.5]]))
    np.testing.assert_allclose(canvas.coverage(), [[0.5, 0.0], [0.5, 0.0]], atol=1 / 255)


def test_canvas_whole_pixel_and_value():
    # The square -0.5..0.5 is exactly pixel (0, 0); drawn with value 0.4 it reads 0.4 there.
    canvas = Canvas(2, 3, ss=4)
    canvas.polygon(np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]), value=0.4)
    expected = np.zeros((2, 3))
    expected[0, 0] = 0.4  # 102 / 255 = 0.4
    np.testing.assert_allclose(canvas.coverage(), expected, atol=1 / 255)


def test_canvas_disc_area_is_pi_r_squared():
    # A disc of radius 3 px covers pi * 9 = 28.27 pixels' worth of area, wherever its centre.
    canvas = Canvas(20, 20, ss=4)
    canvas.ellipse(9.3, 10.7, 3.0, 3.0)
    assert canvas.coverage().sum() == pytest.approx(np.pi * 9, rel=0.03)


def test_canvas_rejects_empty_size():
    with pytest.raises(ValueError, match="canvas needs height, width, ss >= 1"):
        Canvas(0, 5)


def test_random_fields_are_standardized():
    rng = np.random.default_rng(0)
    for field in (smooth_field(rng, 50, 60, 3), bandpass_noise(rng, 50, 60, 2.0)):
        assert field.shape == (50, 60)
        assert abs(field.mean()) < 1e-5 and field.std() == pytest.approx(1.0, abs=1e-4)


# ---- make_fundus ------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_image():
    image, masks = S.make_fundus(7, 96)
    again, masks_again = S.make_fundus(7, 96)
    other, _ = S.make_fundus(8, 96)
    assert image.tobytes() == again.tobytes() and masks.tobytes() == masks_again.tobytes()
    assert np.abs(image.astype(int) - other.astype(int)).mean() > 5


def test_a_seed_paints_the_same_eye_at_any_size():
    for seed in range(6):
        _, small = S.make_fundus(seed, 96)
        _, large = S.make_fundus(seed, 288)
        np.testing.assert_array_equal(small.any(axis=(1, 2)), large.any(axis=(1, 2)))
        # EX and SE (large enough at 96 px) cover about the same share of the picture
        for channel in (EX, SE):
            assert small[channel].mean() == pytest.approx(large[channel].mean(), rel=0.35, abs=2e-4)


@pytest.mark.parametrize("frame, shape", [("square", (128, 128)),
                                          ("idrid", (round(128 / IDRID_ASPECT), 128))])
def test_shapes_and_dtypes(frame, shape):
    image, masks = S.make_fundus(1, 128, frame=frame)
    assert image.shape == shape + (3,) and image.dtype == np.uint8
    assert masks.shape == (4,) + shape and masks.dtype == bool


def test_idrid_frame_cuts_the_disc_at_top_and_bottom():
    image, _ = S.make_fundus(2, 256, frame="idrid")
    disc = image.max(axis=2) > 30  # (H, W)
    assert disc[0].any() and disc[-1].any()  # the disc touches the top and bottom rows
    assert not disc[:, 0].any() and not disc[:, -1].any()  # black at the left and right


def test_forced_presence_gives_non_empty_or_empty_masks():
    for seed in range(4):
        _, masks = S.make_fundus(seed, 96, presence=ALL)
        assert masks.any(axis=(1, 2)).all()
        _, masks = S.make_fundus(seed, 96, presence=NONE)
        assert not masks.any()


def test_lesions_lie_inside_the_disc():
    for seed, frame in [(0, "square"), (1, "idrid"), (2, "square")]:
        image, masks = S.make_fundus(seed, 192, frame=frame, presence=ALL)
        # (H, W)
        disc = cv2.erode(fundus_mask(image).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert not (masks & ~disc).any()


def test_masks_are_disjoint():
    # Where two lesions overlap the later layer hides the earlier: c_eff sums to at most 1,
    # so no pixel can be at least half of two lesions.
    for seed in range(6):
        _, masks = S.make_fundus(seed, 160, presence=ALL)
        assert masks.sum(axis=0).max() <= 1


def test_some_images_lack_some_lesions():
    # (40, 4)
    present = np.array([S.make_fundus(seed, 64)[1].any(axis=(1, 2)) for seed in range(40)])
    rates = present.mean(axis=0)  # (4,)
    assert 0.3 <= rates[SE] <= 0.7  # SE in about half (IDRiD: 40 of 81)
    assert (rates[[MA, HE, EX]] >= 0.85).all()  # the others in nearly all
    assert not present[:, [MA, HE, EX]].all()  # ...but not all


def local_contrast(image, mask, ring_px=4):
    """Mean RGB inside `mask` and in a ring around it (other lesions and vessels included)."""
    kernel = np.ones((2 * ring_px + 1, 2 * ring_px + 1), np.uint8)
    ring = (cv2.dilate(mask.astype(np.uint8), kernel) > 0) & ~mask  # (H, W)
    return image[mask].astype(float).mean(axis=0), image[ring].astype(float).mean(axis=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lesions_look_like_their_kind_in_the_photograph(seed):
    image, masks = S.make_fundus(seed, 256, presence=ALL)
    for channel in (MA, HE):  # dark red: darker in green, red falls less than green
        inside, ring = local_contrast(image, masks[channel])
        assert inside[1] < 0.92 * ring[1], LESIONS[channel]
        assert inside[0] / inside[1] > ring[0] / ring[1], LESIONS[channel]
    inside, ring = local_contrast(image, masks[EX])  # bright yellow: red and green up, blue hardly
    assert inside[1] > ring[1] + 25 and inside[0] > ring[0] + 10
    assert inside[1] - ring[1] > 2 * (inside[2] - ring[2])
    inside, ring = local_contrast(image, masks[SE])  # pale: every channel up, blue too
    assert (inside > ring + 5).all()


def flat_painting(seed, size=128, presence=ALL, visible_at=160):
    """Lesions painted on a flat orange disc: (background, painted, masks)."""
    rng = np.random.default_rng(seed)
    geo = make_anatomy(rng, size)
    flat = np.empty((geo.height, geo.width, 3), np.float32)  # (H, W, 3)
    flat[:] = (180.0, 90.0, 30.0)
    painted, masks = paint_lesions(rng, geo, flat.copy(), visible_at, 4, presence)
    return flat, painted, masks


@pytest.mark.parametrize("lesion", LESIONS)
def test_every_mask_pixel_shows_its_lesion_colour(lesion):
    # One lesion alone on a flat (180, 90, 30): every mask pixel is at least half lesion with
    # opacity >= 0.6, so the colour has moved at least a fixed step the lesion's way.
    for seed in range(3):
        flat, painted, masks = flat_painting(seed, presence={**NONE, lesion: True})
        delta = (painted - flat)[masks[LESIONS.index(lesion)]]  # (N, 3)
        assert len(delta) > 0
        if lesion in ("MA", "HE"):
            # G falls by >= c * o * (1 - f_G) * 90 >= 0.5 * 0.8 * (1 - 0.62 * 1.07) * 90 = 12.1 (HE;
            # MA: 0.5 * 0.85 * (1 - 0.45 * 1.07) * 90 = 19.8),
            # and R falls by a smaller share (f_R > f_G)
            assert (delta[:, 1] < -11).all() and (delta[:, 0] / 180 > delta[:, 1] / 90).all()
        elif lesion == "EX":
            # towards white, G weight >= 0.45 * 0.8 = 0.36, opacity >= 0.85 - 0.2 (texture):
            # G up by >= 0.5 * 0.65 * 0.36 * (255 - 90) = 19.3; B weight <= 0.07 * 1.2, so G > 2 B
            assert (delta[:, 1] > 19).all() and (delta[:, 1] > 2 * delta[:, 2]).all()
        else:  # pale: every channel up; B by >= 0.5 * (0.6 - 0.2) * 0.26 * 0.8 * (255 - 30) = 9.4
            assert (delta > 0).all() and (delta[:, 2] > 9).all()


def test_nothing_is_painted_away_from_the_masks():
    # Real sizes (visible_at=None) at 96 px: microaneurysms are sub-pixel; each still gets a
    # mask pixel, so no paint may appear farther than the blur from any mask.
    for seed in range(4):
        flat, painted, masks = flat_painting(seed, size=96, visible_at=None)
        # (H, W)
        near = cv2.dilate(masks.any(axis=0).astype(np.uint8), np.ones((11, 11), np.uint8)) > 0
        np.testing.assert_array_equal(painted[~near], flat[~near])


def test_paint_order_covers_every_lesion():
    assert sorted(PAINT_ORDER) == sorted(LESIONS)


def test_visible_at_sets_the_smallest_lesion():
    # At 320 px the disc is ~0.92-0.98 * 320 = 294-314 px wide; shrunk to 160 px a 2-px
    # microaneurysm is 2 * 300 / 160 = 3.7-3.9 px wide here: area >= pi * 1.8^2 * 0.8 = 8 px.
    small_ma, large_ma = [], []
    for seed in range(3):
        for visible_at, areas in ((160, large_ma), (None, small_ma)):
            _, masks = S.make_fundus(seed, 320, presence=ALL, visible_at=visible_at)
            n, labels, stats, _ = cv2.connectedComponentsWithStats(masks[MA].astype(np.uint8),
                                                                   connectivity=8)
            # leave out microaneurysms partly hidden under a soft or hard exudate (drawn later)
            later = cv2.dilate((masks[EX] | masks[SE]).astype(np.uint8),
                               np.ones((3, 3), np.uint8)) > 0  # (H, W)
            hidden = np.unique(labels[later & masks[MA]])
            areas.extend(stats[[k for k in range(1, n) if k not in hidden], cv2.CC_STAT_AREA])
    assert min(large_ma) >= 8
    assert np.median(small_ma) < np.median(large_ma) / 3


def test_min_diameter_rule():
    rng = np.random.default_rng(0)
    geo = make_anatomy(rng, 320)
    # 2 px when the disc (2R px) is shrunk to 160 px: 2 * 2R / 160
    assert min_diameter(geo, 160) == pytest.approx(2 * 2 * geo.radius / 160)
    assert min_diameter(geo, None) == 1.0
    assert min_diameter(geo, 10_000) == 1.0  # never under one pixel


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(size=32), "size must be an integer of at least 64 pixels, got 32"),
        (dict(size=100.5), "size must be an integer of at least 64 pixels, got 100.5"),
        (dict(frame="round"), "frame must be one of \\('square', 'idrid'\\), got 'round'"),
        (dict(visible_at=4), "visible_at must be None or a number of pixels >= 16, got 4"),
        (dict(presence={"XX": True}), "presence keys must be among"),
    ],
)
def test_make_fundus_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        S.make_fundus(0, **{"size": 96, **kwargs})


# ---- the IDRiD layout on disk -----------------------------------------------------------


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "synthetic"
    S.write_idrid_layout(root, n_train=4, n_test=2, size=96, seed=5)
    return root


def test_layout_names_and_numbering(written):
    seg = written / "A. Segmentation"
    train = sorted(p.name for p in (seg / "1. Original Images" / "a. Training Set").iterdir())
    test = sorted(p.name for p in (seg / "1. Original Images" / "b. Testing Set").iterdir())
    assert train == ["IDRiD_01.jpg", "IDRiD_02.jpg", "IDRiD_03.jpg", "IDRiD_04.jpg"]
    assert test == ["IDRiD_05.jpg", "IDRiD_06.jpg"]  # numbered after the training set
    folders = sorted(p.name for p in (seg / "2. All Segmentation Groundtruths"
                                      / "a. Training Set").iterdir())
    assert folders == ["1. Microaneurysms", "2. Haemorrhages", "3. Hard Exudates",
                       "4. Soft Exudates"]
    readme = (written / "README.txt").read_text()
    assert "SYNTHETIC" in readme and "seed=5" in readme and "visible_at=160" in readme
    assert not list(written.parent.glob(".synthetic.partial-*"))  # no staging folder left


def test_written_files_match_make_fundus(written):
    seg = written / "A. Segmentation"
    for number, split in [(1, "a. Training Set"), (4, "a. Training Set"), (6, "b. Testing Set")]:
        image, masks = S.make_fundus((5, number), 96)
        name = f"IDRiD_{number:02d}"
        jpeg = np.array(Image.open(seg / "1. Original Images" / split / f"{name}.jpg"))  # (H, W, 3)
        assert jpeg.shape == image.shape
        assert np.abs(jpeg.astype(int) - image.astype(int)).mean() < 3  # JPEG quality 95
        for lesion, folder, mask in zip(LESIONS, S_FOLDERS, masks):
            path = (seg / "2. All Segmentation Groundtruths" / split / folder
                    / f"{name}_{lesion}.tif")
            assert path.exists() == mask.any()  # no file for an absent lesion
            if mask.any():
                with Image.open(path) as tif:
                    assert tif.mode == "P" and tif.getpalette()[:6] == [0, 0, 0, 255, 0, 0]
                    values = np.array(tif)  # (H, W)
                    grey = np.array(tif.convert("L"))  # (H, W)
                assert set(np.unique(values)) <= {0, 1} and set(np.unique(grey)) <= {0, 76}
                np.testing.assert_array_equal(values == 1, mask)



def test_some_mask_files_are_missing_in_a_larger_set(tmp_path):
    root = S.write_idrid_layout(tmp_path / "set", n_train=12, n_test=0, size=64, seed=0)
    truths = root / "A. Segmentation" / "2. All Segmentation Groundtruths" / "a. Training Set"
    counts = [len(list((truths / folder).iterdir())) for folder in S_FOLDERS]
    assert counts[SE] < 12 and max(counts) > 0


def test_idrid_reader_reads_the_synthetic_set(written):
    train = IDRiD(written, "train")
    assert len(train) == 4 and train.names == ["IDRiD_01", "IDRiD_02", "IDRiD_03", "IDRiD_04"]
    item = train[2]
    _, masks = S.make_fundus((5, 3), 96)
    np.testing.assert_array_equal(item["masks"], masks)
    np.testing.assert_array_equal(item["present"], masks.any(axis=(1, 2)))
    assert IDRiD(written, "test").names == ["IDRiD_05", "IDRiD_06"]


def test_refuses_a_non_empty_folder(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="exists and is not empty"):
        S.write_idrid_layout(root, n_train=1, n_test=0, size=64)
    assert [p.name for p in root.iterdir()] == ["notes.txt"]
    assert (root / "notes.txt").read_text() == "keep me"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(FileExistsError, match="exists and is not empty"):
        S.write_idrid_layout(a_file, n_train=1, n_test=0, size=64)


def test_writes_into_an_existing_empty_folder(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    S.write_idrid_layout(root, n_train=1, n_test=1, size=64)
    assert (root / "A. Segmentation" / "1. Original "
                                       "Images" / "b. Testing Set" / "IDRiD_02.jpg").is_file()


def test_an_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    original, calls = S.make_fundus, []

    def interrupted(seed, size, **kwargs):
        calls.append(seed)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C during the third image
        return original(seed, size, **kwargs)

    monkeypatch.setattr(S, "make_fundus", interrupted)
    with pytest.raises(KeyboardInterrupt):
        S.write_idrid_layout(tmp_path / "set", n_train=5, n_test=0, size=64)
    assert list(tmp_path.iterdir()) == []  # neither the set nor its staging folder


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_train=-1), "n_train must be a non-negative integer, got -1"),
        (dict(n_test=2.5), "n_test must be a non-negative integer, got 2.5"),
        (dict(n_train=0, n_test=0), "n_train \\+ n_test must be at least 1"),
        (dict(size=16), "size must be an integer of at least 64 pixels, got 16"),
        (dict(frame="wide"), "frame must be one of \\('square', 'idrid', 'mixed'\\), got 'wide'"),
        (dict(visible_at=8), "visible_at must be None or a number of pixels >= 16, got 8"),
    ],
)
def test_write_rejects_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        S.write_idrid_layout(tmp_path / "set", **{"n_train": 1, "n_test": 1, "size": 64, **kwargs})
    assert not (tmp_path / "set").exists()


def test_mixed_frame_and_command_line(tmp_path, capsys):
    assert S.main(["--out", str(tmp_path / "cli"), "--n-train", "3", "--n-test", "0",
                   "--size", "64", "--frame", "mixed"]) == 0
    folder = tmp_path / "cli" / "A. Segmentation" / "1. Original Images" / "a. Training Set"
    sizes = {n: Image.open(folder / f"IDRiD_0{n}.jpg").size for n in (1, 2, 3)}
    assert sizes[1] == sizes[2] == (64, 64) and sizes[3] == (64, round(64 / IDRID_ASPECT))
    assert "train: 3 images" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:  # the same folder again: refused, exit status 2
        S.main(["--out", str(tmp_path / "cli"), "--n-train", "1", "--n-test", "0", "--size", "64"])
    assert stop.value.code == 2
    assert "exists and is not empty" in capsys.readouterr().err
    S.main(["--out", str(tmp_path / "real"), "--n-train", "1", "--n-test", "0", "--size", "64",
            "--real-sizes"])
    assert "visible_at=None" in (tmp_path / "real" / "README.txt").read_text()
    _, masks = S.make_fundus((0, 1), 64, visible_at=None)
    np.testing.assert_array_equal(IDRiD(tmp_path / "real", "train")[0]["masks"], masks)
