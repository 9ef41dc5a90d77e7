"""Memoria's experiment suite, run as ``python -m experiment <verb> <task>``: the paper's tasks, models with and
without Memoria, training, comparisons and engram analysis."""
