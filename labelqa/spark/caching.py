"""How labelqa keeps a DataFrame that several jobs read: on local disk, never on the heap."""

from __future__ import annotations

from pyspark import StorageLevel
from pyspark.sql import DataFrame


def cached(df: DataFrame) -> DataFrame:
    """`df` persisted DISK_ONLY.

    MEMORY_AND_DISK ran out of heap at 10M x 40 with a 2 GB driver (local mode): a block
    spilled to disk is read back into a heap buffer of its whole size. On disk the cache is as
    fast at 1M x 40 (measured: persist 14.9 s vs 14.7 s, an Arrow pass 2.5 s either way; the
    OS page cache keeps it warm) and memory stays flat in N.
    """
    return df.persist(StorageLevel.DISK_ONLY)
