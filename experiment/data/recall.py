"""Cross-segment associative recall: a task only memory can solve past the first segment.

Each sample is ``num_segments`` segments of ``segment_length`` tokens. Segment 0, the fact segment, holds
``num_pairs`` key-value pairs written ``key value`` (keys distinct within a sample, drawn from ``num_keys``;
each value drawn afresh for each sample, uniformly from ``num_values``, so two keys may share a value), and after
them ``fact_queries`` queries about those pairs (distance 0: the binding can be learnt inside one segment). Every
later segment d (1 .. num_segments - 1) holds ``queries_per_segment`` queries, each ``? key _`` about a pair of the
fact segment, d segments back. The label at ``_`` is the key's value; the value is never an input at a query.
Queries ask about distinct pairs when there are at most as many as pairs. Everything else is filler, drawn uniformly
from ``num_filler`` filler tokens; the blocks (pairs, queries) of a segment keep their order (pairs before the
fact segment's queries) with filler gaps of random lengths between them.

Token ids: filler ``0 .. F-1``, keys ``F .. F+K-1``, values ``F+K .. F+K+V-1``, then ``?`` and ``_``
(:class:`RecallSpec` names them). Labels are -100 everywhere but at ``_``, where they are the value's token id;
``distances`` is d at ``_`` and -1 elsewhere.

Randomness. Sample i of a split is drawn from its own stream, ``SeedSequence(seed, spawn_key=(split, i))``, split
0 (train), 1 (dev) or 2 (test), so a run's seed picks its data and the splits never share a stream. That stream
spawns two: the *layout* (keys, which keys are asked where, positions, filler) and the *values*. Every input but
the value tokens of the fact segment comes from the layout alone, and each label is the value of its key: the
labels are independent of everything outside the fact segment, so without it the best accuracy is exactly chance,
``1 / num_values``. Samples are generated when read (nothing is stored), the same for the same seed and index.
"""

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

IGNORE_INDEX = -100
NO_DISTANCE = -1
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class RecallSpec:
    """The recall task's shape.

    Args:
        num_pairs: key-value pairs in the fact segment (P).
        num_keys: keys to draw the P distinct keys of a sample from (K >= P).
        num_values: values a key may have (V); chance is 1 / V.
        num_filler: filler tokens (F >= 1).
        segment_length: tokens per segment (the model's segment length).
        num_segments: segments per sample, the fact segment included; the farthest query is num_segments - 1 back.
        fact_queries: queries at distance 0, in the fact segment after the pairs.
        queries_per_segment: queries in each later segment.
    """

    num_pairs: int = 4
    num_keys: int = 16
    num_values: int = 16
    num_filler: int = 16
    segment_length: int = 32
    num_segments: int = 9
    fact_queries: int = 4
    queries_per_segment: int = 4

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
        if self.num_keys < self.num_pairs:
            raise ValueError(f"num_keys must be at least num_pairs={self.num_pairs}, got {self.num_keys}")
        fact_tokens = 2 * self.num_pairs + 3 * self.fact_queries
        if fact_tokens > self.segment_length:
            raise ValueError(
                f"the fact segment needs {fact_tokens} tokens (2 per pair, 3 per query) but segment_length is "
                f"{self.segment_length}"
            )
        if 3 * self.queries_per_segment > self.segment_length:
            raise ValueError(
                f"{self.queries_per_segment} queries need {3 * self.queries_per_segment} tokens but segment_length "
                f"is {self.segment_length}"
            )

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
        L = ``spec.length``, and "values": the value index of each pair shaped [P].
    """
    length = spec.segment_length
    keys = layout.choice(spec.num_keys, spec.num_pairs, replace=False)  # [P]
    pair_values = values.integers(0, spec.num_values, spec.num_pairs)  # [P]
    input_ids = layout.integers(0, spec.num_filler, spec.length)  # [L], filler everywhere first
    labels = np.full(spec.length, IGNORE_INDEX, dtype=np.int64)
    distances = np.full(spec.length, NO_DISTANCE, dtype=np.int64)

    def write_queries(starts: np.ndarray, asked: np.ndarray, distance: int) -> None:
        for start, pair in zip(starts, asked):
            input_ids[start : start + 3] = (spec.query_token, spec.first_key + keys[pair], spec.answer_token)
            labels[start + 2] = spec.first_value + pair_values[pair]
            distances[start + 2] = distance

    fact_asked = _asked(spec.num_pairs, spec.fact_queries, layout)
    starts = _place([2] * spec.num_pairs + [3] * spec.fact_queries, length, layout)
    for pair, start in zip(layout.permutation(spec.num_pairs), starts[: spec.num_pairs]):
        input_ids[start : start + 2] = (spec.first_key + keys[pair], spec.first_value + pair_values[pair])
    write_queries(starts[spec.num_pairs :], fact_asked, 0)
    for segment in range(1, spec.num_segments):
        asked = _asked(spec.num_pairs, spec.queries_per_segment, layout)
        starts = _place([3] * spec.queries_per_segment, length, layout) + segment * length
        write_queries(starts, asked, segment)
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
    return [
        f"{spec.num_pairs} pairs (keys from {spec.num_keys}, values from {spec.num_values}) in segment 0; "
        f"{spec.fact_queries} queries at d = 0 and {spec.queries_per_segment} in each of segments 1-"
        f"{spec.max_distance}; segments of {spec.segment_length} tokens.",
        f"Chance (no fact segment): 1/{spec.num_values} = {spec.chance:.4f} at every distance.",
    ]
