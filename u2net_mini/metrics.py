r"""
# Metrics: AUPR and Dice, pooled over the test set

The paper ranks models by the **area under the precision-recall curve** (AUPR) per lesion,
the metric of the IDRiD challenge, and reports the mean over the four lesions (Table 1).
Lesion pixels are rare (microaneurysms cover well under 0.1 % of a photograph), so a
metric that rewards true negatives, like the ROC area, would say little.

## Definitions used here

- **AUPR** is the *step-wise average precision*, the definition of scikit-learn's
  `average_precision_score`:

  $$\mathrm{AP} = \sum_n (R_n - R_{n-1})\, P_n ,\qquad R_0 = 0,$$

  where $n$ runs over the distinct scores $t_1 > t_2 > \dots$ and $P_n$, $R_n$ are the
  precision and recall of the prediction "score $\ge t_n$". Pixels with equal scores
  enter together (one step), so the value does not depend on how ties are ordered.
  Recall only grows at scores held by positives, so the sum is also
  $\mathrm{AP} = \sum_n \frac{\mathrm{pos}_n}{N_+} P_n$ with $\mathrm{pos}_n$ the
  positives scored exactly $t_n$ and $N_+$ all positives; `_average_precision` computes
  this form.
- **Dice** is $2\,TP / (2\,TP + FP + FN)$ of the prediction "score $\ge 0.5$".

Both are **pooled**: the counts run over all pixels of all test images together, not
averaged per image (the paper does not say which; pooling is what the IDRiD challenge
did, and it gives no undefined per-image values for images without a lesion).

## Edge cases (documented choices)

- **No positive pixel** for a lesion: recall is $0/0$, so AUPR is undefined and we return
  `nan` (scikit-learn returns 0.0 with a warning; 0.0 would read as "a very bad model").
  A mean over lesions leaves such a `nan` out (`lesion_mean`: the mean of the defined
  values, `nan` only when none is): one rule for the tables, `metrics.csv` and the
  choice of `best.pt`, which would otherwise never improve on a validation set without
  a lesion.
- **Dice with no positives and no positive predictions** is $0/0$; we return **1.0**: the
  prediction agrees with the target everywhere, and 1.0 is also the limit of the
  smoothed Dice $(2TP + s)/(2TP + FP + FN + s)$ that the loss uses.
- **An image without a mask file** for a lesion (IDRiD has no file when the lesion is
  absent) counts as **all negative** for that lesion by default, as the data set's
  authors intend. `LesionScores(missing="skip")` leaves such images out of that
  lesion's counts instead.

## Memory

The exact AUPR sorts every pixel: 27 test images at 512 × 512 are 7 M scores per lesion.
`PRAccumulator` keeps a fine histogram instead (65 536 bins by default: two int64 arrays,
1 MiB per lesion, independent of the number of images). Scores in the same bin are
treated as tied, which moves the AUPR by far less than 1e-3 (tested); the Dice counts are
kept exactly.
"""

import numpy as np

from .lesions import LESIONS


def lesion_mean(values):
    """The mean of the defined values among `values` (one per lesion): a `nan` (an AUPR
    without positive pixels) is left out; `nan` when no value is defined."""
    defined = [float(v) for v in values if not np.isnan(v)]
    return sum(defined) / len(defined) if defined else float("nan")


def _check_binary(y_true, name="y_true"):
    """`y_true` as a bool array; ValueError unless every value is 0 or 1."""
    y_true = np.asarray(y_true)
    if y_true.dtype == bool:
        return y_true
    if not (np.issubdtype(y_true.dtype, np.integer) or np.issubdtype(y_true.dtype, np.floating)):
        raise ValueError(f"{name} must be binary (bool or 0/1 numbers), got dtype {y_true.dtype}")
    bad = (y_true != 0) & (y_true != 1)  # same shape as y_true
    if bad.any():
        raise ValueError(
            f"{name} must be binary (0 or 1), got values such as {y_true[bad].flat[0]!r}"
        )
    return y_true == 1  # same shape, bool


def _check_scores(scores, name="scores"):
    """`scores` as a float array; ValueError on NaN or values outside [0, 1]."""
    scores = np.asarray(scores)
    if scores.dtype == bool:
        scores = scores.astype(np.float32)  # same shape
    if not (np.issubdtype(scores.dtype, np.integer) or np.issubdtype(scores.dtype, np.floating)):
        raise ValueError(f"{name} must be probabilities in [0, 1], got dtype {scores.dtype}")
    if scores.size == 0:
        return scores
    if np.isnan(scores).any():
        raise ValueError(f"{name} must be probabilities in [0, 1], got NaN")
    low, high = scores.min(), scores.max()
    if low < 0 or high > 1:
        raise ValueError(
            f"{name} must be probabilities in [0, 1] (apply the sigmoid to logits), "
            f"got values in [{low:g}, {high:g}]"
        )
    return scores


def _check_pair(y_true, scores, scores_name="scores"):
    y_true = _check_binary(y_true)
    scores = _check_scores(scores, scores_name)
    if y_true.shape != scores.shape:
        raise ValueError(
            f"y_true and {scores_name} must have the same shape, "
            f"got {y_true.shape} and {scores.shape}"
        )
    if y_true.size == 0:
        raise ValueError("y_true and scores are empty: there is no pixel to score")
    return y_true, scores


def _precision_recall(pos, neg):
    """Precision and recall at each score group, groups ordered from the highest score.

    `pos[n]`, `neg[n]` count the positive and negative pixels whose score is the n-th
    highest (a distinct score, or a histogram bin). Groups with no pixel are dropped.
    """
    keep = (pos + neg) > 0  # (G,)
    pos, neg = pos[keep], neg[keep]  # (G',)
    tp = np.cumsum(pos)  # (G',) TP_n: positives scored >= t_n
    fp = np.cumsum(neg)  # (G',) FP_n
    # $P_n = TP_n / (TP_n + FP_n)$; never 0/0 because every kept group holds a pixel
    precision = tp / (tp + fp)  # (G',)
    n_pos = tp[-1] if tp.size else 0
    # $R_n = TP_n / N_+$; nan when there is no positive (undefined recall)
    recall = tp / n_pos if n_pos > 0 else np.full(tp.shape, np.nan)  # (G',)
    return precision, recall, keep


def _average_precision(pos, neg):
    r"""$\mathrm{AP} = \sum_n \frac{pos_n}{N_+} P_n$ from counts per score group (highest first)."""
    pos = np.asarray(pos, dtype=np.int64)  # (G,)
    neg = np.asarray(neg, dtype=np.int64)  # (G,)
    n_pos = pos.sum()
    if n_pos == 0:
        return float("nan")
    precision, _, keep = _precision_recall(pos, neg)
    # $R_n - R_{n-1} = pos_n / N_+$: recall steps only where positives sit
    recall_step = pos[keep] / n_pos  # (G',)
    return float(np.sum(recall_step * precision))


def _group_by_score(y_true, scores):
    """Positives, negatives and the score of each distinct score, highest score first."""
    values, group = np.unique(scores.ravel(), return_inverse=True)  # (G,), (N,)
    pos = np.bincount(group[y_true.ravel()], minlength=values.size)  # (G,)
    neg = np.bincount(group[~y_true.ravel()], minlength=values.size)  # (G,)
    return pos[::-1], neg[::-1], values[::-1]  # (G,) each, descending score


def aupr(y_true, scores):
    r"""Average precision of `scores` for the binary target `y_true`, pooled over all pixels.

    $$\mathrm{AP} = \sum_n (R_n - R_{n-1})\, P_n$$

    with thresholds $t_n$ at the distinct values of `scores` ($P_n$, $R_n$: precision and
    recall of "score $\ge t_n$"). `y_true` (any shape, 0/1 or bool) and `scores` (same
    shape, probabilities in [0, 1]) may stack several images, e.g. (N, H, W).
    Returns `nan` when `y_true` has no positive pixel (recall undefined).
    """
    y_true, scores = _check_pair(y_true, scores)
    pos, neg, _ = _group_by_score(y_true, scores)
    return _average_precision(pos, neg)


def pr_curve(y_true, scores):
    """Exact precision-recall curve: `(precision, recall, thresholds)`, thresholds descending.

    One point per distinct score $t_n$ (recall grows along the arrays); unlike
    scikit-learn no extra point (P = 1, R = 0) is appended. Recall is `nan` when
    `y_true` has no positive pixel.
    """
    y_true, scores = _check_pair(y_true, scores)
    pos, neg, thresholds = _group_by_score(y_true, scores)
    precision, recall, _ = _precision_recall(pos, neg)
    return precision, recall, thresholds


def _dice_from_counts(tp, fp, fn):
    """$2TP / (2TP + FP + FN)$, and 1.0 when there are no positives and no predictions."""
    denominator = 2 * tp + fp + fn
    return 1.0 if denominator == 0 else 2 * tp / denominator


def dice_score(y_true, y_pred_or_scores, threshold=0.5):
    r"""Dice coefficient of the prediction "score $\ge$ threshold", pooled over all pixels.

    $$\mathrm{Dice} = \frac{2\,TP}{2\,TP + FP + FN}$$

    `y_pred_or_scores` may be a binary prediction (0/1 or bool) or probabilities in
    [0, 1]; a score equal to the threshold counts as positive. Returns 1.0 when there are
    no positive pixels and no positive predictions (0/0: the prediction is exactly right).
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    y_true, scores = _check_pair(y_true, y_pred_or_scores, "y_pred_or_scores")
    y_pred = scores >= threshold  # same shape, bool
    tp = int(np.count_nonzero(y_pred & y_true))
    fp = int(np.count_nonzero(y_pred & ~y_true))
    fn = int(np.count_nonzero(~y_pred & y_true))
    return _dice_from_counts(tp, fp, fn)


class PRAccumulator:
    """AUPR and Dice of one lesion, fed one image at a time, in memory independent of N.

    Keeps a histogram of the scores of positive and of negative pixels over `n_bins`
    equal bins of [0, 1] (bin k holds scores in [k / n_bins, (k + 1) / n_bins), the last
    bin also holds 1.0) and the exact TP, FP, FN counts at `threshold`. AUPR is the
    step-wise average precision with one threshold per bin (pixels in one bin count as
    tied); with the default 2**16 bins it stays within 1e-3 of `aupr` (tested).
    """

    def __init__(self, n_bins=2**16, threshold=0.5):
        if not isinstance(n_bins, (int, np.integer)) or n_bins < 2:
            raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}")
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.n_bins = int(n_bins)
        self.threshold = float(threshold)
        self.positive_counts = np.zeros(self.n_bins, dtype=np.int64)  # (n_bins,)
        self.negative_counts = np.zeros(self.n_bins, dtype=np.int64)  # (n_bins,)
        self.tp = self.fp = self.fn = 0
        self.n_images = 0

    @property
    def nbytes(self):
        """Bytes held by the histograms (the accumulator's whole memory, up to a few ints)."""
        return self.positive_counts.nbytes + self.negative_counts.nbytes

    def update(self, y, y_hat):
        """Add one image (or a stack): target `y` (0/1 or bool), probabilities `y_hat`."""
        y, y_hat = _check_pair(y, y_hat, "y_hat")
        # bin k = floor(score * n_bins); a score of exactly 1.0 joins the top bin
        bins = np.minimum((y_hat * self.n_bins).astype(np.int64), self.n_bins - 1)  # same shape
        self.positive_counts += np.bincount(bins[y], minlength=self.n_bins)  # (n_bins,)
        self.negative_counts += np.bincount(bins[~y], minlength=self.n_bins)  # (n_bins,)
        y_pred = y_hat >= self.threshold  # same shape, bool
        self.tp += int(np.count_nonzero(y_pred & y))
        self.fp += int(np.count_nonzero(y_pred & ~y))
        self.fn += int(np.count_nonzero(~y_pred & y))
        self.n_images += 1 if y.ndim <= 2 else int(np.prod(y.shape[:-2]))

    def aupr(self):
        """Step-wise average precision over everything added; `nan` with no positive pixel."""
        return _average_precision(self.positive_counts[::-1], self.negative_counts[::-1])

    def dice(self):
        """Pooled Dice at `threshold` (exact); 1.0 with no positives and no predictions."""
        return _dice_from_counts(self.tp, self.fp, self.fn)

    def pr_curve(self):
        """`(precision, recall, thresholds)` at the lower edge of each non-empty bin, descending."""
        pos, neg = self.positive_counts[::-1], self.negative_counts[::-1]  # (n_bins,) each
        precision, recall, keep = _precision_recall(pos, neg)
        lower_edges = np.arange(self.n_bins)[::-1] / self.n_bins  # (n_bins,)
        return precision, recall, lower_edges[keep]


class LesionScores:
    """Per-lesion AUPR and Dice over a test set, one `PRAccumulator` per lesion.

    `lesions` names the channels of `y` and `y_hat` in order (default: MA, HE, EX, SE).
    `missing` says what an image without a mask file for a lesion means (`present` False):
    `"negative"` (default) counts it as all negative for that lesion, `"skip"` leaves it out
    of that lesion's counts.
    """

    def __init__(self, lesions=LESIONS, n_bins=2**16, threshold=0.5, missing="negative"):
        lesions = tuple(lesions)
        unknown = [name for name in lesions if name not in LESIONS]
        if not lesions or unknown or len(set(lesions)) != len(lesions):
            raise ValueError(f"lesions must be distinct names from {LESIONS}, got {lesions}")
        if missing not in ("negative", "skip"):
            raise ValueError(f"missing must be 'negative' or 'skip', got {missing!r}")
        self.lesions = lesions
        self.missing = missing
        self.accumulators = {name: PRAccumulator(n_bins, threshold) for name in lesions}

    @property
    def nbytes(self):
        return sum(acc.nbytes for acc in self.accumulators.values())

    def update(self, y, y_hat, present=None):
        """Add one image (C, H, W) or a batch (B, C, H, W), C = len(lesions).

        `y`: masks (0/1 or bool), `y_hat`: probabilities, `present`: (C,) or (B, C) bool,
        which mask files existed (default: all). A lesion whose mask is not present must
        have an empty mask in `y` (the reader fills absent masks with zeros).
        """
        y = _check_binary(y, "y")
        y_hat = _check_scores(y_hat, "y_hat")
        n_channels = len(self.lesions)
        if y.ndim not in (3, 4) or y.shape[-3] != n_channels:
            raise ValueError(
                f"y must have shape (C, H, W) or (B, C, H, W) with C = {n_channels} "
                f"for lesions {self.lesions}, got {y.shape}"
            )
        if y_hat.shape != y.shape:
            raise ValueError(f"y_hat must have the shape of y {y.shape}, got {y_hat.shape}")
        if y.ndim == 3:
            y, y_hat = y[None], y_hat[None]  # (1, C, H, W)
        batch = y.shape[0]
        if present is None:
            present = np.ones((batch, n_channels), dtype=bool)  # (B, C)
        present = np.asarray(present)
        if present.dtype != bool:
            raise ValueError(f"present must be bool, got dtype {present.dtype}")
        if present.shape == (n_channels,):
            present = np.broadcast_to(present, (batch, n_channels))  # (B, C)
        if present.shape != (batch, n_channels):
            raise ValueError(
                f"present must have shape ({n_channels},) or ({batch}, {n_channels}), "
                f"got {present.shape}"
            )
        absent_but_marked = ~present & y.any(axis=(2, 3))  # (B, C)
        if absent_but_marked.any():
            b, c = np.argwhere(absent_but_marked)[0]
            raise ValueError(
                f"image {b}: the {self.lesions[c]} mask is marked not present "
                f"but y has {int(y[b, c].sum())} positive pixels"
            )
        for c, name in enumerate(self.lesions):
            for b in range(batch):
                if present[b, c] or self.missing == "negative":
                    self.accumulators[name].update(y[b, c], y_hat[b, c])

    def aupr(self):
        """{lesion: AUPR}; `nan` for a lesion with no positive pixel."""
        return {name: acc.aupr() for name, acc in self.accumulators.items()}

    def dice(self):
        """{lesion: Dice at the threshold}."""
        return {name: acc.dice() for name, acc in self.accumulators.items()}

    def pr_curves(self):
        """{lesion: (precision, recall)} for plotting."""
        return {name: acc.pr_curve()[:2] for name, acc in self.accumulators.items()}

    def results(self):
        """Everything a results table needs: per-lesion AUPR and Dice, their means, image counts.

        The means run over this object's lesions whose value is defined (`lesion_mean`).
        """
        aupr, dice = self.aupr(), self.dice()
        return {
            "lesions": self.lesions,
            "aupr": aupr,
            "dice": dice,
            "mean_aupr": lesion_mean(aupr.values()),
            "mean_dice": lesion_mean(dice.values()),
            "n_images": {name: acc.n_images for name, acc in self.accumulators.items()},
        }
