"""Output tables written into the session's catalog too (`output.catalog.database`), next to
the path layout: `<database>.<table>`, managed Parquet tables partitioned by `dataset` and
`run_date` (a date, as `labelqa register` infers it), that a run fills by replacing its own
partition only (`INSERT OVERWRITE ... PARTITION (dataset=..., run_date=...)`).

The path layout stays the source: a run stages and publishes its partitions there first, and
each catalog partition is copied from the published one before the manifest is written. What
every catalog table must take is checked against the staged partitions before anything is
published, so a run whose tables no longer fit the catalog's (a new column) changes nothing.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from labelqa.errors import ConfigError
from labelqa.spark.driver import path_exists
from labelqa.spark.names import column, quoted
from labelqa.tables import partition_dir

PARTITION_COLUMNS = ("dataset", "run_date")


def catalog_database(database: str) -> str:
    """`database` (or `catalog.database`) as a quoted SQL name."""
    return ".".join(quoted(part) for part in database.split("."))


def catalog_table(database: str, table: str) -> str:
    return f"{catalog_database(database)}.{quoted(table)}"


def _with_partition(rows: DataFrame, dataset: str, run_date: str) -> DataFrame:
    return (rows.withColumn("dataset", F.lit(dataset))
            .withColumn("run_date", F.lit(run_date).cast(T.DateType())))


def _shape(schema: T.StructType) -> list[tuple[str, str]]:
    """Column names (case-insensitive, as a Hive metastore keeps them) and types, without
    nullability (a catalog may mark every column nullable)."""
    return [(f.name.lower(), f.dataType.simpleString()) for f in schema.fields]


def check_catalog_tables(spark: SparkSession, database: str, staging: str,
                         tables: tuple[str, ...], dataset: str, run_date: str) -> None:
    """Every existing `database.<table>` takes this run's staged partition as it is: same
    columns in the same order, same types; else a ConfigError before anything is published."""
    for table in tables:
        source = partition_dir(staging, table, dataset, run_date)
        name = catalog_table(database, table)
        if not path_exists(spark, source) or not spark.catalog.tableExists(name):
            continue
        wanted = _shape(_with_partition(spark.read.parquet(source), dataset, run_date).schema)
        found = _shape(spark.read.table(name).schema)
        if wanted != found:
            differing = [f"{n} {t}" for n, t in wanted if (n, t) not in found] or [
                f"no {n}" for n, t in found if (n, t) not in wanted]
            raise ConfigError(
                f"output.catalog: the catalog table {database}.{table} does not take this "
                f"run's partition ({', '.join(differing)}): its columns were set by an earlier "
                f"run with other settings; drop it (DROP TABLE {database}.{table}) to let this "
                f"run re-create it, or write to another output.catalog.database")


def write_catalog_partitions(spark: SparkSession, database: str, output: str,
                             tables: tuple[str, ...], dataset: str, run_date: str) -> None:
    """Copy each published `dataset=/run_date=` partition of `tables` into its catalog table
    (created by the first run), replacing that partition only. A table this run did not
    write (an optional one) loses the catalog partition of the same date, as in the path
    layout."""
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {catalog_database(database)}")
    for table in tables:
        name = catalog_table(database, table)
        source = partition_dir(output, table, dataset, run_date)
        exists = spark.catalog.tableExists(name)
        if not path_exists(spark, source):
            if exists:
                spark.sql(f"ALTER TABLE {name} DROP IF EXISTS PARTITION "
                          f"(dataset = '{dataset}', run_date = DATE'{run_date}')")
            continue
        rows = _with_partition(spark.read.parquet(source), dataset, run_date)
        if not exists:
            _create(rows, name, PARTITION_COLUMNS)
            continue
        view = f"labelqa_catalog_{table}"
        _in_table_order(spark, name, rows).drop(*PARTITION_COLUMNS).createOrReplaceTempView(
            view)
        try:
            spark.sql(f"INSERT OVERWRITE TABLE {name} PARTITION (dataset = '{dataset}', "
                      f"run_date = DATE'{run_date}') SELECT * FROM {view}")
        finally:
            spark.catalog.dropTempView(view)


def append_catalog_rows(spark: SparkSession, database: str, table: str,
                        rows: DataFrame) -> None:
    """Append `rows` (with their partition columns) to a catalog table that accumulates (the
    run history `runs`, partitioned by dataset), created by the first run."""
    name = catalog_table(database, table)
    if spark.catalog.tableExists(name):
        _in_table_order(spark, name, rows).write.insertInto(name)
    else:
        _create(rows, name, ("dataset",))


def _create(rows: DataFrame, name: str, partition_columns: tuple[str, ...]) -> None:
    """A run's first rows make the catalog table (managed Parquet)."""
    rows.write.format("parquet").partitionBy(*partition_columns).saveAsTable(name)


def _in_table_order(spark: SparkSession, name: str, rows: DataFrame) -> DataFrame:
    """`rows` with the catalog table's columns in its order (an insert is by position)."""
    return rows.select(*[column(f.name) for f in spark.read.table(name).schema.fields])
