"""Pure NumPy implementation of cleanlab's multi-label label-error mathematics.

Nothing in this package imports Spark: every function works on NumPy arrays (a batch of
rows, or the K-sized per-class tables on the driver) and is testable on its own.
"""
