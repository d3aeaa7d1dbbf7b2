"""Arrow record batches <-> NumPy matrices, without per-row Python objects."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from labelqa.core.batch import Batch, multi_hot

ID, LABELS, PROBS = "id", "labels", "pred_probs"


def ids_of(column: pa.Array) -> np.ndarray:
    """int64 ids as int64, string ids as an object array of str."""
    if pa.types.is_integer(column.type):
        return column.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return column.to_numpy(zero_copy_only=False).astype(object, copy=False)


def batch_of(record_batch: pa.RecordBatch, num_classes: int) -> Batch:
    """The audit batch of joined rows (columns id, labels, pred_probs; already validated)."""
    probs_column = record_batch.column(PROBS)
    labels_column = record_batch.column(LABELS)
    num_rows = record_batch.num_rows
    values = probs_column.flatten().to_numpy(zero_copy_only=False)
    probs = values.reshape(num_rows, num_classes)
    label_values = labels_column.flatten().to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(labels_column).to_numpy(zero_copy_only=False)
    given = multi_hot(label_values, parents, num_rows, num_classes)
    return Batch(ids_of(record_batch.column(ID)), given, probs)


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
    """One fixed-length list per row of a (n, K) matrix."""
    num_rows, width = matrix.shape
    offsets = np.arange(0, (num_rows + 1) * width, width, dtype=np.int32)
    values = pa.array(matrix.reshape(-1), type=value_type)
    return pa.ListArray.from_arrays(pa.array(offsets), values)
