"""The intake: both tables through one exchange by id, then one Arrow pass that decides every
row's state (`labelqa.core.intake`), writes the audited examples as compact blocks, the
quarantined rows with their raw content, and the first statistics (row counts, the
thresholds' exact sums).

Measured at 1M x 40 (README, Benchmarks): the window operators this replaces carried every
probability vector through two more sorts and a JVM-row disk cache.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from labelqa.core import intake as rules
from labelqa.core.plan import threshold_partials
from labelqa.spark import blocks as bl
from labelqa.spark.formats import RAW_PREFIX, CheckedRows
from labelqa.spark.names import column

EXCHANGE_ORDER = (bl.ID, "_source", "_unit", "_fingerprint")
PROBLEM_PARTS = ("_reason", "_detail", "_column")
PROBLEM_SEPARATOR = "\x1f"
RAW = ("_raw_labels", "_raw_predictions")


def source_code(checked: CheckedRows) -> int:
    """The intake's code of the table the rows come from (`labelqa.core.intake.SOURCES`)."""
    return rules.LABELS if checked.source == "labels" else rules.PREDICTIONS


def tagged_rows(checked: CheckedRows) -> DataFrame:
    """One table's checked rows in the shape both tables share for the single exchange.

    The raw row travels as one struct (`_raw_labels` / `_raw_predictions`), turned into
    `row_json` only for rows that end quarantined; array predictions' vector is read from it.
    """
    rows, source = checked.rows, source_code(checked)
    # a row repeated with other values only in columns the audit does not read (an annotator
    # column, say) is the same row: it collapses, as a repeated tag does in the array format
    content = [column(RAW_PREFIX + c) for c in checked.content_columns]
    # every column costs per row in the exchange, the sort and the Arrow conversion (measured
    # at 1M x 40: the label side's narrow rows converted as slowly as the wide prediction
    # rows): a one-row-per-id table has no class column, the rule broken is one string
    unit = [] if checked.one_row_per_id else ["_unit"]
    payload = [c for c in ("_classes", "_probs", "_prob") if c in rows.columns]
    problem = F.when(F.col("_reason").isNotNull(), F.concat_ws(
        PROBLEM_SEPARATOR, *[F.coalesce(F.col(c), F.lit("")) for c in PROBLEM_PARTS]))
    return rows.select(
        F.lit(source).cast("byte").alias("_source"), bl.ID, *unit, *payload,
        F.xxhash64(*content).alias("_fingerprint"), problem.alias("_problem"),
        F.struct(*[column(RAW_PREFIX + c).alias(c) for c in checked.raw_columns])
        .alias(RAW[source]))


def exchange_order(tagged: DataFrame) -> tuple[str, ...]:
    """Both tables' rows of an id together: labels first, by class, then by content."""
    return tuple(c for c in EXCHANGE_ORDER if c in tagged.columns)


def intake_schema(tagged: DataFrame) -> T.StructType:
    fields = [T.StructField("kind", T.ByteType()), T.StructField("block", T.BinaryType()),
              T.StructField("source", T.ByteType()), T.StructField("id", T.StringType()),
              T.StructField("reason", T.StringType()), T.StructField("detail", T.StringType()),
              T.StructField("column", T.StringType())]
    fields += [tagged.schema[name] for name in RAW]
    fields += [T.StructField("name", T.StringType()), T.StructField("position", T.LongType()),
               T.StructField("value", T.LongType())]
    return T.StructType(fields)


def located(checked: CheckedRows, name: str) -> tuple[str, str | None]:
    """Where a checked column is in the tagged rows: (column, field of the raw struct)."""
    if name.startswith(RAW_PREFIX):
        return RAW[source_code(checked)], name[len(RAW_PREFIX):]
    return name, None


def _column(batch: pa.RecordBatch, where: tuple[str, str | None]) -> pa.Array:
    name, field = where
    values = batch.column(name)
    return values if field is None else pc.struct_field(values, field)


def _problems(array: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reason, detail, column) of each row's broken rule (None: none)."""
    parts = [np.full(len(array), None, dtype=object) for _ in PROBLEM_PARTS]
    if array.null_count == len(array):
        return parts[0], parts[1], parts[2]
    found = np.flatnonzero(array.is_valid().to_numpy(zero_copy_only=False))
    for row, text in zip(found, array.take(pa.array(found)).to_pylist()):
        for part, value in zip(parts, text.split(PROBLEM_SEPARATOR, 2)):
            part[row] = value or None
    return parts[0], parts[1], parts[2]


BlockStatistics = Callable[[pa.RecordBatch], tuple[dict[str, np.ndarray], int]]


def audit_statistics(block: pa.RecordBatch) -> tuple[dict[str, np.ndarray], int]:
    """The audit's first statistics of an examples block: the thresholds' exact sums, and
    the tags repeated within a row (multi_hot collapses them: counted)."""
    batch = bl.batch_of(block)
    repeated = len(block.column(bl.LABELS).values) - int(batch.given.sum())
    return threshold_partials(batch), repeated


def intake_partition(decision: rules.IntakeRules, num_classes: int,
                     vector: tuple[str, str | None], tags: tuple[str, str | None],
                     output: pa.Schema, width: int | None = None,
                     block_statistics: BlockStatistics = audit_statistics,
                     ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function of the intake's Arrow pass over one id-sorted partition. `width`: the
    length of the joined vector (default K: probabilities; labelqa predict: the features)."""
    labels_one_row = decision.labels_one_row_per_id
    vector_width = num_classes if width is None else width
    predictions_one_row = decision.predictions_one_row_per_id

    def probabilities(batch: pa.RecordBatch, lead: np.ndarray, ok_rows: np.ndarray
                      ) -> np.ndarray:
        if not predictions_one_row:  # long: the K class rows of each example, in class order
            values = batch.column("_prob").take(pa.array(ok_rows))
            return values.to_numpy(zero_copy_only=False).reshape(-1, num_classes)
        chosen = _column(batch, vector).take(pa.array(lead))
        return chosen.flatten().to_numpy(zero_copy_only=False).reshape(-1, vector_width)

    def label_lists(batch: pa.RecordBatch, states: rules.RowStates, label_rows: np.ndarray,
                    lead: np.ndarray) -> pa.Array:
        if labels_one_row:  # one accepted label row per example, in the examples' order
            return _column(batch, tags).take(pa.array(label_rows))
        # every accepted tag row belongs to an audited example: offsets by id run
        units = batch.column("_unit").take(pa.array(label_rows)).cast(pa.int32())
        offsets = np.append(np.searchsorted(states.id_index[label_rows], states.id_index[lead]),
                            len(label_rows)).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), units)

    def decide(batch: pa.RecordBatch, totals: dict, counts: Counter) -> Iterator[pa.RecordBatch]:
        ids = batch.column(bl.ID)
        n = batch.num_rows
        id_null = ids.is_null().to_numpy(zero_copy_only=False)
        same_id = np.zeros(n, dtype=bool)
        if n > 1:
            same_id[1:] = pc.equal(ids.slice(1), ids.slice(0, n - 1)).fill_null(False) \
                .to_numpy(zero_copy_only=False)
        source = batch.column("_source").to_numpy(zero_copy_only=False).astype(np.int8)
        unit = (batch.column("_unit").fill_null(-1).to_numpy(zero_copy_only=False)
                .astype(np.int64) if "_unit" in batch.schema.names
                else np.full(n, -1, dtype=np.int64))
        reason, detail, column = _problems(batch.column("_problem"))
        rows = rules.SortedRows(
            same_id=same_id, id_null=id_null, source=source, unit=unit,
            fingerprint=batch.column("_fingerprint").to_numpy(zero_copy_only=False),
            reason=reason, detail=detail, column=column)
        states = rules.decide(rows, decision)
        for src in (rules.LABELS, rules.PREDICTIONS):
            of_source = source == src
            per_status = np.bincount(states.status[of_source], minlength=3)
            for status, count in enumerate(per_status):
                if count and status != rules.QUARANTINED:
                    counts[(src, status, "")] += int(count)
        quarantined = np.flatnonzero(states.status == rules.QUARANTINED)
        for src, why in zip(source[quarantined], states.reason[quarantined]):
            counts[(int(src), rules.QUARANTINED, why)] += 1
        label_ok = (states.status == rules.OK) & (source == rules.LABELS)
        lead = np.flatnonzero(states.lead)
        if len(lead):
            prediction_ok = np.flatnonzero((states.status == rules.OK)
                                           & (source == rules.PREDICTIONS))
            label_rows = np.flatnonzero(label_ok)
            block = bl.examples_block(ids.take(pa.array(lead)),
                                      label_lists(batch, states, label_rows, lead),
                                      probabilities(batch, lead, prediction_ok))
            partials, repeated = block_statistics(block)
            bl.add_totals(totals, partials)
            counts[("repeated", 0, "")] += repeated
            counts[("examples", 0, "")] += len(lead)
            yield bl.rows_of_kind(output, 1, kind=pa.array([bl.BLOCK], pa.int8()),
                        block=pa.array([bl.encode(block)], pa.binary()))
        if len(quarantined):
            take = pa.array(quarantined)
            yield bl.rows_of_kind(output, len(quarantined),
                        kind=pa.array(np.full(len(quarantined), bl.QUARANTINED_ROW, np.int8)),
                        source=pa.array(source[quarantined], pa.int8()),
                        id=ids.take(take).cast(pa.string()),
                        reason=pa.array(states.reason[quarantined], pa.string()),
                        detail=pa.array(states.detail[quarantined], pa.string()),
                        column=pa.array(states.column[quarantined], pa.string()),
                        **{name: batch.column(name).take(take) for name in RAW})

    def trailing_id_start(batch: pa.RecordBatch) -> int:
        """Where the rows of the batch's last id begin (the batch's end if it is null)."""
        ids = batch.column(bl.ID)
        if not ids[-1].is_valid:
            return batch.num_rows
        same = pc.equal(ids, ids[-1]).fill_null(False).to_numpy(zero_copy_only=False)
        others = np.flatnonzero(~same)
        return int(others[-1]) + 1 if len(others) else 0

    def partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        totals: dict[str, np.ndarray] = {}
        counts: Counter = Counter()
        carry: pa.RecordBatch | None = None
        for batch in batches:
            if batch.num_rows == 0:
                continue
            if carry is not None:
                batch = pa.concat_batches([carry, batch])
            start = trailing_id_start(batch)
            carry = batch.slice(start) if start < batch.num_rows else None
            if start:
                yield from decide(batch.slice(0, start), totals, counts)
        if carry is not None:
            yield from decide(carry, totals, counts)
        names, positions, values = bl.statistic_rows(totals)
        for (src, status, why), count in sorted(counts.items(), key=str):
            names.append(f"rows|{src}|{status}|{why}")
            positions = np.append(positions, 0)
            values = np.append(values, count)
        if names:
            yield bl.rows_of_kind(output, len(names),
                        kind=pa.array(np.full(len(names), bl.STATISTIC, np.int8)),
                        name=pa.array(names, pa.string()),
                        position=pa.array(positions, pa.int64()),
                        value=pa.array(values, pa.int64()))

    return partition


def intake_blocks(tagged: DataFrame, decision: rules.IntakeRules, num_classes: int,
                  vector: tuple[str, str | None], tags: tuple[str, str | None],
                  num_partitions: int, width: int | None = None,
                  block_statistics: BlockStatistics = audit_statistics) -> DataFrame:
    """The intake's output: blocks of audited examples, quarantined rows, statistics."""
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = intake_schema(tagged)
    rows = tagged.repartition(num_partitions, bl.ID).sortWithinPartitions(
        *exchange_order(tagged))
    arrow_schema = to_arrow_schema(schema)
    return rows.mapInArrow(intake_partition(decision, num_classes, vector, tags, arrow_schema,
                                            width, block_statistics), schema)


def statistics(df: DataFrame) -> dict[str, dict[int, int]]:
    """The exact sums of a pass's statistic rows, by name and position (K-sized)."""
    table = (df.filter(F.col("kind") == bl.STATISTIC).groupBy("name", "position")
             .agg(F.sum("value").alias("value")).toArrow())
    out: dict[str, dict[int, int]] = {}
    for name, position, value in zip(table.column("name").to_pylist(),
                                     table.column("position").to_pylist(),
                                     table.column("value").to_pylist()):
        out.setdefault(name, {})[int(position)] = int(value)
    return out


def as_array(found: dict[str, dict[int, int]], name: str, shape: tuple[int, ...]) -> np.ndarray:
    flat = np.zeros(int(np.prod(shape)), dtype=np.int64)
    for position, value in found.get(name, {}).items():
        flat[position] = value
    return flat.reshape(shape)
