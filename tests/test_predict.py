"""labelqa predict on Spark: the out-of-fold probabilities are scikit-learn's with the same folds,
the folds come from the ids (stable across partitionings and reruns, stratified on the label
set), bad feature rows are quarantined and counted, and `audit --features` audits them."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from labelqa.api import RunContext
from labelqa.cli import main
from labelqa.config import load_config
from labelqa.errors import InputError
from labelqa.prediction import publish_predictions
from labelqa.spark.predict import predict_dataframes

RUN_DATE = "2026-12-03"
TIGHT = ["model.tol=1e-10", "model.max_iter=400", "model.l2=0.001"]


def tagging_data(n=1200, d=8, k=4, seed=0, noise_class=None):
    """Features and tags that depend on them; `noise_class`: a class whose tags are coin flips
    (no feature predicts it: its held-out AUC is near 0.5)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    given = x @ rng.normal(size=(d, k)) + rng.normal(size=(n, k)) > 0.8
    if noise_class is not None:
        given[:, noise_class] = rng.random(n) < 0.4
    return x.astype(np.float32), given


def write_tables(root, x, given, ids=None, vector_type=pa.float32()):
    ids = np.arange(len(x)) if ids is None else ids
    features, labels = root / "features.parquet", root / "labels.parquet"
    pq.write_table(pa.table({"id": ids, "features": pa.array(list(x), pa.list_(vector_type))}),
                   features)
    pq.write_table(pa.table({"id": ids, "labels": [np.flatnonzero(r).tolist() for r in given]}),
                   labels)
    return str(labels), str(features)


def collected(df):
    pdf = df.toPandas().sort_values("id").reset_index(drop=True)
    return pdf, np.stack(pdf["pred_probs"].to_numpy())


def sklearn_out_of_fold(x, given, folds, num_folds, l2):
    xs = StandardScaler().fit_transform(x.astype(np.float64))
    out = np.zeros(given.shape)
    for fold in range(num_folds):
        train = folds != fold
        for k in range(given.shape[1]):
            model = LogisticRegression(C=1 / (l2 * train.sum()), tol=1e-12, max_iter=10_000)
            out[~train, k] = model.fit(xs[train], given[train, k]).predict_proba(
                xs[~train])[:, 1]
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    x, given = tagging_data()
    labels, features = write_tables(root, x, given)
    return root, x, given, labels, features


def test_out_of_fold_probabilities_are_scikit_learns_with_the_same_folds(spark, data):
    root, x, given, labels, features = data
    config = load_config(None, TIGHT)
    with predict_dataframes(spark.read.parquet(labels), spark.read.parquet(features),
                            config) as prediction:
        pdf, probs = collected(prediction.predictions)
        assert all(q.converged for q in prediction.quality)
    folds = pdf["fold"].to_numpy()
    assert pdf["id"].tolist() == list(range(len(x)))
    expected = sklearn_out_of_fold(x, given, folds, 5, 0.001)
    # float32 output: agreement to its rounding
    np.testing.assert_allclose(probs, expected, atol=2e-6)


def test_folds_and_probabilities_do_not_depend_on_the_partitioning_and_a_rerun_repeats_them(
        spark, data):
    _, x, given, labels, features = data
    config = load_config(None, ["model.max_iter=30"])
    results = []
    for parts in (1, 7):
        with predict_dataframes(spark.read.parquet(labels).repartition(parts),
                                spark.read.parquet(features).repartition(parts, "id"),
                                config) as prediction:
            results.append(collected(prediction.predictions))
    with predict_dataframes(spark.read.parquet(labels), spark.read.parquet(features),
                            config) as prediction:
        results.append(collected(prediction.predictions))
    (first, first_probs), *others = results
    for pdf, probs in others:
        assert pdf["fold"].tolist() == first["fold"].tolist()
        assert np.array_equal(probs, first_probs)  # bit for bit


def test_folds_are_stratified_on_the_label_set(spark, data):
    _, x, given, labels, features = data
    with predict_dataframes(spark.read.parquet(labels), spark.read.parquet(features),
                            load_config(None, ["model.max_iter=1"])) as prediction:
        pdf, _ = collected(prediction.predictions)
    sets = [",".join(map(str, np.flatnonzero(r))) for r in given]
    folds = pdf["fold"].to_numpy()
    by_set: dict[str, list[int]] = {}
    for label_set, fold in zip(sets, folds):
        by_set.setdefault(label_set, []).append(fold)
    for members in by_set.values():
        if len(members) >= 5:
            counts = np.bincount(members, minlength=5)
            assert counts.max() - counts.min() <= 1
    overall = np.bincount(folds, minlength=5)
    assert overall.max() - overall.min() <= len(by_set)  # every stratum adds at most one


def test_another_seed_deals_other_folds(spark, data):
    _, _, _, labels, features = data
    folds = []
    for seed in (0, 1):
        with predict_dataframes(spark.read.parquet(labels), spark.read.parquet(features),
                                load_config(None, ["model.max_iter=1", f"model.seed={seed}"])
                                ) as prediction:
            folds.append(collected(prediction.predictions)[0]["fold"].to_numpy())
    assert (folds[0] != folds[1]).mean() > 0.5


def test_a_vector_column_and_feature_columns_give_the_same_probabilities(spark, data, tmp_path):
    from pyspark.ml.functions import array_to_vector

    _, x, given, labels, features = data
    config = load_config(None, ["model.max_iter=20"])
    frame = spark.read.parquet(features)
    with predict_dataframes(spark.read.parquet(labels), frame, config) as prediction:
        _, expected = collected(prediction.predictions)
    as_vector = frame.select("id", array_to_vector("features").alias("features"))
    with predict_dataframes(spark.read.parquet(labels), as_vector, config) as prediction:
        _, found = collected(prediction.predictions)
    np.testing.assert_array_equal(found, expected)
    columns = {"id": np.arange(len(x)), **{f"f{j}": x[:, j] for j in range(x.shape[1])}}
    pq.write_table(pa.table(columns), tmp_path / "wide.parquet")
    names = [f"f{j}" for j in range(x.shape[1])]
    wide_config = load_config(None, ["model.max_iter=20", f"model.feature_columns={names}"])
    with predict_dataframes(spark.read.parquet(labels),
                            spark.read.parquet(str(tmp_path / "wide.parquet")),
                            wide_config) as prediction:
        _, found = collected(prediction.predictions)
    np.testing.assert_array_equal(found, expected)


def test_bad_feature_rows_are_quarantined_and_counted(spark, tmp_path):
    x, given = tagging_data(n=400, seed=5)
    rows = [{"id": i, "features": x[i].tolist()} for i in range(400)]
    rows[3]["features"] = x[3][:5].tolist()  # wrong length
    rows[4]["features"] = [float("nan")] + x[4][1:].tolist()  # NaN
    rows[5]["features"] = None  # no vector
    rows[6]["id"] = None  # no id
    rows.append({"id": 7, "features": x[8].tolist()})  # id 7 twice, differing
    rows.append({"id": 9, "features": x[9].tolist()})  # an exact copy: collapsed
    rows.append({"id": 1000, "features": x[0].tolist()})  # no label row
    del rows[10]  # id 10 has labels, no features
    pq.write_table(pa.Table.from_pylist(rows, pa.schema(
        [("id", pa.int64()), ("features", pa.list_(pa.float32()))])), tmp_path / "f.parquet")
    pq.write_table(pa.table({"id": np.arange(400),
                             "labels": [np.flatnonzero(r).tolist() for r in given]}),
                   tmp_path / "l.parquet")
    code = main(["predict", "--labels", str(tmp_path / "l.parquet"), "--features",
                 str(tmp_path / "f.parquet"), "--output", str(tmp_path / "out"),
                 "--run-date", RUN_DATE, "--set", "validation.max_bad_fraction=0.1",
                 "--set", "model.max_iter=10"])
    assert code == 0
    quarantine = spark.read.parquet(
        str(tmp_path / f"out/predict_quarantine/dataset=default/run_date={RUN_DATE}"))
    found = sorted(((r["source"], r["id"], r["reason"]) for r in quarantine.collect()),
                   key=str)
    assert found == sorted([
        ("features", "3", "wrong_length"), ("features", "4", "non_finite"),
        ("features", "5", "non_finite"), ("features", None, "null_id"),
        ("features", "7", "duplicate_id"), ("features", "7", "duplicate_id"),
        ("features", "1000", "missing_labels"),
        ("labels", "3", "missing_features"), ("labels", "4", "missing_features"),
        ("labels", "5", "missing_features"), ("labels", "6", "missing_features"),
        ("labels", "7", "missing_features"), ("labels", "10", "missing_features")], key=str)
    details = {r["id"]: r["detail"] for r in quarantine.collect() if r["source"] == "features"}
    assert details["3"] == "has 5 features, expected 8"
    assert details["4"] == "feature 0 is NaN"
    manifest = json.loads((tmp_path / "out/_manifests/predict/dataset=default" /
                           f"run_date={RUN_DATE}.json").read_text())
    features_rows = manifest["rows"]["features"]
    assert (features_rows["rows"], features_rows["audited"], features_rows["quarantined"],
            features_rows["collapsed"]) == (402, 394, 7, 1)
    labels_rows = manifest["rows"]["labels"]
    assert (labels_rows["rows"], labels_rows["audited"], labels_rows["quarantined"],
            labels_rows["collapsed"]) == (400, 394, 6, 0)
    assert manifest["rows"]["examples"] == 394
    predictions = spark.read.parquet(
        str(tmp_path / f"out/predictions/dataset=default/run_date={RUN_DATE}"))
    assert predictions.count() == 394


def test_too_many_bad_feature_rows_stop_the_run_with_the_quarantine_written(spark, tmp_path):
    x, given = tagging_data(n=200, seed=6)
    labels, _ = write_tables(tmp_path, x, given)
    pq.write_table(pa.table({"id": np.arange(200), "features": pa.array(
        [v[:7].tolist() if i % 3 == 0 else v.tolist() for i, v in enumerate(x)],
        pa.list_(pa.float32()))}), tmp_path / "short.parquet")
    config = load_config(None, [])
    with pytest.raises(InputError, match=r"features: 67 of 200 rows \(33\.5%\) are "
                                         r"bad, more than validation\.max_bad_fraction=0\.01 "
                                         r"\(wrong_length=67\); most often wrong_length: "
                                         r"has 7 features, expected 8"):
        publish_predictions(spark, spark.read.parquet(labels),
                            spark.read.parquet(str(tmp_path / "short.parquet")),
                            str(tmp_path / "out"), config, RunContext("d", RUN_DATE, "r1"))
    assert (tmp_path / "out/predict_quarantine/dataset=d").exists()
    assert not (tmp_path / "out/predictions").exists()
    assert not (tmp_path / "out/_manifests").exists()


def test_schema_problems_of_the_features_exit_2_naming_the_column(spark, data, tmp_path,
                                                                   capsys):
    _, _, _, labels, features = data
    pq.write_table(pa.table({"id": [1, 2], "emb": ["a", "b"]}), tmp_path / "s.parquet")
    base = ["predict", "--labels", labels, "--output", str(tmp_path / "o")]
    assert main([*base, "--features", str(tmp_path / "s.parquet")]) == 2
    assert "features.features: column not found (columns: id, emb)" in capsys.readouterr().err
    assert main([*base, "--features", str(tmp_path / "s.parquet"),
                 "--set", "model.features_column=emb"]) == 2
    assert ("features.emb: must be array<float>, array<double> or an MLlib vector, found "
            "string") in capsys.readouterr().err
    assert main([*base, "--features", features, "--set", "model.folds=1"]) == 2
    assert "model.folds: 1; cross-validation needs at least 2" in capsys.readouterr().err


def test_audit_with_features_predicts_then_audits_and_notes_a_weak_class(spark, tmp_path,
                                                                          capsys):
    x, given = tagging_data(n=1500, k=4, seed=9, noise_class=2)
    labels, features = write_tables(tmp_path, x, given)
    output = tmp_path / "out"
    code = main(["audit", "--labels", labels, "--features", features, "--output", str(output),
                 "--run-date", RUN_DATE, "--set", "model.max_iter=50"])
    assert code == 0
    captured = capsys.readouterr()
    assert "class '2': held-out ROC AUC" in captured.err
    partition = f"dataset=default/run_date={RUN_DATE}"
    quality = {r["class_name"]: r for r in
               spark.read.parquet(str(output / "model_quality" / partition)).collect()}
    assert quality["2"]["roc_auc"] < 0.6 < quality["0"]["roc_auc"]
    assert quality["0"]["positives"] == int(given[:, 0].sum())
    notes = {r["class_name"]: r["note"] for r in
             spark.read.parquet(str(output / "classes" / partition)).collect()}
    assert notes["2"].startswith("held-out ROC AUC 0.") and "unreliable" in notes["2"]
    assert notes["0"] is None and notes["1"] is None
    # the audit read the predictions table as it is
    examples = spark.read.parquet(str(output / "examples" / partition))
    assert examples.count() == 1500
    manifest = json.loads((output / "_manifests" / "dataset=default" /
                           f"run_date={RUN_DATE}.json").read_text())
    assert manifest["inputs"]["features"] == features
    assert manifest["inputs"]["predictions"].endswith(f"predictions/{partition}")
    # auditing that predictions partition again (audit --predictions) keeps the note
    assert main(["audit", "--labels", labels, "--predictions", str(output / "predictions" /
                 partition), "--output", str(tmp_path / "again"), "--run-date", RUN_DATE]) == 0
    again = {r["class_name"]: r["note"] for r in spark.read.parquet(
        str(tmp_path / "again" / "classes" / partition)).collect()}
    assert again["2"] == notes["2"]


def test_the_stacked_option_on_spark_is_the_cores_fit_with_the_same_folds(spark, data):
    from labelqa.core import logistic as lg

    _, x, given, labels, features = data
    config = load_config(None, ["model.stacked=true", "model.max_iter=40"])
    with predict_dataframes(spark.read.parquet(labels), spark.read.parquet(features),
                            config) as prediction:
        pdf, probs = collected(prediction.predictions)
        assert all(q.converged for q in prediction.quality)
    folds = pdf["fold"].to_numpy()
    models = lg.fit_in_memory(x.astype(np.float64), given, folds, config.model.params)
    expected = models.held_out(lg.FoldedRows(x.astype(np.float64), given, folds))
    np.testing.assert_allclose(probs, expected, atol=1e-6)
