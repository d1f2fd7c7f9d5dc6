"""Tests for data_prep.augment: the paper's random affine augmentation."""

import cv2
import numpy as np
import pytest

from data_prep.augment import affine_matrix, apply_affine, augment, random_affine, random_params


@pytest.fixture
def image_and_masks():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(9, 9, 3), dtype=np.uint8)  # (9, 9, 3)
    masks = rng.random((2, 9, 9)) < 0.3  # (2, 9, 9)
    return image, masks


def test_zero_parameters_give_the_identity(image_and_masks):
    matrix = affine_matrix(9)
    assert np.array_equal(matrix, [[1, 0, 0], [0, 1, 0]])
    image, masks = image_and_masks
    warped, warped_masks = apply_affine(image, masks, matrix)
    assert np.array_equal(warped, image) and np.array_equal(warped_masks, masks)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"hflip": True}, lambda a: a[..., ::-1, :]),  # x -> 8 - x
        ({"vflip": True}, lambda a: a[..., ::-1, :, :]),  # y -> 8 - y
        ({"angle": 90.0}, lambda a: np.rot90(a, axes=(-3, -2))),  # counter-clockwise on screen
        # -90 + 180
        ({"angle": -90.0, "hflip": True, "vflip": True}, lambda a: np.rot90(a, axes=(-3, -2))),
    ],
)
def test_flips_and_quarter_turns_move_pixels_exactly(image_and_masks, kwargs, expected):
    image, masks = image_and_masks
    warped, warped_masks = apply_affine(image, masks, affine_matrix(9, **kwargs))
    assert np.array_equal(warped, expected(image))
    assert np.array_equal(warped_masks, expected(masks[..., None])[..., 0])


def test_matrix_maps_points_by_hand():
    # size 5, centre c = (2, 2). Scale 2: p = (3, 2) -> 2 * (1, 0) + c = (4, 2)
    assert affine_matrix(5, scale=2.0) @ [3, 2, 1] == pytest.approx([4, 2])
    # rotation by 90 degrees: right of centre (3, 2) -> above centre (2, 1)
    assert affine_matrix(5, angle=90.0) @ [3, 2, 1] == pytest.approx([2, 1])
    # a shift t moves every point by t
    assert affine_matrix(5, shift=(1.5, -2.0)) @ [0, 4, 1] == pytest.approx([1.5, 2.0])
    # the centre stays put under rotation, scale and flips
    centre = affine_matrix(5, angle=33.0, scale=0.7, hflip=True, vflip=True) @ [2, 2, 1]
    assert centre == pytest.approx([2, 2])


def test_matrix_determinant_is_the_squared_scale_with_the_flips_sign():
    rng = np.random.default_rng(1)
    for _ in range(50):
        params = random_params(rng, 64)
        linear = affine_matrix(64, **params)[:, :2]  # (2, 2)
        sign = (-1) ** (params["hflip"] + params["vflip"])
        assert np.linalg.det(linear) == pytest.approx(sign * params["scale"] ** 2)


def test_random_params_follow_the_paper():
    rng = np.random.default_rng(2)
    size = 100
    draws = [random_params(rng, size) for _ in range(2000)]
    angles = np.array([d["angle"] for d in draws])  # (2000,)
    scales = np.array([d["scale"] for d in draws])
    shifts = np.array([d["shift"] for d in draws])  # (2000, 2)
    assert -90 <= angles.min() < -85 and 85 < angles.max() <= 90  # U[-90, 90] degrees
    assert 0.6 <= scales.min() < 0.62 and 1.38 < scales.max() <= 1.4  # U[0.6, 1.4]
    assert np.all(np.abs(shifts) <= 0.1 * size) and np.abs(shifts).max() > 9.5  # U[-0.1 s, 0.1 s]
    for flip in ("hflip", "vflip"):  # p = 0.5: 1000 +- 3 * sqrt(500) = 1000 +- 67
        assert 933 < sum(d[flip] for d in draws) < 1067


def test_the_same_seed_gives_the_same_transform():
    first = random_affine(np.random.default_rng(7), 64)
    again = random_affine(np.random.default_rng(7), 64)
    other = random_affine(np.random.default_rng(8), 64)
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_a_marker_lands_on_the_same_pixel_in_image_and_mask():
    size = 96
    image = np.zeros((size, size, 3), dtype=np.uint8)
    mask = np.zeros((1, size, size), dtype=np.uint8)
    point = (60, 40)  # (x, y)
    cv2.circle(image, point, 4, (255, 255, 255), -1)
    cv2.circle(mask[0], point, 4, 1, -1)
    rng = np.random.default_rng(3)
    for _ in range(20):
        matrix = random_affine(rng, size)
        warped, warped_mask = apply_affine(image, mask.astype(bool), matrix)
        expected = matrix @ [*point, 1]  # (2,) where the marker's centre must go
        weights = warped[..., 0].astype(float)  # (H, W)
        ys, xs = np.mgrid[:size, :size]
        image_centre = np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()
        mask_ys, mask_xs = np.nonzero(warped_mask[0])
        mask_centre = np.array([mask_xs.mean(), mask_ys.mean()])
        assert np.abs(image_centre - expected).max() < 0.5
        assert np.abs(mask_centre - expected).max() < 1.0
        assert warped_mask.dtype == bool


def test_what_comes_in_from_outside_is_black():
    image = np.full((32, 32, 3), 200, dtype=np.uint8)
    masks = np.ones((1, 32, 32), dtype=bool)
    warped, warped_masks = apply_affine(image, masks, affine_matrix(32, scale=0.6))
    assert np.all(warped[0, 0] == 0) and not warped_masks[0, 0, 0]  # the corner
    assert np.all(warped[16, 16] == 200) and warped_masks[0, 16, 16]  # the centre


def test_augment_is_reproducible_and_image_only_works():
    rng_image = np.random.default_rng(0).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    first = augment(rng_image, None, np.random.default_rng(5))
    again = augment(rng_image, None, np.random.default_rng(5))
    assert first[1] is None and np.array_equal(first[0], again[0])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: augment(np.zeros((8, 6, 3)), None, np.random.default_rng(0)),
         r"image must be square.*got shape \(8, 6, 3\)"),
        (lambda: random_affine(np.random.RandomState(0), 8),
         "rng must be a numpy.random.Generator, got RandomState"),
        (lambda: apply_affine(np.zeros((8, 8, 3)), np.zeros((1, 8, 8), np.uint8), affine_matrix(8)),
         r"masks must be a \(C, 8, 8\) bool array"),
        (lambda: apply_affine(np.zeros((8, 8, 3)), np.zeros((1, 4, 4), bool), affine_matrix(8)),
         r"got bool \(1, 4, 4\)"),
        (lambda: apply_affine(np.zeros((8, 8, 3)), None, np.eye(3)), r"matrix must have shape \(2, "
                                                                     r"3\), got \(3, 3\)"),
        (lambda: apply_affine(np.zeros(8), None, affine_matrix(8)), r"image must be \(H, W, 3\) or "
                                                                    r"\(H, W\)"),
        (lambda: affine_matrix(8, scale=0.0), "scale must be positive, got 0.0"),
        (lambda: affine_matrix(0), "size must be a positive number of pixels, got 0"),
    ],
)
def test_bad_input_is_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()
