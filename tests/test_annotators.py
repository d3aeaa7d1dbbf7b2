"""The `annotators` table: per annotator, the run's flagged extraneous and missing tags as
rates with Wilson intervals, checked against a pandas computation from the input rows and the
run's own `class_issues`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import binomtest

from labelqa.api import RunContext, run_audit_job
from labelqa.cli import main
from labelqa.config import load_config
from labelqa.errors import ConfigError
from labelqa.sample import generate

CLASSES = ("person", "car", "dog", "cat", "tree", "sky")
#: how often each annotator forgets a true tag ("ann-c" is careless) and adds a wrong one
#: ("ann-b" is hasty)
FORGETTING = {"ann-a": 0.02, "ann-b": 0.02, "ann-c": 0.25}
ADDING = {"ann-a": 0.005, "ann-b": 0.06, "ann-c": 0.005}


def _tag_rows(num_rows: int = 900, seed: int = 7):
    """Long labels with an annotator per row: one annotator per example, two (splitting the
    tags) on every seventh, a few rows without an annotator, one exact repeat, one row with an
    unknown tag (its example is quarantined)."""
    sample = generate(num_rows, len(CLASSES), seed, missing_rate=0.0, extra_rate=0.0,
                      separation=3.0, model_noise=1.0)
    rng = np.random.default_rng(seed)
    names = list(FORGETTING)
    rows = []
    for i, example in enumerate(sample.ids):
        owner = names[i % 3]
        for k in range(len(CLASSES)):
            chance = FORGETTING[owner] if sample.truth[i, k] else 1 - ADDING[owner]
            if rng.random() < chance:
                continue  # a true tag forgotten, or no wrong tag added
            who = owner if i % 7 or k % 2 == 0 else names[(i + 1) % 3]
            rows.append((int(example), CLASSES[k], None if i % 50 == 0 else who))
    rows.append(rows[0])  # the same tag, the same annotator: one tag
    rows.append((int(sample.ids[1]), "spaceship", "ann-a"))
    labels = pd.DataFrame(rows, columns=["id", "tag", "annotator"])
    predictions = pa.table({"id": pa.array(sample.ids.astype(np.int64)),
                            "pred_probs": pa.array(list(sample.probs.astype(np.float32)),
                                                   pa.list_(pa.float32()))})
    return labels, predictions


@pytest.fixture(scope="module")
def audited(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("annotators")
    labels, predictions = _tag_rows()
    pq.write_table(pa.Table.from_pandas(labels, preserve_index=False), root / "labels.parquet")
    pq.write_table(predictions, root / "predictions.parquet")
    config = load_config(None, [f"classes={list(CLASSES)}", "input.labels_format=long",
                                "input.annotator_column=annotator"])
    report = run_audit_job(spark, str(root / "labels.parquet"),
                           str(root / "predictions.parquet"), str(root / "out"), config,
                           RunContext("tags", "2026-12-02", "run-annotators"))
    return root, labels, report


def _read(spark, root, table: str) -> pd.DataFrame:
    return spark.read.parquet(str(root / "out" / table)).drop("dataset", "run_date").toPandas()


def _wilson(k: int, n: int) -> tuple[float, float]:
    interval = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return interval.low, interval.high


def _expected(labels: pd.DataFrame, examples: pd.DataFrame, class_issues: pd.DataFrame
              ) -> pd.DataFrame:
    """The table from its definition, in pandas."""
    index = {name: k for k, name in enumerate(CLASSES)}
    tags = labels[labels["tag"].isin(index) & labels["id"].isin(examples["id"])].copy()
    tags["class_index"] = tags["tag"].map(index)
    tags["annotator"] = tags["annotator"].fillna("\0none")
    tags = tags.drop_duplicates(["annotator", "id", "class_index"])
    extraneous = tags.merge(class_issues[class_issues["given"]], on=["id", "class_index"])
    missing = (tags.drop_duplicates(["annotator", "id"])
               .merge(class_issues[~class_issues["given"]], on="id"))
    rows = []
    groups = sorted(tags["annotator"].unique(), key=lambda a: (a == "\0none", a))
    pooled_extraneous = len(extraneous) / len(tags)
    opportunities = {a: g["id"].nunique() * len(CLASSES) - len(g)
                     for a, g in tags.groupby("annotator")}
    pooled_missing = len(missing) / sum(opportunities.values())
    for who in groups:
        mine = tags[tags["annotator"] == who]
        wrong = int((extraneous["annotator"] == who).sum())
        forgot = int((missing["annotator"] == who).sum())
        chances = opportunities[who]
        e_low, e_high = _wilson(wrong, len(mine))
        m_low, m_high = _wilson(forgot, chances)
        rows.append({
            "annotator": None if who == "\0none" else who,
            "examples_tagged": mine["id"].nunique(), "tags_given": len(mine),
            "flagged_extraneous": wrong, "extraneous_rate": wrong / len(mine),
            "extraneous_rate_low": e_low, "extraneous_rate_high": e_high,
            "extraneous_ratio": wrong / len(mine) / pooled_extraneous,
            "extraneous_stands_out": e_low > pooled_extraneous,
            "missing_opportunities": chances, "flagged_missing": forgot,
            "missing_rate": forgot / chances, "missing_rate_low": m_low,
            "missing_rate_high": m_high, "missing_ratio": forgot / chances / pooled_missing,
            "missing_stands_out": m_low > pooled_missing})
    return pd.DataFrame(rows)


def test_annotators_table_equals_the_pandas_computation(spark, audited):
    root, labels, _ = audited
    examples = _read(spark, root, "examples")
    class_issues = _read(spark, root, "class_issues")
    found = _read(spark, root, "annotators")
    expected = _expected(labels, examples, class_issues)
    found = found.sort_values("annotator", na_position="last", ignore_index=True)
    pd.testing.assert_frame_equal(found, expected, check_dtype=False, rtol=1e-12)


def test_the_careless_and_the_hasty_annotators_stand_out(spark, audited):
    root, _, _ = audited
    found = _read(spark, root, "annotators").set_index("annotator", drop=False)
    assert found.loc["ann-c", "missing_stands_out"]
    assert not found.loc["ann-a", "missing_stands_out"]
    assert found.loc["ann-c", "missing_ratio"] > 2 * found.loc["ann-a", "missing_ratio"]
    assert found.loc["ann-b", "extraneous_stands_out"]
    assert not found.loc["ann-a", "extraneous_stands_out"]


def test_only_audited_rows_count_and_the_table_is_in_the_manifest(spark, audited):
    root, labels, report = audited
    found = _read(spark, root, "annotators")
    quarantined = _read(spark, root, "quarantine")
    # the example with the unknown tag is quarantined: none of its tags counts
    assert set(quarantined.loc[quarantined["source"] == "labels", "reason"]) == {"unknown_class"}
    rows_of_audited = labels[labels["tag"].isin(CLASSES)
                             & ~labels["id"].astype(str).isin(quarantined["id"])]
    assert found["tags_given"].sum() == len(rows_of_audited.drop_duplicates())
    import json
    manifest = json.loads(open(report.manifest).read())
    assert manifest["outputs"]["annotators"].endswith(
        "annotators/dataset=tags/run_date=2026-12-02")


def test_a_rerun_without_annotator_column_removes_the_partition(spark, audited, tmp_path):
    root, _, _ = audited
    out = tmp_path / "out"
    config = load_config(None, [f"classes={list(CLASSES)}", "input.labels_format=long",
                                "input.annotator_column=annotator"])
    context = RunContext("tags", "2026-12-02", "first")
    args = (str(root / "labels.parquet"), str(root / "predictions.parquet"), str(out))
    run_audit_job(spark, *args, config, context)
    partition = out / "annotators/dataset=tags/run_date=2026-12-02"
    assert partition.is_dir()
    plain = load_config(None, [f"classes={list(CLASSES)}", "input.labels_format=long"])
    run_audit_job(spark, *args, plain, RunContext("tags", "2026-12-02", "second"))
    assert not partition.exists()
    assert (out / "examples/dataset=tags/run_date=2026-12-02").is_dir()


def test_annotator_column_needs_long_labels():
    with pytest.raises(ConfigError, match="input.annotator_column: needs "
                                          "input.labels_format=long .* not array"):
        load_config(None, ["input.annotator_column=who"])


def test_a_missing_annotator_column_is_an_input_error(spark, audited, capsys):
    root, _, _ = audited
    code = main(["audit", "--labels", str(root / "labels.parquet"), "--predictions",
                 str(root / "predictions.parquet"), "--output", str(root / "other"),
                 "--set", f"classes={list(CLASSES)}", "--set", "input.labels_format=long",
                 "--set", "input.annotator_column=rater"])
    assert code == 2
    assert ("labels.rater: input.annotator_column names no column of the labels table "
            "(columns: id, tag, annotator)") in capsys.readouterr().err


def test_the_report_lists_the_annotators_who_stand_out(spark, audited):
    import re

    from labelqa.api import write_report

    root, _, _ = audited
    found = _read(spark, root, "annotators").set_index("annotator", drop=False)
    html = open(write_report(spark, str(root / "out"), "tags")).read()
    section = html[html.index('<section id="annotators">'):]
    section = section[:section.index("</section>")]
    listed = re.findall(r'<tr data-annotator="([^"]*)">', section)
    standing = found[found["extraneous_stands_out"] | found["missing_stands_out"]]
    assert sorted(listed) == sorted(standing["annotator"]) and {"ann-b", "ann-c"} <= set(listed)
    row = section[section.index('data-annotator="ann-c"'):]
    rate = float(found.loc["ann-c", "missing_rate"])
    assert f'data-field="missing_rate" data-value="{rate!r}"' in row
    assert f"All {len(found)} annotators together:" in section


def test_a_report_without_annotators_has_no_such_section(spark, two_runs):
    from labelqa.api import write_report

    output, _ = two_runs
    html = open(write_report(spark, str(output), "demo", destination=None)).read()
    assert 'id="annotators"' not in html
