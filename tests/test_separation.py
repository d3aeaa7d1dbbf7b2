"""Item 8 of issue 20: a weak model is measured (per-class AUC) and the user is warned."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from labelqa.cli import main
from labelqa.core.batch import Batch
from labelqa.core.separation import (
    WEAK_SEPARATION_AUC,
    Separation,
    is_weak,
    separation_bins,
    separation_partials,
)
from labelqa.sample import generate, write_sample

FAST = ["--master", "local[2,2]", "--set", "spark.conf.spark.sql.shuffle.partitions=4"]


def _sklearn_auc(given: np.ndarray, probs: np.ndarray) -> np.ndarray:
    return np.array([roc_auc_score(given[:, k], probs[:, k]) for k in range(given.shape[1])])


def test_the_auc_from_histograms_equals_sklearn_within_its_bound():
    sample = generate(3000, 5, 3)
    batch = Batch(sample.ids, sample.given, sample.probs)
    bins = separation_bins(5)
    # summing the partials of two halves is what Spark does with the tasks' totals
    halves = [separation_partials(Batch(sample.ids[s], sample.given[s], sample.probs[s]), bins)
              ["separation"] for s in (slice(0, 1000), slice(1000, None))]
    assert np.array_equal(halves[0] + halves[1], separation_partials(batch, bins)["separation"])
    separation = Separation.of((halves[0] + halves[1]).reshape(5, 2, bins))
    expected = _sklearn_auc(sample.given, sample.probs)
    assert np.all(np.abs(separation.auc - expected) <= separation.error)
    assert bins == 1024 and np.all(separation.error < 0.5 / bins * 4)


def test_a_class_with_one_side_has_no_auc_and_exact_ties_are_halves():
    given = np.array([[True, True], [False, True], [True, True], [False, True]])
    probs = np.array([[0.9, 0.5], [0.9, 0.5], [0.2, 0.5], [0.1, 0.5]])
    separation = Separation.of(separation_partials(Batch(np.arange(4), given, probs), 16)
                               ["separation"].reshape(2, 2, 16))
    assert separation.auc[0] == roc_auc_score(given[:, 0], probs[:, 0]) == 0.625
    assert np.isnan(separation.auc[1]) and separation.measured.tolist() == [True, False]
    assert separation.mean_auc == 0.625 and is_weak(separation.mean_auc)


def _audit(root, sample, output):
    write_sample(sample, str(root / "labels.parquet"), str(root / "predictions.parquet"))
    return main(["audit", "--labels", str(root / "labels.parquet"), "--predictions",
                 str(root / "predictions.parquet"), "--output", str(output), "--dataset", "t",
                 "--run-date", "2026-11-01", *FAST])


@pytest.fixture(scope="module")
def random_sample():
    sample = generate(600, 4, 21)
    probs = np.random.default_rng(21).uniform(0, 1, sample.probs.shape)
    return replace(sample, probs=probs)


def test_random_probabilities_get_the_warning_and_the_auc_columns(spark, random_sample,
                                                                 tmp_path, capsys):
    assert _audit(tmp_path, random_sample, tmp_path / "out") == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("labelqa: warning:")]
    classes = (spark.read.parquet(str(tmp_path / "out" / "classes"))
               .orderBy("class_index").collect())
    aucs = np.array([row["separation_auc"] for row in classes])
    errors = np.array([row["separation_auc_error"] for row in classes])
    expected = _sklearn_auc(random_sample.given, random_sample.probs)
    assert np.all(np.abs(aucs - expected) <= errors) and np.all(errors < 0.01)
    summary = spark.read.parquet(str(tmp_path / "out" / "summary")).first()
    assert summary["separation_auc"] == pytest.approx(aucs.mean(), abs=1e-15)
    assert summary["weak_separation_classes"] == 4
    issues = summary["num_label_issues"]
    assert warning == [
        "labelqa: warning: the predictions separate given from absent tags weakly: mean AUC "
        f"{aucs.mean():.3f} < {WEAK_SEPARATION_AUC} (4 of 4 classes below, worst: "
        + ", ".join(repr(str(k)) for k in np.argsort(aucs, kind="stable")[:3])
        + f"); {issues / 600:.0%} of the examples are flagged, and with a weak model most "
        "flags are the model's errors, not annotation errors. Use better out-of-sample "
        "predictions (a stronger model, cross-validated with more folds), or "
        "issues.filter_by=confident_learning, which flags less (see classes.separation_auc)"]


def test_a_good_model_gets_no_warning(spark, tmp_path, capsys):
    sample = generate(600, 4, 5)
    assert _audit(tmp_path, sample, tmp_path / "out") == 0
    assert "warning" not in capsys.readouterr().err
    summary = spark.read.parquet(str(tmp_path / "out" / "summary")).first()
    expected = _sklearn_auc(sample.given, sample.probs)
    assert summary["separation_auc"] == pytest.approx(expected.mean(), abs=0.002)
    assert summary["separation_auc"] > WEAK_SEPARATION_AUC
    assert summary["weak_separation_classes"] == 0
