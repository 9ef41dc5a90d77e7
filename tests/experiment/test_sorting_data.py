"""The sorting task's data: targets, determinism, the file format and the Dataset's labels."""

from collections import Counter

import numpy as np
import pytest
import torch

from experiment.longseq_formers.data.sorting import (
    generate_sorting_data,
    generate_sorting_examples,
    load_sorting_data,
    save_sorting_data,
    separator_id,
    sort_by_frequency,
)
from experiment.longseq_formers.dataset.sorting import IGNORE_INDEX, SortingDataset


def frequency_order(symbols: list, vocab_size: int) -> list:
    counts = Counter(symbols)
    return sorted(range(vocab_size), key=lambda symbol: (-counts[symbol], symbol))


def test_target_is_the_symbols_by_descending_frequency_ties_by_id():
    examples = generate_sorting_examples(50, 100, 20, np.random.default_rng(3))
    for example in examples:
        sequence, separator, target = example[:100], example[100], example[101:]
        assert separator == separator_id(20)
        assert sequence.max() < 20
        assert target.tolist() == frequency_order(sequence.tolist(), 20)


def test_ties_are_broken_by_symbol_id():
    assert sort_by_frequency(np.array([3, 1, 3, 1, 0, 2]), 5).tolist() == [1, 3, 0, 2, 4]


def test_distribution_drifts_so_recent_tokens_mislead():
    examples = generate_sorting_examples(200, 400, 10, np.random.default_rng(0))
    start_order = [sort_by_frequency(e[:100], 10)[0] for e in examples]
    end_order = [sort_by_frequency(e[300:400], 10)[0] for e in examples]
    assert np.mean(np.array(start_order) == np.array(end_order)) < 0.5


def test_generation_is_deterministic_for_a_seed():
    first = generate_sorting_data(30, 6, 4, 2, 2, seed=7)
    again = generate_sorting_data(30, 6, 4, 2, 2, seed=7)
    other = generate_sorting_data(30, 6, 4, 2, 2, seed=8)
    for split in ("train", "dev", "test"):
        assert torch.equal(first.split(split), again.split(split))
    assert not torch.equal(first.train, other.train)
    assert not torch.equal(first.train[:2], first.dev)


def test_file_round_trip_keeps_splits_and_sizes(tmp_path):
    data = generate_sorting_data(30, 6, 4, 2, 3, seed=1)
    save_sorting_data(data, tmp_path / "data.pt")
    loaded = load_sorting_data(tmp_path / "data.pt")
    assert (loaded.sequence_length, loaded.vocab_size, loaded.seed) == (30, 6, 1)
    assert loaded.test.shape == (3, 30 + 1 + 6)
    for split in ("train", "dev", "test"):
        assert torch.equal(loaded.split(split), data.split(split))
    with pytest.raises(ValueError):
        loaded.split("validation")


def test_dataset_labels_only_the_targets():
    data = generate_sorting_data(30, 6, 4, 2, 2, seed=0)
    item = SortingDataset(data, "train")[1]
    example = data.train[1]
    assert item["input_ids"].tolist() == example[:-1].tolist()
    labelled = item["labels"] != IGNORE_INDEX
    assert labelled.sum() == 6
    assert item["labels"][labelled].tolist() == example[-6:].tolist()
    # the first target is predicted at the separator
    assert item["input_ids"][labelled.nonzero()[0]] == separator_id(6)
