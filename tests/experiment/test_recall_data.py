"""The recall generator: seeded streams, distinct keys, distances, labels only at answers, chance without facts."""

import numpy as np
import pytest
import torch

from experiment.data.recall import (
    IGNORE_INDEX,
    NO_DISTANCE,
    RecallDataset,
    RecallSpec,
    generate_sample,
    sample_streams,
)

SPEC = RecallSpec()  # the defaults: 4 pairs, 16 keys, 16 values, 9 segments of 32


def pairs_of(spec: RecallSpec, input_ids: np.ndarray) -> dict:
    """{key token: value token} read from the fact segment (a key followed by a value)."""
    fact = input_ids[: spec.segment_length]
    is_key = (fact >= spec.first_key) & (fact < spec.first_value)
    return {int(fact[i]): int(fact[i + 1]) for i in np.flatnonzero(is_key) if i == 0 or fact[i - 1] != spec.query_token}


def test_the_same_seed_split_and_index_give_the_same_sample_and_others_differ():
    first = RecallDataset(SPEC, "train", 10, seed=3)
    assert all(
        torch.equal(first[i]["input_ids"], RecallDataset(SPEC, "train", 10, seed=3)[i]["input_ids"]) for i in range(10)
    )
    for other in (RecallDataset(SPEC, "train", 10, seed=4), RecallDataset(SPEC, "test", 10, seed=3)):
        assert sum(torch.equal(first[i]["input_ids"], other[i]["input_ids"]) for i in range(10)) == 0
    assert not torch.equal(first[0]["input_ids"], first[1]["input_ids"])


@pytest.mark.parametrize("spec", [SPEC, RecallSpec(num_pairs=6, num_keys=6, fact_queries=2, queries_per_segment=8)])
def test_keys_are_distinct_and_every_answer_is_its_keys_value(spec):
    for index in range(50):
        sample = generate_sample(spec, *sample_streams(0, "train", index))
        input_ids, labels = sample["input_ids"], sample["labels"]
        pairs = pairs_of(spec, input_ids)
        assert len(pairs) == spec.num_pairs  # num_pairs distinct keys
        assert sorted(pairs.values()) == sorted(spec.first_value + sample["values"])
        answers = np.flatnonzero(labels != IGNORE_INDEX)
        assert np.array_equal(answers, np.flatnonzero(input_ids == spec.answer_token))  # labels only at `_`
        assert np.all(input_ids[answers - 2] == spec.query_token)
        assert [pairs[int(key)] for key in input_ids[answers - 1]] == labels[answers].tolist()
        assert not np.isin(input_ids[answers], spec.first_value + np.arange(spec.num_values)).any()


def test_distances_count_segments_back_to_the_fact_segment():
    spec = RecallSpec(fact_queries=3, queries_per_segment=2, num_segments=10)
    sample = generate_sample(spec, *sample_streams(1, "dev", 0))
    distances = sample["distances"].reshape(spec.num_segments, spec.segment_length)
    labels = sample["labels"].reshape(spec.num_segments, spec.segment_length)
    assert np.array_equal(distances == NO_DISTANCE, labels == IGNORE_INDEX)
    for segment in range(spec.num_segments):
        present = distances[segment][distances[segment] != NO_DISTANCE]
        assert present.tolist() == [segment] * (3 if segment == 0 else 2)
    assert spec.max_distance == 9


def test_the_fact_segment_gives_every_pair_before_its_queries_and_queries_ask_distinct_pairs():
    for index in range(30):
        sample = generate_sample(SPEC, *sample_streams(2, "train", index))
        fact = sample["input_ids"][: SPEC.segment_length]
        first_query = np.flatnonzero(fact == SPEC.query_token).min()
        last_value = np.flatnonzero(fact >= SPEC.first_value)[: SPEC.num_pairs].max()
        assert last_value < first_query
        for segment in sample["input_ids"].reshape(SPEC.num_segments, SPEC.segment_length):
            asked = segment[np.flatnonzero(segment == SPEC.query_token) + 1]
            assert len(set(asked.tolist())) == len(asked)


def test_labels_depend_on_the_fact_segments_values_alone():
    """Resampling the values stream changes the labels and nothing else but the fact segment's value tokens; over
    many resamplings each answer takes every value equally often: without the fact segment, chance is exact."""
    spec = RecallSpec(num_values=4)
    layout_seed = 7
    base = generate_sample(spec, np.random.default_rng(layout_seed), np.random.default_rng(0))
    outside = np.ones(spec.length, dtype=bool)
    fact = base["input_ids"][: spec.segment_length]
    outside[np.flatnonzero((fact >= spec.first_value) & (fact < spec.query_token))] = False  # the pairs' values
    answers = base["labels"] != IGNORE_INDEX
    counts = np.zeros((int(answers.sum()), spec.num_values))
    changed = 0
    draws = 2000
    for values_seed in range(1, draws + 1):
        other = generate_sample(spec, np.random.default_rng(layout_seed), np.random.default_rng(values_seed))
        assert np.array_equal(other["input_ids"][outside], base["input_ids"][outside])
        assert np.array_equal(other["distances"], base["distances"])
        changed += not np.array_equal(other["labels"], base["labels"])
        counts[np.arange(len(counts)), other["labels"][answers] - spec.first_value] += 1
    assert changed > 0.9 * draws
    frequencies = counts / draws  # [Answers, V]
    assert np.abs(frequencies - spec.chance).max() < 0.05  # 2000 draws: standard error 0.0097


def test_the_vocabulary_and_bad_shapes():
    assert (SPEC.query_token, SPEC.answer_token, SPEC.vocab_size, SPEC.length, SPEC.chance) == (48, 49, 50, 288, 1 / 16)
    with pytest.raises(ValueError, match="the fact segment needs 35 tokens"):
        RecallSpec(num_pairs=4, fact_queries=9)
    with pytest.raises(ValueError, match="num_keys must be at least num_pairs=4"):
        RecallSpec(num_keys=3)
    with pytest.raises(ValueError, match="num_segments must be an int of at least 2"):
        RecallSpec(num_segments=1)
    with pytest.raises(ValueError, match="split must be one of"):
        RecallDataset(SPEC, "valid", 4, 0)
    with pytest.raises(IndexError):
        RecallDataset(SPEC, "test", 4, 0)[4]
