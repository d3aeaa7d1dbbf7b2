"""The command line: exit codes, one-line errors naming table, column, rule and an id."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelqa.cli import main
from labelqa.sample import generate, label_table, prediction_table, write_sample

FAST = ["--master", "local[2,2]", "--set", "spark.conf.spark.sql.shuffle.partitions=4"]


@pytest.fixture(scope="module")
def good_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    sample = generate(400, 4, 5)
    write_sample(sample, str(root / "labels.parquet"), str(root / "predictions.parquet"))
    return root, sample


def _audit(labels, predictions, output, *extra):
    return main(["audit", "--labels", str(labels), "--predictions", str(predictions),
                 "--output", str(output), "--dataset", "t", "--run-date", "2026-11-01",
                 *FAST, *extra])


def test_successful_audit_writes_every_table_and_the_manifest(spark, good_inputs, tmp_path,
                                                              capsys):
    root, sample = good_inputs
    assert _audit(root / "labels.parquet", root / "predictions.parquet", tmp_path) == 0
    printed = capsys.readouterr().out
    assert "audited 400 examples x 4 classes" in printed
    for table in ("examples", "class_issues", "classes", "summary"):
        assert (tmp_path / table / "dataset=t" / "run_date=2026-11-01").is_dir()
    manifest = json.loads((tmp_path / "_manifests/dataset=t/run_date=2026-11-01.json").read_text())
    assert manifest["status"] == "succeeded"
    assert manifest["rows"]["audited"] == manifest["rows"]["labels"] == 400
    summary = spark.read.parquet(str(tmp_path / "summary")).first()
    examples = spark.read.parquet(str(tmp_path / "examples"))
    assert summary["num_examples"] == examples.count() == 400
    assert summary["num_label_issues"] == examples.filter("is_label_issue").count()
    assert summary["overall_health_score"] == 1 - summary["num_label_issues"] / 400


def _write(path, table):
    pq.write_table(table, str(path))
    return path


def _bad_case(tmp_path, sample, kind):
    labels, predictions = label_table(sample), prediction_table(sample)
    if kind == "wrong_length":
        probs = [list(row) for row in sample.probs]
        probs[7] = probs[7][:3]
        predictions = predictions.set_column(1, "pred_probs", pa.array(probs))
    elif kind == "out_of_range":
        probs = sample.probs.copy()
        probs[9, 2] = 1.5
        predictions = prediction_table(type(sample)(sample.ids, sample.given, sample.truth,
                                                    probs))
    elif kind == "nan":
        probs = sample.probs.copy()
        probs[11, 0] = np.nan
        predictions = prediction_table(type(sample)(sample.ids, sample.given, sample.truth,
                                                    probs))
    elif kind == "bad_index":
        lists = [list(np.flatnonzero(r)) for r in sample.given]
        lists[3] = [0, 4]
        labels = labels.set_column(1, "labels", pa.array(lists, type=pa.list_(pa.int32())))
    elif kind == "duplicate":
        labels = pa.concat_tables([labels, labels.slice(5, 1)])
    elif kind == "missing_prediction":
        predictions = predictions.filter(pa.compute.not_equal(predictions["id"],
                                                              sample.ids[0]))
    elif kind == "missing_labels":
        labels = labels.filter(pa.compute.not_equal(labels["id"], sample.ids[1]))
    elif kind == "missing_column":
        labels = labels.rename_columns(["id", "tags"])
    elif kind == "wrong_type":
        predictions = predictions.set_column(1, "pred_probs", pa.array(["x"] * len(sample.ids)))
    elif kind == "null_labels":
        lists = [list(np.flatnonzero(r)) for r in sample.given]
        lists[2] = None
        labels = labels.set_column(1, "labels", pa.array(lists, type=pa.list_(pa.int32())))
    return _write(tmp_path / "l.parquet", labels), _write(tmp_path / "p.parquet", predictions)


@pytest.mark.parametrize("kind, message", [
    ("wrong_length", "predictions.pred_probs: arrays must all have one length K; lengths range "
                     "from 3 to 4"),
    ("out_of_range", "predictions.pred_probs: probabilities must be finite and within [0, 1]"),
    ("nan", "predictions.pred_probs: probabilities must be finite"),
    ("bad_index", "labels.labels: class indices must be within 0..K-1"),
    ("duplicate", "labels.id: ids must be unique"),
    ("missing_prediction", "predictions.id: every labelled id needs a prediction row"),
    ("missing_labels", "labels.id: every predicted id needs a labels row"),
    ("missing_column", "labels.labels: column not found (columns: id, tags)"),
    ("wrong_type", "predictions.pred_probs: must be array<float> or array<double>, found string"),
    ("null_labels", "labels.labels: must not be null"),
])
def test_bad_input_exits_2_with_a_clear_line(spark, good_inputs, tmp_path, capsys, kind,
                                             message):
    _, sample = good_inputs
    labels, predictions = _bad_case(tmp_path, sample, kind)
    assert _audit(labels, predictions, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("labelqa: error: ")
    assert message in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "out" / "_manifests").exists()


def test_example_ids_in_messages_are_the_smallest_offending_id(spark, good_inputs, tmp_path,
                                                               capsys):
    _, sample = good_inputs
    labels, predictions = _bad_case(tmp_path, sample, "out_of_range")
    assert _audit(labels, predictions, tmp_path / "out") == 2
    assert f"(example id: {sample.ids[9]})" in capsys.readouterr().err


def test_missing_path_and_bad_arguments_exit_2(spark, tmp_path, capsys):
    assert _audit(tmp_path / "nope", tmp_path / "nope2", tmp_path / "out") == 2
    assert "labels: cannot read Parquet at" in capsys.readouterr().err
    assert main(["audit", "--labels", "a", "--predictions", "b", "--output", "c",
                 "--run-date", "2026-13-01"]) == 2
    assert "is not a date" in capsys.readouterr().err
    assert main(["audit", "--labels", "a"]) == 2


def test_class_names_must_match_k(spark, good_inputs, tmp_path, capsys):
    root, _ = good_inputs
    code = _audit(root / "labels.parquet", root / "predictions.parquet", tmp_path,
                  "--set", "classes=[a, b, c]")
    assert code == 2
    assert "classes: 3 class names, but the pred_probs arrays have length K=4" in \
        capsys.readouterr().err
