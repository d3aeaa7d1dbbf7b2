"""Column references for arbitrary names (class names may hold dots, spaces, backticks)."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def column(name: str) -> Column:
    """A reference to the column literally called `name` (no nested-field parsing)."""
    return F.col("`" + name.replace("`", "``") + "`")
