"""Benchmark of `labelqa predict`: detection quality against scikit-learn's cross_val_predict,
and the time and memory of whole `labelqa predict` processes, with MLlib's one-fit-at-a-time
cost beside it.

    .venv/bin/python benchmarks/predict_bench.py quality
    .venv/bin/python benchmarks/predict_bench.py timing --rows 1000000 --features 64 --classes 40
    .venv/bin/python benchmarks/predict_bench.py timing --rows 100000 --features 768 \\
        --classes 1000 --mllib-fits 0

quality: groups of generated tagging datasets with annotation errors (tags forgotten and tags
added at random, as in the multi-label paper's generated benchmarks: a small and a large
group), and a third group whose derived tags are two other tags together (class
correlations). For each dataset, the out-of-fold probabilities of labelqa predict (default config)
and of scikit-learn (StandardScaler + LogisticRegression, `cross_val_predict`, 5 folds, the
regularisation labelqa's default l2 means) are scored with the default label quality score
(labelqa.multilabel_classification.rank, cleanlab's), and AP@T reported: the average
precision of the T lowest-scored examples, T = the number of examples whose tags were
corrupted. The MULAN yeast group of the paper needs the dataset's download (no network here).

timing: N x D features (float32) and tags generated chunk by chunk, then `python -m labelqa
predict` as a whole process (start-up included): wall time, peak memory of the process tree
and of the driver JVM, the stage split from the manifest. `--mllib-fits M` also times M fits
of MLlib's LogisticRegression (one class, one fold's training rows, the same objective and
iteration cap) in one Spark process and reports M's mean x folds x classes: what one
fit per class and fold costs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from bench import measure  # noqa: E402

# ---- data ---------------------------------------------------------------------------------


def tagging_dataset(n: int, d: int, k: int, seed: int, forget: float = 0.15,
                    add: float = 0.005, derived: int = 0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, true tags, noisy tags): tags from a sparse linear model of the features with
    per-class prevalence 5-40 %, then each true tag forgotten with probability `forget` and
    each absent tag added with probability `add`."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    weights = rng.normal(size=(d, k)) * (rng.random((d, k)) < 0.3)
    logits = x @ weights / np.sqrt(max(1.0, 0.3 * d)) * 2.5
    logits += rng.normal(size=(n, k)) * 0.8
    prevalence = rng.uniform(0.05, 0.4, k)
    thresholds = np.array([np.quantile(logits[:, j], 1 - prevalence[j]) for j in range(k)])
    true = logits > thresholds
    for j in range(k - derived, k):  # a derived tag: two other tags together ("red car")
        a, b = rng.choice(k - derived, 2, replace=False)
        true[:, j] = true[:, a] & true[:, b]
    noisy = np.where(true, rng.random((n, k)) >= forget, rng.random((n, k)) < add)
    return x.astype(np.float32), true, noisy


GROUPS = {
    "small": [(1000, 10, 4, 0), (1000, 20, 6, 0), (1500, 16, 8, 0), (1200, 12, 5, 0)],
    "large": [(10000, 50, 20, 0), (8000, 64, 30, 0), (12000, 40, 25, 0)],
    # a third of the tags are two other tags together: class correlations a per-class linear
    # model cannot express, where a second stage that sees the other classes could help
    "correlated": [(5000, 30, 12, 4), (10000, 40, 18, 6), (8000, 20, 15, 5)],
}


def ap_at_t(scores: np.ndarray, is_error: np.ndarray) -> float:
    """Average precision over the T lowest scores, T = the number of true errors."""
    t = int(is_error.sum())
    if t == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")[:t]
    hits = is_error[order]
    precision = np.cumsum(hits) / np.arange(1, t + 1)
    return float((precision * hits).sum() / t)


def sklearn_probabilities(x: np.ndarray, noisy: np.ndarray, l2: float, folds: int,
                          assigned: np.ndarray | None = None) -> np.ndarray:
    """cross_val_predict's probabilities: its own 5 folds (KFold), or the `assigned` ones."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n_train = len(x) * (folds - 1) / folds
    out = np.zeros(noisy.shape)
    cv = folds if assigned is None else [(np.flatnonzero(assigned != f),
                                          np.flatnonzero(assigned == f)) for f in range(folds)]
    for k in range(noisy.shape[1]):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1 / (l2 * n_train),
                                                                   max_iter=1000))
        out[:, k] = cross_val_predict(model, x, noisy[:, k], cv=cv,
                                      method="predict_proba")[:, 1]
    return out


def quality(args: argparse.Namespace) -> int:
    from labelqa.config import load_config
    from labelqa.multilabel_classification.rank import get_label_quality_scores
    from labelqa.spark.predict import predict_dataframes
    from labelqa.spark.session import build_session

    spark = build_session(args.master, {"spark.ui.enabled": "false",
                                        "spark.sql.shuffle.partitions": "4"}, "predict-bench")
    spark.sparkContext.setLogLevel("ERROR")
    config = load_config(None, list(args.set))
    print(f"config: model.l2={config.model.l2} model.folds={config.model.folds} "
          f"model.max_iter={config.model.max_iter} model.tol={config.model.tol}")
    print(f"{'group':6} {'dataset':>16} {'errors':>6} {'AP@T labelqa':>12} "
          f"{'AP@T sklearn':>12} {'diff':>7} {'same folds':>10} {'diff':>7} {'AUC':>6} "
          f"{'passes':>6} {'s':>6}")
    for group, shapes in GROUPS.items():
        diffs, same_diffs = [], []
        for index, (n, d, k, derived) in enumerate(shapes):
            x, true, noisy = tagging_dataset(n, d, k, seed=100 * len(group) + index,
                                             derived=derived)
            is_error = (true != noisy).any(axis=1)
            ids = np.arange(n)
            labels = spark.createDataFrame(pa.table({
                "id": ids, "labels": [np.flatnonzero(r).tolist() for r in noisy]}).to_pandas())
            features = spark.createDataFrame(pa.table({
                "id": ids, "features": pa.array(list(x), pa.list_(pa.float64()))}).to_pandas())
            started = time.perf_counter()
            with predict_dataframes(labels, features, config) as prediction:
                rows = prediction.predictions.toPandas().sort_values("id")
                auc = np.nanmean([q.roc_auc for q in prediction.quality
                                  if q.roc_auc is not None])
                passes = prediction.evaluations
            seconds = time.perf_counter() - started
            ours = np.stack(rows["pred_probs"].to_numpy()).astype(np.float64)
            theirs = sklearn_probabilities(x, noisy, config.model.l2, config.model.folds)
            same = sklearn_probabilities(x, noisy, config.model.l2, config.model.folds,
                                         rows["fold"].to_numpy())
            label_lists = [np.flatnonzero(r).tolist() for r in noisy]
            ap_ours, ap_theirs, ap_same = (
                ap_at_t(get_label_quality_scores(label_lists, probs), is_error)
                for probs in (ours, theirs, same))
            diffs.append(ap_ours - ap_theirs)
            same_diffs.append(ap_ours - ap_same)
            print(f"{group:6} {f'{n}x{d}x{k}':>16} {int(is_error.sum()):>6} {ap_ours:>12.4f} "
                  f"{ap_theirs:>12.4f} {ap_ours - ap_theirs:>+7.4f} {ap_same:>10.4f} "
                  f"{ap_ours - ap_same:>+7.4f} {auc:>6.3f} {passes:>6} {seconds:>6.1f}")
        print(f"{group:6} {'mean':>16} {'':>6} {'':>12} {'':>12} {np.mean(diffs):>+7.4f} "
              f"{'':>10} {np.mean(same_diffs):>+7.4f}  max |diff| "
              f"{np.max(np.abs(diffs)):.4f} (same folds {np.max(np.abs(same_diffs)):.4f})")
    return 0


# ---- timing -------------------------------------------------------------------------------

def generate(folder: Path, rows: int, d: int, k: int, chunk: int, seed: int = 11) -> None:
    """Features and tags as Parquet, chunk by chunk (memory flat in N)."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(d, k)) * (rng.random((d, k)) < 0.3) / np.sqrt(0.3 * d) * 2.5
    cut = np.quantile(rng.normal(size=(20000, d)) @ weights, 0.8, axis=0)
    (folder / "features").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    for part, start in enumerate(range(0, rows, chunk)):
        n = min(chunk, rows - start)
        x = rng.normal(size=(n, d)).astype(np.float32)
        tags = (x @ weights + rng.normal(size=(n, k)) * 0.8) > cut
        ids = np.arange(start, start + n)
        values = pa.array(x.reshape(-1))
        pq.write_table(pa.table({"id": ids, "features": pa.FixedSizeListArray.from_arrays(
            values, d).cast(pa.list_(pa.float32()))}), folder / "features" / f"{part}.parquet")
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(tags.sum(axis=1), out=offsets[1:])
        pq.write_table(pa.table({"id": ids, "labels": pa.ListArray.from_arrays(
            pa.array(offsets), pa.array(np.nonzero(tags)[1].astype(np.int32)))}),
            folder / "labels" / f"{part}.parquet")


MLLIB = textwrap.dedent("""
    import sys, time
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import SparkSession, functions as F
    data, fits, folds, l2, max_iter = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \\
        float(sys.argv[4]), int(sys.argv[5])
    spark = (SparkSession.builder.master(sys.argv[6]).config("spark.ui.enabled", "false")
             .config("spark.driver.memory", "2g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    features = spark.read.parquet(data + "/features")
    labels = spark.read.parquet(data + "/labels")
    rows = (features.join(labels, "id")
            .select("id", array_to_vector("features").alias("features"), "labels",
                    F.pmod(F.xxhash64("id"), F.lit(folds)).alias("fold"))
            .where(F.col("fold") != 0).cache())
    print("rows", rows.count(), flush=True)
    seconds = []
    for k in range(fits):
        train = rows.select("features", F.array_contains("labels", k).cast("double")
                            .alias("label"))
        started = time.perf_counter()
        model = LogisticRegression(regParam=l2, elasticNetParam=0.0, standardization=True,
                                   maxIter=max_iter, tol=1e-6).fit(train)
        seconds.append(time.perf_counter() - started)
        print("fit", k, round(seconds[-1], 2), "iterations",
              model.summary.totalIterations, flush=True)
    print("mean_fit_seconds", sum(seconds) / len(seconds))
""")


def timing(args: argparse.Namespace) -> int:
    work = Path(args.work or tempfile.mkdtemp(prefix="labelqa-predict-bench-"))
    data = work / f"n{args.rows}-d{args.features}-k{args.classes}"
    if not (data / "labels").exists():
        started = time.perf_counter()
        generate(data, args.rows, args.features, args.classes, args.chunk)
        print(f"generated {args.rows:,} x {args.features} features x {args.classes} classes in "
              f"{time.perf_counter() - started:.1f} s at {data}")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable,
           "SPARK_LOCAL_DIRS": str(work / "spark-local")}
    output = work / "out"
    # the driver's Python process reports its own peak resident memory (flat in N: it holds
    # F x K x D numbers per pass, never rows)
    driver = ("import resource, sys; from labelqa.cli import main; code = main(sys.argv[1:]); "
              "print('driver_python_peak_rss_kib', "
              "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")
    command = [sys.executable, "-c", driver, "predict", "--features", str(data / "features"),
               "--labels", str(data / "labels"), "--output", str(output), "--master",
               args.master, "--run-date", "2026-12-03", "--set",
               f"spark.conf.spark.driver.memory={args.driver_memory}", *[
                   x for s in args.set for x in ("--set", s)]]
    walls = []
    for run in range(args.repeat):
        wall, peak, peak_jvm, scratch, code, error = measure(
            command, work / "logs" / f"predict-{run}.log", work / "spark-local", env)
        if code != 0:
            print(f"labelqa predict failed (exit {code}): {error}; log "
                  f"{work / 'logs' / f'predict-{run}.log'}")
            return 1
        walls.append(wall)
        manifest = json.loads((output / "_manifests" / "predict" / "dataset=default" /
                               "run_date=2026-12-03.json").read_text())
        model = manifest["model"]
        log_lines = (work / "logs" / f"predict-{run}.log").read_text().splitlines()
        driver_kib = next((int(line.split()[1]) for line in log_lines
                           if line.startswith("driver_python_peak_rss_kib")), 0)
        print(f"labelqa predict {args.rows:,} x {args.features} x {args.classes}, "
              f"{manifest['config']['model']['folds']} folds: {wall:.1f} s wall, peak memory "
              f"{peak / 2**30:.2f} GiB (driver JVM {peak_jvm / 2**30:.2f} GiB), scratch "
              f"{scratch / 2**30:.2f} GiB, driver Python process {driver_kib / 2**20:.2f} GiB, "
              f"{model['evaluations']} passes, mean held-out AUC "
              f"{model['mean_roc_auc']:.4f}")
        print("  stages: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in
                                        manifest["timings"]["stages_seconds"].items()))
    if args.repeat > 1:
        print(f"median of {args.repeat}: {sorted(walls)[len(walls) // 2]:.1f} s")
    if args.mllib_fits:
        from labelqa.config import load_config

        config = load_config(None, list(args.set))
        log = work / "logs" / "mllib.log"
        wall, peak, _, _, code, error = measure(
            [sys.executable, "-c", MLLIB, str(data), str(args.mllib_fits),
             str(config.model.folds), str(config.model.l2), str(config.model.max_iter),
             args.master], log, work / "spark-local", env)
        if code != 0:
            print(f"MLlib failed (exit {code}): {error}; log {log}")
            return 1
        lines = log.read_text().splitlines()
        mean = float(next(line for line in lines if line.startswith("mean_fit_seconds"))
                     .split()[1])
        fits = config.model.folds * args.classes
        print(f"MLlib LogisticRegression: {args.mllib_fits} fits, mean {mean:.1f} s per fit "
              f"(one class, one fold's training rows; "
              + "; ".join(line for line in lines if line.startswith("fit ")) + ")")
        print(f"  x {config.model.folds} folds x {args.classes} classes = {fits} fits: "
              f"{mean * fits:.0f} s of fitting alone ({mean * fits / walls[0]:.1f}x labelqa "
              f"predict's whole process)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    q = commands.add_parser("quality")
    q.add_argument("--master", default="local[2]")
    q.add_argument("--set", action="append", default=[], help="a config override")
    t = commands.add_parser("timing")
    t.add_argument("--rows", type=int, default=1_000_000)
    t.add_argument("--features", type=int, default=64)
    t.add_argument("--classes", type=int, default=40)
    t.add_argument("--chunk", type=int, default=100_000)
    t.add_argument("--repeat", type=int, default=1)
    t.add_argument("--work", default=None)
    t.add_argument("--master", default="local[2]")
    t.add_argument("--driver-memory", default="2g")
    t.add_argument("--mllib-fits", type=int, default=2)
    t.add_argument("--set", action="append", default=[], help="a config override")
    args = parser.parse_args()
    return quality(args) if args.command == "quality" else timing(args)


if __name__ == "__main__":
    raise SystemExit(main())
