"""A corpus of malformed inputs, each with its exact outcome: exit code, message, quarantine
reasons and counts, and rows in = audited + quarantined + collapsed for both inputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from labelqa.cli import main
from labelqa.sample import (
    generate,
    label_table,
    label_table_long,
    label_table_onehot,
    prediction_table,
    prediction_table_long,
    prediction_table_wide,
)

NAMES = ("a", "b", "c", "d")
SAMPLE = generate(300, 4, 41)
IDS = [int(i) for i in SAMPLE.ids]
FAST = ["--master", "local[2,2]", "--set", "spark.conf.spark.sql.shuffle.partitions=4",
        "--set", f"classes={json.dumps(list(NAMES))}"]


def _set_probs(table: pa.Table, row: int, values) -> pa.Table:
    probs = table.column("pred_probs").to_pylist()
    probs[row] = values
    return table.set_column(1, "pred_probs", pa.array(probs, type=table.schema.field(
        "pred_probs").type))


def _set_prob(row: int, k: int, value):
    def change(labels, predictions):
        probs = predictions.column("pred_probs").to_pylist()
        probs[row][k] = value
        return labels, _set_probs(predictions, row, probs[row])
    return change


def _set_labels(row: int, value):
    def change(labels, predictions):
        lists = labels.column("labels").to_pylist()
        lists[row] = value
        return labels.set_column(1, "labels", pa.array(lists, pa.list_(pa.int32()))), predictions
    return change


def _set_labels_all(value):
    def change(labels, predictions):
        return labels.set_column(1, "labels", pa.array([value] * labels.num_rows,
                                                       pa.list_(pa.int32()))), predictions
    return change


def _annotated(table: pa.Table, row: int, column: str = "annotator") -> pa.Table:
    """`table` with a `column` the audit does not read ("ann-1" everywhere), plus the rows of
    the id of row `row` once more with "ann-2": the same content from a second annotator."""
    marked = table.append_column(column, pa.array(["ann-1"] * table.num_rows))
    again = marked.filter(pc.equal(marked["id"], IDS[row]))
    return pa.concat_tables([marked, again.set_column(
        again.num_columns - 1, column, pa.array(["ann-2"] * again.num_rows))])


def _null_id(which: str, row: int):
    def change(labels, predictions):
        table = labels if which == "labels" else predictions
        ids = table.column("id").to_pylist()
        ids[row] = None
        table = table.set_column(0, "id", pa.array(ids, pa.int64()))
        return (table, predictions) if which == "labels" else (labels, table)
    return change


def _append(which: str, row: int, edit: Callable | None = None):
    def change(labels, predictions):
        table = labels if which == "labels" else predictions
        extra = table.slice(row, 1)
        if edit is not None:
            extra = edit(extra)
        table = pa.concat_tables([table, extra])
        return (table, predictions) if which == "labels" else (labels, table)
    return change


def _drop(which: str, row: int):
    def change(labels, predictions):
        table = labels if which == "labels" else predictions
        table = table.filter(pc.not_equal(table["id"], IDS[row]))
        return (table, predictions) if which == "labels" else (labels, table)
    return change


def _other_labels(extra: pa.Table) -> pa.Table:
    current = extra.column("labels").to_pylist()[0]
    changed = [k for k in range(4) if k not in current][:1] + current
    return extra.set_column(1, "labels", pa.array([changed], pa.list_(pa.int32())))


def _other_probs(extra: pa.Table) -> pa.Table:
    return _set_probs(extra, 0, [0.5, 0.5, 0.5, 0.5])


def _long_labels(edit: Callable[[pa.Table], pa.Table] | None = None):
    def change(labels, predictions):
        table = label_table_long(SAMPLE, NAMES)
        return (edit(table) if edit else table), predictions
    return change


def _long_predictions(edit: Callable[[pa.Table], pa.Table]):
    def change(labels, predictions):
        return labels, edit(prediction_table_long(SAMPLE, NAMES))
    return change


def _replace_row(table: pa.Table, index: int, column: str, value) -> pa.Table:
    values = table.column(column).to_pylist()
    values[index] = value
    position = table.schema.get_field_index(column)
    return table.set_column(position, column, pa.array(values, table.schema.field(column).type))


def _first_row_of(table: pa.Table, ident: int) -> int:
    return table.column("id").to_pylist().index(ident)


def _as_percentages(rows: int | None = None):
    """Probabilities written as percentages (0-100, two decimals), in the first `rows` rows
    (all when None)."""
    def change(labels, predictions):
        probs = predictions.column("pred_probs").to_pylist()
        for row in range(len(probs) if rows is None else rows):
            probs[row] = [round(p * 100, 2) for p in probs[row]]
        return labels, predictions.set_column(1, "pred_probs", pa.array(probs, type=predictions
                                                                         .schema.field(
                                                                             "pred_probs").type))
    return change


def _percentage_rows(rows: int) -> int:
    """Rows among the first `rows` with a percentage above 1 + 1e-6 (out_of_range)."""
    return int((np.round(SAMPLE.probs[:rows] * 100, 2).max(axis=1) > 1 + 1e-6).sum())


@dataclass(frozen=True)
class Case:
    name: str
    change: Callable
    quarantined: dict = field(default_factory=dict)  # {(source, reason): rows}
    collapsed: dict = field(default_factory=dict)  # {source: rows}
    examples: int = 300
    overrides: tuple = ()
    exit_code: int = 0
    message: str = ""
    repeated_tags: int = 0


ROW = 17  # the row the cases spoil (it has tags)
UNTAGGED = int((SAMPLE.given.sum(axis=1) == 0).sum())  # examples without any tag
ID = IDS[ROW]
CASES = [
    Case("null id in labels", _null_id("labels", ROW),
         {("labels", "null_id"): 1, ("predictions", "missing_labels"): 1}, examples=299),
    Case("null id in predictions", _null_id("predictions", ROW),
         {("predictions", "null_id"): 1, ("labels", "missing_prediction"): 1}, examples=299),
    Case("exact duplicate labels row", _append("labels", ROW), collapsed={"labels": 1}),
    Case("exact duplicate predictions row", _append("predictions", ROW),
         collapsed={"predictions": 1}),
    Case("conflicting labels rows", _append("labels", ROW, _other_labels),
         {("labels", "duplicate_id"): 2, ("predictions", "missing_labels"): 1}, examples=299),
    Case("conflicting predictions rows", _append("predictions", ROW, _other_probs),
         {("predictions", "duplicate_id"): 2, ("labels", "missing_prediction"): 1},
         examples=299),
    Case("labels without predictions", _drop("predictions", ROW),
         {("labels", "missing_prediction"): 1}, examples=299),
    Case("predictions without labels", _drop("labels", ROW),
         {("predictions", "missing_labels"): 1}, examples=299),
    Case("array of the wrong length",
         lambda lab, pred: (lab, _set_probs(pred, ROW, [0.1, 0.2, 0.3])),
         {("predictions", "wrong_length"): 1, ("labels", "missing_prediction"): 1},
         examples=299),
    Case("NaN probability", _set_prob(ROW, 2, float("nan")),
         {("predictions", "non_finite"): 1, ("labels", "missing_prediction"): 1}, examples=299),
    Case("infinite probability", _set_prob(ROW, 0, float("inf")),
         {("predictions", "non_finite"): 1, ("labels", "missing_prediction"): 1}, examples=299),
    Case("null probability", _set_prob(ROW, 1, None),
         {("predictions", "non_finite"): 1, ("labels", "missing_prediction"): 1}, examples=299),
    Case("null probability array", lambda lab, pred: (lab, _set_probs(pred, ROW, None)),
         {("predictions", "non_finite"): 1, ("labels", "missing_prediction"): 1}, examples=299),
    Case("probability above 1", _set_prob(ROW, 3, 1.5),
         {("predictions", "out_of_range"): 1, ("labels", "missing_prediction"): 1},
         examples=299),
    Case("negative probability", _set_prob(ROW, 3, -0.2),
         {("predictions", "out_of_range"): 1, ("labels", "missing_prediction"): 1},
         examples=299),
    Case("probability within cleanlab's 1e-6 slack", _set_prob(ROW, 3, 1 + 5e-7)),
    Case("negative label index", _set_labels(ROW, [0, -1]),
         {("labels", "bad_label_index"): 1, ("predictions", "missing_labels"): 1},
         examples=299),
    Case("label index >= K", _set_labels(ROW, [4]),
         {("labels", "bad_label_index"): 1, ("predictions", "missing_labels"): 1},
         examples=299),
    Case("null label index", _set_labels(ROW, [1, None]),
         {("labels", "bad_label_index"): 1, ("predictions", "missing_labels"): 1},
         examples=299),
    Case("null labels array", _set_labels(ROW, None),
         {("labels", "missing_labels"): 1, ("predictions", "missing_labels"): 1},
         examples=299),
    Case("a tag repeated in one row", _set_labels(ROW, [2, 2, 0]), repeated_tags=1),
    Case("long labels: unknown tag name",
         _long_labels(lambda t: pa.concat_tables([t, pa.table({"id": [ID], "tag": ["zebra"]})])),
         {("labels", "unknown_class"): 1 + int(SAMPLE.given[ROW].sum()),
          ("predictions", "missing_labels"): 1}, examples=299,
         overrides=("input.labels_format=long",)),
    Case("long labels: an id without tag rows is an example with no tags",
         _long_labels(lambda t: t.filter(pc.not_equal(t["id"], ID))),
         overrides=("input.labels_format=long",)),
    Case("long labels: an id without tag rows, quarantine policy",
         _long_labels(lambda t: t.filter(pc.not_equal(t["id"], ID))),
         {("predictions", "missing_labels"): 1 + UNTAGGED}, examples=299 - UNTAGGED,
         overrides=("input.labels_format=long", "input.unlabeled_ids=quarantine",
                    "validation.max_bad_fraction=0.5")),
    Case("long labels: exact duplicate tag row",
         _long_labels(lambda t: pa.concat_tables([t, t.slice(0, 1)])),
         collapsed={"labels": 1}, overrides=("input.labels_format=long",)),
    # columns the audit does not read never change the verdict: the same content collapses
    Case("long labels: the same tags from two annotators", _long_labels(
        lambda t: _annotated(t, ROW)), collapsed={"labels": int(SAMPLE.given[ROW].sum())},
         overrides=("input.labels_format=long",)),
    Case("array labels: the same row from two annotators",
         lambda lab, pred: (_annotated(lab, ROW), pred), collapsed={"labels": 1}),
    Case("predictions: the same row with another model_version",
         lambda lab, pred: (lab, _annotated(pred, ROW, "model_version")),
         collapsed={"predictions": 1}),
    Case("long labels: different tags from two annotators are two tags",
         _long_labels(lambda t: pa.concat_tables([
             _annotated(t, ROW),
             pa.table({"id": [ID], "tag": [NAMES[int(np.flatnonzero(~SAMPLE.given[ROW])[0])]],
                       "annotator": ["ann-2"]})])),
         collapsed={"labels": int(SAMPLE.given[ROW].sum())},
         overrides=("input.labels_format=long",)),
    Case("long predictions: a class row missing",
         _long_predictions(lambda t: t.filter(pc.invert(pc.and_(
             pc.equal(t["id"], ID), pc.equal(t["class"], "c"))))),
         {("predictions", "wrong_length"): 3, ("labels", "missing_prediction"): 1},
         examples=299, overrides=("input.predictions_format=long",)),
    Case("long predictions: conflicting rows for one class",
         _long_predictions(lambda t: pa.concat_tables([t, pa.table(
             {"id": [ID], "class": ["a"], "prob": [0.123456]})])),
         {("predictions", "duplicate_id"): 5, ("labels", "missing_prediction"): 1},
         examples=299, overrides=("input.predictions_format=long",)),
    Case("long predictions: unknown class",
         _long_predictions(lambda t: _replace_row(t, 4 * ROW, "class", "zebra")),
         {("predictions", "unknown_class"): 4, ("labels", "missing_prediction"): 1},
         examples=299, overrides=("input.predictions_format=long",)),
    Case("onehot labels: a cell that is not 0/1",
         lambda lab, pred: (label_table_onehot(SAMPLE, NAMES).set_column(
             1, "a", pa.array([2 if i == ROW else int(v) for i, v in
                               enumerate(SAMPLE.given[:, 0])], pa.int32())), pred),
         {("labels", "bad_label_index"): 1, ("predictions", "missing_labels"): 1},
         examples=299, overrides=("input.labels_format=onehot",)),
    # whole-run errors
    Case("fail policy stops at the first bad row", _set_prob(ROW, 2, float("nan")),
         {("predictions", "non_finite"): 1, ("labels", "missing_prediction"): 1},
         overrides=("validation.on_bad_rows=fail",), exit_code=2,
         message="predictions.pred_probs: non_finite: probability of class 'c' (index 2) is "
                 f"NaN (validation.on_bad_rows=fail) (example id: '{ID}')"),
    Case("too many bad rows", lambda lab, pred: (lab, pred.slice(0, 270)),
         {("labels", "missing_prediction"): 30}, examples=270, exit_code=2,
         message="labels: 30 of 300 rows (10.0%) are bad, more than "
                 "validation.max_bad_fraction=0.01 (missing_prediction=30)"),
    # the table whose rows broke a rule is named, not the one whose rows lost their partner
    Case("too many bad rows: some probabilities given as percentages", _as_percentages(30),
         {("predictions", "out_of_range"): _percentage_rows(30),
          ("labels", "missing_prediction"): _percentage_rows(30)},
         examples=300 - _percentage_rows(30), exit_code=2,
         message=f"predictions: {_percentage_rows(30)} of 300 rows "
                 f"({_percentage_rows(30) / 300:.1%}) are bad, more than "
                 f"validation.max_bad_fraction=0.01 (out_of_range={_percentage_rows(30)}); "
                 "most often out_of_range: probability of class 'a' (index 0) is "),
    Case("every probability given as a percentage", _as_percentages(),
         {("predictions", "out_of_range"): 300, ("labels", "missing_prediction"): 300},
         examples=0, exit_code=2,
         message="predictions.pred_probs: no rows left to audit after the checks: 300 of 300 "
                 "rows are out_of_range, e.g. probability of class 'a' (index 0) is 85.64 "
                 "(outside [0, 1] +- 1e-6) (quarantined: labels 300, predictions 300; see the "
                 "quarantine table) (example id: '0')"),
    Case("every labels row bad",
         _set_labels_all([3, 4]),
         {("labels", "bad_label_index"): 300, ("predictions", "missing_labels"): 300},
         examples=0, exit_code=2, overrides=("validation.max_bad_fraction=1",),
         message="labels.labels: no rows left to audit after the checks: 300 of 300 rows are "
                 "bad_label_index, e.g. class index 4 is outside 0..3 (quarantined: labels "
                 "300, predictions 300; see the quarantine table) (example id: '0')"),
    Case("missing column", lambda lab, pred: (lab.rename_columns(["id", "tags"]), pred),
         exit_code=2,
         message="labels.labels: column not found (columns: id, tags)"),
    # a schema error suggests the fix when the table fits another format
    Case("wide predictions read as arrays",
         lambda lab, pred: (lab, prediction_table_wide(SAMPLE, NAMES)), exit_code=2,
         message="predictions.pred_probs: column not found (columns: id, a, b, c, d); the "
                 "table looks like the wide format (one probability column per class, named "
                 "by the class): set input.predictions_format=wide"),
    Case("long labels read as arrays",
         lambda lab, pred: (label_table_long(SAMPLE, NAMES), pred), exit_code=2,
         message="labels.labels: column not found (columns: id, tag); the table looks like "
                 "the long format: set input.labels_format=long"),
    Case("wide predictions with a column that is not a class",
         lambda lab, pred: (lab, prediction_table_wide(SAMPLE, NAMES).append_column(
             "model", pa.array(["v2"] * len(IDS)))),
         overrides=("input.predictions_format=wide", "classes=null"), exit_code=2,
         message="predictions.model: must be float or double, found string; every column but "
                 "the id is read as a class: name the classes with classes or classes_path, "
                 "or give their columns a prefix (input.prediction_prefix)"),
    Case("wrong column type",
         lambda lab, pred: (lab, pred.set_column(1, "pred_probs", pa.array(["x"] * pred.num_rows))),
         exit_code=2, message="predictions.pred_probs: must be array<float> or array<double>, "
                              "found string"),
    Case("id types differ between the tables",
         lambda lab, pred: (lab, pred.set_column(0, "id", pc.cast(pred["id"], pa.string()))),
         exit_code=2, message="predictions.id: must have the type of the labels table's id "
                              "(bigint), found string"),
    Case("K in the config differs from the arrays", lambda lab, pred: (lab, pred),
         overrides=("classes=[a, b, c]",), exit_code=2,
         message="classes: 3 class names, but the pred_probs arrays have length K=4"),
    Case("no rows left to audit: no id in both tables",
         lambda lab, pred: (lab, pred.set_column(0, "id", pa.array([i + 10**6 for i in IDS]))),
         {("labels", "missing_prediction"): 300, ("predictions", "missing_labels"): 300},
         examples=0, overrides=("validation.max_bad_fraction=1",), exit_code=2,
         message="labels.id: no rows left to audit after the checks: 300 of 300 rows are "
                 "missing_prediction, e.g. no prediction row for this id (quarantined: labels "
                 "300, predictions 300; see the quarantine table) (example id: '0')"),
    Case("fewer than 2 classes",
         lambda lab, pred: (lab.set_column(1, "labels", pa.array([[0]] * lab.num_rows,
                                                          pa.list_(pa.int32()))),
                       pred.set_column(1, "pred_probs", pa.array([[0.5]] * pred.num_rows))),
         overrides=("classes=[a]",), exit_code=2, message="need at least 2 classes, found 1"),
    Case("empty input", lambda lab, pred: (lab.slice(0, 0), pred), exit_code=2,
         message="labels: the table is empty"),
    Case("unknown config key", lambda lab, pred: (lab, pred), overrides=("issues.filterby=both",),
         exit_code=2, message="unknown config key 'issues.filterby'"),
]


def _run(tmp_path, case):
    labels, predictions = case.change(label_table(SAMPLE), prediction_table(SAMPLE))
    pq.write_table(labels, str(tmp_path / "labels.parquet"))
    pq.write_table(predictions, str(tmp_path / "predictions.parquet"))
    argv = ["audit", "--labels", str(tmp_path / "labels.parquet"),
            "--predictions", str(tmp_path / "predictions.parquet"), "--output",
            str(tmp_path / "out"), "--dataset", "m", "--run-date", "2026-11-02", *FAST]
    for override in case.overrides:
        argv += ["--set", override]
    return main(argv), labels.num_rows, predictions.num_rows


def _quarantined(spark, out) -> dict:
    """Rows per (source, reason) in the run's quarantine partition (none: no files)."""
    partition = out / "quarantine" / "dataset=m" / "run_date=2026-11-02"
    if not list(partition.glob("*.parquet")):
        return {}
    frame = spark.read.parquet(str(out / "quarantine")).toPandas()
    return frame.groupby(["source", "reason"]).size().to_dict()


# the default suite runs these; CI runs the whole corpus (the rest is marked slow)
DEFAULT = {"null id in labels", "conflicting predictions rows", "exact duplicate labels row",
           "NaN probability", "probability within cleanlab's 1e-6 slack", "label index >= K",
           "a tag repeated in one row", "long labels: unknown tag name",
           "long predictions: a class row missing", "onehot labels: a cell that is not 0/1",
           "fail policy stops at the first bad row", "too many bad rows", "missing column",
           "K in the config differs from the arrays", "every probability given as a percentage",
           "too many bad rows: some probabilities given as percentages",
           "long labels: the same tags from two annotators", "wide predictions read as arrays"}


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c.name, marks=() if c.name in DEFAULT else (pytest.mark.slow,))
    for c in CASES])
def test_malformed_input(spark, tmp_path, capsys, case):
    code, labels_in, predictions_in = _run(tmp_path, case)
    err = capsys.readouterr().err
    assert code == case.exit_code, err
    if case.exit_code:
        last = err.strip().splitlines()[-1]
        assert last.startswith("labelqa: error: ") and case.message in last, last
        assert "Traceback" not in err
        assert not (tmp_path / "out/_manifests").exists()
    if case.exit_code and not case.quarantined:
        return
    assert _quarantined(spark, tmp_path / "out") == case.quarantined
    if case.exit_code:
        return
    summary = spark.read.parquet(str(tmp_path / "out/summary")).first()
    examples = spark.read.parquet(str(tmp_path / "out/examples")).count()
    assert summary["num_examples"] == examples == case.examples
    assert summary["labels_rows"] == labels_in
    assert summary["predictions_rows"] == predictions_in
    for source in ("labels", "predictions"):
        quarantined = sum(n for (s, _), n in case.quarantined.items() if s == source)
        assert summary[f"{source}_quarantined"] == quarantined
        assert summary[f"{source}_collapsed"] == case.collapsed.get(source, 0)
        assert summary[f"{source}_rows"] == (summary[f"{source}_audited"] + quarantined
                                            + case.collapsed.get(source, 0))
    assert dict(summary["quarantined_by_reason"]) == {
        f"{s}.{r}": n for (s, r), n in case.quarantined.items()}
    assert summary["repeated_tags_collapsed"] == case.repeated_tags


def test_quarantine_rows_carry_the_detail_and_the_raw_row(spark, tmp_path, capsys):
    case = next(c for c in CASES if c.name == "probability above 1")
    assert _run(tmp_path, case)[0] == 0
    rows = spark.read.parquet(str(tmp_path / "out/quarantine")).orderBy("source").collect()
    labels_row, predictions_row = rows
    assert predictions_row["id"] == str(ID)
    assert predictions_row["detail"] == ("probability of class 'd' (index 3) is 1.5 "
                                         "(outside [0, 1] +- 1e-6)")
    raw = json.loads(predictions_row["row_json"])
    assert raw["id"] == ID and raw["pred_probs"][3] == 1.5
    assert labels_row["reason"] == "missing_prediction"
    assert json.loads(labels_row["row_json"])["labels"] == \
        [int(k) for k in np.flatnonzero(SAMPLE.given[ROW])]


def test_corrupt_parquet_file_is_an_input_error(spark, tmp_path, capsys):
    folder = tmp_path / "labels"
    folder.mkdir()
    pq.write_table(label_table(SAMPLE), str(folder / "part-0.parquet"))
    (folder / "part-1.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    pq.write_table(prediction_table(SAMPLE), str(tmp_path / "p.parquet"))
    code = main(["audit", "--labels", str(folder), "--predictions", str(tmp_path / "p.parquet"),
                 "--output", str(tmp_path / "out"), *FAST])
    err = capsys.readouterr().err
    assert code == 2
    assert "labelqa: error: labels: unreadable input file" in err
    assert "Traceback" not in err


def _snapshot(root) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("first_has_string_ids", [False, True],
                         ids=["int64 ids then string ids", "string ids then int64 ids"])
def test_a_dataset_with_the_other_id_type_is_refused_before_anything_is_written(
        spark, tmp_path, capsys, first_has_string_ids):
    """One output directory, one id type: the second dataset's run stops (exit 2) before it
    writes a file, and the first dataset stays readable by register and report."""
    from labelqa.spark.catalog import register_tables

    out = tmp_path / "out"
    for name, string_ids in (("first", first_has_string_ids),
                             ("second", not first_has_string_ids)):
        sample = generate(200, 4, 43, string_ids=string_ids)
        pq.write_table(label_table(sample), str(tmp_path / f"{name}_labels.parquet"))
        pq.write_table(prediction_table(sample), str(tmp_path / f"{name}_predictions.parquet"))
    argv = ["audit", "--output", str(out), "--run-date", "2026-11-02", *FAST]

    def audit(name: str) -> int:
        return main([*argv, "--dataset", name,
                     "--labels", str(tmp_path / f"{name}_labels.parquet"),
                     "--predictions", str(tmp_path / f"{name}_predictions.parquet")])

    assert audit("first") == 0
    capsys.readouterr()
    before = _snapshot(out)
    assert audit("second") == 2
    err = capsys.readouterr().err
    old, new = ("string", "bigint") if first_has_string_ids else ("bigint", "string")
    assert err.strip().splitlines()[-1] == (
        f"labelqa: error: labels.id: the ids are {new}, but the output directory already "
        f"holds dataset 'first' with {old} ids, and every dataset of one output directory "
        "needs the same id type (examples, class_issues are read with one schema): use "
        f"another --output for this dataset, or cast its ids to {old}")
    assert "Traceback" not in err
    assert _snapshot(out) == before  # nothing written, not even a staging directory

    # the first dataset's results stay readable, in SQL and in the report
    try:
        tables = {t.name: t.partitions for t in register_tables(spark, str(out), "mixed_ids")}
        assert tables["mixed_ids.examples"] == 1
        assert spark.table("mixed_ids.examples").count() == 200
        assert spark.table("mixed_ids.class_issues").count() > 0
    finally:
        spark.sql("DROP DATABASE IF EXISTS mixed_ids CASCADE")
    assert main(["report", "--output", str(out), "--dataset", "first",
                 "--html", str(tmp_path / "first.html"), "--master", "local[2,2]"]) == 0
    assert (tmp_path / "first.html").read_text().count("first") > 0

    # a rerun of the same dataset and date with the other type replaces its own partition
    (tmp_path / "first_labels.parquet").replace(tmp_path / "kept_labels.parquet")
    (tmp_path / "second_labels.parquet").rename(tmp_path / "first_labels.parquet")
    (tmp_path / "first_predictions.parquet").unlink()
    (tmp_path / "second_predictions.parquet").rename(tmp_path / "first_predictions.parquet")
    assert audit("first") == 0, capsys.readouterr().err
    ids = spark.read.parquet(str(out / "examples")).schema["id"].dataType.simpleString()
    assert ids == new
