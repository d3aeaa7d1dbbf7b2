"""The review queue: the `budget` flagged examples of one run to verify first.

Issue order (`issue_rank`), except that each class with issues gets at least `min_per_class`
slots: an example counts for every class it has a flagged pair in, and each class's reserved
examples are its best-ranked flagged ones. The rest of the budget goes to the best-ranked
examples not reserved. The selection runs in Spark (a window per class over the flagged
pairs); only the queued rows, at most the budget, reach the driver.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from labelqa.act import labelstudio
from labelqa.act.findings import read_findings
from labelqa.errors import ConfigError, InputError
from labelqa.spark.driver import write_text_atomically
from labelqa.spark.inputs import read_input
from labelqa.spark.names import column
from labelqa.spark.output import discard, replace_directory

FORMATS = ("csv", "parquet", "label-studio")
#: the queue's own columns, before the data columns
QUEUE_COLUMNS = ("id", "issue_rank", "label_quality_score", "given_tags", "suggested_tags",
                 "explanation", "flagged")
FLAGGED_TYPE = "array<struct<class_name: string, class_index: int, given: boolean>>"
LIST_SEPARATOR = "; "  # lists in a CSV cell


@dataclass(frozen=True)
class QueueRequest:
    budget: int
    min_per_class: int = 0
    data: str | None = None  # a Parquet table joined by id
    data_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.budget < 1:
            raise ConfigError(f"--budget must be at least 1, not {self.budget}")
        if self.min_per_class < 0:
            raise ConfigError(f"--min-per-class must be 0 or more, not {self.min_per_class}")
        if (self.data is None) != (not self.data_columns):
            raise ConfigError("--data and --data-columns go together: the table and the "
                              "columns of it the reviewers see")
        repeated = sorted({c for c in self.data_columns if self.data_columns.count(c) > 1})
        if repeated:
            raise ConfigError(f"--data-columns names {', '.join(repeated)} more than once")


@dataclass(frozen=True)
class Queue:
    rows: list[dict]  # QUEUE_COLUMNS then the data columns, by issue_rank
    schema: T.StructType
    data_columns: tuple[str, ...]
    class_names: tuple[str, ...]
    flagged_examples: int  # flagged examples of the run
    reserved: int  # examples queued for the per-class minimum
    classes_with_issues: int
    missing_data: int  # queued ids not in the data table
    model_version: str  # names the run in Label Studio's predictions


def selection(examples: DataFrame, class_issues: DataFrame, budget: int, min_per_class: int
              ) -> tuple[DataFrame, int, int, int]:
    """The queued (id, issue_rank), and (flagged examples, reserved examples, classes with
    issues). An InputError when the reservation alone needs more than the budget."""
    flagged = examples.filter(F.col("issue_rank").isNotNull()).select("id", "issue_rank")
    pairs = class_issues.select("id", "class_index").join(flagged, "id")
    best = Window.partitionBy("class_index").orderBy("issue_rank")
    reserved_ids = (pairs.withColumn("place", F.row_number().over(best))
                    .filter(F.col("place") <= min_per_class).select("id").distinct()
                    .withColumn("reserved", F.lit(True)))
    marked = flagged.join(reserved_ids, "id", "left").withColumn(
        "reserved", F.coalesce("reserved", F.lit(False)))
    counts = marked.agg(F.count("*").alias("flagged"),
                        F.count_if("reserved").alias("reserved")).first()
    classes = pairs.select("class_index").distinct().count()
    num_flagged, reserved = int(counts["flagged"]), int(counts["reserved"])
    if reserved > budget:
        raise InputError("class_issues", None, f"--min-per-class {min_per_class} over the "
                         f"{classes} classes with issues needs {reserved} examples, more than "
                         f"--budget {budget}: raise the budget to {reserved} or lower the "
                         "minimum")
    rest = (marked.filter(~F.col("reserved")).orderBy("issue_rank")
            .limit(budget - reserved))
    chosen = marked.filter(F.col("reserved")).unionByName(rest).select("id", "issue_rank")
    return chosen, num_flagged, reserved, classes


def _data_table(spark: SparkSession, request: QueueRequest, id_column: str,
                id_type: T.DataType) -> DataFrame:
    """The data table's id (as the run's type) and requested columns, checked."""
    data = read_input(spark, request.data, "data")
    fields = {f.name: f.dataType for f in data.schema.fields}
    listed = ", ".join(fields)
    for name in (id_column, *request.data_columns):
        if name not in fields:
            what = "the id column (the run's input.id_column)" if name == id_column else \
                "column"
            raise InputError("data", name, f"{what} not found in {request.data!r} "
                             f"(columns: {listed})")
    for name in request.data_columns:
        if name in QUEUE_COLUMNS:
            raise InputError("data", name, "is a column of the queue itself: rename it in "
                             "the data table")
    found = fields[id_column]
    integral = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
    if found != id_type and not (isinstance(found, integral) and isinstance(id_type, integral)):
        raise InputError("data", id_column, f"the ids are {found.simpleString()}, the run's "
                         f"are {id_type.simpleString()}")
    return data.select(column(id_column).cast(id_type).alias("id"),
                       *[column(c) for c in request.data_columns])


def build_queue(spark: SparkSession, output: str, dataset: str, run_date: str | None,
                request: QueueRequest) -> Queue:
    run = read_findings(spark, output, dataset, run_date)
    examples, class_issues = run.table(spark, "examples"), run.table(spark, "class_issues")
    chosen, num_flagged, reserved, classes = selection(examples, class_issues, request.budget,
                                                       request.min_per_class)
    chosen = chosen.cache()  # read by the duplicate check and the final join
    try:
        pairs = (class_issues.join(chosen.select("id"), "id")
                 .groupBy("id").agg(F.sort_array(F.collect_list(F.struct(
                     "class_index", "class_name", "given"))).alias("pairs"))
                 .select("id", F.transform("pairs", lambda p: F.struct(
                     p["class_name"].alias("class_name"), p["class_index"].alias("class_index"),
                     p["given"].alias("given"))).cast(FLAGGED_TYPE).alias("flagged")))
        queued = (chosen.join(examples.select("id", "label_quality_score", "given_tags",
                                              "suggested_tags",
                                              F.col("explanation.text").alias("explanation")),
                              "id")
                  .join(pairs, "id", "left")
                  # an example flagged by its score alone (the low_* filters) has no pair
                  .withColumn("flagged", F.coalesce("flagged", F.array().cast(FLAGGED_TYPE)))
                  .select(*QUEUE_COLUMNS))
        if request.data is not None:
            data = _data_table(spark, request, run.config.input.id_column, run.id_type)
            wanted = data.join(F.broadcast(chosen.select("id")), "id")
            repeated = (wanted.groupBy("id").count().filter(F.col("count") > 1)
                        .orderBy("id").first())
            if repeated is not None:
                raise InputError("data", run.config.input.id_column, f"{repeated['count']} rows "
                                 "have the id of one queued example: ids must be unique",
                                 repeated["id"])
            queued = queued.join(wanted.withColumn("_found", F.lit(True)), "id", "left")
        collected = queued.orderBy("issue_rank").collect()
    finally:
        chosen.unpersist()
    schema = T.StructType([f for f in queued.schema.fields if f.name != "_found"])
    every = [row.asDict(recursive=True) for row in collected]  # structs as dicts
    rows = [{f.name: values[f.name] for f in schema.fields} for values in every]
    missing = sum(1 for values in every if request.data is not None and not values["_found"])
    return Queue(rows, schema, request.data_columns, run.class_names, num_flagged, reserved,
                 classes, missing, f"labelqa {run.dataset} {run.run_date}")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return LIST_SEPARATOR.join(_cell(v) for v in value)
    if isinstance(value, dict):  # a struct column
        return json.dumps(labelstudio.jsonable(value), sort_keys=True)
    return str(value)


def csv_text(queue: Queue) -> str:
    """One row per queued example; lists joined with "; ", a flagged pair as
    `name (given)` or `name (not given)`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = [f.name for f in queue.schema.fields]
    writer.writerow(names)
    for row in queue.rows:
        cells = dict(row, flagged=[f"{p['class_name']} ({'given' if p['given'] else 'not given'})"
                                   for p in row["flagged"]])
        writer.writerow([_cell(cells[name]) for name in names])
    return out.getvalue()


def write_queue(spark: SparkSession, queue: Queue, path: str, fmt: str) -> list[str]:
    """Write the queue at `path` in `fmt`, each file by a rename (a reader never sees half a
    queue); returns the paths written."""
    if fmt == "csv":
        write_text_atomically(spark, path, csv_text(queue))
        return [path]
    if fmt == "label-studio":
        labelstudio.check_field_names(queue.data_columns)
        tasks = labelstudio.tasks(queue.rows, queue.data_columns, queue.model_version)
        config = path + ".label_config.xml"
        write_text_atomically(spark, config, labelstudio.label_config(queue.class_names,
                                                                      queue.data_columns))
        write_text_atomically(spark, path, json.dumps(tasks, indent=1, ensure_ascii=False))
        return [path, config]
    if fmt == "parquet":
        target = path.rstrip("/")
        staged, aside = target + ".inprogress", target + ".replaced"
        try:
            (spark.createDataFrame([tuple(r.values()) for r in queue.rows], queue.schema)
             .coalesce(1).write.mode("overwrite")
             .option("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
             .parquet(staged))
            replace_directory(spark, staged, target, aside)
        finally:
            discard(spark, staged)
        discard(spark, aside)  # only once the new queue is in place
        return [path]
    raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")


def describe(queue: Queue, budget: int, min_per_class: int) -> str:
    """The command's summary line."""
    text = f"queued {len(queue.rows)} of {queue.flagged_examples} flagged examples (budget " \
           f"{budget}"
    if min_per_class:
        text += (f"; {queue.reserved} reserved for at least {min_per_class} of each of the "
                 f"{queue.classes_with_issues} classes with issues")
    text += ")"
    if queue.missing_data:
        text += (f"; {queue.missing_data} queued id(s) not in the data table (their data "
                 "columns are empty)")
    return text
