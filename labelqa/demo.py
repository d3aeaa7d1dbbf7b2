"""`labelqa demo`: the whole audit on a generated tagging sample with known annotation errors."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
from pyspark.sql import functions as F

from labelqa.api import RunContext, run_audit_job, utc_now, write_report
from labelqa.config import load_config
from labelqa.sample import generate, write_sample
from labelqa.tables import table_path

TAGS = ("person", "car", "dog", "cat", "tree", "building", "road", "sky", "water", "bicycle")
PREVALENCE = np.array([0.45, 0.30, 0.12, 0.10, 0.35, 0.40, 0.33, 0.50, 0.15, 0.08])
NUM_EXAMPLES = 4000
SEED = 2026


def run_demo(output: str = "demo-output", master: str | None = None) -> dict:
    from labelqa.spark.driver import set_log_levels
    from labelqa.spark.session import build_session

    started = time.perf_counter()
    out = Path(output).resolve()
    sample = generate(NUM_EXAMPLES, len(TAGS), SEED, prevalence=PREVALENCE,
                      missing_rate=0.05, extra_rate=0.01, dtype=np.float32,
                      separation=2.5, model_noise=1.2)
    labels_path, predictions_path = str(out / "input/labels"), str(out / "input/predictions")
    write_sample(sample, labels_path, predictions_path, rows_per_file=1000)
    config = load_config(None, [f"classes={list(TAGS)}"])
    spark = build_session(master, dict(config.spark.conf), "labelqa-demo")
    set_log_levels(spark, "ERROR", {})
    run = RunContext("demo", utc_now().date().isoformat(), uuid.uuid4().hex)
    report = run_audit_job(spark, labels_path, predictions_path, str(out), config, run)

    partition = (F.col("dataset") == run.dataset) & (F.col("run_date") == run.run_date)
    class_issues = spark.read.parquet(table_path(str(out), "class_issues")).filter(partition)
    rows, classes = np.nonzero(sample.injected)
    injected = spark.createDataFrame(
        [(int(sample.ids[r]), int(k)) for r, k in zip(rows, classes)],
        "id long, class_index int")
    found = class_issues.count()
    caught = class_issues.join(injected, ["id", "class_index"]).count()
    precision = caught / found if found else 0.0
    recall = caught / len(rows) if len(rows) else 0.0

    names = F.array(*[F.lit(t) for t in TAGS])
    def tag_names(column: str):
        return F.array_join(F.transform(column, lambda k: F.element_at(names, k + 1)), ", ")
    worst = (spark.read.parquet(table_path(str(out), "examples")).filter(partition)
             .filter(F.col("issue_rank") <= 10).orderBy("issue_rank")
             .select("issue_rank", "id", "label_quality_score",
                     tag_names("given_labels").alias("given"),
                     tag_names("suggested_labels").alias("suggested"))
             .collect())
    html_report = write_report(spark, str(out), run.dataset, run.run_date)
    elapsed = time.perf_counter() - started

    print(f"\nlabelqa demo: {report.num_examples} examples x {report.num_classes} tags "
          f"({', '.join(TAGS)})")
    print(f"outputs:  {out}/{{examples,class_issues,classes,summary}}/"
          f"dataset={run.dataset}/run_date={run.run_date}")
    print(f"manifest: {report.manifest}")
    print(f"report:   {html_report} (open it in a browser)")
    print(f"found {report.num_label_issues} examples with label issues "
          f"({found} wrong tag decisions); health score {report.overall_health_score:.4f}")
    print(f"injected annotation errors: {len(rows)} (forgotten and wrongly added tags); "
          f"caught {caught}: precision {precision:.3f}, recall {recall:.3f}")
    print("\nthe ten worst examples:")
    print(f"{'rank':>4}  {'id':>6}  {'score':>6}  given -> suggested")
    for row in worst:
        print(f"{row['issue_rank']:>4}  {row['id']:>6}  {row['label_quality_score']:.4f}  "
              f"[{row['given']}] -> [{row['suggested']}]")
    print(f"\nnext, a review queue of the 50 worst (README: Acting on the findings):\n"
          f"  labelqa queue --output {out} --dataset demo --budget 50 --min-per-class 2 "
          f"--to {out}/queue.csv")
    print(f"\ndemo finished in {elapsed:.1f} s")
    return {"found": found, "caught": caught, "injected": len(rows), "precision": precision,
            "recall": recall, "report": report, "html_report": html_report, "sample": sample,
            "output": str(out)}
