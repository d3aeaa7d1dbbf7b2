"""`examples.explanation`: why each flagged example is flagged, in words and as a struct."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest

from labelqa.spark.explanation import Vocabulary, explanations
from tests.conftest import RUN_DATES

NAMES = ("cat", "dog", "50% off", "日本語")
T_GIVEN = (0.8, 0.7, 0.9, 0.6)
T_NOT_GIVEN = (0.9, 0.75, 0.95, 0.85)


def _explain(rows):
    """rows: (id, is_label_issue, label_quality_score, flagged classes, given?, pred_prob)."""
    n, k = len(rows), len(NAMES)
    flags, given, probs = np.zeros((n, k), bool), np.zeros((n, k), bool), np.zeros((n, k))
    for row, (_, _, _, classes, annotated, pred_probs) in enumerate(rows):
        flags[row, classes] = True
        given[row, classes] = annotated
        probs[row, classes] = pred_probs
    pair_rows, pair_classes = np.nonzero(flags)
    explained = explanations(Vocabulary.of(NAMES, T_GIVEN, T_NOT_GIVEN),
                             np.array([r[1] for r in rows]), np.array([r[2] for r in rows]),
                             pair_rows, pair_classes, given[pair_rows, pair_classes],
                             probs[pair_rows, pair_classes])
    return {row[0]: value for row, value in zip(rows, explained.to_pylist())}


def _tag(index: int, prob: float, threshold: float) -> dict:
    return {"class_index": index, "class_name": NAMES[index], "pred_prob": prob,
            "threshold": threshold}


def test_missing_and_extraneous_tags_strongest_evidence_first():
    explained = _explain([
        (1, True, 0.02, [0, 1, 2, 3], [False, True, False, True], [0.93, 0.01, 0.97, 0.04]),
        (2, True, 0.10, [3, 1], [True, True], [0.05, 0.05]),
    ])
    first = explained[1]
    assert first["missing"] == [_tag(2, 0.97, 0.9), _tag(0, 0.93, 0.8)]
    assert first["extraneous"] == [_tag(1, 0.01, 1 - 0.75), _tag(3, 0.04, 1 - 0.85)]
    assert first["text"] == ("likely missing: 50% off (p=0.970, threshold 0.900), "
                             "cat (p=0.930, threshold 0.800); likely extraneous: "
                             "dog (p=0.010, threshold 0.250), "
                             "日本語 (p=0.040, threshold 0.150)")
    # equal probabilities: by class index
    second = explained[2]
    assert second["missing"] == []
    assert [t["class_name"] for t in second["extraneous"]] == ["dog", "日本語"]
    assert second["text"] == ("likely extraneous: dog (p=0.050, threshold 0.250), "
                              "日本語 (p=0.050, threshold 0.150)")


def test_not_flagged_has_no_explanation_and_score_only_flags_say_so():
    explained = _explain([
        (1, False, 0.5, [1], [False], [0.99]),  # low_* filters: a class flag on a kept row
        (2, True, 0.03125, [], [], []),
    ])
    assert explained[1] is None
    assert explained[2] == {
        "text": "label quality score 0.0313 is among the lowest; no single tag is flagged",
        "missing": [], "extraneous": []}


def _java_fixed(value: float, places: int) -> str:
    """Java's %.Nf: the shortest decimal of the double, rounded half up."""
    return str(Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP))


def test_every_flagged_example_is_explained_by_its_class_issues(spark, two_runs):
    output, _ = two_runs
    partition = f"dataset = 'demo' AND run_date = '{RUN_DATES[1]}'"
    examples = spark.read.parquet(str(output / "examples")).filter(partition).toPandas()
    pairs = spark.read.parquet(str(output / "class_issues")).filter(partition).toPandas()
    classes = spark.read.parquet(str(output / "classes")).filter(partition).toPandas()
    t_given = dict(zip(classes["class_index"], classes["threshold_given"]))
    t_absent = dict(zip(classes["class_index"], 1.0 - classes["threshold_not_given"]))

    flagged = examples[examples["is_label_issue"]]
    assert examples.loc[~examples["is_label_issue"], "explanation"].isna().all()
    assert len(flagged) > 50
    by_id = dict(tuple(pairs.groupby("id")))
    for row in flagged.itertuples():
        mine = by_id[row.id]
        missing = mine[~mine["given"]].sort_values(["pred_prob", "class_index"],
                                                   ascending=[False, True])
        extraneous = mine[mine["given"]].sort_values(["pred_prob", "class_index"])
        expected = {
            "missing": [{"class_index": r.class_index, "class_name": r.class_name,
                         "pred_prob": r.pred_prob, "threshold": t_given[r.class_index]}
                        for r in missing.itertuples()],
            "extraneous": [{"class_index": r.class_index, "class_name": r.class_name,
                            "pred_prob": r.pred_prob, "threshold": t_absent[r.class_index]}
                           for r in extraneous.itertuples()],
        }
        parts = []
        for heading, tags in (("likely missing: ", expected["missing"]),
                              ("likely extraneous: ", expected["extraneous"])):
            if tags:
                parts.append(heading + ", ".join(
                    f"{t['class_name']} (p={_java_fixed(t['pred_prob'], 3)}, "
                    f"threshold {_java_fixed(t['threshold'], 3)})" for t in tags))
        expected["text"] = "; ".join(parts)
        got = row.explanation
        assert {key: list(got[key]) if key != "text" else got[key] for key in expected} == \
            expected, row.id


@pytest.mark.parametrize("filter_by", ["low_self_confidence"])
def test_score_only_flags_under_low_filters(spark, tmp_path, filter_by):
    """Under low_* filters is_label_issue is a global selection by score; a flagged row's
    explanation lists its class issues if it has any, else says it is flagged by score."""
    from labelqa.api import audit_dataframes
    from labelqa.config import load_config
    from labelqa.sample import generate, label_table, prediction_table

    sample = generate(400, 4, 11)
    labels = spark.createDataFrame(label_table(sample).to_pandas())
    predictions = spark.createDataFrame(prediction_table(sample).to_pandas())
    config = load_config(None, [f"issues.filter_by={filter_by}"])
    with audit_dataframes(spark, labels, predictions, config) as (_, tables):
        examples = tables.examples.toPandas()
    flagged = examples[examples["is_label_issue"]]
    texts = flagged["explanation"].map(lambda e: e["text"])
    no_tags = flagged["num_class_issues"] == 0
    assert no_tags.any() and (~no_tags).any()
    assert texts[no_tags].str.fullmatch(
        r"label quality score 0\.\d{4} is among the lowest; no single tag is flagged").all()
    assert texts[~no_tags].str.startswith("likely ").all()
    assert examples.loc[~examples["is_label_issue"], "explanation"].isna().all()


def test_numbers_are_written_as_javas_fixed_point_half_up():
    from labelqa.spark.explanation import fixed
    values = [0.0625, 0.1235, 0.9995, 0.97, 0.0, 1.0, 0.123, 0.03125, 0.00049999999999999]
    assert fixed(np.array(values), 3).to_pylist() == [_java_fixed(v, 3) for v in values]
    assert fixed(np.array([0.03125, 0.00005]), 4).to_pylist() == ["0.0313", "0.0001"]
