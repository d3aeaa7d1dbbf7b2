"""`labelqa export`: the audited label table with the suggested tags applied, and the
`changes` table that says which tags were added and removed, and why.

Written under `--to PATH`: `labels/` (the corrected table), `changes/`, `not_audited/` (only
when the output format is not the input's: the rows of the examples the run did not audit,
unchanged, in the input's format) and `_export.json` (the counts), staged under
`PATH/_staging/` and moved into place only when complete.

Which pairs change (all of them a pair of the run's `class_issues`, but the reviewers'
`corrected` tags):

* `--apply flagged` (default): every flagged pair of the flagged examples (the ones with an
  `issue_rank`), or with `--max-changes N` the examples taken whole in `issue_rank` order
  while the running total of their unreviewed changes stays <= N;
* reviewers' verdicts (the run's `reviews` table): `confirmed` and `corrected` pairs are
  applied whatever `--apply` and `--max-changes` say, `rejected` pairs never (listed in
  `changes` with verdict `rejected` when they would otherwise have been applied).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from labelqa.act.findings import RunFindings
from labelqa.act.reviews import stored_reviews
from labelqa.errors import ConfigError, InputError
from labelqa.spark.driver import write_text_atomically
from labelqa.spark.formats import RAW_PREFIX, CheckedRows, labels_rows
from labelqa.spark.inputs import read_input
from labelqa.spark.names import column
from labelqa.spark.output import discard, replace_directory, write_parquet
from labelqa.tables import staging_root

FORMATS = ("array", "long", "onehot")
APPLY = ("flagged", "none")
CHANGE_COLUMNS = ("id", "class_index", "class_name", "action", "pred_prob", "threshold",
                  "issue_rank", "verdict")
DIRECTORIES = ("labels", "changes", "not_audited")
def _no_tags() -> Column:
    """An empty array<int>: built when used, in the session's kind of Column (a module-level
    Column would be a classic one even in a Spark Connect process)."""
    return F.array().cast("array<int>")


@dataclass(frozen=True)
class ExportOptions:
    to: str
    labels: str | None = None  # default: the run's manifest `inputs.labels`
    labels_format: str | None = None  # default: the run's input.labels_format
    apply: str = "flagged"
    max_changes: int | None = None

    def check(self) -> None:
        if self.labels_format not in (None, *FORMATS):
            raise ConfigError(f"--labels-format: {self.labels_format!r} is not one of "
                              f"{', '.join(FORMATS)}")
        if self.apply not in APPLY:
            raise ConfigError(f"--apply: {self.apply!r} is not one of {', '.join(APPLY)}")
        if self.max_changes is not None and (self.max_changes < 0 or self.apply != "flagged"):
            raise ConfigError("--max-changes: a number >= 0, with --apply flagged")


def planned_changes(spark: SparkSession, findings: RunFindings, options: ExportOptions
                    ) -> DataFrame:
    """The `changes` table: one row per pair applied or blocked (by a `rejected` verdict)."""
    issues = findings.class_issues(spark).select("id", "class_index", "class_name", "given",
                                                 "pred_prob")
    ranks = findings.examples(spark).select("id", "issue_rank")
    reviews = stored_reviews(spark, findings)
    if reviews is None:
        verdicts = spark.createDataFrame([], f"id {findings.id_type.simpleString()}, "
                                             "class_index int, class_name string, "
                                             "verdict string, given boolean")
    else:
        verdicts = reviews.select("id", "class_index", "class_name", "verdict", "given")
    pairs = (issues.join(ranks, "id", "left")
             .join(verdicts.select("id", "class_index", "verdict"), ["id", "class_index"],
                   "left"))
    confirmed = pairs.filter(F.col("verdict") == "confirmed")
    # reviewers' tags labelqa did not flag: no probability in the outputs
    corrected = (verdicts.filter(F.col("verdict") == "corrected")
                 .join(ranks, "id", "left")
                 .select("id", "class_index", "class_name", "given",
                         F.lit(None).cast("double").alias("pred_prob"), "issue_rank",
                         "verdict"))
    parts = [confirmed, corrected]
    if options.apply == "flagged":
        flagged = pairs.filter(F.col("issue_rank").isNotNull()
                               & (F.col("verdict").isNull() | (F.col("verdict") == "rejected")))
        if options.max_changes is not None:
            flagged = flagged.join(_within_budget(flagged, options.max_changes), "id",
                                   "left_semi")
        parts.insert(0, flagged)
    changes = parts[0]
    for part in parts[1:]:
        changes = changes.unionByName(part)
    thresholds = findings.classes(spark).select("class_index", "threshold_given",
                                                "threshold_not_given")
    return (changes.join(F.broadcast(thresholds), "class_index")
            .select("id", "class_index", "class_name",
                    F.when(F.col("given"), "removed").otherwise("added").alias("action"),
                    "pred_prob",
                    F.when(F.col("given"), 1 - F.col("threshold_not_given"))
                    .otherwise(F.col("threshold_given")).alias("threshold"),
                    "issue_rank", "verdict"))


def _within_budget(flagged: DataFrame, budget: int) -> DataFrame:
    """The ids of the examples taken whole in issue_rank order while the running total of
    their unreviewed changes stays <= budget (counts never decrease the total, so the first
    example that does not fit ends the selection). One row per flagged example with pairs,
    in one ordered window (the examples' two ints, not their rows)."""
    per_example = flagged.groupBy("id", "issue_rank").agg(
        F.count_if(F.col("verdict").isNull()).alias("n"))
    running = F.sum("n").over(Window.orderBy("issue_rank").rowsBetween(
        Window.unboundedPreceding, Window.currentRow))
    return per_example.withColumn("total", running).filter(F.col("total") <= budget).select("id")


def applied() -> Column:
    """The changes that are made (a `rejected` row only records what was blocked)."""
    return F.col("verdict").isNull() | (F.col("verdict") != "rejected")


def _row_tags(checked: CheckedRows, labels_format: str) -> Column:
    """A checked row's class indices as array<int>."""
    if labels_format == "array":
        return F.array_distinct(F.col(checked.labels_column).cast("array<int>"))
    if labels_format == "long":
        return F.array(F.col("_unit"))
    return F.col("_classes").cast("array<int>")


def _check_audited_table(examples: DataFrame, rows: DataFrame, tags: Column, labels: str,
                         tag_column: str) -> None:
    """Every audited example's tags in the label table are its `given_labels`: otherwise the
    table is not the one the run audited, and the changes would not fit it."""
    found = (rows.join(examples.select("id"), "id", "left_semi").groupBy("id")
             .agg(F.array_sort(F.array_distinct(F.flatten(F.collect_list(tags))))
                  .alias("tags")))
    differ = (examples.join(found, "id", "left")
              .filter(F.coalesce("tags", _no_tags()) != F.col("given_labels")))
    first = differ.orderBy("id").select("id").first()
    if first is not None:
        raise InputError("labels", tag_column, f"{differ.count()} audited example(s) have "
                         f"other tags in {labels!r} than the run audited (examples."
                         "given_labels): this is not the label table of the run; give it with "
                         "--labels", first["id"])


@dataclass(frozen=True)
class Written:
    labels: DataFrame
    not_audited: DataFrame | None
    tag_rows_removed: int = 0  # long input, same format: tag rows dropped
    tag_rows_added: int = 0


def _corrected(given: Column) -> Column:
    return F.array_sort(F.array_union(F.array_except(given, F.coalesce("_removed", _no_tags())),
                                      F.coalesce("_added", _no_tags())))


def _same_format(raw: DataFrame, marked: DataFrame, checked: CheckedRows, findings: RunFindings,
                 changed: DataFrame) -> Written:
    """The input's rows, in its format and columns, with the audited examples' tags changed."""
    inp = findings.config.input
    original = [column(RAW_PREFIX + c).alias(c) for c in raw.columns]
    is_changed = F.coalesce(F.col("_changed"), F.lit(False))
    fmt = inp.labels_format
    if fmt == "array":
        name = inp.labels_column
        value = F.when(is_changed, _corrected(_row_tags(checked, fmt))
                       .cast(raw.schema[name].dataType)).otherwise(column(RAW_PREFIX + name))
        return Written(marked.select(*[value.alias(c) if c == name else column(RAW_PREFIX + c)
                                       .alias(c) for c in raw.columns]), None)
    if fmt == "onehot":
        final = _corrected(F.col("_classes").cast("array<int>"))
        cells = {}
        for index, name in enumerate(findings.class_names):
            cells[name] = F.when(is_changed, F.array_contains(final, index)
                                 .cast(raw.schema[name].dataType)
                                 ).otherwise(column(RAW_PREFIX + name))
        return Written(marked.select(*[cells[c].alias(c) if c in cells
                                       else column(RAW_PREFIX + c).alias(c)
                                       for c in raw.columns]), None)
    # long: drop the rows of removed tags, add a row (other columns null) per added tag
    removed = is_changed & F.coalesce(F.array_contains(F.coalesce("_removed", _no_tags()),
                                                       F.col("_unit")), F.lit(False))
    kept = marked.filter(~removed).select(*original)
    tag_type = raw.schema[inp.tag_column].dataType
    names = F.array(*[F.lit(n) for n in findings.class_names])
    tag = (F.element_at(names, F.col("class_index") + 1) if isinstance(tag_type, T.StringType)
           else F.col("class_index").cast(tag_type))
    new = changed.filter(F.col("action") == "added").select(
        *[F.col("id").cast(raw.schema[c].dataType).alias(c) if c == inp.id_column
          else tag.alias(c) if c == inp.tag_column
          else F.lit(None).cast(raw.schema[c].dataType).alias(c) for c in raw.columns])
    return Written(kept.unionByName(new), None, marked.filter(removed).count(), new.count())


def _converted(examples: DataFrame, marked: DataFrame, raw: DataFrame, findings: RunFindings,
               labels_format: str) -> Written:
    """The audited examples, corrected, in another format; the other rows as they were."""
    inp = findings.config.input
    final = F.when(F.col("_changed"), _corrected(F.col("given_labels"))).otherwise(
        F.col("given_labels"))
    ident = F.col("id").alias(inp.id_column)
    if labels_format == "array":
        out = examples.select(ident, final.alias(inp.labels_column))
    elif labels_format == "onehot":
        out = examples.select(ident, *[F.array_contains(final, k).cast("int").alias(n)
                                       for k, n in enumerate(findings.class_names)])
    else:
        names = F.array(*[F.lit(n) for n in findings.class_names])
        out = (examples.select(ident, F.explode(final).alias("k"))
               .select(inp.id_column, F.element_at(names, F.col("k") + 1).alias(inp.tag_column)))
    not_audited = marked.filter(F.col("_audited").isNull()).select(
        *[column(RAW_PREFIX + c).alias(c) for c in raw.columns])
    return Written(out, not_audited)


def export(spark: SparkSession, findings: RunFindings, options: ExportOptions) -> dict:
    """Write the export under `options.to`; returns what `_export.json` says."""
    options.check()
    inp = findings.config.input
    labels_format = options.labels_format or inp.labels_format
    labels_path = options.labels or findings.inputs.get("labels")
    if not labels_path:
        raise InputError("manifest", "inputs", "the run's manifest names no label table: "
                                               "give it with --labels")
    raw = read_input(spark, labels_path, "labels")
    try:
        checked = labels_rows(raw, inp, findings.class_names)
    except InputError as error:
        raise InputError(error.table, error.column, f"{error.rule} (the label table is read "
                         f"with the run's settings: input.labels_format={inp.labels_format})"
                         ) from None
    row_ids = checked.rows.schema["id"].dataType
    if row_ids != findings.id_type:
        raise InputError("labels", inp.id_column, f"the ids are {row_ids.simpleString()} but "
                         f"the run's are {findings.id_type.simpleString()}")
    examples = findings.examples(spark).select("id", "given_labels")
    tags = _row_tags(checked, inp.labels_format)
    _check_audited_table(examples, checked.rows, tags, labels_path,
                         inp.tag_column if inp.labels_format == "long" else inp.labels_column)

    changes = planned_changes(spark, findings, options)
    staging = staging_root(options.to, uuid.uuid4().hex)
    try:
        write_parquet(changes.orderBy(F.col("issue_rank").asc_nulls_last(), "id",
                                      "class_index"), f"{staging}/changes")
        changes = spark.read.parquet(f"{staging}/changes")  # computed once, read back
        changed = changes.filter(applied())
        per_example = changed.groupBy("id").agg(
            F.collect_list(F.when(F.col("action") == "added", F.col("class_index")))
            .alias("_added"),
            F.collect_list(F.when(F.col("action") == "removed", F.col("class_index")))
            .alias("_removed"), F.lit(True).alias("_changed"))
        audited_ids = examples.select("id", F.lit(True).alias("_audited"))
        marked = (checked.rows.join(audited_ids, "id", "left")
                  .join(per_example, "id", "left"))
        if labels_format == inp.labels_format:
            written = _same_format(raw, marked, checked, findings, changed)
        else:
            written = _converted(examples.join(per_example, "id", "left"), marked, raw,
                                 findings, labels_format)
        write_parquet(written.labels, f"{staging}/labels")
        if written.not_audited is not None:
            write_parquet(written.not_audited, f"{staging}/not_audited")
        counts = _counts(spark, findings, options, labels_path, labels_format, staging,
                         checked, written, changes, changed)
        _publish(spark, staging, options.to, counts)
    except BaseException:
        discard(spark, staging)
        raise
    return counts


def _counts(spark: SparkSession, findings: RunFindings, options: ExportOptions,
            labels_path: str, labels_format: str, staging: str, checked: CheckedRows,
            written: Written, changes: DataFrame, changed: DataFrame) -> dict:
    """Rows in and out per state, read back from what was staged, and their reconciliation
    (a broken one is a bug: the export is not published)."""
    inp = findings.config.input
    audited_ids = findings.examples(spark).select("id")
    rows_in = checked.rows.count()
    in_audited = checked.rows.join(audited_ids, "id", "left_semi").count()
    out = spark.read.parquet(f"{staging}/labels")
    out_ids = column(inp.id_column).cast(findings.id_type).alias("id")
    rows_out = out.count()
    out_audited = out.select(out_ids).join(audited_ids, "id", "left_semi").count()
    not_audited_table = (spark.read.parquet(f"{staging}/not_audited").count()
                         if written.not_audited is not None else None)
    num_audited = audited_ids.count()
    verdicts = {row["v"]: row["n"] for row in
                changes.groupBy(F.coalesce("verdict", F.lit("none")).alias("v")).count()
                .withColumnRenamed("count", "n").collect()}
    actions = {row["action"]: row["count"] for row in changed.groupBy("action").count().collect()}
    examples_changed = changed.select("id").distinct().count()
    rows = {"in": rows_in, "in_audited": in_audited, "in_not_audited": rows_in - in_audited,
            "out": rows_out, "out_audited": out_audited,
            "out_not_audited": rows_out - out_audited}
    same = labels_format == inp.labels_format
    if same and labels_format == "long":
        rows.update(tag_rows_removed=written.tag_rows_removed,
                    tag_rows_added=written.tag_rows_added)
        expected = in_audited - written.tag_rows_removed + written.tag_rows_added
        reconciled = [f"tag rows of audited examples: {in_audited} in - "
                      f"{written.tag_rows_removed} removed + {written.tag_rows_added} added = "
                      f"{out_audited} out",
                      f"rows of examples not audited: {rows['in_not_audited']} in = "
                      f"{rows['out_not_audited']} out, unchanged"]
        ok = out_audited == expected and rows["out_not_audited"] == rows["in_not_audited"]
    elif same:
        reconciled = [f"rows in = rows out: {in_audited} of audited examples, "
                      f"{rows['in_not_audited']} of examples not audited (unchanged)"]
        ok = out_audited == in_audited and rows["out_not_audited"] == rows["in_not_audited"]
    else:
        rows["not_audited_table"] = not_audited_table
        unit = "examples" if labels_format != "long" else "tag rows"
        reconciled = [f"labels/: the {num_audited} audited examples ({rows_out} {unit})",
                      f"not_audited/: the {rows['in_not_audited']} rows of examples not "
                      f"audited, unchanged, in the input's format ({inp.labels_format})"]
        ok = (not_audited_table == rows["in_not_audited"] and rows["out_not_audited"] == 0
              and (labels_format == "long" or rows_out == num_audited))
    if not ok:  # pragma: no cover - a broken invariant, never bad input
        raise RuntimeError(f"export rows do not reconcile: {rows}")
    without_tags = None
    if labels_format == "long":
        without_tags = num_audited - out.select(out_ids).join(
            audited_ids, "id", "left_semi").distinct().count()
        reconciled.append(f"{without_tags} audited example(s) have no tag and so no row: "
                          "read as examples with no tag under input.unlabeled_ids=empty "
                          "(the default), quarantined under input.unlabeled_ids=quarantine")
    return {
        "run": {"output": findings.output, "dataset": findings.dataset,
                "run_date": findings.run_date, "run_id": findings.run_id,
                "status": findings.status},
        "labels_input": labels_path, "input_format": inp.labels_format,
        "labels_format": labels_format, "apply": options.apply,
        "max_changes": options.max_changes,
        "rows": rows,
        "examples": {"audited": num_audited, "changed": examples_changed,
                     "without_tags": without_tags},
        "changes": {"applied": sum(actions.values()), "added": actions.get("added", 0),
                    "removed": actions.get("removed", 0),
                    "unreviewed": verdicts.get("none", 0),
                    **{v: verdicts.get(v, 0) for v in ("confirmed", "corrected", "rejected")}},
        "reconciled": reconciled,
    }


def _publish(spark: SparkSession, staging: str, to: str, counts: dict) -> None:
    """The staged directories into place, then `_export.json` (absent while they move, so a
    reader that finds it finds a complete export)."""
    root = to.rstrip("/")
    discard(spark, f"{root}/_export.json")
    for name in DIRECTORIES:
        replace_directory(spark, f"{staging}/{name}", f"{root}/{name}",
                          f"{staging}/_replaced/{name}")
    write_text_atomically(spark, f"{root}/_export.json",
                          json.dumps(counts, indent=2, sort_keys=True))
    discard(spark, staging)
