"""Benchmarks: Memoria against the reference (memoria-pytorch 1.0.0), side by side.

Measurements only, never pass/fail tests. ``python -m benchmarks.run`` times the paper's settings,
``python -m benchmarks.sweep`` grows memory and times each phase of a step. See BENCHMARKS.md.
"""
