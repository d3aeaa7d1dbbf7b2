"""`labelqa predict` on Spark: labels and features through the audit's intake, folds from the
ids, every class's and fold's logistic regression fitted together (`labelqa.core.logistic`),
out-of-fold probabilities and each class's held-out quality.

Passes over the data: the intake (one exchange by id, the audit's rules and quarantine), the
folds (a sort of (id, label set) rows only), the fit blocks (one exchange of the feature
vectors, cached on local disk as Arrow IPC blocks), then one pass per evaluation of the fit
and two at the end (the predictions, their quality). Each pass's partial sums come to the
driver one per partition (F x K x D floats) and are added in partition order: the fit blocks
are a function of the data and the configuration (partitioned by id into a count that depends
on N and D only, sorted by id), so a rerun gives the same probabilities to the bit, whatever
the input's partitioning.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from labelqa.config import AuditConfig
from labelqa.core import intake as rules
from labelqa.core import logistic as lg
from labelqa.core.batch import Batch, multi_hot
from labelqa.core.separation import (
    HISTOGRAM_NAME,
    Separation,
    separation_bins,
    separation_partials,
)
from labelqa.errors import ConfigError, InputError
from labelqa.progress import StageLog
from labelqa.record import SourceCounts
from labelqa.spark import blocks as bl
from labelqa.spark.caching import cached
from labelqa.spark.driver import shared
from labelqa.spark.features import feature_vectors, features_rows
from labelqa.spark.formats import labels_rows, with_hint
from labelqa.spark.inputs import (
    MIN_ROWS_PER_PARTITION,
    check_accounting,
    count_inputs,
    quarantine_rows,
    records_per_batch,
    source_counts,
    stop_error,
)
from labelqa.spark.intake import intake_blocks, located, statistics, tagged_rows
from labelqa.spark.names import column
from labelqa.spark.vocabulary import schema_names
from labelqa.tables import MODEL_QUALITY, predictions_schema

SOURCES = ("labels", "features")
FOLD = "fold"
#: below this held-out ROC AUC a class's probabilities are too weak to audit its tags
WEAK_MODEL_AUC = 0.6


@dataclass(frozen=True)
class ClassQuality:
    class_index: int
    class_name: str
    positives: int
    roc_auc: float | None
    roc_auc_error: float | None
    log_loss: float
    brier_score: float
    converged: bool

    @property
    def weak(self) -> bool:
        return self.roc_auc is not None and self.roc_auc < WEAK_MODEL_AUC

    @property
    def note(self) -> str | None:
        """The audit's `classes.note` of a weak class: its findings are unreliable."""
        if not self.weak:
            return None
        return (f"held-out ROC AUC {self.roc_auc:.3f} of labelqa predict's model is below "
                f"{WEAK_MODEL_AUC}: the features hardly predict this class, its findings are "
                "unreliable")


@dataclass(frozen=True)
class Prediction:
    """A predict run's results: the out-of-fold probabilities (a DataFrame over the cached fit
    blocks), each class's quality, the counts and the quarantine."""

    predictions: DataFrame
    quality: tuple[ClassQuality, ...]
    quarantine: DataFrame
    labels: SourceCounts
    features: SourceCounts
    num_examples: int
    num_features: int
    class_names: tuple[str, ...]
    id_type: T.DataType
    evaluations: int
    persisted: tuple[DataFrame, ...] = field(default=())

    def quality_frame(self, spark: SparkSession) -> DataFrame:
        return spark.createDataFrame([
            (q.class_index, q.class_name, q.positives, q.roc_auc, q.roc_auc_error, q.log_loss,
             q.brier_score, q.converged) for q in self.quality], MODEL_QUALITY)

    def warnings(self) -> list[str]:
        """One line per class whose held-out AUC is below WEAK_MODEL_AUC."""
        return [f"class {q.class_name!r}: {q.note}" for q in self.quality if q.weak]

    def release(self) -> None:
        for df in self.persisted:
            df.unpersist()


# ---- the class vocabulary -------------------------------------------------------------------

def label_classes(config: AuditConfig, labels: DataFrame, features: DataFrame
                  ) -> tuple[str, ...]:
    """The class names: configured (`classes`, `classes_path`), a one-hot table's columns,
    the sorted distinct tags of a long table, or 0..max index of integer tags."""
    inp = config.input
    names = schema_names(config, labels, features)
    if names is None:
        name = inp.tag_column if inp.labels_format == "long" else inp.labels_column
        if name not in labels.columns:
            raise InputError("labels", name, "column not found (columns: "
                             f"{', '.join(labels.columns)})")
        data_type = labels.schema[name].dataType
        values = column(name)
        if inp.labels_format == "array":
            values = F.explode(values)
        if isinstance(data_type, T.StringType):
            names = tuple(r[0] for r in labels.select(values.alias("t")).where("t IS NOT NULL")
                          .distinct().orderBy("t").collect())
        else:
            top = labels.select(values.alias("t")).agg(F.max("t")).first()[0]
            names = tuple(str(k) for k in range(int(top) + 1)) if top is not None else ()
    if len(set(names)) != len(names):
        raise ConfigError("classes: class names must be unique")
    if len(names) < 2:
        raise InputError("labels", None, f"need at least 2 classes, found {len(names)}")
    return names


# ---- intake: the audit's rules on labels and features ---------------------------------------

@dataclass(frozen=True)
class FeatureIntake:
    examples: DataFrame  # rows id, labels (array<int>), features (array), one per example
    rejected: DataFrame  # the quarantine table's rows plus `column`
    labels: SourceCounts
    features: SourceCounts
    num_examples: int
    num_features: int
    class_names: tuple[str, ...]
    id_type: T.DataType
    persisted: tuple[DataFrame, ...]

    @property
    def quarantine(self) -> DataFrame:
        return self.rejected.drop("column")

    @property
    def predictions(self) -> SourceCounts:  # the other table, as `stop_error` reads it
        return self.features

    @property
    def num_rows(self) -> int:
        return self.num_examples

    def stop_error(self, config: AuditConfig) -> InputError | None:
        """Why the bad rows stop this run, by the audit's rule (validation.*)."""
        return stop_error(config, self, SOURCES)

    def release(self) -> None:
        for df in self.persisted:
            df.unpersist()


#: bytes of features (float64) per partition of the intake and the fit blocks. Each pass of
#: the fit sends one F x K x D partial per partition to the driver, so fewer, larger
#: partitions (streamed block by block from the disk cache) cost less than Spark's usual
#: 64 MB: 100k x 768 x 1000 classes makes 30 MB partials
PARTITION_BYTES = 128 << 20


def _partitions(rows: int, width: int) -> int:
    """Partitions of the intake and the fit blocks: PARTITION_BYTES each, at least two when
    there are MIN_ROWS_PER_PARTITION rows for each; a function of the data's size alone (not
    of the input's partitioning, nor of the executors), so the blocks are too."""
    size = rows * (width * 8 + 64)
    return int(max(-(-size // PARTITION_BYTES), min(2, rows // MIN_ROWS_PER_PARTITION), 1))


def _block_statistics(num_classes: int) -> Callable[[pa.RecordBatch], tuple[dict, int]]:
    def repeated(block: pa.RecordBatch) -> tuple[dict, int]:
        tags = block.column(bl.LABELS)
        values = tags.flatten().to_numpy(zero_copy_only=False)
        parents = np.repeat(np.arange(block.num_rows), np.diff(tags.offsets.to_numpy()))
        given = multi_hot(values, parents, block.num_rows, num_classes)
        return {}, len(values) - int(given.sum())
    return repeated


def feature_intake(labels: DataFrame, features: DataFrame, config: AuditConfig
                   ) -> FeatureIntake:
    """Check both tables and bring them through the audit's intake (its rules, its quarantine,
    its counts), the features in place of the probabilities."""
    inp, model = config.input, config.model
    try:
        vectors, vector = feature_vectors(features, model)
        names = label_classes(config, labels, features)
        checked_labels = labels_rows(labels, inp, names)
        from labelqa.spark.features import features_id_type

        run_id_type = features_id_type(features, config)
        from labelqa.spark.formats import id_type

        label_id_type = id_type(labels, "labels", inp.id_column)
    except InputError as error:
        raise with_hint(error, labels, features, config) from None
    if label_id_type != run_id_type:
        raise InputError("features", inp.id_column, "must have the type of the labels table's "
                         f"id ({label_id_type.simpleString()}), found "
                         f"{run_id_type.simpleString()}")
    labels_in, features_in, most_common = count_inputs(labels, vectors, vector)
    for table, rows in (("labels", labels_in), ("features", features_in)):
        if rows == 0:
            raise InputError(table, None, "the table is empty: no rows to learn from")
    width = model.num_features or (len(model.feature_columns) if model.feature_columns
                                   else most_common)
    if not width:
        raise InputError("features", vector, "no feature vector has a value")
    checked_features = features_rows(vectors, config, vector, width)
    tagged = tagged_rows(checked_labels).unionByName(tagged_rows(checked_features),
                                                     allowMissingColumns=True)
    decision = rules.IntakeRules(
        labels_one_row_per_id=checked_labels.one_row_per_id, predictions_one_row_per_id=True,
        expected_prediction_rows=None,
        empty_when_unlabeled=inp.labels_format == "long" and inp.unlabeled_ids == "empty",
        partner="features")
    k = len(names)
    rows = max(labels_in, features_in)
    intake = cached(intake_blocks(
        tagged, decision, k, located(checked_features, checked_features.probs_column),
        located(checked_labels, checked_labels.labels_column),
        _partitions(rows, width), width=width, block_statistics=_block_statistics(k)))
    try:
        found = statistics(intake)
        label_counts, feature_counts, num_rows = source_counts(found, (labels_in, features_in))
        check_accounting(label_counts, feature_counts, num_rows, inp.labels_format, "array")
    except BaseException:
        intake.unpersist()
        raise
    rejected = quarantine_rows(intake, SOURCES)
    examples = _examples(intake.filter(F.col("kind") == bl.BLOCK).select("block"), run_id_type)
    return FeatureIntake(examples, rejected, label_counts, feature_counts,
                         num_rows, int(width), names, run_id_type, (intake,))


def _examples(blocks: DataFrame, id_type: T.DataType) -> DataFrame:
    """The intake's blocks as rows (id, labels, features): the fold assignment and the
    exchange into fit blocks read them."""
    schema = T.StructType([T.StructField("id", id_type), T.StructField("labels",
                                                                         T.ArrayType(T.IntegerType())),
                           T.StructField("features", T.ArrayType(T.DoubleType()))])

    def rows(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for block in bl.blocks_of(batches):
            vectors = block.column(bl.PROBS)
            values = vectors.values.cast(pa.float64())
            width = vectors.type.list_size
            offsets = np.arange(0, (block.num_rows + 1) * width, width, dtype=np.int32)
            yield pa.RecordBatch.from_arrays(
                [block.column(bl.ID), block.column(bl.LABELS).cast(pa.list_(pa.int32())),
                 pa.ListArray.from_arrays(pa.array(offsets), values)],
                names=["id", "labels", "features"])

    return blocks.mapInArrow(rows, schema)


# ---- folds ------------------------------------------------------------------------------------

def assign_folds(examples: DataFrame, folds: int, seed: int) -> DataFrame:
    """(id, fold) per example, from the ids and the label sets alone: the examples of one label
    set (its distinct tags) are ranked by a hash of their id (then the id) and dealt to the
    folds in turn from an offset that hashes the set, so each set of at least `folds`
    examples is spread evenly (stratified, as cleanlab's helper does with scikit-learn's
    StratifiedKFold); the sets smaller than that are pooled into one stratum and dealt the
    same way."""
    key = F.array_join(F.array_sort(F.array_distinct("labels")), ",")
    narrow = examples.select("id", key.alias("_set"))
    size = F.count(F.lit(1)).over(Window.partitionBy("_set"))
    stratum = F.when(size >= folds, F.concat(F.lit("s:"), F.col("_set"))).otherwise(
        F.lit("rare"))
    ranked = narrow.select("id", stratum.alias("_stratum"))
    order = Window.partitionBy("_stratum").orderBy(F.xxhash64(F.lit(seed), "id"), "id")
    offset = F.pmod(F.xxhash64(F.lit(seed), "_stratum"), F.lit(folds))
    fold = F.pmod(F.row_number().over(order) - 1 + offset, F.lit(folds)).cast("int")
    return ranked.select("id", fold.alias(FOLD))


# ---- fit blocks and ordered partition sums -----------------------------------------------------

FIT_BLOCK_SCHEMA = "block binary"


def fit_blocks(examples: DataFrame, folds: DataFrame, num_partitions: int, num_classes: int,
               width: int) -> DataFrame:
    """The examples with their folds as Arrow IPC blocks (id, fold, labels, features), by id
    into `num_partitions` partitions and sorted by id within each: the same blocks whatever
    the input's partitioning."""
    joined = (examples.join(folds, "id").repartition(num_partitions, "id")
              .sortWithinPartitions("id"))
    rows_per_block = records_per_batch(max(num_classes, width))

    def encode(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        pending: list[pa.RecordBatch] = []
        count = 0

        def flush() -> pa.RecordBatch:
            batch = pa.Table.from_batches(pending).combine_chunks().to_batches()[0]
            return pa.RecordBatch.from_arrays([pa.array([bl.encode(batch)], pa.binary())],
                                              names=["block"])

        for batch in batches:
            for start in range(0, batch.num_rows, rows_per_block):
                piece = batch.slice(start, rows_per_block)
                pending.append(piece)
                count += piece.num_rows
                if count >= rows_per_block:
                    yield flush()
                    pending, count = [], 0
        if count:
            yield flush()

    return joined.mapInArrow(encode, FIT_BLOCK_SCHEMA)


@dataclass(frozen=True)
class FitBlock:
    ids: pa.Array
    rows: lg.FoldedRows

    @property
    def folds(self) -> np.ndarray:
        return self.rows.folds


def decode_fit_block(value: pa.Buffer, num_classes: int) -> FitBlock:
    batch = bl.decode(value)
    tags = batch.column("labels")
    values = tags.flatten().to_numpy(zero_copy_only=False)
    parents = np.repeat(np.arange(batch.num_rows), np.diff(tags.offsets.to_numpy()))
    vectors = batch.column("features")
    width = len(vectors[0]) if batch.num_rows else 0
    x = vectors.flatten().to_numpy(zero_copy_only=False).reshape(batch.num_rows, width)
    folds = batch.column(FOLD).to_numpy(zero_copy_only=False).astype(np.int64)
    return FitBlock(batch.column("id"), lg.FoldedRows(
        x, multi_hot(values, parents, batch.num_rows, num_classes), folds))


def _pack(arrays: dict[str, np.ndarray]) -> bytes:
    sink = io.BytesIO()
    np.savez(sink, **arrays)
    return sink.getvalue()


def ordered_sums(blocks: DataFrame, compute: Callable[[FitBlock], dict[str, np.ndarray]],
                 num_classes: int) -> dict[str, np.ndarray]:
    """The sums of `compute` over every fit block: one partial per partition reaches the
    driver, added in partition order (bit-identical on a rerun)."""
    from pyspark import TaskContext

    def per_task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        totals: dict[str, np.ndarray] = {}
        for batch in batches:
            for value in batch.column("block"):
                block = decode_fit_block(value.as_buffer(), num_classes)
                for name, array in compute(block).items():
                    totals[name] = totals[name] + array if name in totals else array
        context = TaskContext.get()
        yield pa.RecordBatch.from_arrays(
            [pa.array([context.partitionId() if context else 0], pa.int32()),
             pa.array([_pack(totals)], pa.binary())], names=["part", "sums"])

    rows = sorted(blocks.mapInArrow(per_task, "part int, sums binary").collect(),
                  key=lambda row: row["part"])
    out: dict[str, np.ndarray] = {}
    for row in rows:
        with np.load(io.BytesIO(row["sums"])) as found:
            for name in found.files:
                out[name] = out[name] + found[name] if name in out else found[name]
    return out


# ---- the fit ---------------------------------------------------------------------------------

FittedModels = lg.OutOfFoldModels


def spark_passes(blocks: DataFrame, num_classes: int) -> lg.Passes:
    """The core's passes on Spark: one job over the fit blocks, the weights shared once."""
    spark = blocks.sparkSession

    def passes(per_rows: lg.PerRows, value: object) -> dict[str, np.ndarray]:
        broadcast = shared(spark, value)
        try:
            return ordered_sums(blocks, lambda block: per_rows(block.rows, broadcast.value),
                                num_classes)
        finally:
            broadcast.destroy()

    return passes


def fit(blocks: DataFrame, num_classes: int, width: int, params: lg.LogisticParams,
        stages: StageLog | None = None) -> FittedModels:
    """Every class's and fold's logistic regression (and with `params.stacked` the second
    stage), one pass over the blocks per evaluation."""
    stages = stages or StageLog()
    with stages.stage("fit") as info:
        try:
            models = lg.fit_out_of_fold(spark_passes(blocks, num_classes), width, num_classes,
                                        params)
        except ValueError as error:  # pragma: no cover - the intake leaves >= 1 example
            raise InputError("features", None, str(error)) from None
        info["note"] = (f"{models.evaluations} passes ("
                        + " + ".join(map(str, models.stage_evaluations)) + "), "
                        f"{int(models.converged.sum())} of {num_classes} classes converged")
    return models


def out_of_fold(blocks: DataFrame, models: FittedModels, num_classes: int,
                id_type: T.DataType) -> DataFrame:
    """(id, pred_probs array<float>, fold): each example under its own fold's model."""
    spark = blocks.sparkSession
    carried = shared(spark, models)

    def rows(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        fitted = carried.value
        for batch in batches:
            for value in batch.column("block"):
                block = decode_fit_block(value.as_buffer(), num_classes)
                probs = fitted.held_out(block.rows)
                yield pa.RecordBatch.from_arrays(
                    [block.ids, bl.matrix_column(probs.astype(np.float32), pa.float32()),
                     pa.array(block.folds.astype(np.int32), pa.int32())],
                    names=["id", "pred_probs", FOLD])

    return blocks.mapInArrow(rows, predictions_schema(id_type))


def quality(blocks: DataFrame, models: FittedModels, class_names: tuple[str, ...]
            ) -> tuple[ClassQuality, ...]:
    """Each class's held-out positives, ROC AUC (the audit's histogram AUC, with its error
    bound), mean log loss and Brier score, on the float32 probabilities written."""
    k = len(class_names)
    bins = separation_bins(k)
    spark = blocks.sparkSession
    carried = shared(spark, models)

    def measure(block: FitBlock) -> dict[str, np.ndarray]:
        probs = carried.value.held_out(block.rows).astype(np.float32)
        given = block.rows.given
        sums = lg.quality_sums(probs.astype(np.float64), given)
        histogram = separation_partials(Batch(np.arange(len(probs)), given, probs), bins)
        return {**sums, **histogram, "rows": np.array([len(probs)], np.float64)}

    totals = ordered_sums(blocks, measure, k)
    rows = float(totals["rows"][0])
    separation = Separation.of(totals[HISTOGRAM_NAME].reshape(k, 2, bins))
    out = []
    for index, name in enumerate(class_names):
        auc = separation.auc[index]
        error = separation.error[index]
        out.append(ClassQuality(
            index, name, int(totals["positives"][index]),
            None if np.isnan(auc) else float(auc), None if np.isnan(error) else float(error),
            float(totals["log_loss"][index] / rows), float(totals["brier"][index] / rows),
            bool(models.converged[index])))
    return tuple(out)


@contextmanager
def predict_dataframes(labels: DataFrame, features: DataFrame, config: AuditConfig,
                       stages: StageLog | None = None) -> Iterator[Prediction]:
    """The out-of-fold probabilities of every example with both a label row and a features row
    that pass the checks (bad rows stop it as they stop an audit); the caches are freed on
    leaving the block:

        with predict_dataframes(labels, features, config) as prediction:
            prediction.predictions.show()
    """
    stages = stages or StageLog()
    with stages.stage("read and check inputs") as info:
        intake = feature_intake(labels, features, config)
        info["rows"] = intake.num_examples
    try:
        stopped = intake.stop_error(config)
        if stopped is not None:
            raise stopped
        with predict_intake(intake, config, stages) as prediction:
            yield prediction
    finally:
        intake.release()


@contextmanager
def predict_intake(intake: FeatureIntake, config: AuditConfig, stages: StageLog
                   ) -> Iterator[Prediction]:
    """Folds, fit blocks, the fit, the quality and the predictions of a checked intake."""
    params = config.model.params
    k = len(intake.class_names)
    with stages.stage("folds and fit blocks") as info:
        folds = assign_folds(intake.examples, params.folds, config.model.seed)
        blocks = cached(fit_blocks(intake.examples, folds,
                                   _partitions(intake.num_examples, intake.num_features),
                                   k, intake.num_features))
        try:
            info["note"] = f"{blocks.count()} blocks"
        except BaseException:
            blocks.unpersist()
            raise
    try:
        models = fit(blocks, k, intake.num_features, params, stages)
        with stages.stage("model quality"):
            measured = quality(blocks, models, intake.class_names)
        yield Prediction(out_of_fold(blocks, models, k, intake.id_type), measured,
                         intake.quarantine, intake.labels, intake.features,
                         intake.num_examples, intake.num_features, intake.class_names,
                         intake.id_type, models.evaluations, (blocks,))
    finally:
        blocks.unpersist()
