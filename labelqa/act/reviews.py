"""`labelqa reviews`: reviewers' verdicts on a run's findings, and the precision they measure.

Reads a CSV (`id`, `class`, `verdict` in confirmed|rejected, optional `reviewer`) or a Label
Studio JSON export (`labelqa.act.labelstudio`), checks every verdict against the run, merges
it into the run's `reviews` partition (a later verdict on the same (id, class_index)
replaces the earlier one), writes `review_precision` (overall, per class, per rank decile,
with Wilson 95 % intervals) and sets the precision on the run's row of the `runs` history.

The verdicts are bounded by what reviewers did (hundreds or thousands of rows): they are
parsed on the driver; the checks against the run's tables are joins in Spark.
"""

from __future__ import annotations

import csv
import io
import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from labelqa.act.findings import RunFindings
from labelqa.core.intervals import wilson_interval
from labelqa.errors import InputError
from labelqa.spark.driver import path_exists, read_text
from labelqa.spark.output import discard, publish, replace_directory, write_parquet, write_partition
from labelqa.tables import (
    REVIEW_PRECISION,
    RUNS,
    RUNS_SCHEMA,
    dataset_dir,
    partition_dir,
    reviews_schema,
    staging_root,
)

VERDICTS = ("confirmed", "rejected", "corrected")
CSV_VERDICTS = ("confirmed", "rejected")
FORMATS = ("csv", "label-studio")
NUM_DECILES = 10


def stored_reviews(spark: SparkSession, findings: RunFindings) -> DataFrame | None:
    """The run's `reviews` partition, or None before its first `labelqa reviews`."""
    path = partition_dir(findings.output, "reviews", findings.dataset, findings.run_date)
    if not path_exists(spark, path):
        return None
    return spark.read.schema(reviews_schema(findings.id_type)).parquet(path)


def review_format(path: str, given: str | None) -> str:
    """The reviews file's format: given, else from its extension."""
    if given is not None:
        return given
    lowered = path.lower()
    if lowered.endswith(".csv"):
        return "csv"
    if lowered.endswith(".json"):
        return "label-studio"
    raise InputError("reviews", None, f"cannot tell the format of {path!r} from its "
                     "extension (.csv or .json): give --format csv or --format label-studio")


# ---- parsing: rows of (id, class_index, verdict, reviewer, reviewed_at, where) -------------

@dataclass(frozen=True)
class Verdict:
    id: object  # int or str, as the run's ids
    class_index: int
    verdict: str
    reviewer: str | None
    reviewed_at: object  # datetime or None
    where: str  # "line 7" / "row 3": for the error messages


def _cast_id(text: str, id_type: T.DataType, where: str) -> object:
    if isinstance(id_type, T.LongType):
        try:
            return int(text)
        except ValueError:
            raise InputError("reviews", "id", f"{where}: id {text!r} is not an integer (the "
                             "run's ids are bigint)") from None
    return text


def _class_index(value: str, class_names: Sequence[str], where: str) -> int:
    """A class by name, else by index."""
    if value in class_names:
        return class_names.index(value)
    if value.isdigit() and int(value) < len(class_names):
        return int(value)
    raise InputError("reviews", "class", f"{where}: class {value!r} is not one of the run's "
                     "classes (a name or an index 0.."
                     f"{len(class_names) - 1})")


def parse_csv(text: str, class_names: Sequence[str], id_type: T.DataType) -> list[Verdict]:
    reader = csv.DictReader(io.StringIO(text))
    header = {name.strip().lower(): name for name in reader.fieldnames or []}
    missing = [name for name in ("id", "class", "verdict") if name not in header]
    if missing:
        raise InputError("reviews", missing[0], "line 1: the CSV needs the columns id, class "
                         f"and verdict (optional: reviewer); found {list(header) or 'none'}")
    rows = []
    for record in reader:
        where = f"line {reader.line_num}"
        values = {key: (record.get(name) or "").strip() for key, name in header.items()}
        if not any(values.values()):
            continue
        verdict = values["verdict"].lower()
        if verdict not in CSV_VERDICTS:
            raise InputError("reviews", "verdict", f"{where}: verdict {values['verdict']!r} "
                             f"is not one of {', '.join(CSV_VERDICTS)}")
        if not values["id"]:
            raise InputError("reviews", "id", f"{where}: the id is empty")
        rows.append(Verdict(_cast_id(values["id"], id_type, where),
                            _class_index(values["class"], class_names, where), verdict,
                            values.get("reviewer") or None, None, where))
    return rows


def parse_label_studio(text: str, class_names: Sequence[str], id_type: T.DataType
                       ) -> tuple[list[Verdict], int]:
    from labelqa.act.labelstudio import verdicts_from_export

    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError("reviews", None, f"not a JSON file ({error})") from None
    found, skipped = verdicts_from_export(tasks, class_names)
    rows = []
    for number, row in enumerate(found, start=1):
        where = f"verdict {number} (id {row['id']!r}, class {row['class_name']!r})"
        rows.append(Verdict(_cast_id(row["id"], id_type, where),
                            _class_index(row["class_name"], class_names, where),
                            row["verdict"], row.get("reviewer"), row.get("reviewed_at"), where))
    return rows, skipped


# ---- checking against the run ------------------------------------------------------------

def checked_verdicts(spark: SparkSession, findings: RunFindings, verdicts: list[Verdict],
                     source: str) -> DataFrame:
    """The verdicts as `reviews` rows; a verdict on a pair that is not a finding of the run
    (or, for `corrected`, on an example the run did not audit) is an InputError."""
    latest = {}
    for verdict in verdicts:  # one file's later line wins
        latest[(verdict.id, verdict.class_index)] = verdict
    schema = (f"id {findings.id_type.simpleString()}, class_index int, verdict string, "
              "reviewer string, reviewed_at timestamp, position int, where string")
    rows = [(v.id, v.class_index, v.verdict, v.reviewer, v.reviewed_at, i, v.where)
            for i, v in enumerate(latest.values())]
    new = spark.createDataFrame(rows, schema)
    issues = findings.class_issues(spark).select(
        "id", "class_index", F.col("given").alias("issue_given"), F.lit(True).alias("flagged"))
    examples = findings.examples(spark).select("id", "given_labels", "issue_rank")
    joined = (new.join(issues, ["id", "class_index"], "left")
              .join(examples, "id", "left")
              .withColumn("flagged", F.coalesce("flagged", F.lit(False))))
    wrong = joined.filter(
        ((F.col("verdict") != "corrected") & ~F.col("flagged"))
        | ((F.col("verdict") == "corrected") & F.col("given_labels").isNull()))
    first = wrong.orderBy("position").first()
    if first is not None:
        what = ("an example the run audited" if first["verdict"] == "corrected"
                else "a finding of the run (class_issues)")
        raise InputError("reviews", None, f"{first['where']}: (id {first['id']!r}, class "
                         f"{findings.class_names[first['class_index']]!r}) is not {what}"
                         f"; {wrong.count()} such verdict(s), none stored", first["id"])
    names = F.array(*[F.lit(n) for n in findings.class_names])
    given = F.coalesce("issue_given", F.array_contains("given_labels", F.col("class_index")))
    return joined.select(
        "id", "class_index", F.element_at(names, F.col("class_index") + 1).alias("class_name"),
        "verdict", "flagged", given.alias("given"), "issue_rank", "reviewer", "reviewed_at",
        F.lit(source).alias("source"))


# ---- precision -----------------------------------------------------------------------------

def decile(issue_rank: F.Column, num_flagged: int) -> F.Column:
    """ceil(10 * issue_rank / num_flagged_examples): 1 = the most severe tenth."""
    return F.ceil(F.lit(NUM_DECILES) * issue_rank / F.lit(max(num_flagged, 1))).cast("int")


def precision_rows(reviews: DataFrame, class_names: Sequence[str], num_flagged: int
                   ) -> list[dict]:
    """Precision = confirmed / (confirmed + rejected) over the flagged reviewed pairs, with
    its Wilson 95 % interval: overall (always), per class and per rank decile (the ones with
    reviewed pairs)."""
    judged = reviews.filter(F.col("flagged") & F.col("verdict").isin(*CSV_VERDICTS))
    confirmed = F.count_if(F.col("verdict") == "confirmed").alias("confirmed")
    scopes = [("overall", judged.agg(F.count("*").alias("reviewed"), confirmed)
               .select(F.lit(None).cast("string").alias("key"), "*")),
              ("class", judged.groupBy("class_index").agg(F.count("*").alias("reviewed"),
                                                           confirmed)
               .orderBy("class_index")
               .select(F.col("class_index").cast("string").alias("key"), "reviewed",
                       "confirmed")),
              ("decile", judged.filter(F.col("issue_rank").isNotNull())
               .groupBy(decile(F.col("issue_rank"), num_flagged).alias("d"))
               .agg(F.count("*").alias("reviewed"), confirmed).orderBy("d")
               .select(F.col("d").cast("string").alias("key"), "reviewed", "confirmed"))]
    rows = []
    for scope, frame in scopes:
        for row in frame.collect():
            key = row["key"]
            if scope == "class":
                key = class_names[int(key)]
            rows.append({"scope": scope, "key": key, "reviewed": int(row["reviewed"]),
                         "confirmed": int(row["confirmed"])})
    low, high = wilson_interval(np.array([r["confirmed"] for r in rows]),
                                np.array([r["reviewed"] for r in rows]))
    for row, lo, hi in zip(rows, low, high):
        reviewed = row["reviewed"]
        row["precision"] = row["confirmed"] / reviewed if reviewed else None
        row["precision_low"] = None if math.isnan(lo) else float(lo)
        row["precision_high"] = None if math.isnan(hi) else float(hi)
    return rows


# ---- the command ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ReviewsReport:
    stored: int  # verdicts in the run's reviews partition now
    new: int  # verdicts of this file
    replaced: int  # earlier verdicts this file replaced
    skipped_tasks: int  # Label Studio tasks without an annotation
    verdicts: dict[str, int]  # stored verdicts by kind
    precision: list[dict]  # the review_precision rows
    reviews_path: str
    history_updated: bool


def _runs_rewritten(spark: SparkSession, findings: RunFindings, staging: str,
                    overall: dict) -> bool:
    """The dataset's `runs` partition with the reviewed run's row carrying the precision,
    staged (read with the explicit schema: rows written before these columns existed read
    them as null). False when the history has no row of the run."""
    path = dataset_dir(findings.output, RUNS, findings.dataset)
    if not path_exists(spark, path):
        return False
    runs = spark.read.schema(RUNS_SCHEMA).parquet(path)
    if runs.filter(F.col("run_id") == findings.run_id).limit(1).count() == 0:
        return False
    this = F.col("run_id") == findings.run_id
    values = {"reviewed_pairs": F.lit(overall["reviewed"]).cast("long"),
              "confirmed_pairs": F.lit(overall["confirmed"]).cast("long"),
              "review_precision": F.lit(overall["precision"]).cast("double")}
    updated = runs.select(*[F.when(this, values[c]).otherwise(F.col(c)).alias(c)
                            if c in values else F.col(c) for c in runs.columns])
    write_parquet(updated.coalesce(1), f"{staging}/runs")
    return True


def record_reviews(spark: SparkSession, findings: RunFindings, path: str,
                   review_format_name: str | None = None) -> ReviewsReport:
    fmt = review_format(path, review_format_name)
    if fmt not in FORMATS:
        raise InputError("reviews", None, f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    text = read_text(spark, path)
    if text is None:
        raise InputError("reviews", None, f"no file at {path!r}")
    skipped = 0
    if fmt == "csv":
        verdicts = parse_csv(text, findings.class_names, findings.id_type)
    else:
        verdicts, skipped = parse_label_studio(text, findings.class_names, findings.id_type)
    new = checked_verdicts(spark, findings, verdicts, fmt)
    staging = staging_root(findings.output, uuid.uuid4().hex)
    try:
        earlier = stored_reviews(spark, findings)
        merged, replaced = new, 0
        if earlier is not None:
            kept = earlier.join(new.select("id", "class_index"), ["id", "class_index"],
                                "left_anti")
            replaced = earlier.count() - kept.count()
            merged = kept.unionByName(new)
        write_partition(merged.orderBy(F.col("issue_rank").asc_nulls_last(), "id",
                                       "class_index"),
                        staging, "reviews", findings.dataset, findings.run_date)
        stored = spark.read.schema(reviews_schema(findings.id_type)).parquet(
            partition_dir(staging, "reviews", findings.dataset, findings.run_date))
        counts = {row["verdict"]: int(row["count"])
                  for row in stored.groupBy("verdict").count().collect()}
        precision = precision_rows(stored, findings.class_names, findings.num_label_issues)
        write_partition(spark.createDataFrame(precision, REVIEW_PRECISION).coalesce(1),
                        staging, "review_precision", findings.dataset, findings.run_date)
        history = _runs_rewritten(spark, findings, staging, precision[0])
        publish_reviews(spark, staging, findings, history)
    except BaseException:
        discard(spark, staging)
        raise
    return ReviewsReport(sum(counts.values()), len({(v.id, v.class_index) for v in verdicts}),
                         replaced, skipped, counts, precision,
                         partition_dir(findings.output, "reviews", findings.dataset,
                                       findings.run_date), history)


def publish_reviews(spark: SparkSession, staging: str, findings: RunFindings,
                    history: bool) -> None:
    if history:  # before publish() removes the staging directory
        replace_directory(spark, f"{staging}/runs",
                          dataset_dir(findings.output, RUNS, findings.dataset),
                          f"{staging}/_replaced/runs")
    publish(spark, staging, findings.output, ("reviews", "review_precision"),
            findings.dataset, findings.run_date)


def describe(report: ReviewsReport, findings: RunFindings) -> list[str]:
    """What `labelqa reviews` prints."""
    def shown(row: dict) -> str:
        if not row["reviewed"]:
            return "no reviewed flagged pair"
        return (f"{row['precision']:.4f} ({row['confirmed']} of {row['reviewed']} confirmed; "
                f"95% interval {row['precision_low']:.4f}-{row['precision_high']:.4f})")

    verdicts = ", ".join(f"{report.verdicts.get(v, 0)} {v}" for v in VERDICTS)
    lines = [f"reviews of dataset={findings.dataset} run_date={findings.run_date}: "
             f"{report.new} verdict(s) read ({report.replaced} replaced earlier ones), "
             f"{report.stored} stored: {verdicts}"]
    if report.skipped_tasks:
        lines.append(f"{report.skipped_tasks} Label Studio task(s) without an annotation "
                     "skipped")
    overall = report.precision[0]
    lines.append(f"precision of the findings: {shown(overall)}")
    for scope, title in (("class", "per class"), ("decile", "per rank decile (1 = most "
                                                            "severe tenth)")):
        rows = [r for r in report.precision if r["scope"] == scope]
        if rows:
            lines.append(f"{title}: " + "; ".join(
                f"{r['key']} {r['precision']:.3f} ({r['confirmed']}/{r['reviewed']})"
                for r in rows))
    lines.append(f"reviews: {report.reviews_path}")
    if not report.history_updated:
        lines.append("runs history: no row of this run to update")
    return lines
