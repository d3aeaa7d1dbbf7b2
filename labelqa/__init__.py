"""labelqa: find wrong annotations in multi-label datasets with cleanlab's mathematics on Spark."""

__version__ = "0.1.0"
