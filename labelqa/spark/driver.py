"""What labelqa asks of the driver beyond the DataFrame API, behind one door.

File operations (staging, publishing, manifests, small text files), Spark's log levels and a
value shared with every task. A classic session has a JVM in this process: Hadoop's
FileSystem (any URI Spark can write to), log4j and broadcasts. A Spark Connect session
(`--remote sc://...`) has no JVM here: files go through pyarrow's file systems from this
process (a local path, `s3://` (`s3a://` read as `s3://`), `gs://`, `hdfs://`), with this
process's credentials; the server keeps its own log levels; a shared value travels inside the
task's function. Nothing else in labelqa touches `sparkContext`.
"""

from __future__ import annotations

import fnmatch
import os
from typing import Any, TypeVar

from pyspark.sql import SparkSession

Value = TypeVar("Value")


def is_connect(spark: SparkSession) -> bool:
    """A Spark Connect session (pyspark.sql.connect), not a classic one."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


# ---- Spark Connect: pyarrow's file systems in this process -----------------------------------

GLOB_CHARACTERS = frozenset("*?[")


def _arrow(path: str) -> tuple[Any, str]:
    """pyarrow's file system of `path` and the path inside it."""
    from pyarrow import fs

    if path.startswith("s3a://") or path.startswith("s3n://"):
        path = "s3://" + path[6:]
    if "://" not in path:
        local = path[len("file:"):] if path.startswith("file:") else path
        return fs.LocalFileSystem(), os.path.abspath(local)
    if path.startswith("file://"):
        return fs.LocalFileSystem(), os.path.abspath(path[len("file://"):])
    return fs.FileSystem.from_uri(path)


def _uri(path: str, inner: str) -> str:
    """`inner` (a path inside `path`'s file system) written like `path`: a local path as
    Hadoop writes it (file:/abs/path), any other with `path`'s scheme and bucket."""
    if "://" not in path or path.startswith("file://"):
        return "file:" + inner
    scheme = path.split("://", 1)[0]
    return f"{scheme}://{inner}"


def _kind(path: str) -> Any:
    filesystem, inner = _arrow(path)
    return filesystem.get_file_info(inner).type


def _glob(pattern: str) -> list[str]:
    """The directories matching `pattern`, one path component at a time (pyarrow has no
    glob); as full URIs like Hadoop's globStatus gives."""
    from pyarrow import fs

    filesystem, inner = _arrow(pattern)
    parts = inner.split("/")
    first = next((i for i, part in enumerate(parts) if GLOB_CHARACTERS & set(part)), len(parts))

    def is_directory(path: str) -> bool:
        return bool(filesystem.get_file_info(path).type == fs.FileType.Directory)

    base = "/".join(parts[:first]) or "/"
    found = [base] if is_directory(base) else []
    for part in parts[first:]:
        if GLOB_CHARACTERS & set(part):  # one listing per directory matched so far
            found = [info.path for directory in found for info in filesystem.get_file_info(
                         fs.FileSelector(directory, allow_not_found=True))
                     if info.type == fs.FileType.Directory
                     and fnmatch.fnmatchcase(info.base_name, part)]
        else:
            found = [f"{d}/{part}" for d in found if is_directory(f"{d}/{part}")]
    return sorted(_uri(pattern, path) for path in found)


# ---- the door --------------------------------------------------------------------------------

def _fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    """Hadoop's FileSystem of `path` and the path as a Hadoop Path."""
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


def path_exists(spark: SparkSession, path: str) -> bool:
    if is_connect(spark):
        from pyarrow import fs

        return bool(_kind(path) != fs.FileType.NotFound)
    hadoop, target = _fs(spark, path)
    return bool(hadoop.exists(target))


def is_file(spark: SparkSession, path: str) -> bool:
    if is_connect(spark):
        from pyarrow import fs

        return bool(_kind(path) == fs.FileType.File)
    hadoop, target = _fs(spark, path)
    return bool(hadoop.exists(target)) and not hadoop.getFileStatus(target).isDirectory()


def delete(spark: SparkSession, path: str) -> None:
    """Remove `path` and everything under it, if it exists."""
    if is_connect(spark):
        from pyarrow import fs

        filesystem, inner = _arrow(path)
        kind = filesystem.get_file_info(inner).type
        if kind == fs.FileType.Directory:
            filesystem.delete_dir(inner)
        elif kind == fs.FileType.File:
            filesystem.delete_file(inner)
        return
    hadoop, target = _fs(spark, path)
    if hadoop.exists(target):
        hadoop.delete(target, True)


def move(spark: SparkSession, source: str, target: str) -> None:
    """Rename `source` to `target` (its parent made first); `target` must not exist."""
    if is_connect(spark):
        filesystem, source_inner = _arrow(source)
        _, target_inner = _arrow(target)
        filesystem.create_dir(target_inner.rsplit("/", 1)[0], recursive=True)
        filesystem.move(source_inner, target_inner)
        return
    hadoop, source_path = _fs(spark, source)
    _, target_path = _fs(spark, target)
    hadoop.mkdirs(target_path.getParent())
    if not hadoop.rename(source_path, target_path):  # pragma: no cover - filesystem refused
        raise OSError(f"could not move {source} to {target}")


def qualified(spark: SparkSession, path: str) -> str:
    """`path` as a full URI (a relative local path becomes file:/abs/path)."""
    if is_connect(spark):
        return _uri(path, _arrow(path)[1])
    hadoop, target = _fs(spark, path)
    return str(hadoop.makeQualified(target).toString())


def directories(spark: SparkSession, pattern: str) -> list[str]:
    """The directories matching a glob pattern, as full paths, sorted."""
    if is_connect(spark):
        return _glob(pattern)
    hadoop, glob = _fs(spark, pattern)
    return sorted(str(status.getPath().toString()) for status in hadoop.globStatus(glob) or []
                  if status.isDirectory())


def write_text_atomically(spark: SparkSession, path: str, text: str) -> None:
    """Write a small text file: a temporary file, then one rename (readers never see half)."""
    if is_connect(spark):
        filesystem, inner = _arrow(path)
        temporary = inner + ".inprogress"
        filesystem.create_dir(inner.rsplit("/", 1)[0], recursive=True)
        with filesystem.open_output_stream(temporary) as stream:
            stream.write(text.encode("utf-8"))
        filesystem.move(temporary, inner)  # replaces an existing file
        return
    hadoop, target = _fs(spark, path)
    _, temporary = _fs(spark, path + ".inprogress")
    stream = hadoop.create(temporary, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()
    if hadoop.exists(target):
        hadoop.delete(target, False)
    if not hadoop.rename(temporary, target):  # pragma: no cover - filesystem refused
        raise OSError(f"could not move {temporary} to {target}")


def read_text(spark: SparkSession, path: str) -> str | None:
    """A small text file (a manifest, a reviews file, a class list); None when there is no
    such file."""
    if not is_file(spark, path):
        return None
    if is_connect(spark):
        filesystem, inner = _arrow(path)
        with filesystem.open_input_stream(inner) as stream:
            return bytes(stream.read()).decode("utf-8")
    hadoop, target = _fs(spark, path)
    stream = hadoop.open(target)
    try:
        jvm = spark.sparkContext._jvm
        return str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()


def set_log_levels(spark: SparkSession, root: str, loggers: dict[str, str]) -> None:
    """Spark's root log level, and the level of each named log4j logger (a Spark Connect
    server keeps its own: its log is not this process's)."""
    if is_connect(spark):
        return
    spark.sparkContext.setLogLevel(root)
    log4j = spark.sparkContext._jvm.org.apache.logging.log4j
    for name, level in loggers.items():
        log4j.core.config.Configurator.setLevel(name, log4j.Level.getLevel(level))


class _Carried:
    """A shared value of a Spark Connect session: pickled with the task's function."""

    def __init__(self, value: Any):
        self.value = value

    def destroy(self) -> None:
        self.value = None


def shared(spark: SparkSession, value: Value) -> Any:
    """`value` for every task, read as `.value` and released by `.destroy()`: a broadcast
    (sent to each executor once) in a classic session, carried by the function in Connect."""
    if is_connect(spark):
        return _Carried(value)
    return spark.sparkContext.broadcast(value)

