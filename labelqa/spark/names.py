"""Column references for arbitrary names (class names may hold dots, spaces, backticks)."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def quoted(name: str) -> str:
    """`name` as a backtick-quoted SQL identifier (any characters)."""
    return "`" + name.replace("`", "``") + "`"


def column(name: str) -> Column:
    """A reference to the column literally called `name` (no nested-field parsing)."""
    return F.col(quoted(name))
