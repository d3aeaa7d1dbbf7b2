"""Label quality scores of multi-label examples: cleanlab 2.9's
`cleanlab.multilabel_classification.rank`, same names, parameters, defaults and returns.

Scores are computed in row chunks for all classes at once, in the predictions' dtype where
cleanlab computes in it (float32 stays float32), and returned as float64 as cleanlab does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from labelqa.core.matrix import MatrixRows, matrix_thresholds
from labelqa.core.scores import (
    AGGREGATORS,
    SCORING_METHODS,
    class_scores,
    exponential_moving_average,
    softmin,
)
from labelqa.multilabel_classification._audit import require_multilabel
from labelqa.multilabel_classification._inputs import inputs

#: cleanlab's default aggregator, read-only
DEFAULT_AGGREGATOR: Mapping[str, Any] = MappingProxyType(
    {"method": "exponential_moving_average", "alpha": 0.8})
Aggregate = Callable[[np.ndarray], np.ndarray]


def aggregator(aggregator_kwargs: Mapping[str, Any] | None, num_classes: int
               ) -> tuple[Aggregate, bool]:
    """The row-wise aggregation of `aggregator_kwargs` and whether it may run chunk by chunk
    (a user's callable gets the whole (N, K) matrix, as in cleanlab)."""
    kwargs = dict(aggregator_kwargs or DEFAULT_AGGREGATOR)
    if "method" not in kwargs:
        raise ValueError("aggregator_kwargs: needs a 'method' (exponential_moving_average, "
                         "softmin, or a callable f(scores, axis=1, **kwargs))")
    method = kwargs.pop("method")
    if callable(method):
        return (lambda scores: np.asarray(method(scores, axis=1, **kwargs))), False
    if method not in AGGREGATORS:
        raise ValueError(f"aggregator_kwargs: method {method!r} is not an aggregator; expected "
                         f"one of {', '.join(AGGREGATORS)} or a callable")
    allowed = {"exponential_moving_average": {"alpha"}, "softmin": {"temperature"}}[method]
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise TypeError(f"aggregator_kwargs: {method} got unexpected keyword(s) "
                        f"{', '.join(unknown)}; it takes {', '.join(sorted(allowed))}")
    if method == "softmin":
        temperature = float(kwargs.get("temperature", 0.1))
        return (lambda scores: softmin(scores, temperature)), True
    alpha = kwargs.get("alpha")
    alpha = 2 / (num_classes + 1) if alpha is None else float(alpha)
    if not 0 <= alpha <= 1:
        raise ValueError(f"aggregator_kwargs: alpha must be in [0, 1], got {alpha}")
    return (lambda scores: exponential_moving_average(scores, alpha)), True


def _check_method(probs: np.ndarray, method: str, adjust_pred_probs: bool) -> None:
    if method not in SCORING_METHODS:
        raise ValueError(f"method: {method!r} is not a scoring method; expected one of "
                         f"{', '.join(SCORING_METHODS)}")
    if adjust_pred_probs and method == "confidence_weighted_entropy":
        raise ValueError("adjust_pred_probs is not supported for confidence_weighted_entropy")
    if method == "confidence_weighted_entropy":
        above = probs > 1
        if above.any():
            row, column = np.argwhere(above)[0]
            raise ValueError(f"All probabilities are required to be in the interval [0, 1] "
                             f"for confidence_weighted_entropy: row {row}, class {column} is "
                             f"{probs[row, column].item()!r}")
        del above


def _class_score_chunks(given: np.ndarray, probs: np.ndarray, method: str,
                        adjust_pred_probs: bool) -> Iterator[tuple[slice, np.ndarray]]:
    """The (n, K) float64 per-class scores of each chunk of rows."""
    rows = MatrixRows(np.arange(len(given)), given, probs)
    thresholds = matrix_thresholds(rows)[0] if adjust_pred_probs else None
    for span, batch in rows.batches():
        yield span, class_scores(batch, method, adjust_pred_probs, thresholds)


def _per_class(given: np.ndarray, probs: np.ndarray, method: str, adjust_pred_probs: bool
               ) -> np.ndarray:
    per_class = np.empty(probs.shape, dtype=np.float64)
    for span, scores in _class_score_chunks(given, probs, method, adjust_pred_probs):
        per_class[span] = scores
    return per_class


def _scores(given: np.ndarray, probs: np.ndarray, method: str, adjust_pred_probs: bool,
            aggregate: Aggregate | None, chunked: bool = True) -> np.ndarray:
    """(N,) aggregated scores (EMA(0.8) when `aggregate` is None); a callable that is not
    `chunked` gets the whole (N, K) per-class matrix."""
    if aggregate is None:
        aggregate = lambda scores: exponential_moving_average(scores, 0.8)  # noqa: E731
    if not chunked:
        return np.asarray(aggregate(_per_class(given, probs, method, adjust_pred_probs)),
                          dtype=np.float64)
    result = np.empty(len(given), dtype=np.float64)
    for span, scores in _class_score_chunks(given, probs, method, adjust_pred_probs):
        result[span] = aggregate(scores)
    return result


def get_label_quality_scores(labels: Any, pred_probs: Any, *, method: str = "self_confidence",
                             adjust_pred_probs: bool = False,
                             aggregator_kwargs: Mapping[str, Any] = DEFAULT_AGGREGATOR
                             ) -> np.ndarray:
    """(N,) float64 label quality score per example, lower = more likely mislabeled.

    Per class, the score of the annotation decision (`method`: `self_confidence`,
    `normalized_margin` or `confidence_weighted_entropy`; `adjust_pred_probs` subtracts the
    class's confident thresholds first), aggregated per example by `aggregator_kwargs`:
    `{"method": "exponential_moving_average", "alpha": 0.8}` (the default; the worst class
    weighs most), `{"method": "softmin", "temperature": 0.1}`, or a callable
    `f(scores, axis=1, **kwargs)`.
    """
    given, probs = inputs(labels, pred_probs)
    require_multilabel(given)
    _check_method(probs, method, adjust_pred_probs)
    aggregate, chunked = aggregator(aggregator_kwargs, probs.shape[1])
    return _scores(given, probs, method, adjust_pred_probs, aggregate, chunked)


def get_label_quality_scores_per_class(labels: Any, pred_probs: Any, *,
                                       method: str = "self_confidence",
                                       adjust_pred_probs: bool = False) -> np.ndarray:
    """(N, K) float64: the score of each example's annotation decision for each class."""
    given, probs = inputs(labels, pred_probs)
    require_multilabel(given)
    _check_method(probs, method, adjust_pred_probs)
    return _per_class(given, probs, method, adjust_pred_probs)


__all__ = ["get_label_quality_scores", "get_label_quality_scores_per_class"]
