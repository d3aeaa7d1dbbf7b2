"""Per-class label quality scores (spec 3.8) and their aggregation per example (spec 7)."""

from __future__ import annotations

import numpy as np

from labelqa.core.arrays import Floats, Mask, Probabilities
from labelqa.core.batch import Batch
from labelqa.core.constants import SCORE_FLOOR, TEMPERATURE_FLOOR
from labelqa.core.thresholds import ConfidentThresholds

SCORING_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
AGGREGATORS = ("exponential_moving_average", "softmin")


def _renormalised(not_given: Probabilities, member: Probabilities, t_not: Probabilities,
                  t_member: Probabilities) -> tuple[Probabilities, Probabilities]:
    shift = np.maximum(t_not, t_member)
    column_not = not_given - t_not
    column_member = member - t_member
    column_not += shift
    column_member += shift
    total = column_not + column_member
    return column_not / total, column_member / total


def _side_score(given: Mask, not_member: Probabilities, member: Probabilities, method: str
                ) -> Probabilities:
    given_side = np.where(given, member, not_member)
    if method == "self_confidence":
        return given_side
    if method == "normalized_margin":
        other_side = np.where(given, not_member, member)
        return (given_side - other_side + 1) / 2
    raise ValueError(f"unknown scoring method {method!r}; expected one of {SCORING_METHODS}")


def adjusted_class_scores(batch: Batch, method: str, thresholds: ConfidentThresholds
                          ) -> Floats:
    """Scores on `adjust_pred_probs` probabilities: subtract each class's thresholds, shift by
    their max, renormalise.

    Evaluated in float32 for the classes whose thresholds cleanlab holds in float32, else in
    float64 (an absent side's threshold promotes the pair to float64).
    """
    double = _renormalised(batch.complement.astype(np.float64), batch.probs.astype(np.float64),
                           thresholds.not_given, thresholds.given)
    scores = _side_score(batch.given, *double, method).astype(np.float64)
    if thresholds.single_precision.any():
        single = _renormalised(batch.complement, batch.probs,
                               thresholds.not_given.astype(np.float32),
                               thresholds.given.astype(np.float32))
        single_scores = _side_score(batch.given, *single, method).astype(np.float64)
        scores = np.where(thresholds.single_precision, single_scores, scores)
    return scores


def _xlogx(values: Probabilities) -> Probabilities:
    """`x * log(x)` with `0 * log(0) = 0`, in the dtype of `values`.

    For float32, cleanlab's scipy kernel multiplies by libm's `logf`; the logarithm here is
    the float64 one rounded to float32 (correctly rounded, so it differs from `logf` by at
    most one float32 ulp, and only rarely).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        logarithm = np.log(values.astype(np.float64)).astype(values.dtype)
        return np.where(values == 0, values.dtype.type(0), values * logarithm)


def confidence_weighted_entropy(batch: Batch) -> Probabilities:
    """Entropy of `[1 - p, p]` (base 2) divided by the given side's probability, squashed."""
    self_confidence = np.clip(batch.given_side_prob, SCORE_FLOOR, None)
    entropy = -(_xlogx(batch.complement) + _xlogx(batch.probs)) / np.log(2)
    ratio = entropy / self_confidence
    scores: Probabilities = np.log(ratio + 1) / np.clip(ratio, SCORE_FLOOR, None)
    return scores


def class_scores(batch: Batch, method: str, adjust_pred_probs: bool,
                 thresholds: ConfidentThresholds | None) -> Floats:
    """(n, K) float64 per-class scores: how well each annotation decision is supported."""
    if method == "confidence_weighted_entropy":
        if adjust_pred_probs:
            raise ValueError("adjust_pred_probs is not supported for confidence_weighted_entropy")
        return confidence_weighted_entropy(batch).astype(np.float64)
    if adjust_pred_probs:
        if thresholds is None:
            raise ValueError("adjust_pred_probs needs the confident thresholds")
        return adjusted_class_scores(batch, method, thresholds)
    return _side_score(batch.given, batch.complement, batch.probs, method).astype(np.float64)


def exponential_moving_average(scores: Floats, alpha: float) -> Floats:
    """EMA over each row sorted descending, evaluated in cleanlab's order (bit-reproducible)."""
    ordered = np.sort(scores, axis=1)[:, ::-1]
    average = ordered[:, 0]
    for column in range(1, ordered.shape[1]):
        average = alpha * ordered[:, column] + (1 - alpha) * average
    return average


def softmin(scores: Floats, temperature: float) -> Floats:
    """Scores weighted by a softmax of `1 - score` (the worst classes weigh most)."""
    logits = (1 - scores) / max(temperature, TEMPERATURE_FLOOR)
    logits = logits - np.max(logits, axis=1, keepdims=True)
    weights = np.exp(logits)
    weights = weights / np.sum(weights, axis=1, keepdims=True)
    weighted: Floats = np.einsum("ij,ij->i", scores, weights)
    return weighted


def aggregate(scores: Floats, aggregator: str, alpha: float, temperature: float) -> Floats:
    if aggregator == "exponential_moving_average":
        return exponential_moving_average(scores, alpha)
    if aggregator == "softmin":
        return softmin(scores, temperature)
    raise ValueError(f"unknown aggregator {aggregator!r}; expected one of {AGGREGATORS}")
