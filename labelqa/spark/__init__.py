"""Spark side of labelqa: DataFrame -> DataFrame functions around the pure NumPy core."""
