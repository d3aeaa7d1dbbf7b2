"""Benchmark: labelqa's Spark audit vs cleanlab vs a one-process NumPy floor, side by side.

    .venv/bin/python benchmarks/bench.py --rows 1000000 --classes 40 --repeat 3

Generates N x K inputs in the array format chunk by chunk (memory flat in N; predictions
stored in another row order than labels), then times three whole processes on the same
files and prints wall time, the peak memory of the whole process tree (driver JVM and
Python workers included; for labelqa also the driver JVM alone), labelqa's peak scratch
disk (the bytes in Spark's local dir, `<work>/spark-local`: shuffle files, disk caches,
spills) and the size of its outputs, and the ratios:

* labelqa: `python -m labelqa audit` (local Spark, all tables written, start-up included);
* cleanlab: read, align by id, `find_label_issues` + `get_label_quality_scores`;
* NumPy floor: read, align by id, per-class thresholds, EMA scores - the least any
  implementation must do;
* notebook: `labelqa.multilabel_classification` (no Spark): read the Parquet inputs into one
  (N, K) matrix aligned by id, then the five results a cleanlab user asks for -
  `find_label_issues` (mask, and ranked by self-confidence), `get_label_quality_scores`,
  `find_multilabel_issues_per_class` and `multilabel_health_summary` (health score, class
  ranking, common issues);
* cleanlab-api: the same five calls with cleanlab (label lists built from the matrix, as
  cleanlab takes them);
* notebook-two: `labelqa.multilabel_classification` with the cleanlab program's two calls
  (`find_label_issues`, `get_label_quality_scores`), where cleanlab-api does not fit in
  memory.

Each run's whole output is kept in `<work>/logs/<data>-<program>-<run>.log`; a failed run
prints its exit code, that log's path and its first error line.

Only public tools: the standard library reads /proc for the process tree's memory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent


def generate(folder: Path, rows: int, classes: int, chunk: int, seed: int = 7) -> None:
    """Write labels/ and predictions/ as one Parquet file per chunk (reverse chunk order and
    shuffled rows for predictions)."""
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    (folder / "predictions").mkdir(parents=True, exist_ok=True)
    prevalence = np.random.default_rng(seed).uniform(0.02, 0.3, classes)
    # row groups of at most 2**24 cells (64 MiB of float32): a reader decodes a whole row
    # group, and at K = 1000 one 250k-row chunk would be one 1 GB row group
    row_group = min(chunk, max(1024, 2**24 // classes))
    for index, start in enumerate(range(0, rows, chunk)):
        size = min(chunk, rows - start)
        rng = np.random.default_rng([seed, index])
        truth = rng.random((size, classes)) < prevalence
        given = truth ^ (truth & (rng.random(truth.shape) < 0.04)) ^ \
            (~truth & (rng.random(truth.shape) < 0.005))
        logits = rng.normal(0.0, 1.2, truth.shape) + np.where(truth, 2.5, -2.5)
        probs = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
        ids = np.arange(start, start + size, dtype=np.int64)
        rows_of, cols_of = np.nonzero(given)
        offsets = np.zeros(size + 1, dtype=np.int32)
        np.cumsum(np.bincount(rows_of, minlength=size), out=offsets[1:])
        labels = pa.table({"id": ids, "labels": pa.ListArray.from_arrays(
            pa.array(offsets), pa.array(cols_of.astype(np.int32)))})
        pq.write_table(labels, folder / "labels" / f"part-{index:05d}.parquet",
                       row_group_size=row_group)
        order = rng.permutation(size)
        flat = pa.array(probs[order].reshape(-1))
        prob_offsets = pa.array(np.arange(0, size * classes + 1, classes, dtype=np.int32))
        predictions = pa.table({"id": ids[order],
                                "pred_probs": pa.ListArray.from_arrays(prob_offsets, flat)})
        count = (rows + chunk - 1) // chunk
        pq.write_table(predictions, folder / "predictions" / f"part-{count - index:05d}.parquet",
                       row_group_size=row_group)


#: annotators in the long label table of `--annotators` (annotator of a tag: its id modulo)
NUM_ANNOTATORS = 50


def long_labels(folder: Path) -> Path:
    """labels-long/: the array labels as one row per (id, tag) with an annotator column, made
    from labels/ file by file (memory flat in N)."""
    target = folder / "labels-long"
    if target.exists():
        return target
    partial = folder / "labels-long.inprogress"
    partial.mkdir(exist_ok=True)
    for path in sorted((folder / "labels").glob("*.parquet")):
        table = pq.read_table(path)
        lists = table.column("labels").combine_chunks()
        ids = table.column("id").to_numpy()[pc.list_parent_indices(lists).to_numpy()]
        pq.write_table(pa.table({"id": ids, "tag": lists.flatten(),
                                 "annotator": pa.array([f"ann-{i % NUM_ANNOTATORS:02d}"
                                                        for i in ids])}),
                       partial / path.name)
    partial.rename(target)
    return target


READ_AND_ALIGN = textwrap.dedent("""
    import sys, numpy as np, pyarrow.parquet as pq, pyarrow.compute as pc
    folder = sys.argv[1]
    labels = pq.read_table(folder + "/labels")
    predictions = pq.read_table(folder + "/predictions")
    label_order = np.argsort(labels["id"].to_numpy())
    prediction_order = np.argsort(predictions["id"].to_numpy())
    column = predictions["pred_probs"].combine_chunks()
    k = len(column[0])
    probs = column.flatten().to_numpy().reshape(-1, k)[prediction_order]
    lists = labels["labels"].combine_chunks()
    n = len(lists)
    given = np.zeros((n, k), dtype=bool)
    parents = pc.list_parent_indices(lists).to_numpy()
    given[np.argsort(label_order)[parents], lists.flatten().to_numpy()] = True
""")

CLEANLAB = READ_AND_ALIGN + textwrap.dedent("""
    from cleanlab.multilabel_classification.filter import find_label_issues
    from cleanlab.multilabel_classification.rank import get_label_quality_scores
    label_lists = [list(np.flatnonzero(row)) for row in given]
    issues = find_label_issues(label_lists, probs)
    scores = get_label_quality_scores(label_lists, probs)
    print("issues", int(issues.sum()))
""")

FLOOR = READ_AND_ALIGN + textwrap.dedent("""
    complement = 1 - probs
    positives = given.sum(axis=0)
    t1 = np.where(given, probs, 0).sum(axis=0) / np.maximum(positives, 1)
    t0 = np.where(given, 0, complement).sum(axis=0) / np.maximum(n - positives, 1)
    self_confidence = np.where(given, probs, complement).astype(np.float64)
    ordered = np.sort(self_confidence, axis=1)[:, ::-1]
    ema = ordered[:, 0]
    for j in range(1, k):
        ema = 0.8 * ordered[:, j] + 0.2 * ema
    print("floor", float(ema.mean()), float(t0.mean() + t1.mean()))
""")


NOTEBOOK_READ = textwrap.dedent("""
    import sys, numpy as np, pyarrow as pa, pyarrow.compute as pc, pyarrow.dataset as ds
    folder = sys.argv[1]
    # rows in id order; both tables batch by batch straight into the matrices (no table and
    # no second copy of the probabilities held at once)
    sorted_ids = np.sort(ds.dataset(folder + "/labels").to_table(columns=["id"])["id"]
                         .to_numpy())
    n = len(sorted_ids)
    probs = given = None
    # small batches, little read-ahead: at K = 1000 the defaults held 2.6 GiB of batches
    for batch in ds.dataset(folder + "/predictions").to_batches(
            batch_size=16384, batch_readahead=2, fragment_readahead=1):
        column = batch.column("pred_probs")
        if probs is None:
            k = len(column[0])
            probs = np.empty((n, k), dtype=column.type.value_type.to_pandas_dtype())
        rows = np.searchsorted(sorted_ids, batch.column("id").to_numpy())
        probs[rows] = column.flatten().to_numpy().reshape(-1, k)
    given = np.zeros((n, k), dtype=bool)
    for batch in ds.dataset(folder + "/labels").to_batches(
            batch_size=65536, batch_readahead=2, fragment_readahead=1):
        lists = batch.column("labels")
        rows = np.searchsorted(sorted_ids, batch.column("id").to_numpy())
        given[rows[pc.list_parent_indices(lists).to_numpy()], lists.flatten().to_numpy()] = True
    del batch, column, lists
    pa.default_memory_pool().release_unused()
""")

API_CALLS = textwrap.dedent("""
    labels = given if PACKAGE == "labelqa" else [list(np.flatnonzero(row)) for row in given]
    mask = package_filter.find_label_issues(labels, probs)
    ranked = package_filter.find_label_issues(labels, probs,
                                              return_indices_ranked_by="self_confidence")
    scores = package_rank.get_label_quality_scores(labels, probs)
    per_class = package_filter.find_multilabel_issues_per_class(labels, probs)
    summary = package_dataset.multilabel_health_summary(labels, probs, verbose=False)
    print("issues", int(mask.sum()), "pairs", int(per_class.sum()), "first", ranked[:3].tolist(),
          "score sum", round(float(scores.sum()), 6),
          "health", summary["overall_multilabel_health_score"])
""")

NOTEBOOK = NOTEBOOK_READ + textwrap.dedent("""
    PACKAGE = "labelqa"
    from labelqa.multilabel_classification import dataset as package_dataset
    from labelqa.multilabel_classification import filter as package_filter
    from labelqa.multilabel_classification import rank as package_rank
""") + API_CALLS

NOTEBOOK_TWO = NOTEBOOK_READ + textwrap.dedent("""
    from labelqa.multilabel_classification.filter import find_label_issues
    from labelqa.multilabel_classification.rank import get_label_quality_scores
    issues = find_label_issues(given, probs)
    scores = get_label_quality_scores(given, probs)
    print("issues", int(issues.sum()))
""")

CLEANLAB_API = NOTEBOOK_READ + textwrap.dedent("""
    import warnings
    warnings.simplefilter("ignore")
    PACKAGE = "cleanlab"
    from cleanlab.multilabel_classification import dataset as package_dataset
    from cleanlab.multilabel_classification import filter as package_filter
    from cleanlab.multilabel_classification import rank as package_rank
""") + API_CALLS


def _tree_rss(root: int) -> tuple[int, int]:
    """Resident memory (bytes) of `root` and all its descendants, and of the Java processes
    among them (the Spark driver, which runs the executors too in local mode), from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    java: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                name, fields = handle.read().split("(", 1)[1].rsplit(")", 1)
            fields = fields.split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
            if name == "java":
                java.add(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    total = jvm = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        jvm += rss.get(pid, 0) if pid in java else 0
        stack.extend(children.get(pid, []))
    return total, jvm


#: Peak memory per N x K cell, measured at 1M x 40 (bytes): a run that would not fit in the
#: machine's available memory is skipped with that reason instead of swapping or being killed.
BYTES_PER_CELL = {"cleanlab": 153, "cleanlab-api": 153, "floor": 44}
PROGRAMS = ("labelqa", "cleanlab", "floor", "notebook", "cleanlab-api", "notebook-two")


def available_memory() -> int:
    with open("/proc/meminfo") as handle:
        fields = dict(line.split(":", 1) for line in handle)
    return int(fields["MemAvailable"].split()[0]) * 1024


def stage_seconds(output: Path) -> dict[str, float]:
    """The stage timings of the latest labelqa run's manifest."""
    manifests = sorted((output / "_manifests").rglob("*.json"), key=lambda p: p.stat().st_mtime)
    if not manifests:
        return {}
    manifest = json.loads(manifests[-1].read_text())
    return manifest.get("timings", {}).get("stages_seconds", {})


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under `folder` (0 if it does not exist), tolerating files that
    disappear while it walks."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def measure(command: list[str], log: Path, scratch: Path, env: dict | None = None,
            ) -> tuple[float, int, int, int, int, str]:
    """Wall seconds, peak RSS of the process tree and of its Java processes, peak bytes under
    `scratch` (Spark's local dir: shuffle files, disk caches, spills), exit code and the first
    error line; the whole output goes to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, text=True,
                                   env=env)
        peak = peak_jvm = peak_scratch = 0
        while process.poll() is None:
            tree, jvm = _tree_rss(process.pid)
            peak, peak_jvm = max(peak, tree), max(peak_jvm, jvm)
            peak_scratch = max(peak_scratch, folder_bytes(scratch))
            time.sleep(0.5)
    wall = time.perf_counter() - start
    lines = log.read_text(errors="replace").splitlines()
    errors = [line for line in lines if "Error" in line or "Exception" in line
              or line.startswith("labelqa:")]
    first_error = (errors or lines or [""])[0].strip()
    return wall, peak, peak_jvm, peak_scratch, process.returncode, first_error


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=40)
    parser.add_argument("--chunk", type=int, default=250_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--work", default=None, help="folder for inputs and outputs")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument("--ignore-memory-estimate", action="store_true",
                        help="run a program even where BYTES_PER_CELL says it will not fit")
    parser.add_argument("--skip", action="append", default=[],
                        choices=PROGRAMS)
    parser.add_argument("--annotators", action="store_true",
                        help="also time the audit of the labels in the long format "
                             "(labelqa-long) and the same with input.annotator_column "
                             "(labelqa-annotators): the annotators table's cost")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="labelqa-bench-"))
    data = work / f"n{args.rows}-k{args.classes}"
    if not (data / "predictions").exists():
        started = time.perf_counter()
        generate(data, args.rows, args.classes, args.chunk)
        print(f"generated {args.rows:,} x {args.classes} in {time.perf_counter() - started:.1f}"
              f" s at {data}")
    python = sys.executable
    env = {**os.environ, "PYSPARK_PYTHON": python}
    commands = {
        "labelqa": [python, "-m", "labelqa", "audit", "--labels", str(data / "labels"),
                    "--predictions", str(data / "predictions"), "--output",
                    str(work / "out"), "--master", args.master, "--dataset", "bench",
                    "--set", f"spark.conf.spark.driver.memory={args.driver_memory}",
                    "--set", f"spark.conf.spark.local.dir={work / 'spark-local'}"],
        "cleanlab": [python, "-c", CLEANLAB, str(data)],
        "floor": [python, "-c", FLOOR, str(data)],
        "notebook": [python, "-c", NOTEBOOK, str(data)],
        "cleanlab-api": [python, "-c", CLEANLAB_API, str(data)],
        "notebook-two": [python, "-c", NOTEBOOK_TWO, str(data)],
    }
    if args.annotators:
        long = ["--labels", str(long_labels(data)), "--set", "input.labels_format=long"]
        audit = commands["labelqa"][:4] + long + commands["labelqa"][6:]
        commands["labelqa-long"] = audit
        commands["labelqa-annotators"] = audit + ["--set",
                                                  "input.annotator_column=annotator"]
    results: dict[str, list[tuple[float, int]]] = {}
    for name, command in commands.items():
        if name in args.skip:
            continue
        needed = BYTES_PER_CELL.get(name, 0) * args.rows * args.classes
        if needed > 0.9 * available_memory() and not args.ignore_memory_estimate:
            print(f"{name:9s} skipped: needs about {needed / 2**30:.0f} GiB, "
                  f"{available_memory() / 2**30:.0f} GiB available", flush=True)
            continue
        for attempt in range(args.repeat):
            log = work / "logs" / f"{data.name}-{name}-{attempt + 1}.log"
            wall, peak, jvm, scratch, code, error = measure(command, log, work / "spark-local",
                                                            env)
            status = "ok" if code == 0 else f"exit {code} (log {log}): {error}"
            spark_figures = (f" (driver JVM {jvm / 2**20:.0f} MiB), scratch disk "
                             f"{scratch / 2**30:.1f} GiB" if name.startswith("labelqa") else "")
            print(f"{name:9s} run {attempt + 1}: {wall:8.1f} s  peak {peak / 2**20:8.0f} MiB"
                  f"{spark_figures}  {status}", flush=True)
            if name.startswith("labelqa") and code == 0:
                stages = ", ".join(f"{stage} {seconds:.1f}" for stage, seconds
                                   in stage_seconds(work / "out").items())
                print(f"          stages (s): {stages}; outputs "
                      f"{folder_bytes(work / 'out') / 2**30:.2f} GiB", flush=True)
            if code == 0:
                results.setdefault(name, []).append((wall, peak))
    print(f"\n{args.rows:,} examples x {args.classes} classes, {args.master}, "
          f"{os.cpu_count()} cores; medians of {args.repeat} run(s)")
    medians = {name: (statistics.median(w for w, _ in runs), max(p for _, p in runs))
               for name, runs in results.items()}
    for name, (wall, peak) in medians.items():
        print(f"  {name:9s} {wall:8.1f} s   peak tree RSS {peak / 2**20:8.0f} MiB")
    ratios = (("labelqa", "cleanlab"), ("labelqa", "floor"), ("notebook", "cleanlab-api"),
              ("notebook-two", "cleanlab"), ("notebook", "floor"),
              ("labelqa-annotators", "labelqa-long"))
    for ours, other in ratios:
        if ours in medians and other in medians:
            print(f"  {ours} / {other}: {medians[ours][0] / medians[other][0]:.2f}x time")
    if "notebook" in medians:
        matrix_bytes = args.rows * args.classes * 4
        print(f"  notebook peak / float32 matrix bytes: "
              f"{medians['notebook'][1] / matrix_bytes:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
