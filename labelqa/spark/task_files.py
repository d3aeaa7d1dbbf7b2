"""Output files written by the audit's own Python tasks with pyarrow.

The scoring pass holds the unflagged `examples` rows and the `class_issues` rows as Arrow
batches, and the ranking task the ranked flagged rows: writing them from there, the rows never
cross back into the JVM (no scored cache of JVM rows, no Spark Parquet writer for the nested
arrays, which took a fifth of the JVM's profile samples: docs/benchmarks.md).

Only for a local file system (a path, or `file:`), which every executor of a local or
one-machine session sees; any other output goes through Spark's writer. A task's file is named
by what it holds (a partition of the scoring pass, a score range of the ranking), written
under a hidden temporary name and renamed into place: a retried or speculative attempt
replaces it with the same rows, readers (Spark and pyarrow skip names starting with `.`) never
see half a file, and a killed attempt leaves only a hidden file, removed before publishing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq

#: rows per Parquet row group: the scoring pass's blocks are a few thousand rows each, and a
#: row group per block would make readers pay per group
ROW_GROUP_ROWS = 131_072
#: and at most about this many bytes: a row holds about 2 x 0.16 x K tags in the benchmark's
#: data (≈ 15 KB at K = 4000), and 131,072 such rows buffered per table and task took the
#: process tree to 13.7 GiB at 250k x 4000 (7.7 GiB with Spark's writer, whose row groups
#: are bounded by bytes)
ROW_GROUP_BYTES = 64 * 1024 * 1024
TEMPORARY_SUFFIX = ".inprogress"


def local_path(qualified: str) -> str | None:
    """The local path of a qualified URI (`file:/abs`, `file:///abs`), None for any other
    file system."""
    if not qualified.startswith("file:"):
        return None
    path = qualified[len("file:"):]
    return "/" + path.lstrip("/")


@dataclass(frozen=True)
class TaskFiles:
    """Where one output table's task files go: a local directory, the table's Arrow schema,
    and the name part that says which pass wrote a file (`scored`, `ranked`)."""

    directory: str
    schema: pa.Schema
    written_by: str

    def name(self, part: int) -> str:
        return f"part-{part:05d}-{self.written_by}.snappy.parquet"

    def writer(self, part: int) -> TaskFileWriter:
        return TaskFileWriter(self, part)

    def write(self, part: int, batches: Iterable[pa.RecordBatch]) -> int:
        """Write `part`'s file from `batches` (nothing when there are no rows); its rows."""
        with self.writer(part) as writer:
            for batch in batches:
                writer.add(batch)
        return writer.rows


class TaskFileWriter:
    """One task file, streamed: batches are buffered into row groups of ROW_GROUP_ROWS rows
    or ROW_GROUP_BYTES bytes, whichever comes first; the
    file appears (by one rename) only when the writer closes without an error, and only if it
    holds rows."""

    def __init__(self, files: TaskFiles, part: int):
        self.files = files
        self.target = os.path.join(files.directory, files.name(part))
        self.temporary = os.path.join(
            files.directory, f".{files.name(part)}.{uuid.uuid4().hex}{TEMPORARY_SUFFIX}")
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.pending_bytes = 0
        self.rows = 0
        self.parquet: pq.ParquetWriter | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        self.pending_bytes += batch.nbytes
        if self.pending_rows >= ROW_GROUP_ROWS or self.pending_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        if self.parquet is None:
            os.makedirs(self.files.directory, exist_ok=True)
            self.parquet = pq.ParquetWriter(self.temporary, self.files.schema,
                                            compression="snappy")
        table = pa.Table.from_batches(self.pending, schema=self.files.schema)
        # one batch can exceed the byte bound by itself (a rank range's rows): split it
        per_row = max(self.pending_bytes / max(table.num_rows, 1), 1.0)
        group_rows = max(1, min(table.num_rows, int(ROW_GROUP_BYTES / per_row)))
        self.parquet.write_table(table, row_group_size=group_rows)
        self.rows += table.num_rows
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0

    def __enter__(self) -> TaskFileWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            if kind is None:
                self._flush()
        finally:
            if self.parquet is not None:
                self.parquet.close()
        if self.parquet is None:
            return
        if kind is None:
            os.replace(self.temporary, self.target)
        else:
            os.remove(self.temporary)


def finish_directory(files: TaskFiles) -> None:
    """After the tasks: the hidden files of killed attempts removed, and an empty file with
    the schema when no task wrote rows (Spark needs one file to read the table's schema)."""
    os.makedirs(files.directory, exist_ok=True)
    names = os.listdir(files.directory)
    for name in names:
        if name.startswith(".") and name.endswith(TEMPORARY_SUFFIX):
            os.remove(os.path.join(files.directory, name))
    if not any(name.endswith(".parquet") and not name.startswith((".", "_")) for name in names):
        pq.write_table(files.schema.empty_table(),
                       os.path.join(files.directory, "part-00000-empty.snappy.parquet"),
                       compression="snappy")
