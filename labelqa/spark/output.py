"""Write the output tables as Hive-partitioned Parquet, and the run's manifest last."""

from __future__ import annotations

import json

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

TABLES = ("examples", "class_issues", "classes", "summary", "quarantine")


def table_path(output: str, table: str) -> str:
    return f"{output.rstrip('/')}/{table}"


def write_partition(df: DataFrame, output: str, table: str, dataset: str, run_date: str) -> None:
    """Replace exactly the `dataset=<name>/run_date=<date>` partition of `table`."""
    (df.withColumn("dataset", F.lit(dataset)).withColumn("run_date", F.lit(run_date))
     .write.mode("overwrite").option("partitionOverwriteMode", "dynamic")
     .partitionBy("dataset", "run_date").parquet(table_path(output, table)))


def manifest_path(output: str, dataset: str, run_date: str) -> str:
    return f"{output.rstrip('/')}/_manifests/dataset={dataset}/run_date={run_date}.json"


def write_text_atomically(spark: SparkSession, path: str, text: str) -> None:
    """Write through Hadoop's FileSystem (local, HDFS, object stores): temp file, then rename."""
    jvm = spark.sparkContext._jvm
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
    target = jvm.org.apache.hadoop.fs.Path(path)
    fs = target.getFileSystem(hadoop_conf)
    temporary = jvm.org.apache.hadoop.fs.Path(path + ".inprogress")
    stream = fs.create(temporary, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()
    if fs.exists(target):
        fs.delete(target, False)
    if not fs.rename(temporary, target):  # pragma: no cover - filesystem refused
        raise OSError(f"could not move {temporary} to {target}")


def write_manifest(spark: SparkSession, output: str, dataset: str, run_date: str,
                   manifest: dict) -> str:
    path = manifest_path(output, dataset, run_date)
    write_text_atomically(spark, path, json.dumps(manifest, indent=2, sort_keys=True, default=str))
    return path
