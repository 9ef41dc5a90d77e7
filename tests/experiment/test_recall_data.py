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

SPEC = RecallSpec()  # the defaults: 4 pairs, 16 keys, 16 values, 9 segments of 32, every segment asks
ONE = RecallSpec(num_pairs=1, num_values=8, num_filler=4, segment_length=16, query_distances="one")  # quick mode
STREAM = RecallSpec(
    num_pairs=1, num_values=8, num_filler=4, segment_length=16, query_distances="one", facts="stream"
)  # full mode


def pairs_of(spec: RecallSpec, input_ids: np.ndarray) -> dict:
    """{key token: value token} read from the first segment of ``input_ids`` (a key followed by a value)."""
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
        assert sorted(pairs.values()) == sorted(spec.first_value + sample["values"][0])
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


def test_one_distance_asks_about_segment_0_in_one_segment_and_leaves_the_others_filler():
    asked_at = set()
    for index in range(60):
        sample = generate_sample(ONE, *sample_streams(3, "train", index))
        input_ids = sample["input_ids"].reshape(ONE.num_segments, ONE.segment_length)
        distances = sample["distances"].reshape(ONE.num_segments, ONE.segment_length)
        asking = [s for s in range(1, ONE.num_segments) if (distances[s] != NO_DISTANCE).any()]
        assert len(asking) == 1
        (target,) = asking
        asked_at.add(target)
        assert distances[target][distances[target] != NO_DISTANCE].tolist() == [target] * ONE.queries_per_segment
        assert (distances[0][distances[0] != NO_DISTANCE] == 0).sum() == ONE.fact_queries
        for segment in set(range(1, ONE.num_segments)) - {target}:
            assert input_ids[segment].max() < ONE.num_filler  # nothing but filler: no answer to relay
    assert asked_at == set(range(1, ONE.num_segments))  # d* covers 1 .. 8


def test_a_fact_stream_gives_fresh_pairs_in_every_segment_and_asks_segment_0s_in_one():
    for index in range(40):
        sample = generate_sample(STREAM, *sample_streams(4, "test", index))
        input_ids, labels, distances = sample["input_ids"], sample["labels"], sample["distances"]
        segments = input_ids.reshape(STREAM.num_segments, STREAM.segment_length)
        given = [pairs_of(STREAM, segment) for segment in segments]  # each segment's own {key: value}
        assert all(len(pairs) == STREAM.num_pairs for pairs in given)
        keys = [key for pairs in given for key in pairs]
        assert len(set(keys)) == len(keys)  # distinct within the sample
        answers = np.flatnonzero(labels != IGNORE_INDEX)
        asking = {int(a // STREAM.segment_length) for a in answers if distances[a] > 0}
        assert len(asking) == 1
        for answer in answers:
            segment = answer // STREAM.segment_length
            source = segment - distances[answer]  # the segment whose pair it asks about
            assert source == (0 if segment in asking else segment)
            assert given[source][int(input_ids[answer - 1])] == labels[answer]
    with pytest.raises(ValueError, match='facts="stream" needs query_distances="one"'):
        RecallSpec(facts="stream")
    with pytest.raises(ValueError, match="num_keys must be at least num_pairs x fact segments = 18"):
        RecallSpec(num_pairs=2, num_keys=16, segment_length=16, query_distances="one", facts="stream")
    with pytest.raises(ValueError, match="a query segment needs 17 tokens for 5 queries and its own pairs"):
        RecallSpec(num_pairs=1, segment_length=16, queries_per_segment=5, query_distances="one", facts="stream")


@pytest.mark.parametrize("spec", [RecallSpec(num_values=4), ONE, STREAM], ids=["all", "one", "stream"])
def test_labels_depend_on_the_pairs_values_alone(spec):
    """Resampling the values stream changes the labels and nothing else but the pairs' value tokens; over many
    resamplings each answer takes every value equally often: without the segment that gives its pair, chance is
    exact."""
    layout_seed = 7
    base = generate_sample(spec, np.random.default_rng(layout_seed), np.random.default_rng(0))
    is_value = (base["input_ids"] >= spec.first_value) & (base["input_ids"] < spec.query_token)
    outside = ~is_value  # everything but the pairs' value tokens
    answers = base["labels"] != IGNORE_INDEX
    counts = np.zeros((int(answers.sum()), spec.num_values))
    changed = 0
    draws = 1000
    for values_seed in range(1, draws + 1):
        other = generate_sample(spec, np.random.default_rng(layout_seed), np.random.default_rng(values_seed))
        assert np.array_equal(other["input_ids"][outside], base["input_ids"][outside])
        assert np.array_equal(other["distances"], base["distances"])
        changed += not np.array_equal(other["labels"], base["labels"])
        counts[np.arange(len(counts)), other["labels"][answers] - spec.first_value] += 1
    assert changed > 0.8 * draws  # one pair of 8 values keeps its value 1 time in 8
    frequencies = counts / draws  # [Answers, V]
    assert np.abs(frequencies - spec.chance).max() < 0.06  # 1000 draws: standard error <= 0.014


def test_the_vocabulary_and_bad_shapes():
    assert (SPEC.query_token, SPEC.answer_token, SPEC.vocab_size, SPEC.length, SPEC.chance) == (48, 49, 50, 288, 1 / 16)
    with pytest.raises(ValueError, match="the fact segment needs 35 tokens"):
        RecallSpec(num_pairs=4, fact_queries=9)
    with pytest.raises(ValueError, match="num_keys must be at least num_pairs x fact segments = 4"):
        RecallSpec(num_keys=3)
    with pytest.raises(ValueError, match="num_segments must be an int of at least 2"):
        RecallSpec(num_segments=1)
    with pytest.raises(ValueError, match="split must be one of"):
        RecallDataset(SPEC, "valid", 4, 0)
    with pytest.raises(IndexError):
        RecallDataset(SPEC, "test", 4, 0)[4]
