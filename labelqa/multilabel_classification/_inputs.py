"""The arguments of the notebook API, checked and converted once: `labels` as cleanlab takes
them (a list of lists of class indices) or as an (N, K) 0/1 or boolean matrix, `pred_probs`
as an (N, K) matrix of probabilities.

Every error is a `ValueError` that names the argument, the rule and the first offending row.
Where cleanlab has a message for the same problem, it starts the same way.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from labelqa.core.constants import FLOATING_POINT_COMPARISON

#: what pred_probs keeps: cleanlab computes in the dtype of the predictions
FLOAT_DTYPES = (np.float32, np.float64)


def pred_probs_matrix(pred_probs: Any) -> np.ndarray:
    """`pred_probs` as a 2-D float32 or float64 array (float32 stays float32; other numeric
    dtypes become float64), its values finite and within [0, 1] up to cleanlab's 1e-6 slack."""
    if pred_probs is None:
        raise ValueError("pred_probs: required, an (N, K) array of predicted probabilities")
    probs = np.asarray(pred_probs)
    if probs.dtype not in FLOAT_DTYPES:
        if probs.dtype.kind not in "iufb":
            raise ValueError(f"pred_probs: must be numeric, not {probs.dtype}")
        probs = probs.astype(np.float64)
    if probs.ndim != 2:
        raise ValueError(f"pred_probs: must be 2-D (N examples, K classes), got shape "
                         f"{probs.shape}")
    if probs.shape[1] < 1:
        raise ValueError("pred_probs: needs at least one column (class)")
    if probs.shape[0] < 1:
        raise ValueError("pred_probs: has no rows (examples)")
    _check_values(probs)
    return probs


def _check_values(probs: np.ndarray) -> None:
    eps = FLOATING_POINT_COMPARISON
    for start in range(0, len(probs), 1 << 16):
        chunk = probs[start:start + (1 << 16)]
        finite = np.isfinite(chunk)
        if not finite.all():
            row, column = np.argwhere(~finite)[0]
            raise ValueError(f"pred_probs: values must be finite; row {start + row}, class "
                             f"{column} is {chunk[row, column].item()}")
        outside = (chunk < -eps) | (chunk > 1 + eps)
        if outside.any():
            row, column = np.argwhere(outside)[0]
            raise ValueError(f"Values in pred_probs must be between 0 and 1 (with a 1e-6 "
                             f"slack): row {start + row}, class {column} is "
                             f"{chunk[row, column].item()!r}")


def label_matrix(labels: Any, num_rows: int, num_classes: int) -> np.ndarray:
    """The (N, K) bool matrix of the annotated classes.

    A list (or tuple, or object array) whose elements are lists of class indices, in
    [0, K); a repeated index is one annotation. Or a 2-D 0/1 or boolean array of shape
    (N, K).
    """
    if labels is None:
        raise ValueError("labels: required, a list of lists of class indices or an (N, K) "
                         "0/1 matrix")
    if isinstance(labels, np.ndarray) and labels.dtype != object:
        return _from_matrix(labels, num_rows, num_classes)
    if not isinstance(labels, Sequence) and not isinstance(labels, np.ndarray):
        raise ValueError(f"labels: expected a list of lists of class indices or an (N, K) "
                         f"0/1 matrix, not {type(labels).__name__}")
    if len(labels) != num_rows:
        raise ValueError(f"pred_probs and labels must have same length: labels has "
                         f"{len(labels)} rows, pred_probs {num_rows}")
    return _from_lists(labels, num_rows, num_classes)


def _from_matrix(labels: np.ndarray, num_rows: int, num_classes: int) -> np.ndarray:
    if labels.ndim != 2:
        raise ValueError(f"labels: as an array it must be an (N, K) 0/1 matrix; got shape "
                         f"{labels.shape} (give class indices as a list of lists)")
    if labels.shape[0] != num_rows:
        raise ValueError(f"pred_probs and labels must have same length: labels has "
                         f"{labels.shape[0]} rows, pred_probs {num_rows}")
    if labels.shape[1] != num_classes:
        raise ValueError(f"labels: the 0/1 matrix has {labels.shape[1]} columns, pred_probs "
                         f"{num_classes}; both need one column per class")
    if labels.dtype == bool:
        return labels
    if labels.dtype.kind not in "iuf":
        raise ValueError(f"labels: the matrix must hold 0/1 or booleans, not {labels.dtype}")
    bad = (labels != 0) & (labels != 1)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ValueError(f"labels: the matrix must hold only 0 and 1; row {row}, class "
                         f"{column} is {labels[row, column].item()!r}")
    return labels.astype(bool)


def _from_lists(labels: Sequence, num_rows: int, num_classes: int) -> np.ndarray:
    try:
        lengths = np.fromiter(map(len, labels), dtype=np.int64, count=num_rows)
    except TypeError:
        row = next(i for i, element in enumerate(labels) if not hasattr(element, "__len__"))
        raise ValueError(f"labels: each element must be a list of class indices; row {row} is "
                         f"{labels[row]!r} ({type(labels[row]).__name__}). wrong format for "
                         "labels, should be a list of list[indices]") from None
    rows = np.repeat(np.arange(num_rows), lengths)
    try:
        flat = np.array(list(itertools.chain.from_iterable(labels)))
    except ValueError:  # NumPy: an inhomogeneous nesting
        flat = np.array([None])
    if flat.ndim != 1 or flat.dtype == object:
        nested = next((i for i, element in enumerate(labels)
                       if any(np.ndim(value) != 0 for value in element)), None)
        if nested is not None:
            raise ValueError(f"labels: each element must be a flat list of class indices; row "
                             f"{nested} is {labels[nested]!r}")
    if flat.size and flat.dtype.kind not in "iu":
        values = itertools.chain.from_iterable(labels)
        for position, value in enumerate(values):
            if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
                raise ValueError(f"labels: class indices must be integers; row "
                                 f"{rows[position]} holds {labels[rows[position]]!r}")
    values = flat.astype(np.int64, copy=False)
    outside = (values < 0) | (values >= num_classes)
    if outside.any():
        position = int(np.flatnonzero(outside)[0])
        raise ValueError(f"labels: class indices must be in [0, {num_classes}) (pred_probs has "
                         f"{num_classes} columns); row {rows[position]} holds "
                         f"{int(values[position])}")
    given = np.zeros((num_rows, num_classes), dtype=bool)
    given[rows, values] = True
    return given


def inputs(labels: Any, pred_probs: Any) -> tuple[np.ndarray, np.ndarray]:
    """(given, probs): the checked (N, K) label matrix and probabilities."""
    probs = pred_probs_matrix(pred_probs)
    return label_matrix(labels, *probs.shape), probs


def label_lists(given: np.ndarray) -> list[list[int]]:
    """The annotated class indices of each row (cleanlab's list-of-lists form)."""
    rows, classes = np.nonzero(given)
    splits = np.cumsum(given.sum(axis=1))[:-1]
    return [part.tolist() for part in np.split(classes, splits)]
