"""Memoria's experiment suite: the paper's tasks, models with and without Memoria, and their training scripts."""
