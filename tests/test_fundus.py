"""Tests for data_prep.fundus: the disc mask, the crop, the square, and the way back."""

import cv2
import numpy as np
import pytest
from skimage import data

from data_prep.fundus import (
    DISC_THRESHOLD,
    Geometry,
    crop_to_disc,
    fill_holes,
    fundus_mask,
    square_pad,
    to_original,
    to_square,
)
from data_prep.idrid import IDRiD
from data_prep.shipped import idrid_root

ORANGE = (170, 80, 40)


@pytest.fixture(scope="module")
def retina():
    return data.retina()  # (1411, 1411, 3), a full disc


@pytest.fixture(scope="module")
def idrid_photograph():
    return IDRiD(idrid_root(), "train")[0]["image"]  # (712, 1072, 3), disc cut at top and bottom


def dark_noise(rng, height, width):
    """A black surround with JPEG-like noise, values 0..20 (below the threshold of 30)."""
    return rng.integers(0, 21, size=(height, width, 3), dtype=np.uint8)  # (H, W, 3)


def test_box_of_a_rectangle_is_exact_despite_noise_and_text():
    rng = np.random.default_rng(0)
    image = dark_noise(rng, 60, 80)
    image[10:50, 15:65] = ORANGE  # the "disc": rows 10..49, columns 15..64
    # text in the corner
    cv2.putText(image, "L", (68, 12), cv2.FONT_HERSHEY_PLAIN, 0.8, (230, 230, 230), 1)
    crop, box = crop_to_disc(image)
    assert box == (15, 10, 65, 50)  # half-open: x1 = 64 + 1, y1 = 49 + 1
    assert crop.shape == (40, 50, 3)
    assert np.array_equal(crop, image[10:50, 15:65])


def test_text_in_the_border_is_not_part_of_the_disc():
    rng = np.random.default_rng(1)
    image = dark_noise(rng, 60, 80)
    image[10:50, 15:65] = ORANGE
    image[2:8, 70:78] = 255  # a bright label, 2 px away from nothing: a separate component
    mask = fundus_mask(image)
    assert not mask[2:8, 70:78].any()
    assert mask[12:48, 17:63].all()


def test_holes_in_the_disc_are_filled():
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    image[5:35, 5:35] = ORANGE
    image[15:25, 15:25] = 5  # a dark blob inside (a dark macula, a big haemorrhage)
    mask = fundus_mask(image)
    assert mask[15:25, 15:25].all()
    # the 5 x 5 median filter rounds each corner of a square by 3 pixels: the corner pixel
    # sees 3 x 3 = 9 bright of 25 and its two neighbours 3 x 4 = 12, fewer than 13
    assert mask.sum() == 30 * 30 - 4 * 3


def test_fill_holes_by_hand():
    # a ring with a 1-pixel hole; the outside touches the border and stays outside
    region = np.array(
        [
            [0, 0, 0, 0, 0],
            [0, 1, 1, 1, 0],
            [0, 1, 0, 1, 0],
            [0, 1, 1, 1, 0],
            [0, 0, 0, 0, 0],
        ],
        dtype=bool,
    )
    filled = fill_holes(region)
    expected = region.copy()
    expected[2, 2] = True
    assert np.array_equal(filled, expected)


def test_disc_cut_at_top_and_bottom_spans_the_full_height():
    image = np.zeros((60, 100, 3), dtype=np.uint8)
    cv2.circle(image, (50, 30), 40, ORANGE, -1)  # radius 40 > half height 30
    x0, y0, x1, y1 = crop_to_disc(image)[1]
    assert (y0, y1) == (0, 60)
    # the disc's left- and rightmost columns are 10 and 90; the median filter may shave a
    # one-pixel tip off a round edge
    assert 10 <= x0 <= 11 and 90 <= x1 <= 91


def test_real_full_disc_is_round(retina):
    mask = fundus_mask(retina)
    x0, y0, x1, y1 = crop_to_disc(retina)[1]
    width, height = x1 - x0, y1 - y0
    assert abs(width - height) <= 0.01 * width
    # a disc fills pi / 4 = 78.5 % of its bounding square
    assert mask.sum() / (width * height) == pytest.approx(np.pi / 4, abs=0.02)
    assert retina[mask].max(axis=1).mean() > 100 > 10 > retina[~mask].max(axis=1).mean()


def test_real_idrid_disc_is_cut_at_top_and_bottom(idrid_photograph):
    height, width = idrid_photograph.shape[:2]
    x0, y0, x1, y1 = crop_to_disc(idrid_photograph)[1]
    assert (y0, y1) == (0, height)
    assert 0 < x0 and x1 < width and x1 - x0 > height  # wider than tall: cut at top and bottom
    mask = fundus_mask(idrid_photograph)
    assert (idrid_photograph[mask].max(axis=1).mean() > 100 > 15
            > idrid_photograph[~mask].max(axis=1).mean())


@pytest.mark.parametrize("which", ["retina", "idrid_photograph"])
def test_cropping_a_crop_changes_nothing(which, request):
    crop, _ = crop_to_disc(request.getfixturevalue(which))
    again, box = crop_to_disc(crop)
    assert box == (0, 0, crop.shape[1], crop.shape[0])
    assert np.array_equal(again, crop)


def test_threshold_moves_the_box_little_in_the_plateau(idrid_photograph):
    # docs/preprocessing.md: from 30 to 60 the box is stable
    boxes = np.array([crop_to_disc(idrid_photograph, t)[1] for t in (30, 45, 60)])  # (3, 4)
    assert np.ptp(boxes, axis=0).max() <= 3  # at most 3 px at a quarter of IDRiD's size


@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros((50, 50, 3), np.uint8), "no retinal disc found: no pixel is brighter"),
        (np.full((50, 50, 3), 128, np.uint8), "no retinal disc found: the image has no dark "
                                              "surround"),
        # 6 x 6 bright pixels (24 after the median filter rounds the corners) of 100 x 100
        (np.pad(np.full((6, 6, 3), 200, np.uint8), ((40, 54), (40, 54), (0, 0))),
         "no retinal disc found: the largest"),
        (np.zeros((50, 50), np.uint8), r"\(H, W, 3\) RGB array, got shape \(50, 50\)"),
        (np.zeros((50, 50, 3), np.float32), "must be uint8"),
    ],
)
def test_bad_images_are_refused(image, match):
    with pytest.raises(ValueError, match=match):
        fundus_mask(image)


def test_default_threshold_is_the_documented_one():
    # a disc of brightness 31 is found, one of 30 is not
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    image[10:30, 10:30] = DISC_THRESHOLD + 1
    assert fundus_mask(image).sum() == 20 * 20 - 4 * 3  # corners rounded as above
    image[10:30, 10:30] = DISC_THRESHOLD
    with pytest.raises(ValueError, match="no pixel is brighter than 30"):
        fundus_mask(image)


def test_square_pad_by_hand():
    # 2 x 4: two rows missing, one above and one below; 3 x 4: the odd row goes below
    assert square_pad(2, 4) == (1, 1, 0, 0)
    assert square_pad(3, 4) == (0, 1, 0, 0)
    assert square_pad(5, 2) == (0, 0, 1, 2)


def test_to_square_pads_then_shrinks_by_area():
    crop = np.array([[0, 4, 8, 12], [0, 4, 8, 12]], dtype=np.uint8)  # (2, 4)
    # padded to 4 x 4: rows 0 and 3 black, rows 1 and 2 the crop
    padded = to_square(crop, 4)
    assert np.array_equal(padded, np.array([[0, 0, 0, 0],
                                            [0, 4, 8, 12],
                                            [0, 4, 8, 12],
                                            [0, 0, 0, 0]]))
    # area average of each 2 x 2 block: (0+0+0+4)/4 = 1, (0+0+8+12)/4 = 5, and the same below
    assert np.array_equal(to_square(crop, 2), np.array([[1, 5], [1, 5]]))


def test_to_square_keeps_a_disc_round():
    crop = np.zeros((40, 100, 3), dtype=np.uint8)
    cv2.circle(crop, (50, 20), 18, ORANGE, -1)  # a round disc in a wide crop
    square = to_square(crop, 50)  # (50, 50, 3)
    rows = np.flatnonzero(square.max(axis=(1, 2)) > 60)  # rows touched by the disc
    cols = np.flatnonzero(square.max(axis=(0, 2)) > 60)
    assert abs(len(rows) - len(cols)) <= 1  # stretched to a square it would be 2.5 times taller


def test_to_square_enlarges_bilinearly():
    crop = np.array([[0, 100]], dtype=np.uint8)  # (1, 2) -> padded (2, 2) -> 4 x 4
    square = to_square(crop, 4)
    assert square.shape == (4, 4)
    assert len(np.unique(square)) > 3  # nearest would give only the values 0 and 100


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_to_square_refuses_bad_sizes(size):
    with pytest.raises(ValueError, match="size must be a positive int, got"):
        to_square(np.zeros((4, 4, 3), np.uint8), size)


def test_to_square_refuses_an_empty_crop():
    with pytest.raises(ValueError, match="non-empty"):
        to_square(np.zeros((0, 4, 3), np.uint8), 8)


def test_to_original_by_hand_without_resize():
    # image 4 x 6, box x 1..4 (4 wide), y 0..3: square side 4, no padding, size 4
    geometry = Geometry(height=4, width=6, x0=1, y0=0, x1=5, y1=4, size=4)
    maps = np.arange(16, dtype=np.float32).reshape(1, 4, 4)  # (1, 4, 4)
    out = to_original(maps, geometry, fill=-1.0)  # (1, 4, 6)
    assert out.shape == (1, 4, 6)
    assert np.array_equal(out[0, :, 1:5], maps[0])
    assert np.all(out[0, :, [0, 5]] == -1.0)


def test_to_original_removes_the_padding():
    # box 6 wide, 2 tall at rows 1..2: side 6, padding 2 rows above and 2 below
    geometry = Geometry(height=5, width=6, x0=0, y0=1, x1=6, y1=3, size=6)
    assert geometry.side == 6 and geometry.pad == (2, 2, 0, 0)
    maps = np.arange(36, dtype=np.float32).reshape(6, 6)  # (6, 6), a 2-D map
    out = to_original(maps, geometry)  # (5, 6)
    assert np.array_equal(out[1:3], maps[2:4])
    assert np.all(out[[0, 3, 4]] == 0)
    masks = maps[None] > 20  # (1, 6, 6) bool stays bool
    back = to_original(masks, geometry)
    assert back.dtype == bool and np.array_equal(back[0, 1:3], masks[0, 2:4])


def test_to_original_round_trip_of_a_ramp(retina):
    # bilinear and area resizing both keep a linear function, so a ramp survives the trip
    height, width = retina.shape[:2]
    _, box = crop_to_disc(retina)
    x0, y0, x1, y1 = box
    ramp = np.tile(np.linspace(0, 1, width, dtype=np.float32), (height, 1))  # (H, W)
    geometry = Geometry(height, width, *box, 128)
    square = to_square(ramp[y0:y1, x0:x1], 128)  # (128, 128)
    back = to_original(square, geometry)  # (H, W)
    inner = (slice(y0 + 15, y1 - 15), slice(x0 + 15, x1 - 15))
    assert np.abs(back[inner] - ramp[inner]).max() < 2e-3
    assert np.all(back[:, :x0] == 0) and np.all(back[:, x1:] == 0)


def test_to_original_refuses_maps_of_another_size():
    geometry = Geometry(10, 10, 0, 0, 10, 10, 8)
    with pytest.raises(ValueError, match=r"maps must have shape \(C, 8, 8\) or \(8, 8\).*got \(2, "
                                         r"4, 4\)"):
        to_original(np.zeros((2, 4, 4)), geometry)
