"""Tests for data_prep.pipeline: mask resize rules, prepare_example, preprocess."""

import cv2
import numpy as np
import pytest
from skimage import data

from data_prep.enhance import clahe, normalize
from data_prep.fundus import (
    crop_to_disc,
    disc_box,
    fundus_mask,
    pad_to_square,
    to_original,
    to_square,
)
from data_prep.idrid import IDRiD
from data_prep.pipeline import (
    MASK_RULE,
    MASK_RULES,
    prepare_example,
    preprocess,
    resize_mask,
    to_input,
)
from data_prep.shipped import idrid_root


def lesion_count(mask):
    return cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1


@pytest.fixture(scope="module")
def sample_item():
    return IDRiD(idrid_root(), "train")[0]


def test_the_project_rule_is_preserve():
    assert MASK_RULE == "preserve"


@pytest.mark.parametrize(
    "rule, expected",
    [
        # one lesion pixel at (0, 0) of a 4 x 4 mask shrunk to 2 x 2: a = 1/4 at output (0, 0)
        ("nearest", [[0, 0], [0, 0]]),  # output (0, 0) samples input (1, 1), its centre
        ("majority", [[0, 0], [0, 0]]),  # 1/4 < 1/2
        ("any", [[1, 0], [0, 0]]),  # 1/4 > 0
        ("preserve", [[1, 0], [0, 0]]),  # lost by majority, so it gets its one pixel back
    ],
)
def test_a_lone_pixel_under_each_rule(rule, expected):
    mask = np.zeros((4, 4), dtype=bool)
    mask[0, 0] = True
    assert np.array_equal(resize_mask(mask, (2, 2), rule), np.array(expected, dtype=bool))


@pytest.mark.parametrize(
    "rule, expected",
    [
        # a 3 x 3 lesion at rows 0..2, columns 0..2, shrunk from 4 x 4 to 2 x 2:
        # a = [[4/4, 2/4], [2/4, 1/4]] = [[1, .5], [.5, .25]]
        ("majority", [[1, 1], [1, 0]]),  # a >= .5
        ("any", [[1, 1], [1, 1]]),  # a > 0: the lesion swells
        ("preserve", [[1, 1], [1, 0]]),  # nothing lost, so the same as majority
        ("nearest", [[1, 0], [0, 0]]),  # samples input (1, 1), (1, 3), (3, 1), (3, 3)
    ],
)
def test_a_large_lesion_under_each_rule(rule, expected):
    mask = np.zeros((4, 4), dtype=bool)
    mask[:3, :3] = True
    assert np.array_equal(resize_mask(mask, (2, 2), rule), np.array(expected, dtype=bool))


def test_preserve_puts_a_lost_lesion_where_it_covers_most():
    # 8 x 8 -> 2 x 2, each output pixel covers 4 x 4 = 16 input pixels. One lesion of 3
    # pixels: (3, 3) in output (0, 0) -> a = 1/16; (3, 4), (3, 5) in output (0, 1) -> 2/16
    mask = np.zeros((8, 8), dtype=bool)
    mask[3, 3:6] = True
    assert not resize_mask(mask, (2, 2), "majority").any()
    assert np.array_equal(resize_mask(mask, (2, 2), "preserve"),
                          np.array([[0, 1], [0, 0]], dtype=bool))


def test_preserve_restores_each_lost_lesion_once():
    # a big lesion (rows 0..3, columns 0..3 -> output (0, 0) fully) and two lone pixels
    mask = np.zeros((8, 8), dtype=bool)
    mask[:4, :4] = True
    mask[6, 6] = True  # output (1, 1), a = 1/16
    mask[1, 7] = True  # output (0, 1), a = 1/16
    expected = np.array([[1, 1], [0, 1]], dtype=bool)
    assert np.array_equal(resize_mask(mask, (2, 2), "preserve"), expected)


@pytest.mark.parametrize("rule", MASK_RULES)
def test_enlarging_is_nearest_for_every_rule(rule):
    mask = np.array([[1, 0], [0, 1]], dtype=bool)
    expected = np.kron(mask, np.ones((2, 2), dtype=bool))  # each pixel becomes a 2 x 2 block
    assert np.array_equal(resize_mask(mask, (4, 4), rule), expected)


def test_empty_mask_stays_empty():
    for rule in MASK_RULES:
        assert not resize_mask(np.zeros((9, 9), dtype=bool), (4, 4), rule).any()


@pytest.fixture(scope="module")
def ma_dots():
    """60 microaneurysm-sized discs, 5 to 17 px wide, far apart, on a 1708 px square: shrunk
    to 256 like an IDRiD disc (about 3416 px) to 512, a factor of about 6.7."""
    rng = np.random.default_rng(0)
    side = 1708
    mask = np.zeros((side, side), dtype=np.uint8)
    grid = np.stack(np.meshgrid(np.arange(6), np.arange(10)), axis=-1).reshape(-1, 2)  # (60, 2)
    centres = 100 + grid * 150 + rng.integers(-30, 31, size=grid.shape)  # (60, 2), >= 90 px apart
    for x, y in centres:
        cv2.circle(mask, (int(x), int(y)), int(rng.integers(2, 9)), 1, -1)  # radius 2..8
    return mask.astype(bool)


def test_ma_counts_under_each_rule(ma_dots):
    assert lesion_count(ma_dots) == 60
    true_area = ma_dots.sum() * (256 / ma_dots.shape[0]) ** 2
    out = {rule: resize_mask(ma_dots, (256, 256), rule) for rule in MASK_RULES}
    counts = {rule: lesion_count(m) for rule, m in out.items()}
    assert counts["majority"] < 60 and counts["nearest"] < 60  # they lose microaneurysms
    assert counts["any"] == counts["preserve"] == 60  # these keep all of them ...
    assert out["any"].sum() > 2 * true_area  # ... but "any" more than doubles their area
    assert 0.7 * true_area < out["preserve"].sum() < 1.3 * true_area


def kept_lesions(source, out):
    """Labels of the source lesions with a pixel whose centre falls on a set output pixel."""
    _, labels = cv2.connectedComponents(source.astype(np.uint8), connectivity=8)  # (S, S)
    ys, xs = np.nonzero(source)  # (N,)
    rows = ((ys + 0.5) * out.shape[0] / source.shape[0]).astype(int)  # (N,)
    cols = ((xs + 0.5) * out.shape[1] / source.shape[1]).astype(int)  # (N,)
    return set(np.unique(labels[ys, xs][out[rows, cols]]).tolist())


def test_preserve_keeps_every_real_exudate(sample_item):
    image, ex = sample_item["image"], sample_item["masks"][2]
    x0, y0, x1, y1 = disc_box(fundus_mask(image))
    square = pad_to_square(ex[y0:y1, x0:x1])  # (S, S)
    n_lesions = lesion_count(square)
    majority = resize_mask(square, (128, 128), "majority")
    preserve = resize_mask(square, (128, 128), "preserve")
    assert np.all(preserve >= majority)  # it only adds pixels
    assert kept_lesions(square, preserve) == set(range(1, n_lesions + 1))
    lost_by_majority = n_lesions - len(kept_lesions(square, majority))
    assert lost_by_majority > 0  # at 128 px some exudates do vanish under "majority"
    assert (preserve & ~majority).sum() <= lost_by_majority  # one pixel per lost lesion at most


@pytest.mark.parametrize(
    "mask, shape, rule, match",
    [
        (np.zeros((4, 4), np.uint8), (2, 2), "preserve",
         r"mask must be an \(H, W\) bool array, got uint8"),
        (np.zeros((2, 4, 4), bool), (2, 2), "preserve", r"got bool \(2, 4, 4\)"),
        (np.zeros((4, 4), bool), (2, 2), "area", "rule must be one of"),
        (np.zeros((4, 4), bool), (0, 2), "any", "shape must be two positive integers"),
    ],
)
def test_resize_mask_refuses_bad_input(mask, shape, rule, match):
    with pytest.raises(ValueError, match=match):
        resize_mask(mask, shape, rule)


def test_prepare_example_on_a_real_photograph(sample_item):
    image, masks = sample_item["image"], sample_item["masks"]
    example = prepare_example(image, masks, size=256)
    assert example.image.shape == (256, 256, 3) and example.image.dtype == np.uint8
    assert example.masks.shape == (4, 256, 256) and example.masks.dtype == bool
    assert example.disc.shape == (256, 256) and example.disc.dtype == bool
    assert example.geometry.box == crop_to_disc(image)[1] and example.geometry.size == 256
    assert np.array_equal(example.image, to_square(crop_to_disc(image)[0], 256))
    # an absent lesion (IDRiD_01 has no SE) stays empty; the large areas (HE, EX) scale with
    # (256 / side)^2 within 10 %; "preserve" keeps every microaneurysm (a few neighbours merge)
    assert not example.masks[3].any()
    scale = (256 / example.geometry.side) ** 2
    for channel in (1, 2):
        assert example.masks[channel].sum() == pytest.approx(masks[channel].sum() * scale, rel=0.1)
    assert 0.8 * lesion_count(masks[0]) <= lesion_count(example.masks[0]) <= lesion_count(masks[0])
    # lesions lie on the retina; the disc fills the middle, not the padded rows
    assert not (example.masks.any(axis=0) & ~example.disc).any()
    top_rows = example.geometry.pad[0] * 256 // example.geometry.side  # black rows, at 256 px
    assert example.disc[128, 128] and top_rows > 10 and not example.disc[: top_rows - 1].any()


def test_prepare_example_without_masks(sample_item):
    example = prepare_example(sample_item["image"], None, size=64)
    assert example.masks is None and example.image.shape == (64, 64, 3)


@pytest.mark.parametrize(
    "masks, kwargs, match",
    [
        (np.zeros((4, 10, 10), bool), {}, r"masks must be a \(C, 712, 1072\) bool array like the "
                                          r"image, got bool \(4, 10, 10\)"),
        (np.zeros((4, 712, 1072), np.uint8), {}, "got uint8"),
        (None, {"mask_rule": "biggest"}, "mask_rule must be one of"),
        (None, {"size": 0}, "size must be a positive int, got"),
    ],
)
def test_prepare_example_refuses_bad_input(sample_item, masks, kwargs, match):
    with pytest.raises(ValueError, match=match):
        prepare_example(sample_item["image"], masks, **kwargs)


def test_preprocess_chains_the_steps(sample_item):
    image = sample_item["image"]
    mean, std = (0.5, 0.3, 0.2), (0.2, 0.1, 0.05)
    x, geometry = preprocess(image, 128, mean, std)
    assert x.shape == (3, 128, 128) and x.dtype == np.float32
    by_hand = normalize(clahe(to_square(crop_to_disc(image)[0], 128)), mean, std)  # (3, 128, 128)
    assert np.array_equal(x, by_hand)
    assert (geometry.height, geometry.width) == image.shape[:2]


def test_preprocess_without_stats_scales_to_unit_range(sample_item):
    x, _ = preprocess(sample_item["image"], 64, clahe=False)
    square = to_square(crop_to_disc(sample_item["image"])[0], 64)  # (64, 64, 3)
    assert np.allclose(x, square.transpose(2, 0, 1) / 255, atol=1e-7)


def test_preprocess_and_back_find_the_disc_again():
    image = data.retina()[::2, ::2]  # (706, 706, 3)
    _, geometry = preprocess(image, 128)
    disc = prepare_example(image, None, 128).disc  # (128, 128)
    back = to_original(disc.astype(np.float32), geometry) > 0.5  # (706, 706)
    truth = fundus_mask(image)
    assert (back & truth).sum() / (back | truth).sum() > 0.98  # intersection over union


def test_to_input_needs_both_stats_or_neither():
    with pytest.raises(ValueError, match="give both mean and std, or neither"):
        to_input(np.zeros((4, 4, 3), np.uint8), mean=(0.5, 0.5, 0.5))
