"""AUPR and Dice: hand computations, scikit-learn as an oracle, the bounded accumulator."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from u2net_mini.metrics import LesionScores, PRAccumulator, aupr, dice_score, lesion_mean, pr_curve


def lesion_like(rng, shape, rate=0.02, decimals=None):
    """Rare positives scored high, negatives scored low, overlapping; optional rounding for ties."""
    y = rng.random(shape) < rate  # shape, bool
    y_hat = np.where(y, rng.beta(4, 2, shape), rng.beta(1, 5, shape))  # shape
    if decimals is not None:
        y_hat = np.round(y_hat, decimals)  # shape, many ties
    return y, y_hat


# ---------------------------------------------------------------- hand computations


@pytest.mark.parametrize(
    "y, y_hat, expected",
    [
        # distinct scores 0.9 > 0.8 > 0.3; 0.8 holds a positive and a negative (a tie):
        # t=0.9: TP=1 FP=0 P=1   R=1/2 -> step 1/2 * 1
        # t=0.8: TP=2 FP=1 P=2/3 R=1   -> step 1/2 * 2/3
        # t=0.3: TP=2 FP=2 P=1/2 R=1   -> step 0
        # AP = 1/2 + 1/3 = 5/6
        ([1, 0, 1, 0], [0.9, 0.8, 0.8, 0.3], 5 / 6),
        # three pixels tied at 0.5 (two positive): one step, TP=2 FP=1 P=2/3 R=1 -> AP = 2/3.
        # Ordering the tie positives-first would give 1, negative-first 1/2*1/2 + 1/2*2/3 = 7/12.
        ([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.2], 2 / 3),
        # positives ranked 1st and 3rd: P=1 at R=1/2, P=2/3 at R=1 -> AP = 1/2 + 1/3 = 5/6
        ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 5 / 6),
        # perfect ranking -> AP = 1
        ([0, 1, 0, 1], [0.2, 0.7, 0.1, 0.9], 1.0),
    ],
)
def test_aupr_by_hand_on_four_pixels(y, y_hat, expected):
    assert aupr(np.array(y), np.array(y_hat)) == pytest.approx(expected, abs=1e-12)


def test_pr_curve_by_hand():
    # the first case above: thresholds 0.9, 0.8, 0.3; P = 1, 2/3, 1/2; R = 1/2, 1, 1
    precision, recall, thresholds = pr_curve(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.8, 0.3]))
    np.testing.assert_allclose(thresholds, [0.9, 0.8, 0.3])
    np.testing.assert_allclose(precision, [1, 2 / 3, 1 / 2])
    np.testing.assert_allclose(recall, [1 / 2, 1, 1])


def test_dice_by_hand():
    # prediction at >= 0.5: [1, 0, 1, 0] (0.5 counts as positive); y = [1, 1, 0, 0]
    # TP = 1, FP = 1 (pixel 3), FN = 1 (pixel 2) -> 2 / (2 + 1 + 1) = 0.5
    assert dice_score(np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.5, 0.1])) == pytest.approx(0.5)
    # the same target against a binary prediction [1, 1, 1, 0]: TP 2, FP 1 -> 4 / 5
    assert dice_score(np.array([[1, 1], [0, 0]]), np.array([[1, 1], [1, 0]])) == pytest.approx(0.8)
    # threshold 0.95: nothing predicted, TP = 0, FN = 2 -> 0
    assert dice_score(np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.5, 0.1]), threshold=0.95) == 0.0


# ---------------------------------------------------------------- oracle and identities


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("decimals", [None, 2, 1])
def test_aupr_matches_sklearn(seed, decimals):
    rng = np.random.default_rng(seed)
    y, y_hat = lesion_like(rng, (3, 20, 30), rate=0.1, decimals=decimals)
    expected = average_precision_score(y.ravel(), y_hat.ravel())
    assert aupr(y, y_hat) == pytest.approx(expected, abs=1e-12)


def test_aupr_is_pooled_over_images_not_averaged():
    rng = np.random.default_rng(1)
    y, y_hat = lesion_like(rng, (2, 16, 16), rate=0.2, decimals=2)
    pooled = average_precision_score(y.ravel(), y_hat.ravel())
    per_image = [average_precision_score(y[i].ravel(), y_hat[i].ravel()) for i in range(2)]
    per_image_mean = np.mean(per_image)
    assert aupr(y, y_hat) == pytest.approx(pooled, abs=1e-12)
    assert abs(pooled - per_image_mean) > 1e-3  # so the test tells the two apart


def test_aupr_ignores_the_order_of_tied_pixels():
    rng = np.random.default_rng(2)
    y, y_hat = lesion_like(rng, (500,), rate=0.3, decimals=1)
    order = rng.permutation(500)
    assert aupr(y[order], y_hat[order]) == aupr(y, y_hat)


def test_dice_is_invariant_to_dtype_and_shape():
    rng = np.random.default_rng(3)
    y, y_hat = lesion_like(rng, (4, 8, 8), rate=0.3)
    expected = dice_score(y, y_hat)
    assert dice_score(y.astype(np.float32).ravel(), y_hat.ravel()) == expected
    assert dice_score(y, y_hat >= 0.5) == expected


def test_edge_cases_no_positive_and_all_positive():
    scores = np.array([0.2, 0.6, 0.9])
    # no positive pixel: recall 0/0 -> AUPR undefined, nan (documented)
    assert np.isnan(aupr(np.zeros(3), scores))
    # all positive: precision 1 at every threshold -> AUPR 1
    assert aupr(np.ones(3), scores) == 1.0
    # Dice with no positives and no predictions: 0/0 -> 1.0 (documented)
    assert dice_score(np.zeros(3), np.zeros(3)) == 1.0
    # no positives but two predicted (0.6, 0.9) -> 0 / (0 + 2 + 0) = 0
    assert dice_score(np.zeros(3), scores) == 0.0
    # all positive, scores >= 0.5 for two of three: 2*2 / (4 + 0 + 1) = 0.8
    assert dice_score(np.ones(3), scores) == pytest.approx(0.8)


@pytest.mark.parametrize(
    "y, y_hat, match",
    [
        (np.zeros(4), np.zeros(5), "same shape"),
        (np.array([0, 2, 1, 0]), np.zeros(4), "binary"),
        (np.array([0, 0.5, 1, 0]), np.zeros(4), "binary"),
        (np.array(["a", "b"]), np.zeros(2), "binary"),
        (np.zeros(4), np.array([0, 0.5, 1.2, 0]), r"\[0, 1\].*sigmoid"),
        (np.zeros(4), np.array([0, -0.1, 1, 0]), r"\[0, 1\]"),
        (np.zeros(4), np.array([0, np.nan, 1, 0]), "NaN"),
        (np.zeros(0), np.zeros(0), "empty"),
    ],
)
def test_bad_input(y, y_hat, match):
    with pytest.raises(ValueError, match=match):
        aupr(y, y_hat)
    with pytest.raises(ValueError, match=match):
        dice_score(y, y_hat)
    with pytest.raises(ValueError, match=match):
        PRAccumulator().update(y, y_hat)


def test_bad_threshold_and_bins():
    with pytest.raises(ValueError, match="threshold"):
        dice_score(np.zeros(2), np.zeros(2), threshold=0)
    with pytest.raises(ValueError, match="n_bins"):
        PRAccumulator(n_bins=1)
    with pytest.raises(ValueError, match="threshold"):
        PRAccumulator(threshold=1.5)


# ---------------------------------------------------------------- bounded accumulator


def test_accumulator_stays_within_1e3_of_exact():
    rng = np.random.default_rng(4)
    y, y_hat = lesion_like(rng, (6, 96, 96), rate=0.01)
    # half of the images sharpened towards 0 and 1 like a confident model: many scores
    # crowd into the top and bottom bins, the hard case for a histogram
    # (3, 96, 96)
    y_hat[:3] = y_hat[:3] ** 4 * (1 - y_hat[:3]) + (1 - (1 - y_hat[:3]) ** 4) * y_hat[:3]
    y_hat = y_hat.astype(np.float32)  # (6, 96, 96)
    accumulator = PRAccumulator()
    for image_y, image_y_hat in zip(y, y_hat):
        accumulator.update(image_y, image_y_hat)
    exact = aupr(y, y_hat)
    assert 0.05 < exact < 0.95  # a case where the value is informative
    assert abs(accumulator.aupr() - exact) < 1e-3
    assert accumulator.dice() == dice_score(y, y_hat)  # the Dice counts are exact
    assert accumulator.n_images == 6


def test_accumulator_equals_exact_when_scores_sit_on_bin_edges():
    # scores k / 8 (k = 0..7) with 8 bins: each bin holds one distinct score, nothing merges
    rng = np.random.default_rng(5)
    y = rng.random(300) < 0.3  # (300,)
    y_hat = rng.integers(0, 8, 300) / 8  # (300,)
    accumulator = PRAccumulator(n_bins=8)
    accumulator.update(y, y_hat)
    assert accumulator.aupr() == pytest.approx(aupr(y, y_hat), abs=1e-12)
    for binned, exact in zip(accumulator.pr_curve(), pr_curve(y, y_hat)):
        np.testing.assert_allclose(binned, exact)


def test_accumulator_merges_a_bin_into_one_tie():
    # 1.0 and 0.875 share the top bin [7/8, 1] of 8 bins; exact: positive first -> AP = 1;
    # binned: one tie, TP = 1 FP = 1 -> P = 1/2 at R = 1 -> AP = 1/2
    y, y_hat = np.array([1, 0]), np.array([1.0, 0.875])
    accumulator = PRAccumulator(n_bins=8)
    accumulator.update(y, y_hat)
    assert aupr(y, y_hat) == 1.0
    assert accumulator.aupr() == 0.5


def footprint(value):
    """Bytes held in arrays by `value`, its attributes and containers, followed all the way down."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, dict):
        return sum(footprint(v) for v in value.values())
    if isinstance(value, (list, tuple, set)):
        return sum(footprint(v) for v in value)
    if hasattr(value, "__dict__"):
        return sum(footprint(v) for v in vars(value).values())
    return 0


def test_accumulator_memory_does_not_grow_with_images():
    scores = LesionScores()
    rng = np.random.default_rng(6)
    y, y_hat = lesion_like(rng, (2, 4, 64, 64))
    scores.update(y, y_hat)
    after_one_batch = footprint(scores)
    for _ in range(3):
        scores.update(y, y_hat)
    # 4 lesions x 2 histograms x 65536 bins x 8 bytes = 4 MiB, whatever the test set's size
    assert footprint(scores) == after_one_batch == scores.nbytes == 4 * 2 * 2**16 * 8


def test_lesion_scores_match_the_exact_metrics_per_lesion():
    rng = np.random.default_rng(7)
    y, y_hat = lesion_like(rng, (3, 4, 32, 32), rate=0.05)
    scores = LesionScores(n_bins=2**20)
    for image_y, image_y_hat in zip(y, y_hat):
        scores.update(image_y, image_y_hat)
    results = scores.results()
    for c, name in enumerate(("MA", "HE", "EX", "SE")):
        assert results["aupr"][name] == pytest.approx(aupr(y[:, c], y_hat[:, c]), abs=1e-4)
        assert results["dice"][name] == dice_score(y[:, c], y_hat[:, c])
    assert results["mean_aupr"] == pytest.approx(np.mean(list(results["aupr"].values())))
    assert results["n_images"] == {"MA": 3, "HE": 3, "EX": 3, "SE": 3}


def test_batch_update_equals_image_by_image():
    rng = np.random.default_rng(8)
    y, y_hat = lesion_like(rng, (3, 2, 16, 16), rate=0.1)
    one_by_one, batched = LesionScores(("EX", "SE")), LesionScores(("EX", "SE"))
    for image_y, image_y_hat in zip(y, y_hat):
        one_by_one.update(image_y, image_y_hat)
    batched.update(y, y_hat)
    assert one_by_one.results() == batched.results()


def test_missing_mask_counts_as_negative_or_is_skipped():
    # image 1 scores SE high without an SE mask file
    y = np.zeros((2, 1, 2, 2), dtype=bool)  # (B, C, H, W)
    y[0, 0, 0, 0] = True
    y_hat = np.zeros((2, 1, 2, 2))  # (B, C, H, W)
    y_hat[0, 0, 0, 0] = 0.9
    y_hat[1, 0, 0, 0] = 0.95
    present = np.array([[True], [False]])  # (B, C)
    as_negative, skipped = LesionScores(("SE",)), LesionScores(("SE",), missing="skip")
    as_negative.update(y, y_hat, present)
    skipped.update(y, y_hat, present)
    # as negative: 0.95 is a false positive ranked first, then the positive at 0.9:
    # P = 0 at R = 0, P = 1/2 at R = 1 -> AP = 1/2; Dice 2*1 / (2 + 1 + 0) = 2/3
    assert as_negative.aupr()["SE"] == pytest.approx(0.5)
    assert as_negative.dice()["SE"] == pytest.approx(2 / 3)
    # skipped: only image 0, a perfect ranking -> AP = 1, Dice = 1
    assert skipped.aupr()["SE"] == 1.0
    assert skipped.dice()["SE"] == 1.0
    assert skipped.results()["n_images"] == {"SE": 1}


def test_lesion_without_positives_is_left_out_of_the_mean():
    scores = LesionScores(("MA", "EX"))
    y = np.zeros((2, 2, 2), dtype=bool)  # (C, H, W)
    y[1, 0, 0] = True
    scores.update(y, np.full((2, 2, 2), 0.3))
    results = scores.results()
    assert np.isnan(results["aupr"]["MA"]) and results["aupr"]["EX"] == 0.25  # one tie of 4 pixels
    assert results["mean_aupr"] == 0.25  # MA's nan left out: 0.25 / 1
    # MA: no positives, none predicted -> 1; EX: 0 hits -> 0; (1 + 0) / 2
    assert results["mean_dice"] == 0.5
    assert np.isnan(lesion_mean([float("nan"), float("nan")]))
    assert lesion_mean([0.25, float("nan"), 0.5]) == 0.375  # (0.25 + 0.5) / 2


@pytest.mark.parametrize(
    "y_shape, present, match",
    [
        ((3, 4, 4), None, r"\(C, H, W\).*C = 4"),
        ((4, 4), None, r"\(C, H, W\)"),
        ((4, 4, 4), np.ones(3, dtype=bool), r"present must have shape \(4,\)"),
        ((4, 4, 4), np.ones(4), "present must be bool"),
        ((4, 4, 4), np.array([True, False, True, True]), "HE mask is marked not present"),
    ],
)
def test_lesion_scores_bad_input(y_shape, present, match):
    y = np.ones(y_shape, dtype=bool)
    with pytest.raises(ValueError, match=match):
        LesionScores().update(y, np.zeros(y_shape), present)


def test_lesion_scores_bad_construction():
    with pytest.raises(ValueError, match="lesions must be distinct names"):
        LesionScores(("MA", "XX"))
    with pytest.raises(ValueError, match="lesions must be distinct names"):
        LesionScores(("MA", "MA"))
    with pytest.raises(ValueError, match="missing must be"):
        LesionScores(missing="ignore")
    with pytest.raises(ValueError, match="y_hat must have the shape"):
        LesionScores(("MA",)).update(np.zeros((1, 2, 2)), np.zeros((1, 2, 3)))
