"""Register the output tables in a Spark catalog, so that spark-sql and BI tools see
`<database>.examples` and the others.

Each table is an external Parquet table over `<output>/<table>/` whose partitions
(`dataset=`, `run_date=`) Spark infers from the directories. Registering is idempotent and is
rerun after each audit: the table is re-created from the files (picking up new columns) and
its partitions recovered, so a new run date becomes visible. The data is never touched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession

from labelqa.errors import ConfigError
from labelqa.spark.driver import path_exists, qualified
from labelqa.spark.names import quoted
from labelqa.tables import CATALOG_TABLES, OPTIONAL_TABLES, QUARANTINE, table_path


@dataclass(frozen=True)
class RegisteredTable:
    name: str  # database.table
    location: str
    partitions: int


def embedded_metastore_conf(metastore_dir: str) -> dict[str, str]:
    """Settings for a Hive catalog kept in a local directory: Derby's metastore database and
    the warehouse. spark-sql must be started with the same settings to see the tables."""
    root = os.path.abspath(metastore_dir)
    return {
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": f"{root}/warehouse",
        "spark.hadoop.javax.jdo.option.ConnectionURL":
            f"jdbc:derby:;databaseName={root}/metastore_db;create=true",
        # Derby writes derby.log into the working directory unless told otherwise
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={root}",
    }


def register_tables(spark: SparkSession, output: str, database: str = "labelqa",
                    tables: tuple[str, ...] = CATALOG_TABLES) -> list[RegisteredTable]:
    """(Re-)create `database.<table>` over each output table that has files."""
    found = [t for t in tables if path_exists(spark, table_path(output, t))]
    if not found:
        raise ConfigError(f"no labelqa output tables under {output!r} (expected "
                          f"{', '.join(table_path(output, t) for t in tables[:2])}, ...)")
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {quoted(database)}")
    registered = []
    for table in found:
        location = qualified(spark, table_path(output, table))
        name = f"{quoted(database)}.{quoted(table)}"
        _drop_if_external(spark, database, table)
        escaped = location.replace("\\", "\\\\").replace("'", "\\'")
        try:
            spark.sql(f"CREATE TABLE {name} USING parquet LOCATION '{escaped}'")
        except AnalysisException as error:
            no_files = error.getCondition() == "UNABLE_TO_INFER_SCHEMA"
            if no_files and table in OPTIONAL_TABLES:
                continue  # every partition of it was removed by reruns without its setting
            if not no_files or table not in ("quarantine", "predict_quarantine"):
                raise
            # no run has quarantined a row yet: the table exists, empty, with its schema
            spark.sql(f"CREATE TABLE {name} ({QUARANTINE.toDDL()}, dataset string, "
                      f"run_date date) USING parquet PARTITIONED BY (dataset, run_date) "
                      f"LOCATION '{escaped}'")
        spark.sql(f"ALTER TABLE {name} RECOVER PARTITIONS")
        partitions = spark.sql(f"SHOW PARTITIONS {name}").count()
        registered.append(RegisteredTable(f"{database}.{table}", location, partitions))
    return registered


def _drop_if_external(spark: SparkSession, database: str, table: str) -> None:
    """Drop a previous registration; never a managed table (dropping it would delete data)."""
    if not spark.catalog.tableExists(f"{database}.{table}"):
        return
    found = spark.catalog.getTable(f"{database}.{table}")
    if (found.tableType or "").upper() != "EXTERNAL":
        raise ConfigError(f"{database}.{table} exists and is a {found.tableType} table, not a "
                          "labelqa registration: choose another --database")
    spark.sql(f"DROP TABLE {quoted(database)}.{quoted(table)}")
