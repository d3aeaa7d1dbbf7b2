"""Why an example is flagged: its likely missing and extraneous tags, in words and as a struct.

Built in the scoring pass from the flagged pairs of a block, with Arrow compute kernels (no
Python per row). A tag's `threshold` is the class's confident threshold in probability space:
`threshold_given` (t1) for a missing tag, the model being confident the tag applies at or
above it; `1 - threshold_not_given` (1 - t0) for an extraneous tag, the model being confident
it does not apply at or below it. Numbers are written as Java's `%.3f` writes them (the
shortest decimal of the double, rounded half up), as Spark's `format_string` did before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TAG_TYPE = pa.struct([("class_index", pa.int32()), ("class_name", pa.string()),
                      ("pred_prob", pa.float64()), ("threshold", pa.float64())])
EXPLANATION_TYPE = pa.struct([("text", pa.string()), ("missing", pa.list_(TAG_TYPE)),
                              ("extraneous", pa.list_(TAG_TYPE))])


def fixed(values: np.ndarray, places: int) -> pa.Array:
    """Non-negative `values` as Java's `%.{places}f` writes them: the shortest decimal of each
    double, rounded half up."""
    values = np.asarray(values, dtype=np.float64)
    scale = 10 ** places
    scaled = values * scale
    whole = np.floor(scaled)
    fraction = scaled - whole
    rounded = (whole + (fraction > 0.5)).astype(np.int64)
    # only a value whose scaled fraction is near one half can round differently from its
    # shortest decimal: those few are rounded exactly
    for at in np.flatnonzero(np.abs(fraction - 0.5) < 1e-6):
        exact = Decimal(repr(float(values[at]))).quantize(Decimal(1).scaleb(-places),
                                                         ROUND_HALF_UP)
        rounded[at] = int(exact.scaleb(places))
    digits = pc.utf8_lpad(pa.array(rounded).cast(pa.string()), places + 1, "0")
    return pc.binary_join_element_wise(pc.utf8_slice_codeunits(digits, 0, -places),
                                       pc.utf8_slice_codeunits(digits, -places), ".")


@dataclass(frozen=True)
class Vocabulary:
    """What the explanation needs to know of the classes (K-sized)."""

    names: tuple[str, ...]
    present_at: np.ndarray  # threshold_given (t1)
    absent_at: np.ndarray  # 1 - threshold_not_given (1 - t0)

    @staticmethod
    def of(names: Sequence[str], threshold_given: Sequence[float],
           threshold_not_given: Sequence[float]) -> Vocabulary:
        return Vocabulary(tuple(names), np.asarray(threshold_given, dtype=np.float64),
                          1.0 - np.asarray(threshold_not_given, dtype=np.float64))

    def tags(self, indices: pa.ListArray) -> pa.ListArray:
        """Lists of class indices as lists of their names (`given_tags`, `suggested_tags`)."""
        names = pa.array(self.names, pa.string()).take(indices.values)
        return pa.ListArray.from_arrays(indices.offsets, names)


def _tags(vocabulary: Vocabulary, num_rows: int, rows: np.ndarray, classes: np.ndarray,
          probs: np.ndarray, thresholds: np.ndarray, heading: str
          ) -> tuple[pa.ListArray, pa.Array]:
    """Per row: the list of tag structs, and its text (null where the list is empty)."""
    offsets = np.zeros(num_rows + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=num_rows), out=offsets[1:])
    names = pa.array(vocabulary.names, pa.string()).take(pa.array(classes, pa.int64()))
    tags = pa.StructArray.from_arrays(
        [pa.array(classes, pa.int32()), names, pa.array(probs, pa.float64()),
         pa.array(thresholds, pa.float64())], fields=list(TAG_TYPE))
    words = pc.binary_join_element_wise(
        names, pa.scalar(" (p="), fixed(probs, 3), pa.scalar(", threshold "),
        fixed(thresholds, 3), pa.scalar(")"), "")
    listed = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), words), ", ")
    text = pc.if_else(pa.array(np.diff(offsets) > 0),
                      pc.binary_join_element_wise(pa.scalar(heading), listed, ""),
                      pa.scalar(None, pa.string()))
    return pa.ListArray.from_arrays(pa.array(offsets), tags), text


def explanations(vocabulary: Vocabulary, is_label_issue: np.ndarray,
                 label_quality_score: np.ndarray, pair_rows: np.ndarray,
                 pair_classes: np.ndarray, pair_given: np.ndarray, pair_probs: np.ndarray
                 ) -> pa.StructArray:
    """The `explanation` of every row of a batch (null where the row is not flagged), from
    its flagged (row, class) pairs, whether the class is annotated and its probability.

    Missing tags strongest first (probability descending), extraneous ones weakest
    probability first, then by class index.
    """
    num_rows = len(is_label_issue)
    shown = is_label_issue[pair_rows]
    parts = []
    for annotated, heading, direction in ((False, "likely missing: ", -1.0),
                                          (True, "likely extraneous: ", 1.0)):
        chosen = shown & (pair_given == annotated)
        rows, classes = pair_rows[chosen], pair_classes[chosen]
        p = pair_probs[chosen].astype(np.float64)
        order = np.lexsort((classes, direction * p, rows))
        rows, classes, p = rows[order], classes[order], p[order]
        thresholds = (vocabulary.absent_at if annotated else vocabulary.present_at)[classes]
        parts.append(_tags(vocabulary, num_rows, rows, classes, p, thresholds, heading))
    (missing, missing_text), (extraneous, extraneous_text) = parts
    # (null_handling="skip" drops rows where every input is null, pyarrow 26)
    text = pc.coalesce(pc.binary_join_element_wise(missing_text, extraneous_text, "; "),
                       missing_text, extraneous_text)
    # low_* filters flag rows by their score alone: no single tag may be flagged
    score_only = pc.binary_join_element_wise(
        pa.scalar("label quality score "), fixed(np.clip(label_quality_score, 0, None), 4),
        pa.scalar(" is among the lowest; no single tag is flagged"), "")
    has_tags = np.zeros(num_rows, dtype=bool)
    has_tags[pair_rows[shown]] = True
    text = pc.if_else(pa.array(has_tags), text, score_only)
    return pa.StructArray.from_arrays([text, missing, extraneous], fields=list(EXPLANATION_TYPE),
                                      mask=pa.array(~is_label_issue))
