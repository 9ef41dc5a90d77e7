"""Cross-segment associative recall: a task only memory can solve past the segment that gives the fact.

Each sample is ``num_segments`` segments of ``segment_length`` tokens. Segment 0, the fact segment, holds
``num_pairs`` key-value pairs written ``key value`` (keys distinct within a sample, drawn from ``num_keys``;
each value drawn afresh for each sample, uniformly from ``num_values``, so two keys may share a value), and after
them ``fact_queries`` queries about those pairs (distance 0: the binding can be learnt inside one segment). A query
is ``? key _``; the label at ``_`` is the key's value, which is never an input at a query. A query d segments after
the segment whose pair it asks about has distance d. Where the later segments ask (``query_distances``):

- ``"all"``: every later segment d (1 .. num_segments - 1) holds ``queries_per_segment`` queries about the fact
  segment's pairs, so one sample asks at every distance. A model may then relay the fact: each segment's queries
  hold the answer, and the next segment can read them from its predecessor alone.
- ``"one"``: each sample asks at one distance d*, drawn uniformly from 1 .. num_segments - 1: segment d* holds the
  ``queries_per_segment`` queries and the segments between hold no query, so nothing in them holds the answer.

With ``facts="stream"`` (only with ``query_distances="one"``) every segment opens with its own ``num_pairs`` fresh
pairs (keys distinct over the whole sample, so ``num_keys`` >= num_pairs x num_segments) and every segment but d*
asks ``fact_queries`` distance-0 queries about its own pairs; segment d* asks about segment 0's pairs instead. A
memory that only relays the latest segment then holds the wrong pairs at d*: the answer must be kept d* segments.
With ``facts="first"`` (the default) only segment 0 gives pairs and the other segments are filler but for queries.

Queries ask about distinct pairs when there are at most as many as pairs. Everything else is filler, drawn uniformly
from ``num_filler`` filler tokens; the blocks (pairs, queries) of a segment keep their order (pairs before queries)
with filler gaps of random lengths between them.

Token ids: filler ``0 .. F-1``, keys ``F .. F+K-1``, values ``F+K .. F+K+V-1``, then ``?`` and ``_``
(:class:`RecallSpec` names them), so a model's vocabulary is ``F + K + V + 2`` (:attr:`RecallSpec.vocab_size`).
Labels are -100 everywhere but at ``_``, where they are the value's token id; ``distances`` is d at ``_`` and -1
elsewhere.

Randomness. Sample i of a split is drawn from its own stream, ``SeedSequence(seed, spawn_key=(split, i))``, split
0 (train), 1 (dev) or 2 (test), so a run's seed picks its data and the splits never share a stream. That stream
spawns two: the *layout* (keys, d*, which keys are asked where, positions, filler) and the *values*. Every input but
the pairs' value tokens comes from the layout alone, and each label is the value of its key: the labels are
independent of everything but the pairs they ask about, so without the segment that gives a query's pair the best
accuracy at that query is exactly chance, ``1 / num_values``. Samples are generated when read (nothing is stored),
the same for the same seed and index.
"""

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

IGNORE_INDEX = -100
NO_DISTANCE = -1
SPLITS = ("train", "dev", "test")


QUERY_DISTANCES = ("all", "one")
FACTS = ("first", "stream")


@dataclass(frozen=True)
class RecallSpec:
    """The recall task's shape.

    Args:
        num_pairs: key-value pairs a fact segment gives (P).
        num_keys: keys to draw a sample's distinct keys from (K >= P, or K >= P x num_segments with a fact stream).
        num_values: values a key may have (V); chance is 1 / V.
        num_filler: filler tokens (F >= 1).
        segment_length: tokens per segment (the model's segment length).
        num_segments: segments per sample, the fact segment included; the farthest query is num_segments - 1 back.
        fact_queries: queries at distance 0 in each segment that gives pairs (but segment d* of a fact stream).
        queries_per_segment: queries in each later segment that asks about segment 0 (every one with
            ``query_distances="all"``, segment d* with "one").
        query_distances: "all" (every later segment asks) or "one" (segment d* alone asks; see the module).
        facts: "first" (segment 0 alone gives pairs) or "stream" (every segment gives its own; needs
            ``query_distances="one"``).
    """

    num_pairs: int = 4
    num_keys: int = 16
    num_values: int = 16
    num_filler: int = 16
    segment_length: int = 32
    num_segments: int = 9
    fact_queries: int = 4
    queries_per_segment: int = 4
    query_distances: str = "all"
    facts: str = "first"

    def __post_init__(self) -> None:
        for name, minimum in (
            ("num_pairs", 1),
            ("num_values", 2),
            ("num_filler", 1),
            ("segment_length", 1),
            ("num_segments", 2),
            ("fact_queries", 0),
            ("queries_per_segment", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an int of at least {minimum}, got {value!r}")
        if self.query_distances not in QUERY_DISTANCES:
            raise ValueError(f"query_distances must be one of {QUERY_DISTANCES}, got {self.query_distances!r}")
        if self.facts not in FACTS:
            raise ValueError(f"facts must be one of {FACTS}, got {self.facts!r}")
        if self.facts == "stream" and self.query_distances != "one":
            raise ValueError('facts="stream" needs query_distances="one" (one segment asks about segment 0)')
        if self.num_keys < self.num_pairs * self.num_fact_segments:
            raise ValueError(
                f"num_keys must be at least num_pairs x fact segments = {self.num_pairs * self.num_fact_segments} "
                f"(keys are distinct within a sample), got {self.num_keys}"
            )
        fact_tokens = 2 * self.num_pairs + 3 * self.fact_queries
        if fact_tokens > self.segment_length:
            raise ValueError(
                f"the fact segment needs {fact_tokens} tokens (2 per pair, 3 per query) but segment_length is "
                f"{self.segment_length}"
            )
        query_tokens = 3 * self.queries_per_segment + (2 * self.num_pairs if self.facts == "stream" else 0)
        if query_tokens > self.segment_length:
            raise ValueError(
                f"a query segment needs {query_tokens} tokens for {self.queries_per_segment} queries"
                f"{' and its own pairs' if self.facts == 'stream' else ''} but segment_length is {self.segment_length}"
            )

    @property
    def num_fact_segments(self) -> int:
        """The segments that give pairs: 1, or every segment with a fact stream."""
        return self.num_segments if self.facts == "stream" else 1

    @property
    def first_key(self) -> int:
        return self.num_filler

    @property
    def first_value(self) -> int:
        return self.num_filler + self.num_keys

    @property
    def query_token(self) -> int:
        """The id of ``?``."""
        return self.first_value + self.num_values

    @property
    def answer_token(self) -> int:
        """The id of ``_``, the input at each answer's position."""
        return self.query_token + 1

    @property
    def vocab_size(self) -> int:
        """How many token ids a model needs."""
        return self.answer_token + 1

    @property
    def length(self) -> int:
        """Tokens per sample."""
        return self.segment_length * self.num_segments

    @property
    def max_distance(self) -> int:
        """The farthest query's distance in segments."""
        return self.num_segments - 1

    @property
    def chance(self) -> float:
        """The accuracy of any prediction made without the fact segment."""
        return 1.0 / self.num_values


def sample_streams(seed: int, split: str, index: int) -> Tuple[np.random.Generator, np.random.Generator]:
    """The layout and the values streams of sample ``index`` of ``split`` under ``seed``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    sequence = np.random.SeedSequence(seed, spawn_key=(SPLITS.index(split), index))
    layout, values = sequence.spawn(2)
    return np.random.default_rng(layout), np.random.default_rng(values)


def _asked(num_pairs: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Which pairs ``count`` queries ask about: distinct while count <= num_pairs."""
    return rng.choice(num_pairs, count, replace=count > num_pairs)


def _place(blocks: Sequence[int], length: int, rng: np.random.Generator) -> np.ndarray:
    """The start of each block (block sizes ``blocks``, in order) in a segment of ``length``, random filler gaps."""
    free = length - sum(blocks)
    slots = np.sort(rng.choice(free + len(blocks), len(blocks), replace=False))  # block i at slot i of free + n
    sizes_before = np.concatenate([[0], np.cumsum(blocks)[:-1]]).astype(np.int64)
    return slots - np.arange(len(blocks)) + sizes_before


def generate_sample(
    spec: RecallSpec, layout: np.random.Generator, values: np.random.Generator
) -> Dict[str, np.ndarray]:
    """One sample from its layout and values streams.

    Returns:
        "input_ids", "labels" (-100 but at answers) and "distances" (-1 but at answers), each shaped [L] with
        L = ``spec.length``, and "values": the value index of each pair shaped [G, P], G = ``spec.num_fact_segments``
        (row g: the pairs segment g gives).
    """
    length = spec.segment_length
    num_facts = spec.num_fact_segments
    keys = layout.choice(spec.num_keys, num_facts * spec.num_pairs, replace=False).reshape(num_facts, -1)  # [G, P]
    pair_values = values.integers(0, spec.num_values, (num_facts, spec.num_pairs))  # [G, P]
    input_ids = layout.integers(0, spec.num_filler, spec.length)  # [L], filler everywhere first
    labels = np.full(spec.length, IGNORE_INDEX, dtype=np.int64)
    distances = np.full(spec.length, NO_DISTANCE, dtype=np.int64)
    asking = int(layout.integers(1, spec.num_segments)) if spec.query_distances == "one" else None  # d*

    def fill_segment(segment: int, gives_pairs: bool, asked_segment: int, num_queries: int) -> None:
        """Writes segment ``segment``: its own pairs (if ``gives_pairs``), then ``num_queries`` queries about the
        pairs of ``asked_segment``, all at random places among filler."""
        num_given = spec.num_pairs if gives_pairs else 0
        asked = _asked(spec.num_pairs, num_queries, layout)
        starts = _place([2] * num_given + [3] * num_queries, length, layout) + segment * length
        if gives_pairs:
            for pair, start in zip(layout.permutation(spec.num_pairs), starts[:num_given]):
                value = spec.first_value + pair_values[segment, pair]
                input_ids[start : start + 2] = (spec.first_key + keys[segment, pair], value)
        fact_keys, fact_values = keys[asked_segment], pair_values[asked_segment]
        for start, pair in zip(starts[num_given:], asked):
            input_ids[start : start + 3] = (spec.query_token, spec.first_key + fact_keys[pair], spec.answer_token)
            labels[start + 2] = spec.first_value + fact_values[pair]
            distances[start + 2] = segment - asked_segment

    fill_segment(0, True, 0, spec.fact_queries)
    for segment in range(1, spec.num_segments):
        if asking is None or segment == asking:
            fill_segment(segment, spec.facts == "stream", 0, spec.queries_per_segment)
        elif spec.facts == "stream":
            fill_segment(segment, True, segment, spec.fact_queries)
    return {"input_ids": input_ids, "labels": labels, "distances": distances, "values": pair_values}


class RecallDataset(Dataset):
    """``size`` recall samples of one split, generated when read (see the module docstring for the streams).

    Args:
        spec: the task's shape.
        split: "train", "dev" or "test".
        size: number of samples.
        seed: picks the data stream (a run passes its own seed).
    """

    def __init__(self, spec: RecallSpec, split: str, size: int, seed: int) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self.spec, self.split, self.size, self.seed = spec, split, size, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        """Sample ``index``: "input_ids", "labels" and "distances", each shaped [L]."""
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} samples")
        sample = generate_sample(self.spec, *sample_streams(self.seed, self.split, index))
        return {key: torch.from_numpy(sample[key]) for key in ("input_ids", "labels", "distances")}


def describe(spec: RecallSpec) -> List[str]:
    """Lines that state the task's shape and its chance level, for reports."""
    values = f"keys from {spec.num_keys}, values from {spec.num_values}"
    if spec.facts == "stream":
        given = f"every segment gives its own {spec.num_pairs} pair(s) ({values}, keys distinct within a sample)"
    else:
        given = f"segment 0 gives {spec.num_pairs} pair(s) ({values})"
    if spec.query_distances == "one":
        asked = (
            f"each sample asks {spec.queries_per_segment} queries about segment 0 in one segment d*, drawn from "
            f"1-{spec.max_distance}"
        )
        asked += "; the other segments ask about their own pairs" if spec.facts == "stream" else ", filler between"
    else:
        asked = f"each of segments 1-{spec.max_distance} asks {spec.queries_per_segment} queries about segment 0"
    return [
        f"{given}, with {spec.fact_queries} queries at d = 0; {asked}; segments of {spec.segment_length} tokens.",
        f"Chance (without the segment that gives the pair): 1/{spec.num_values} = {spec.chance:.4f} at every distance.",
    ]
