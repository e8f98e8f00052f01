"""Seed stability, featureless data, high-frequency pruning (being written)."""
