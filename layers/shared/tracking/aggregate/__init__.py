"""Aggregation: the stream adapter, the batch applier and the pure folds; what the aggregate function
runs."""
