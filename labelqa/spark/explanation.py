"""Why an example is flagged: its likely missing and extraneous tags, in words and as a struct.

Built from the flagged pairs that the scoring pass already put on each row (JVM expressions
only, no Python per row). A tag's `threshold` is the class's confident threshold in
probability space: `threshold_given` (t1) for a missing tag, the model being confident the
tag applies at or above it; `1 - threshold_not_given` (1 - t0) for an extraneous tag, the
model being confident it does not apply at or below it.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F

EXPLANATION_TYPE = ("struct<text: string, "
                    "missing: array<struct<class_index: int, class_name: string, "
                    "pred_prob: double, threshold: double>>, "
                    "extraneous: array<struct<class_index: int, class_name: string, "
                    "pred_prob: double, threshold: double>>>")


def _literal_array(values: Sequence) -> Column:
    return F.array(*[F.lit(value) for value in values])


def _sorted(tags: Column, most_telling_first: int) -> Column:
    """Strongest evidence first (probability descending for missing tags, ascending for
    extraneous ones), then class index: a deterministic order."""

    def compare(left: Column, right: Column) -> Column:
        by_prob = (F.when(left["pred_prob"] < right["pred_prob"], -most_telling_first)
                   .when(left["pred_prob"] > right["pred_prob"], most_telling_first)
                   .otherwise(0))
        by_index = (F.when(left["class_index"] < right["class_index"], -1)
                    .when(left["class_index"] > right["class_index"], 1).otherwise(0))
        return F.when(by_prob != 0, by_prob).otherwise(by_index)

    return F.array_sort(tags, compare)


def _words(tags: Column, heading: str) -> Column:
    listed = F.array_join(F.transform(tags, lambda tag: F.format_string(
        "%s (p=%.3f, threshold %.3f)", tag["class_name"], tag["pred_prob"], tag["threshold"])),
        ", ")
    return F.when(F.size(tags) > 0, F.concat(F.lit(heading), listed))


def explanation_column(class_names: Sequence[str], threshold_given: Sequence[float],
                       threshold_not_given: Sequence[float]) -> Column:
    """The `explanation` of a flagged example (null for the others).

    Needs the scoring pass's columns `is_label_issue`, `label_quality_score`, `issue_classes`,
    `issue_given` and `issue_pred_probs`.
    """
    names = _literal_array(list(class_names))
    present_at = _literal_array([float(t) for t in threshold_given])
    absent_at = _literal_array([1.0 - float(t) for t in threshold_not_given])
    pairs = F.arrays_zip("issue_classes", "issue_given", "issue_pred_probs")
    tags = F.transform(pairs, lambda pair: F.struct(
        pair["issue_classes"].alias("class_index"),
        F.element_at(names, pair["issue_classes"] + 1).alias("class_name"),
        pair["issue_pred_probs"].alias("pred_prob"),
        F.when(pair["issue_given"], F.element_at(absent_at, pair["issue_classes"] + 1))
        .otherwise(F.element_at(present_at, pair["issue_classes"] + 1)).alias("threshold"),
        pair["issue_given"].alias("given")))
    missing = _sorted(F.filter(tags, lambda tag: ~tag["given"]), -1)
    extraneous = _sorted(F.filter(tags, lambda tag: tag["given"]), 1)

    def drop_given(sorted_tags: Column) -> Column:
        return F.transform(sorted_tags, lambda tag: F.struct(
            tag["class_index"].alias("class_index"), tag["class_name"].alias("class_name"),
            tag["pred_prob"].alias("pred_prob"), tag["threshold"].alias("threshold")))

    text = F.concat_ws("; ", _words(missing, "likely missing: "),
                       _words(extraneous, "likely extraneous: "))
    # low_* filters flag rows by their score alone: no single tag may be flagged
    text = F.when(F.size(F.col("issue_classes")) > 0, text).otherwise(F.format_string(
        "label quality score %.4f is among the lowest; no single tag is flagged",
        F.col("label_quality_score")))
    explanation = F.struct(text.alias("text"), drop_given(missing).alias("missing"),
                           drop_given(extraneous).alias("extraneous"))
    return F.when(F.col("is_label_issue"), explanation).cast(EXPLANATION_TYPE)
