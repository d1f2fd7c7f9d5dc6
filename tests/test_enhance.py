"""Tests for data_prep.enhance: CLAHE, channel statistics, normalization."""

import cv2
import numpy as np
import pytest
from skimage import data

from data_prep.enhance import channel_stats, clahe, normalize
from data_prep.fundus import fundus_mask, to_square
from data_prep.idrid import IDRiD
from data_prep.pipeline import prepare_example
from data_prep.shipped import idrid_root


@pytest.fixture(scope="module")
def idrid_square():
    example = prepare_example(IDRiD(idrid_root(), "test")[0]["image"], None, size=256)
    return example.image, example.disc  # (256, 256, 3), (256, 256)


@pytest.fixture(scope="module")
def retina_square():
    image = data.retina()
    return to_square(image, 256), to_square(fundus_mask(image).astype(np.uint8), 256) > 0


def local_contrast(lightness, region):
    """Std of the lightness minus its 15 x 15 mean: the detail CLAHE should bring out."""
    lightness = lightness.astype(np.float32)  # (H, W)
    detail = lightness - cv2.blur(lightness, (15, 15))  # (H, W)
    return detail[region].std()


@pytest.mark.parametrize("which", ["idrid_square", "retina_square"])
def test_clahe_raises_the_local_contrast_of_the_retina(which, request):
    image, disc = request.getfixturevalue(which)
    # (H, W) away from the rim
    inner = cv2.erode(disc.astype(np.uint8), np.ones((21, 21), np.uint8)) > 0
    before = local_contrast(cv2.cvtColor(image, cv2.COLOR_RGB2LAB)[..., 0], inner)
    after = local_contrast(cv2.cvtColor(clahe(image), cv2.COLOR_RGB2LAB)[..., 0], inner)
    assert after > 1.5 * before  # docs/preprocessing.md: about 2 times on both photographs


def test_clahe_on_lab_keeps_the_hues(idrid_square):
    image, disc = idrid_square
    before = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(int)  # (H, W, 3)
    after = cv2.cvtColor(clahe(image), cv2.COLOR_RGB2LAB).astype(int)  # (H, W, 3)
    # a and b (the hue) change only by rounding and the RGB gamut; L changes a lot
    assert np.abs(after[..., 1:] - before[..., 1:])[disc].mean() < 2
    assert np.abs(after[..., 0] - before[..., 0])[disc].mean() > 5


def test_clahe_on_green_changes_only_green(retina_square):
    image, _ = retina_square
    out = clahe(image, channel="green")
    assert np.array_equal(out[..., [0, 2]], image[..., [0, 2]])
    assert not np.array_equal(out[..., 1], image[..., 1])


def test_clahe_keeps_a_flat_image_flat():
    # every tile holds one grey level, so every pixel maps to the same new level
    flat = np.full((64, 64, 3), 120, dtype=np.uint8)
    for channel in ("lab", "green"):
        out = clahe(flat, channel=channel)
        assert out.shape == flat.shape and out.dtype == np.uint8
        assert np.ptp(out.reshape(-1, 3), axis=0).max() == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"clip_limit": 0}, "clip_limit must be a positive number, got 0"),
        ({"clip_limit": float("nan")}, "clip_limit must be a positive number"),
        ({"tile_grid": (8,)}, r"tile_grid must be two positive integers \(rows, cols\), got "
                              r"\(8,\)"),
        ({"tile_grid": (0, 8)}, "tile_grid must be two positive integers"),
        ({"channel": "red"}, r"channel must be one of \('lab', 'green'\), got 'red'"),
    ],
)
def test_clahe_refuses_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        clahe(np.zeros((8, 8, 3), np.uint8), **kwargs)


def test_clahe_refuses_a_grey_image():
    with pytest.raises(ValueError, match=r"\(H, W, 3\) RGB array, got shape \(8, 8\)"):
        clahe(np.zeros((8, 8), np.uint8))


def test_channel_stats_by_hand():
    first = np.array([[[0, 0, 0], [255, 255, 255]]], dtype=np.uint8)  # (1, 2, 3)
    second = np.array([[[255, 0, 51]]], dtype=np.uint8)  # (1, 1, 3), 51 / 255 = 0.2
    mean, std = channel_stats([first, second])
    # R: 0, 1, 1 -> mean 2/3; E[x^2] = 2/3; var = 2/3 - 4/9 = 2/9
    # G: 0, 1, 0 -> mean 1/3; E[x^2] = 1/3; var = 1/3 - 1/9 = 2/9
    # B: 0, 1, .2 -> mean .4; E[x^2] = 1.04/3 = .346667; var = .346667 - .16 = .186667
    assert mean == pytest.approx([2 / 3, 1 / 3, 0.4])
    assert std == pytest.approx(np.sqrt([2 / 9, 2 / 9, 0.186667]), abs=1e-6)


def test_channel_stats_counts_only_pixels_inside_the_masks():
    first = np.array([[[0, 0, 0], [255, 255, 255]]], dtype=np.uint8)
    second = np.array([[[255, 0, 51]]], dtype=np.uint8)
    masks = [np.array([[False, True]]), np.array([[True]])]  # drop the black pixel
    mean, std = channel_stats([first, second], masks)
    # R: 1, 1 -> 1, 0; G: 1, 0 -> .5, .5; B: 1, .2 -> .6, .4
    assert mean == pytest.approx([1.0, 0.5, 0.6])
    assert std == pytest.approx([0.0, 0.5, 0.4], abs=1e-6)


def test_channel_stats_equals_numpy_on_pooled_pixels():
    rng = np.random.default_rng(0)
    sizes = [(5, 7), (3, 3), (8, 2)]
    images = [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in sizes]
    masks = [rng.random(image.shape[:2]) < 0.6 for image in images]
    pooled = np.concatenate([image[mask] for image, mask in zip(images, masks)]) / 255  # (n, 3)
    mean, std = channel_stats(images, masks)
    assert np.allclose(mean, pooled.mean(axis=0), atol=1e-12)
    assert np.allclose(std, pooled.std(axis=0), atol=1e-12)


@pytest.mark.parametrize(
    "images, masks, match",
    [
        ([], None, "needs at least one image, got none"),
        ([np.zeros((2, 2, 3), np.uint8)], [], "masks must be one per image: got 0 masks for 1 "
                                              "images"),
        ([np.zeros((2, 2, 3), np.uint8)], [np.ones((2, 3), bool)], r"masks\[0\] must be a bool "
                                                                   r"array of shape \(2, 2\)"),
        ([np.zeros((2, 2, 3), np.uint8)], [np.zeros((2, 2), bool)], "found no pixel inside the "
                                                                    "masks"),
        ([np.zeros((2, 2, 3), np.float64)], None, r"images\[0\] must be uint8"),
    ],
)
def test_channel_stats_refuses_bad_input(images, masks, match):
    with pytest.raises(ValueError, match=match):
        channel_stats(images, masks)


def test_normalize_by_hand():
    image = np.array([[[255, 0, 51]]], dtype=np.uint8)  # (1, 1, 3)
    x = normalize(image, mean=(0.5, 0.5, 0.2), std=(0.25, 0.5, 0.1))
    # R: (1 - .5) / .25 = 2; G: (0 - .5) / .5 = -1; B: (.2 - .2) / .1 = 0
    assert x.shape == (3, 1, 1) and x.dtype == np.float32
    assert x.ravel() == pytest.approx([2.0, -1.0, 0.0], abs=1e-6)


def test_normalized_data_has_zero_mean_and_unit_std(retina_square):
    image, disc = retina_square
    mean, std = channel_stats([image], [disc])
    x = normalize(image, mean, std)  # (3, H, W)
    inside = x[:, disc]  # (3, n)
    assert np.allclose(inside.mean(axis=1), 0, atol=1e-5)
    assert np.allclose(inside.std(axis=1), 1, atol=1e-4)


@pytest.mark.parametrize(
    "mean, std, match",
    [
        ((0.5, 0.5), (1, 1, 1), "mean and std must have 3 values each, got 2 and 3"),
        ((0.5, 0.5, 0.5), (1, 0, 1), r"std must be positive in every channel, got \[1.0, 0.0, "
                                     r"1.0\]"),
    ],
)
def test_normalize_refuses_bad_stats(mean, std, match):
    with pytest.raises(ValueError, match=match):
        normalize(np.zeros((2, 2, 3), np.uint8), mean, std)
