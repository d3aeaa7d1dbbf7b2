"""Compact columnar blocks: many rows as one Arrow IPC stream in one binary cell.

The intake writes each run of audited examples as one block, and the scoring pass its scored
rows, so the caches hold a few large binary values per partition instead of millions of JVM
rows. Every later pass reads a block straight into NumPy arrays: the rows do not cross the
JVM/Arrow boundary again (measured in the README, Benchmarks).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from labelqa.core.batch import Batch, multi_hot

#: kinds of the rows of a blocks DataFrame
BLOCK, QUARANTINED_ROW, STATISTIC = 0, 1, 2
ID, LABELS, PROBS = "id", "labels", "pred_probs"


def encode(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def decode(block: bytes | pa.Buffer) -> pa.RecordBatch:
    return pa.ipc.open_stream(block).read_next_batch()


def blocks_of(record_batches: Iterator[pa.RecordBatch], column: str = "block"
              ) -> Iterator[pa.RecordBatch]:
    """The blocks of a pass's input batches (rows of kind BLOCK), decoded."""
    for record_batch in record_batches:
        for value in record_batch.column(column):
            if value.is_valid:
                decoded = decode(value.as_buffer())
                if decoded.num_rows:
                    yield decoded


def ids_of(column: pa.Array) -> np.ndarray:
    """int64 ids as int64, string ids as an object array of str."""
    if pa.types.is_integer(column.type):
        return column.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return column.to_numpy(zero_copy_only=False).astype(object, copy=False)


def examples_block(ids: pa.Array, labels: pa.ListArray, probs: np.ndarray) -> pa.RecordBatch:
    """Audited examples: id, the annotated class indices, the (n, K) probabilities."""
    num_rows, width = probs.shape
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(probs.reshape(-1)), width)
    return pa.RecordBatch.from_arrays([ids, labels, vectors], names=[ID, LABELS, PROBS])


def batch_of(block: pa.RecordBatch) -> Batch:
    """The audit batch of an examples block."""
    probs_column = block.column(PROBS)
    width = probs_column.type.list_size
    probs = probs_column.values.to_numpy(zero_copy_only=False).reshape(-1, width)
    labels_column = block.column(LABELS)
    label_values = labels_column.flatten().to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(labels_column).to_numpy(zero_copy_only=False)
    given = multi_hot(label_values, parents, block.num_rows, width)
    return Batch(ids_of(block.column(ID)), given, probs)


def list_column(mask: np.ndarray, values: np.ndarray | None = None,
                value_type: pa.DataType = pa.int32()) -> pa.ListArray:
    """One list per row of `mask` (n, K): the column indices where it is true, or `values` at
    those places."""
    rows, columns = np.nonzero(mask)
    offsets = np.zeros(mask.shape[0] + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=mask.shape[0]), out=offsets[1:])
    items = columns if values is None else values[rows, columns]
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(items, type=value_type))


def matrix_column(matrix: np.ndarray, value_type: pa.DataType = pa.float64()) -> pa.ListArray:
    """One fixed-length list per row of a (n, K) matrix (as a variable-length list type)."""
    num_rows, width = matrix.shape
    offsets = np.arange(0, (num_rows + 1) * width, width, dtype=np.int32)
    values = pa.array(matrix.reshape(-1), type=value_type)
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def statistic_rows(totals: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(name, position, value) of the non-zero entries of int64 totals."""
    names, positions, values = [], [], []
    for name, array in totals.items():
        flat = np.asarray(array, dtype=np.int64).reshape(-1)
        where = np.flatnonzero(flat)
        names.extend([name] * len(where))
        positions.append(where)
        values.append(flat[where])
    return (names, np.concatenate(positions) if positions else np.zeros(0, np.int64),
            np.concatenate(values) if values else np.zeros(0, np.int64))


def add_totals(totals: dict[str, np.ndarray], more: dict[str, np.ndarray]) -> None:
    for name, array in more.items():
        totals[name] = totals[name] + array if name in totals else np.array(array, np.int64)


def rows_of_kind(schema: pa.Schema, num_rows: int, **columns: pa.Array) -> pa.RecordBatch:
    """Rows of a pass's union schema: the given columns, nulls in all others."""
    arrays = [columns[f.name].cast(f.type) if f.name in columns else pa.nulls(num_rows, f.type)
              for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
