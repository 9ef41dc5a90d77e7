"""The synthetic sorting task of the infinity-former paper, as used by the Memoria paper.

A sequence of T symbols from a vocabulary of K is sampled from a distribution that drifts from p0 to p1:
token t comes from (1 - t/T) p0 + (t/T) p1, with p0 and p1 drawn afresh for each sequence. After a separator
the target lists the K symbols by descending frequency in the whole sequence, ties broken by symbol id.
Because the distribution drifts, the recent tokens alone point at the wrong order.

Token ids: symbols are 0..K-1 and the separator is K, so a model needs a vocabulary of K + 1.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch


def separator_id(vocab_size: int) -> int:
    """The separator's token id for a task with ``vocab_size`` symbols."""
    return vocab_size


def model_vocab_size(vocab_size: int) -> int:
    """How many token ids a model needs for a task with ``vocab_size`` symbols (the symbols and the separator)."""
    return vocab_size + 1


def sort_by_frequency(sequence: np.ndarray, vocab_size: int) -> np.ndarray:
    """The symbols ordered by descending frequency in ``sequence``, ties broken by ascending symbol id.

    Args:
        sequence: symbol ids shaped [T].
        vocab_size: number of symbols K.

    Returns:
        all K symbol ids shaped [K].
    """
    counts = np.bincount(sequence, minlength=vocab_size)
    # lexsort sorts by the last key first: descending count, then ascending id
    return np.lexsort((np.arange(vocab_size), -counts))


def generate_sorting_examples(
    num_examples: int, sequence_length: int, vocab_size: int, rng: np.random.Generator
) -> np.ndarray:
    """Samples sorting examples: each is the symbol sequence, the separator, then the sorted symbols.

    Args:
        num_examples: number of examples N.
        sequence_length: number of symbols T before the separator.
        vocab_size: number of symbols K.
        rng: the random generator; the same state gives the same examples.

    Returns:
        token ids shaped [N, T + 1 + K].
    """
    positions = np.arange(sequence_length) / sequence_length  # [T]
    examples = np.empty((num_examples, sequence_length + 1 + vocab_size), dtype=np.int64)
    for i in range(num_examples):
        start, end = rng.dirichlet(np.ones(vocab_size), size=2)  # [K] each
        probabilities = (1 - positions)[:, None] * start + positions[:, None] * end  # [T, K]
        cumulative = probabilities.cumsum(axis=1)  # [T, K]
        draws = rng.random(sequence_length)[:, None]  # [T, 1]
        sequence = np.minimum((draws > cumulative).sum(axis=1), vocab_size - 1)  # [T]
        examples[i, :sequence_length] = sequence
        examples[i, sequence_length] = separator_id(vocab_size)
        examples[i, sequence_length + 1 :] = sort_by_frequency(sequence, vocab_size)
    return examples


@dataclass
class SortingData:
    """Train, dev and test splits of one sorting task, each shaped [N, T + 1 + K]."""

    sequence_length: int
    vocab_size: int
    seed: int
    train: torch.Tensor
    dev: torch.Tensor
    test: torch.Tensor

    def split(self, name: str) -> torch.Tensor:
        """The split called ``name`` ("train", "dev" or "test")."""
        if name not in ("train", "dev", "test"):
            raise ValueError(f"unknown split {name!r}; expected 'train', 'dev' or 'test'")
        return getattr(self, name)


def generate_sorting_data(
    sequence_length: int, vocab_size: int, num_train: int, num_dev: int, num_test: int, seed: int
) -> SortingData:
    """Generates the three splits deterministically from ``seed``; the splits never share a random stream."""
    streams = np.random.SeedSequence(seed).spawn(3)
    splits = [
        torch.from_numpy(generate_sorting_examples(n, sequence_length, vocab_size, np.random.default_rng(stream)))
        for n, stream in zip((num_train, num_dev, num_test), streams)
    ]
    return SortingData(sequence_length, vocab_size, seed, *splits)


def save_sorting_data(data: SortingData, path: Union[str, Path]) -> None:
    """Writes all splits and the task's sizes to one file (token ids stored as uint8 or int16)."""
    dtype = torch.uint8 if model_vocab_size(data.vocab_size) <= 256 else torch.int16
    payload = {
        "sequence_length": data.sequence_length,
        "vocab_size": data.vocab_size,
        "seed": data.seed,
        **{name: data.split(name).to(dtype) for name in ("train", "dev", "test")},
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)


def load_sorting_data(path: Union[str, Path]) -> SortingData:
    """Reads a file written by :func:`save_sorting_data`; token ids come back as int64."""
    payload = torch.load(path, weights_only=True)
    splits = [payload[name].long() for name in ("train", "dev", "test")]
    return SortingData(payload["sequence_length"], payload["vocab_size"], payload["seed"], *splits)
