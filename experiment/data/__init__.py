"""Synthetic data generation and data files."""

from .sorting import (
    SortingData,
    generate_sorting_data,
    generate_sorting_examples,
    load_sorting_data,
    model_vocab_size,
    save_sorting_data,
    separator_id,
    sort_by_frequency,
)
