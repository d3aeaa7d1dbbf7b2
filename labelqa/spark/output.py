"""Write the output tables as Hive-partitioned Parquet, publish a run's staged partitions, and
write its manifest last. Names, schemas and paths: `labelqa.tables`."""

from __future__ import annotations

import json

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from labelqa.errors import InputError
from labelqa.spark.catalog_output import check_catalog_tables, write_catalog_partitions
from labelqa.spark.driver import delete, directories, move, path_exists, write_text_atomically
from labelqa.tables import ID_TABLES, OPTIONAL_TABLES, manifest_path, partition_dir, partition_glob


def write_partition(df: DataFrame, output: str, table: str, dataset: str, run_date: str) -> None:
    """Write `df` as exactly the `dataset=<name>/run_date=<date>` partition of `table`.

    Straight into the partition's directory: `partitionBy` on two constant columns would make
    Spark sort every row by them before writing (measured: 13.7 of 20 s writing `examples` at
    1M x 40). No `_SUCCESS` file inside the partition; the run's manifest marks completion.
    """
    write_parquet(df, partition_dir(output, table, dataset, run_date))


def write_parquet(df: DataFrame, path: str) -> None:
    """Write `df` as the Parquet directory `path`, replacing it, without a `_SUCCESS` file."""
    (df.write.mode("overwrite").option("mapreduce.fileoutputcommitter.marksuccessfuljobs",
                                       "false").parquet(path))


def publish(spark: SparkSession, staging: str, output: str, tables: tuple[str, ...],
            dataset: str, run_date: str, catalog: str | None = None) -> None:
    """Move the staged partitions of `tables` into place, replacing the previous ones; with
    `catalog` (output.catalog.database) copy them into its tables too.

    Each table's partition is swapped by two renames (the old one aside, the new one in);
    readers see the old partition or the new one, never a half-written one. A table this run
    did not stage (an optional one) loses the previous run's partition of the same date.
    """
    if catalog is not None:  # a table the catalog would refuse stops the run here, unpublished
        check_catalog_tables(spark, catalog, staging, tables, dataset, run_date)
    for table in tables:
        source = partition_dir(staging, table, dataset, run_date)
        if table not in OPTIONAL_TABLES and not path_exists(spark, source):
            raise OSError(f"{source} was never staged")  # pragma: no cover - a broken run
        # an optional table this run did not stage: the old partition is only moved aside
        replace_directory(spark, source, partition_dir(output, table, dataset, run_date),
                          f"{staging}/_replaced/{table}")
    discard(spark, staging)
    if catalog is not None:
        write_catalog_partitions(spark, catalog, output, tables, dataset, run_date)


def replace_directory(spark: SparkSession, source: str, target: str, aside: str) -> None:
    """Move `source` to `target` by two renames: the old `target` (if any) to `aside`, then
    the new one in (readers see the old directory or the new one, never a half-written one).
    Without a `source`, the old `target` is only moved aside.
    """
    staged = path_exists(spark, source)
    if path_exists(spark, target):
        move(spark, target, aside)
    if staged:
        move(spark, source, target)


def discard(spark: SparkSession, path: str) -> None:
    """Remove a staging directory (or any directory) and everything in it."""
    delete(spark, path)


def written_id_types(spark: SparkSession, output: str, dataset: str, run_date: str
                     ) -> dict[str, T.DataType]:
    """The id type of every dataset already under `output`, by dataset, leaving out the
    partition this run replaces (one partition per dataset is read: schema only)."""
    partitions: dict[str, str] = {}
    for path in directories(spark, partition_glob(output, "examples")):
        found_dataset, found_date = (part.split("=", 1)[1] for part in path.split("/")[-2:])
        if (found_dataset, found_date) != (dataset, run_date):
            partitions.setdefault(found_dataset, path)
    types = {}
    for found, path in sorted(partitions.items()):
        try:
            schema = spark.read.parquet(path).schema
        except Exception:  # noqa: BLE001 - an empty or foreign directory holds no id type
            continue
        if "id" in schema.fieldNames():
            types[found] = schema["id"].dataType
    return types


def refuse_other_id_type(spark: SparkSession, output: str, dataset: str, run_date: str,
                         id_type: T.DataType, id_column: str) -> None:
    """One id type per output directory: Spark (and `register`, `report`, spark-sql) reads
    each table with one schema, so a dataset with the other type would make every dataset's
    rows unreadable. Checked before anything is written."""
    for found, existing in written_id_types(spark, output, dataset, run_date).items():
        if existing != id_type:
            raise InputError(
                "labels", id_column,
                f"the ids are {id_type.simpleString()}, but the output directory already "
                f"holds dataset {found!r} with {existing.simpleString()} ids, and every "
                f"dataset of one output directory needs the same id type ({', '.join(ID_TABLES)}"
                f" are read with one schema): use another --output for this dataset, or cast "
                f"its ids to {existing.simpleString()}")


def write_manifest(spark: SparkSession, output: str, dataset: str, run_date: str,
                   manifest: dict) -> str:
    path = manifest_path(output, dataset, run_date)
    write_text_atomically(spark, path, json.dumps(manifest, indent=2, sort_keys=True, default=str))
    return path
