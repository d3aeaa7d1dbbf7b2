"""Read what the report shows from the output tables of one run: K-sized tables, a binned
score histogram, the few worst examples and counts against the previous run. Nothing that
grows with the number of rows reaches the driver."""

from __future__ import annotations

import dataclasses
import json
import math

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from labelqa.act.annotators import pooled_rate
from labelqa.act.findings import latest_run_date, partition
from labelqa.report.model import (
    AnnotatorRow,
    Annotators,
    Change,
    ClassRow,
    PrecisionRow,
    ReportData,
    Reviews,
    ScoreHistogram,
    WorstExample,
)
from labelqa.spark.driver import path_exists
from labelqa.spark.history import compare_with_previous
from labelqa.tables import partition_dir, table_path

HISTOGRAM_BINS = 50
CLASS_FIELDS = tuple(ClassRow.__dataclass_fields__)
ANNOTATOR_FIELDS = tuple(AnnotatorRow.__dataclass_fields__)
#: the report lists at most this many annotators that stand out
MAX_ANNOTATORS = 20


def score_histogram(examples: DataFrame, bins: int = HISTOGRAM_BINS) -> ScoreHistogram:
    """Equal-width bins over [0, 1] (a score of 1 falls in the last bin), by flag."""
    bin_index = F.least(F.floor(F.col("label_quality_score") * bins).cast("int"),
                        F.lit(bins - 1))
    counts = (examples.groupBy(bin_index.alias("bin"))
              .agg(F.count_if("is_label_issue").alias("flagged"),
                   F.count_if(~F.col("is_label_issue")).alias("not_flagged"),
                   F.max(F.when(F.col("is_label_issue"), F.col("label_quality_score")))
                   .alias("cutoff"))
              .collect())
    flagged, not_flagged = [0] * bins, [0] * bins
    cutoffs = []
    for row in counts:
        flagged[row["bin"]] = int(row["flagged"])
        not_flagged[row["bin"]] = int(row["not_flagged"])
        if row["cutoff"] is not None:
            cutoffs.append(float(row["cutoff"]))
    edges = tuple(i / bins for i in range(bins + 1))
    return ScoreHistogram(edges, tuple(flagged), tuple(not_flagged),
                          max(cutoffs) if cutoffs else None)


def worst_examples(examples: DataFrame, class_names: tuple[str, ...],
                   limit: int) -> tuple[WorstExample, ...]:
    rows = (examples.filter(F.col("issue_rank") <= limit)
            .select("issue_rank", F.col("id").cast("string").alias("id"),
                    "label_quality_score", "given_labels", "suggested_labels",
                    F.col("explanation.text").alias("explanation"))
            .orderBy("issue_rank").collect())
    return tuple(WorstExample(int(row["issue_rank"]), row["id"],
                              float(row["label_quality_score"]),
                              tuple(class_names[i] for i in row["given_labels"]),
                              tuple(class_names[i] for i in row["suggested_labels"]),
                              row["explanation"] or "")
                 for row in rows)


def issue_changes(current: DataFrame, previous: DataFrame) -> tuple[int, int]:
    """(new, resolved): flagged now and not before (or absent before); flagged before and
    not now (or absent now)."""
    now = current.select("id", F.col("is_label_issue").alias("now"))
    before = previous.select("id", F.col("is_label_issue").alias("before"))
    counts = (now.join(before, "id", "full")
              .agg(F.count_if(F.coalesce("now", F.lit(False))
                              & ~F.coalesce("before", F.lit(False))).alias("new"),
                   F.count_if(F.coalesce("before", F.lit(False))
                              & ~F.coalesce("now", F.lit(False))).alias("resolved"))
              .first())
    return int(counts["new"]), int(counts["resolved"])


def annotators_summary(spark: SparkSession, output: str, dataset: str, run_date: str,
                       limit: int = MAX_ANNOTATORS) -> Annotators | None:
    """The annotators that stand out (annotator-sized aggregates; at most `limit` rows)."""
    if not path_exists(spark, table_path(output, "annotators")):
        return None
    try:
        table = partition(spark, output, "annotators", dataset, run_date)
    except AnalysisException:  # the directory, but no run wrote a file in it (yet)
        return None
    sums = ("flagged_extraneous", "tags_given", "flagged_missing", "missing_opportunities")
    totals = table.agg(
        F.count("*").alias("count"), *[F.sum(c).alias(c) for c in sums],
        F.count_if(F.col("extraneous_stands_out") | F.col("missing_stands_out")).alias("out"),
    ).first()
    if not totals["count"]:
        return None  # this run has no annotators partition (no annotator column)
    worst = F.greatest(F.when(F.col("extraneous_stands_out"), F.col("extraneous_ratio")),
                       F.when(F.col("missing_stands_out"), F.col("missing_ratio")))
    rows = (table.filter(F.col("extraneous_stands_out") | F.col("missing_stands_out"))
            .orderBy(worst.desc(), F.col("annotator").asc_nulls_last()).limit(limit)
            .select(*ANNOTATOR_FIELDS).collect())
    pooled = [pooled_rate(totals[k], totals[n]) for k, n in (sums[:2], sums[2:])]
    return Annotators(int(totals["count"]),
                      *[None if math.isnan(rate) else rate for rate in pooled],
                      tuple(AnnotatorRow(**row.asDict()) for row in rows),
                      int(totals["out"]) - len(rows))
def run_reviews(spark: SparkSession, output: str, dataset: str, run_date: str
                ) -> Reviews | None:
    """The verdicts' counts and the measured precision, when the run has reviews."""
    path = partition_dir(output, "review_precision", dataset, run_date)
    if not path_exists(spark, path):
        return None
    order = {"overall": 0, "class": 1, "decile": 2}
    rows = sorted(spark.read.parquet(path).collect(),
                  key=lambda r: (order[r["scope"]], int(r["key"]) if r["scope"] == "decile"
                                 else 0))
    counts = {row["verdict"]: int(row["count"]) for row in
              spark.read.parquet(partition_dir(output, "reviews", dataset, run_date))
              .groupBy("verdict").count().collect()}
    return Reviews(counts.get("confirmed", 0), counts.get("rejected", 0),
                   counts.get("corrected", 0),
                   tuple(PrecisionRow(**{f: row[f] for f in PrecisionRow.__dataclass_fields__})
                         for row in rows))


def gather_report(spark: SparkSession, output: str, dataset: str, run_date: str | None,
                  generated_at: str, max_examples: int = 25) -> ReportData:
    run_date = latest_run_date(spark, output, dataset, run_date)
    summary = partition(spark, output, "summary", dataset, run_date).first()
    classes_df = partition(spark, output, "classes", dataset, run_date)
    # runs written before a column existed (separation_auc) show it as unknown
    classes = tuple(ClassRow(**{f: row[f] for f in CLASS_FIELDS if f in row.__fields__})
                    for row in classes_df.orderBy("class_index").collect())
    names = tuple(c.class_name for c in classes)
    examples = partition(spark, output, "examples", dataset, run_date)

    status = None
    if path_exists(spark, table_path(output, "runs")):
        runs = (spark.read.parquet(table_path(output, "runs"))
                .filter((F.col("dataset") == dataset) & (F.col("run_id") == summary["run_id"]))
                .select("status").first())
        status = runs["status"] if runs else None

    comparison = compare_with_previous(spark, output, dataset, run_date, classes_df,
                                       summary["run_id"], top=10)
    change = Change()
    if comparison.previous_run_date is not None:
        previous = partition(spark, output, "examples", dataset, comparison.previous_run_date)
        new, resolved = issue_changes(examples, previous)
        change = Change(**{f.name: getattr(comparison, f.name)
                           for f in dataclasses.fields(comparison)},
                        new_issues=new, resolved_issues=resolved)

    config = json.loads(summary["config_json"])
    return ReportData(
        dataset=dataset, run_date=run_date, run_id=summary["run_id"], status=status,
        generated_at=generated_at,
        num_examples=int(summary["num_examples"]), num_classes=int(summary["num_classes"]),
        num_label_issues=int(summary["num_label_issues"]),
        overall_health_score=float(summary["overall_health_score"]),
        filter_by=summary["filter_by"], scoring_method=config["scoring"]["method"],
        rows_quarantined=int(summary["labels_quarantined"]
                             + summary["predictions_quarantined"]),
        classes=classes, histogram=score_histogram(examples),
        worst=worst_examples(examples, names, max_examples), change=change,
        separation_auc=(summary["separation_auc"] if "separation_auc" in summary.__fields__
                        else None),
        annotators=annotators_summary(spark, output, dataset, run_date),
        reviews=run_reviews(spark, output, dataset, run_date))
