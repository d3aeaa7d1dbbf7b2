"""Every call labelqa makes into Spark's JVM, behind one door.

Hadoop's FileSystem (staging, publishing, manifests, small text files: any URI Spark can
write to) and log4j's levels. Nothing else in labelqa touches `sparkContext._jvm`; a
session without a JVM in this process (Spark Connect) needs another implementation of just
these functions.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession


def _fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    """Hadoop's FileSystem of `path` and the path as a Hadoop Path."""
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


def path_exists(spark: SparkSession, path: str) -> bool:
    fs, target = _fs(spark, path)
    return bool(fs.exists(target))


def is_file(spark: SparkSession, path: str) -> bool:
    fs, target = _fs(spark, path)
    return bool(fs.exists(target)) and not fs.getFileStatus(target).isDirectory()


def delete(spark: SparkSession, path: str) -> None:
    """Remove `path` and everything under it, if it exists."""
    fs, target = _fs(spark, path)
    if fs.exists(target):
        fs.delete(target, True)


def move(spark: SparkSession, source: str, target: str) -> None:
    """Rename `source` to `target` (its parent made first); `target` must not exist."""
    fs, source_path = _fs(spark, source)
    _, target_path = _fs(spark, target)
    fs.mkdirs(target_path.getParent())
    if not fs.rename(source_path, target_path):  # pragma: no cover - filesystem refused
        raise OSError(f"could not move {source} to {target}")


def qualified(spark: SparkSession, path: str) -> str:
    """`path` as a full URI (a relative local path becomes file:/abs/path)."""
    fs, target = _fs(spark, path)
    return str(fs.makeQualified(target).toString())


def directories(spark: SparkSession, pattern: str) -> list[str]:
    """The directories matching a glob pattern, as full paths, sorted."""
    fs, glob = _fs(spark, pattern)
    return sorted(str(status.getPath().toString()) for status in fs.globStatus(glob) or []
                  if status.isDirectory())


def write_text_atomically(spark: SparkSession, path: str, text: str) -> None:
    """Write a small text file: a temporary file, then one rename (readers never see half)."""
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


def read_text(spark: SparkSession, path: str) -> str | None:
    """A small text file (a manifest, a reviews file, a class list); None when there is no
    such file."""
    if not is_file(spark, path):
        return None
    fs, target = _fs(spark, path)
    stream = fs.open(target)
    try:
        jvm = spark.sparkContext._jvm
        return str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()


def set_log_levels(spark: SparkSession, root: str, loggers: dict[str, str]) -> None:
    """Spark's root log level, and the level of each named log4j logger."""
    spark.sparkContext.setLogLevel(root)
    log4j = spark.sparkContext._jvm.org.apache.logging.log4j
    for name, level in loggers.items():
        log4j.core.config.Configurator.setLevel(name, log4j.Level.getLevel(level))
