"""Which annotators forget which tags: the `annotators` table of a run with
`input.annotator_column` (long labels: each tag row names who gave it).

Per annotator, from the audited examples only:

* `examples_tagged`: examples with at least one of their tag rows; `tags_given`: their
  distinct (example, class) tags;
* `flagged_extraneous`: their tags that the run flags (`class_issues.given`), as a rate of
  `tags_given`;
* `flagged_missing`: the classes flagged as missing on the examples they tagged, as a rate of
  `missing_opportunities` (their examples times K, less their own tags: the (example, class)
  pairs they could have forgotten). An example's labels are the union of its annotators' tags,
  so a forgotten tag is forgotten by every annotator of the example.

Each rate has a Wilson 95 % interval (`labelqa.core.intervals`) and its ratio to the pooled
rate of all annotators; an annotator `stands out` when the interval's low end is above the
pooled rate. The counts are one Spark aggregation over the label rows, the written
`examples` ids and `class_issues`; only annotator-sized rows reach the driver, where the
intervals are computed.
"""

from __future__ import annotations

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from labelqa.config import InputConfig
from labelqa.core.intervals import wilson_interval
from labelqa.errors import InputError
from labelqa.spark.formats import RAW_PREFIX, labels_rows
from labelqa.spark.output import write_partition
from labelqa.tables import ANNOTATORS, partition_dir

COUNTS = ("examples_tagged", "tags_given", "flagged_extraneous", "flagged_missing")


def check_annotator_column(labels: DataFrame, inp: InputConfig) -> None:
    """The configured annotator column exists and holds names or numbers (schema only)."""
    name = inp.annotator_column
    if name is None:
        return
    fields = {f.name: f.dataType for f in labels.schema.fields}
    if name not in fields:
        raise InputError("labels", name, "input.annotator_column names no column of the "
                         f"labels table (columns: {', '.join(fields)})")
    if not isinstance(fields[name], (T.StringType, T.IntegralType)):
        raise InputError("labels", name, "the annotator column must be a string or an "
                         f"integer, found {fields[name].simpleString()}")


def annotator_counts(labels: DataFrame, inp: InputConfig, class_names: tuple[str, ...],
                     examples: DataFrame, class_issues: DataFrame) -> DataFrame:
    """Per annotator (null: rows without one): the four counts, as a Spark aggregation.

    The label rows are read through the audit's own long-format reader, so a row counts here
    exactly when the audit read it: a row that broke a rule, or belongs to an example that
    was not audited, does not count. Pass the written `examples` and `class_issues` tables
    (their Parquet), not the audit's DataFrames: those decode the scored cache again.

    Every join is on `id`, so one exchange of the narrow tag rows by id serves the joins and
    the (annotator, id) aggregation. Measured at 1M x 40 (6.4M tag rows, `bench.py
    --annotators`): 10.7 s, 1.19x the same audit without annotators; a first version with a
    distinct and pair joins over the scored cache took 41 s, with two count_distinct 18 s.
    """
    checked = labels_rows(labels, inp, class_names)
    tags = (checked.rows.filter(F.col("_reason").isNull())
            .select(F.col(RAW_PREFIX + inp.annotator_column).cast("string").alias("annotator"),
                    "id", F.col("_unit").alias("class_index")))
    flags = class_issues.groupBy("id").agg(
        F.collect_list(F.when(F.col("given"), F.col("class_index"))).alias("_wrong"),
        F.count_if(~F.col("given")).alias("_missing"))
    # a set per (annotator, example): a repeated tag counts once; one aggregate, where two
    # count_distinct would make Spark expand every row twice
    per_example = (tags.join(examples.select("id"), "id", "left_semi")
                   .join(flags, "id", "left")
                   .groupBy("annotator", "id")
                   .agg(F.collect_set("class_index").alias("_tags"),
                        F.first(F.col("_wrong")).alias("_wrong"),
                        F.first(F.coalesce(F.col("_missing"), F.lit(0))).alias("missing"))
                   .select("annotator", F.size("_tags").alias("tags"),
                           F.size(F.array_intersect("_tags", F.coalesce(
                               "_wrong", F.array().cast("array<int>")))).alias("wrong"),
                           "missing"))
    return per_example.groupBy("annotator").agg(
        F.count("*").alias("examples_tagged"), F.sum("tags").alias("tags_given"),
        F.sum("wrong").alias("flagged_extraneous"), F.sum("missing").alias("flagged_missing")
    ).select("annotator", *[F.col(c).cast("long").alias(c) for c in COUNTS])


def write_annotators(spark: SparkSession, labels: DataFrame, inp: InputConfig,
                     class_names: tuple[str, ...], staging: str, dataset: str,
                     run_date: str) -> int:
    """Stage the run's `annotators` partition from its label table and its staged `examples`
    and `class_issues` partitions; returns the number of annotators."""
    staged = {name: spark.read.parquet(partition_dir(staging, name, dataset, run_date))
              for name in ("examples", "class_issues")}
    counts = annotator_counts(labels, inp, class_names, staged["examples"],
                              staged["class_issues"])
    table = annotators_table(spark, counts, len(class_names))
    write_partition(table, staging, "annotators", dataset, run_date)
    return table.count()


def annotators_table(spark: SparkSession, counts: DataFrame, num_classes: int) -> DataFrame:
    """The `annotators` table from the per-annotator counts (annotator-sized, collected)."""
    rows = sorted(counts.collect(), key=lambda r: (r["annotator"] is None, r["annotator"] or ""))
    if not rows:
        return spark.createDataFrame([], ANNOTATORS)
    column = {c: np.array([r[c] for r in rows], dtype=np.int64) for c in COUNTS}
    opportunities = column["examples_tagged"] * num_classes - column["tags_given"]
    extraneous = _rates(column["flagged_extraneous"], column["tags_given"])
    missing = _rates(column["flagged_missing"], opportunities)
    table = []
    for i, row in enumerate(rows):
        table.append((row["annotator"], *(int(column[c][i]) for c in COUNTS[:3]),
                      *(part[i] for part in extraneous), int(opportunities[i]),
                      int(column["flagged_missing"][i]), *(part[i] for part in missing)))
    return spark.createDataFrame(table, ANNOTATORS)


def pooled_rate(successes: int, trials: int) -> float:
    """All annotators' rate together: every flagged tag over every tag (or chance) of all of
    them (NaN without any). The table's ratios and the report's summary both use it."""
    return successes / trials if trials else float("nan")


def _rates(successes: np.ndarray, trials: np.ndarray) -> list[list]:
    """rate, interval low and high, ratio to the pooled rate, stands out (above it)."""
    low, high = wilson_interval(successes, trials)
    pooled = pooled_rate(int(successes.sum()), int(trials.sum()))
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = successes / trials
        ratio = rate / pooled if pooled > 0 else np.full(len(rate), np.nan)
    stands_out = low > pooled

    def plain(values: np.ndarray) -> list:
        return [None if np.isnan(v) else float(v) for v in values]

    return [plain(rate), plain(low), plain(high), plain(ratio),
            [bool(s) if t else None for s, t in zip(stands_out, trials)]]
