"""Write the output tables as Hive-partitioned Parquet, and the run's manifest last."""

from __future__ import annotations

import json

from pyspark.sql import DataFrame, SparkSession

TABLES = ("examples", "class_issues", "classes", "summary", "quarantine")


def table_path(output: str, table: str) -> str:
    return f"{output.rstrip('/')}/{table}"


def write_partition(df: DataFrame, output: str, table: str, dataset: str, run_date: str) -> None:
    """Write `df` as exactly the `dataset=<name>/run_date=<date>` partition of `table`.

    Straight into the partition's directory: `partitionBy` on two constant columns would make
    Spark sort every row by them before writing (measured: 13.7 of 20 s writing `examples` at
    1M x 40). No `_SUCCESS` file inside the partition; the run's manifest marks completion.
    """
    (df.write.mode("overwrite").option("mapreduce.fileoutputcommitter.marksuccessfuljobs",
                                       "false")
     .parquet(partition_dir(output, table, dataset, run_date)))


def partition_dir(root: str, table: str, dataset: str, run_date: str) -> str:
    return f"{table_path(root, table)}/dataset={dataset}/run_date={run_date}"


def staging_root(output: str, run_id: str) -> str:
    """Where a run writes its tables before they become visible."""
    return f"{output.rstrip('/')}/_staging/{run_id}"


def _fs(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


def publish(spark: SparkSession, staging: str, output: str, tables: tuple[str, ...],
            dataset: str, run_date: str) -> None:
    """Move the staged partitions of `tables` into place, replacing the previous ones.

    Each table's partition is swapped by two renames (the old one aside, the new one in);
    readers see the old partition or the new one, never a half-written one.
    """
    for table in tables:
        fs, source = _fs(spark, partition_dir(staging, table, dataset, run_date))
        _, target = _fs(spark, partition_dir(output, table, dataset, run_date))
        fs.mkdirs(target.getParent())
        aside = None
        if fs.exists(target):
            _, aside = _fs(spark, f"{staging}/_replaced/{table}")
            fs.mkdirs(aside.getParent())
            if not fs.rename(target, aside):  # pragma: no cover - filesystem refused
                raise OSError(f"could not move {target} aside")
        if not fs.rename(source, target):  # pragma: no cover - filesystem refused
            raise OSError(f"could not move {source} to {target}")
    discard(spark, staging)


def qualified(spark: SparkSession, path: str) -> str:
    """`path` as a full URI (a relative local path becomes file:/abs/path)."""
    fs, target = _fs(spark, path)
    return str(fs.makeQualified(target).toString())


def path_exists(spark: SparkSession, path: str) -> bool:
    fs, target = _fs(spark, path)
    return bool(fs.exists(target))


def discard(spark: SparkSession, path: str) -> None:
    fs, target = _fs(spark, path)
    if fs.exists(target):
        fs.delete(target, True)


def manifest_path(output: str, dataset: str, run_date: str) -> str:
    return f"{output.rstrip('/')}/_manifests/dataset={dataset}/run_date={run_date}.json"


def write_text_atomically(spark: SparkSession, path: str, text: str) -> None:
    """Write through Hadoop's FileSystem (local, HDFS, object stores): temp file, then rename."""
    fs, target = _fs(spark, path)
    _, temporary = _fs(spark, path + ".inprogress")
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
