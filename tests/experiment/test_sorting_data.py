"""The sorting task's data: the paper's generator, its targets, the paper's JSON layout and the Dataset's labels."""

import json

import numpy as np
import pytest
import torch

from experiment.data.sorting import (
    counting_rule_accuracy,
    generate_sorting_data,
    generate_sorting_examples,
    load_sorting_data,
    memoryless_floor_accuracy,
    save_sorting_data,
    separator_id,
    sort_by_frequency,
)
from experiment.datasets.sorting import IGNORE_INDEX, SortingDataset


def order_by_count_then_first_appearance(symbols: list, vocab_size: int) -> list:
    """The paper's target, written out plainly: descending count, then first appearance, then absent ones by id."""
    count = {symbol: symbols.count(symbol) for symbol in range(vocab_size)}
    first = {symbol: symbols.index(symbol) if symbol in symbols else len(symbols) for symbol in range(vocab_size)}
    return sorted(range(vocab_size), key=lambda symbol: (-count[symbol], first[symbol], symbol))


def test_targets_are_the_symbols_by_count_ties_broken_by_first_appearance():
    examples = generate_sorting_examples(200, 40, 20, np.random.default_rng(3))
    ties = 0
    for example in examples:
        sequence, separator, target = example[:40].tolist(), example[40], example[41:].tolist()
        assert separator == separator_id(20) and max(sequence) < 20
        assert target == order_by_count_then_first_appearance(sequence, 20)
        counts = [sequence.count(symbol) for symbol in target if symbol in sequence]
        ties += len(counts) - len(set(counts))
    assert ties > 100  # short sequences: plenty of tied counts exercise the tie-break


def test_tie_breaks_on_a_hand_made_sequence():
    sequence = np.array([3, 1, 3, 1, 0, 2])  # 3 and 1 twice (3 first), 0 and 2 once (0 first), 4 absent
    assert sort_by_frequency(sequence, 5).tolist() == [3, 1, 0, 2, 4]
    assert sort_by_frequency(sequence, 5, tie_break="symbol-id").tolist() == [1, 3, 0, 2, 4]
    with pytest.raises(ValueError, match="tie_break"):
        sort_by_frequency(sequence, 5, tie_break="random")


def test_the_paper_weights_keep_every_symbol_likely():
    # weights 1-9 of 20 symbols: every symbol has probability between 1/172 and 9/28 at every position
    rng = np.random.default_rng(0)
    counts = {}
    for distribution in ("integers", "dirichlet"):
        examples = generate_sorting_examples(50, 4000, 20, rng, distribution=distribution)
        counts[distribution] = np.stack([np.bincount(example[:4000], minlength=20) for example in examples])
    assert counts["integers"].min() >= 0.004 * 4000 and counts["integers"].max() <= 9 / 28 * 4000
    assert counts["dirichlet"].min() < 0.004 * 4000  # Dirichlet(1) often gives a symbol almost no weight


def test_distribution_drifts_from_the_first_to_the_second():
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


def test_reads_a_file_in_the_paper_layout(tmp_path):
    # written by hand as the paper's generator writes it: K = 3 symbols, separator 3, vocab_size K + 1
    payload = {
        "prompt_length": 5,
        "vocab_size": 4,
        "train": [{"prompt_ids": [0, 2, 2, 1, 0, 3], "target_ids": [0, 2, 1]}],
        "dev": [{"prompt_ids": [1, 1, 1, 1, 1, 3], "target_ids": [1, 0, 2]}],
        "test": [],
    }
    path = tmp_path / "paper.json"
    path.write_text(json.dumps(payload))
    data = load_sorting_data(path)
    assert (data.sequence_length, data.vocab_size) == (5, 3)
    assert data.train.tolist() == [[0, 2, 2, 1, 0, 3, 0, 2, 1]]
    assert data.dev.shape == (1, 9) and data.test.shape == (0, 9)

    payload["train"][0]["prompt_ids"][-1] = 0
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="separator"):
        load_sorting_data(path)


def test_written_files_have_the_paper_layout_and_read_back(tmp_path):
    data = generate_sorting_data(30, 6, 4, 2, 3, seed=1)
    save_sorting_data(data, tmp_path / "data.json")
    payload = json.loads((tmp_path / "data.json").read_text())
    assert (payload["prompt_length"], payload["vocab_size"]) == (30, 7)
    example = payload["test"][2]
    assert example["prompt_ids"] == data.test[2, :31].tolist() and example["prompt_ids"][-1] == 6
    assert example["target_ids"] == data.test[2, 31:].tolist()
    loaded = load_sorting_data(tmp_path / "data.json")
    for split in ("train", "dev", "test"):
        assert torch.equal(loaded.split(split), data.split(split))
    with pytest.raises(ValueError, match="split"):
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


def test_counting_rules_count_the_whole_sequence_or_only_the_separators_segment():
    # T = 6, K = 3, segments of 4: the separator (input position 6) is in the segment [4, 8), which shows
    # symbols 4 and 5 of the prompt only
    example = torch.tensor([[0, 0, 0, 1, 2, 2, 3, 0, 2, 1]])  # counts 0:3, 2:2, 1:1 -> targets 0, 2, 1
    assert counting_rule_accuracy(example, 6, 3) == 1.0
    # the last segment shows two 2s: ranking 2, 0, 1; knowing the targets emitted so far, it predicts
    # 2 (not 0), then 2 (0 emitted), then 1: 2 of 3
    assert counting_rule_accuracy(example, 6, 3, segment_length=4) == pytest.approx(2 / 3)
    # with segments of 3 the separator starts a segment: nothing to count, ranking 0, 1, 2: it predicts 0,
    # then 1 (not 2), then 1: 2 of 3
    assert counting_rule_accuracy(example, 6, 3, segment_length=3) == pytest.approx(2 / 3)
    # a second example, targets 1, 2, 0; its last segment shows two 1s: ranking 1, 0, 2, predictions 1, 0, 0:
    # 2 of 3, so (2 + 2) / 6 over both
    both = torch.cat([example, torch.tensor([[2, 2, 0, 1, 1, 1, 3, 1, 2, 0]])])
    assert counting_rule_accuracy(both, 6, 3, segment_length=4) == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match=r"\[N, 10\]"):
        counting_rule_accuracy(example[:, :-1], 6, 3)


def simulated_floor(vocab_size: int, trials: int, rng: np.random.Generator) -> tuple:
    """Accuracy of guessing uniformly among the symbols not yet emitted, on random target orders: (mean, SE)."""
    accuracies = []
    for _ in range(trials):
        targets = rng.permutation(vocab_size)
        remaining = list(range(vocab_size))
        correct = 0
        for target in targets:
            correct += int(rng.choice(remaining) == target)
            remaining.remove(target)
        accuracies.append(correct / vocab_size)
    return float(np.mean(accuracies)), float(np.std(accuracies) / np.sqrt(trials))


@pytest.mark.parametrize("vocab_size", [1, 3, 10])
def test_memoryless_floor_is_the_simulated_uniform_guess_among_unemitted_symbols(vocab_size):
    mean, standard_error = simulated_floor(vocab_size, 20000, np.random.default_rng(vocab_size))
    assert abs(memoryless_floor_accuracy(vocab_size) - mean) < 4 * standard_error + 1e-12
    if vocab_size == 10:
        assert round(memoryless_floor_accuracy(vocab_size), 3) == 0.293  # H_10 / 10, as the issue states
    with pytest.raises(ValueError, match="vocab_size"):
        memoryless_floor_accuracy(0)
