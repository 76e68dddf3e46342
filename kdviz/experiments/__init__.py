"""Experiments: scenarios, sweeps, method comparisons, statistics, recipes and shipped teachers."""
