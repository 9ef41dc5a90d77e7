"""The synthetic sorting task of the infinity-former paper, as generated for the Memoria paper.

A sequence of T symbols from a vocabulary of K is sampled from a distribution that drifts from p0 to p1: token
j (0-based) comes from ``(1 - (j+1)/T) p0 + ((j+1)/T) p1``. In the paper's generator ("integers") each of p0 and
p1 is a vector of K random integers from 1 to 9, normalised, drawn afresh for each sequence. After a separator
the target lists the K symbols by descending count in the whole sequence, ties broken by first appearance in the
sequence; symbols that never occur follow in ascending id. Because the distribution drifts, the recent tokens
alone point at the wrong order.

Token ids: symbols are 0..K-1 and the separator is K, so a model needs a vocabulary of K + 1.

Files use the paper's JSON layout, so data made by the paper's generator can be used as is::

    {"prompt_length": T, "vocab_size": K + 1,
     "train": [{"prompt_ids": [symbols..., K], "target_ids": [K sorted symbols]}, ...], "dev": [...], "test": [...]}

Earlier versions of this repository drew p0 and p1 from Dirichlet(1) (far more peaked, an easier task) and broke
ties by symbol id (a fixed rule a model can learn without memory); both stay available as options.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

SPLITS = ("train", "dev", "test")
DISTRIBUTIONS = ("integers", "dirichlet")
TIE_BREAKS = ("first-appearance", "symbol-id")


def separator_id(vocab_size: int) -> int:
    """The separator's token id for a task with ``vocab_size`` symbols."""
    return vocab_size


def model_vocab_size(vocab_size: int) -> int:
    """How many token ids a model needs for a task with ``vocab_size`` symbols (the symbols and the separator)."""
    return vocab_size + 1


def sort_by_frequency(sequence: np.ndarray, vocab_size: int, tie_break: str = "first-appearance") -> np.ndarray:
    """The symbols ordered by descending count in ``sequence``.

    Args:
        sequence: symbol ids shaped [T].
        vocab_size: number of symbols K.
        tie_break: "first-appearance" (the paper's: the symbol seen first goes first; symbols that never occur
            follow in ascending id) or "symbol-id" (ascending id).

    Returns:
        all K symbol ids shaped [K].
    """
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"tie_break must be one of {TIE_BREAKS}, got {tie_break!r}")
    counts = np.bincount(sequence, minlength=vocab_size)  # [K]
    ids = np.arange(vocab_size)
    if tie_break == "symbol-id":
        return np.lexsort((ids, -counts))
    first_seen = np.full(vocab_size, len(sequence))  # [K], T for symbols that never occur
    symbols, positions = np.unique(sequence, return_index=True)  # each symbol's first position
    first_seen[symbols] = positions
    # lexsort sorts by the last key first: descending count, then first appearance, then id
    return np.lexsort((ids, first_seen, -counts))


def _symbol_distributions(vocab_size: int, distribution: str, rng: np.random.Generator) -> np.ndarray:
    """p0 and p1 of one example, shaped [2, K]."""
    if distribution == "integers":
        weights = rng.integers(1, 10, size=(2, vocab_size)).astype(np.float64)
        return weights / weights.sum(axis=1, keepdims=True)
    if distribution == "dirichlet":
        return rng.dirichlet(np.ones(vocab_size), size=2)
    raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")


def generate_sorting_examples(
    num_examples: int,
    sequence_length: int,
    vocab_size: int,
    rng: np.random.Generator,
    distribution: str = "integers",
    tie_break: str = "first-appearance",
) -> np.ndarray:
    """Samples sorting examples: each is the symbol sequence, the separator, then the sorted symbols.

    Args:
        num_examples: number of examples N.
        sequence_length: number of symbols T before the separator.
        vocab_size: number of symbols K.
        rng: the random generator; the same state gives the same examples.
        distribution: how p0 and p1 are drawn: "integers" (the paper's) or "dirichlet".
        tie_break: see :func:`sort_by_frequency`.

    Returns:
        token ids shaped [N, T + 1 + K].
    """
    for name, value in (("num_examples", num_examples), ("sequence_length", sequence_length)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be at least 2, got {vocab_size}")
    mix = (np.arange(sequence_length) + 1) / sequence_length  # [T], weight of p1 at each position
    examples = np.empty((num_examples, sequence_length + 1 + vocab_size), dtype=np.int64)
    for i in range(num_examples):
        start, end = _symbol_distributions(vocab_size, distribution, rng)  # [K] each
        probabilities = (1 - mix)[:, None] * start + mix[:, None] * end  # [T, K]
        cumulative = probabilities.cumsum(axis=1)  # [T, K]
        draws = rng.random(sequence_length)[:, None]  # [T, 1]
        sequence = np.minimum((draws > cumulative).sum(axis=1), vocab_size - 1)  # [T]
        examples[i, :sequence_length] = sequence
        examples[i, sequence_length] = separator_id(vocab_size)
        examples[i, sequence_length + 1 :] = sort_by_frequency(sequence, vocab_size, tie_break)
    return examples


@dataclass
class SortingData:
    """Train, dev and test splits of one sorting task, each shaped [N, T + 1 + K] (symbols, separator, targets).

    Args:
        sequence_length: T, the symbols before the separator.
        vocab_size: K, the number of symbols (the separator is token K).
        train: the training examples.
        dev: the development examples.
        test: the test examples.
    """

    sequence_length: int
    vocab_size: int
    train: torch.Tensor
    dev: torch.Tensor
    test: torch.Tensor

    def split(self, name: str) -> torch.Tensor:
        """The split called ``name`` ("train", "dev" or "test")."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)


def generate_sorting_data(
    sequence_length: int,
    vocab_size: int,
    num_train: int,
    num_dev: int,
    num_test: int,
    seed: int,
    distribution: str = "integers",
    tie_break: str = "first-appearance",
) -> SortingData:
    """Generates the three splits deterministically from ``seed``; the splits never share a random stream."""
    streams = np.random.SeedSequence(seed).spawn(3)
    splits = [
        torch.from_numpy(
            generate_sorting_examples(
                n, sequence_length, vocab_size, np.random.default_rng(stream), distribution, tie_break
            )
        )
        for n, stream in zip((num_train, num_dev, num_test), streams)
    ]
    return SortingData(sequence_length, vocab_size, *splits)


def save_sorting_data(data: SortingData, path: Union[str, Path]) -> None:
    """Writes all splits in the paper's JSON layout (see the module docstring)."""
    prompt_end = data.sequence_length + 1
    payload = {"prompt_length": data.sequence_length, "vocab_size": model_vocab_size(data.vocab_size)}
    for name in SPLITS:
        rows = data.split(name).tolist()
        payload[name] = [{"prompt_ids": row[:prompt_end], "target_ids": row[prompt_end:]} for row in rows]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, separators=(",", ":")))


def _read_split(examples: list, name: str, path: Path, sequence_length: int, vocab_size: int) -> torch.Tensor:
    """One split of a JSON data file as a tensor shaped [N, T + 1 + K], after checking its layout."""
    if not examples:
        return torch.empty(0, sequence_length + 1 + vocab_size, dtype=torch.long)
    rows = []
    for index, example in enumerate(examples):
        prompt, target = example["prompt_ids"], example["target_ids"]
        if len(prompt) != sequence_length + 1 or prompt[-1] != separator_id(vocab_size) or len(target) != vocab_size:
            raise ValueError(
                f"{path}: {name}[{index}] must have {sequence_length + 1} prompt_ids ending with the separator "
                f"{separator_id(vocab_size)} and {vocab_size} target_ids; got {len(prompt)} prompt_ids ending "
                f"with {prompt[-1] if prompt else None} and {len(target)} target_ids"
            )
        rows.append(prompt + target)
    split = torch.tensor(rows, dtype=torch.long)  # [N, T + 1 + K]
    if split.min() < 0 or split.max() > vocab_size:
        raise ValueError(f"{path}: {name} holds token ids outside 0..{vocab_size}")
    return split


def load_sorting_data(path: Union[str, Path], sequence_length: Optional[int] = None) -> SortingData:
    """Reads a file in the paper's JSON layout (written by :func:`save_sorting_data` or the paper's generator).

    Args:
        path: the JSON file.
        sequence_length: T; None takes it from the prompts (``prompt_length`` may count the separator or not).
    """
    path = Path(path)
    payload = json.loads(path.read_text())
    missing = [key for key in ("vocab_size", *SPLITS) if key not in payload]
    if missing:
        raise ValueError(f"{path}: missing {missing}; expected the keys prompt_length, vocab_size, {SPLITS}")
    vocab_size = payload["vocab_size"] - 1
    if sequence_length is None:
        first = next((payload[name][0] for name in SPLITS if payload[name]), None)
        if first is None:
            raise ValueError(f"{path}: every split is empty")
        sequence_length = len(first["prompt_ids"]) - 1
    splits = [_read_split(payload[name], name, path, sequence_length, vocab_size) for name in SPLITS]
    return SortingData(sequence_length, vocab_size, *splits)


def counting_rule_accuracy(
    examples: torch.Tensor, sequence_length: int, vocab_size: int, segment_length: Optional[int] = None
) -> float:
    """Token accuracy of the rule "emit the most frequent symbol not yet emitted" on the K target positions.

    Counts (ties by first appearance, unseen symbols after in ascending id, as the targets are made) cover the
    whole sequence when ``segment_length`` is None, which reproduces every target (accuracy 1.0); otherwise only
    the symbols inside the segment that holds the separator, with segments cut from the start of the model's
    input as the tasks cut them: what a model without memory can count. The targets emitted so far are known
    to the rule as they are to a model trained with teacher forcing.

    Args:
        examples: shaped [N, T + 1 + K] (symbols, separator, targets).
        sequence_length: T.
        vocab_size: K.
        segment_length: None, or the segment length.

    Returns:
        the fraction of the N * K target tokens the rule gets right.
    """
    expected_width = sequence_length + 1 + vocab_size
    if examples.dim() != 2 or examples.size(1) != expected_width:
        raise ValueError(f"examples must be shaped [N, {expected_width}], got {tuple(examples.shape)}")
    start = 0 if segment_length is None else sequence_length - sequence_length % segment_length
    correct = 0
    for example in examples.numpy():
        ranking = sort_by_frequency(example[start:sequence_length], vocab_size)  # [K]
        targets = example[sequence_length + 1 :]  # [K]
        emitted = set()
        for target in targets:
            prediction = next(symbol for symbol in ranking if symbol not in emitted)
            correct += int(prediction == target)
            emitted.add(int(target))
    return correct / (examples.size(0) * vocab_size)


def memoryless_floor_accuracy(vocab_size: int) -> float:
    """Expected token accuracy on the K targets of a predictor that knows only which symbols it has emitted.

    With teacher forcing the targets emitted so far are in the input; a model that has kept nothing of the
    sequence can at best guess uniformly among the K - i symbols not yet emitted at target i (i = 0 .. K - 1), right
    with probability 1 / (K - i). The mean over the K targets is H_K / K (H_K the K-th harmonic number): 0.2929 for
    K = 10, 0.1799 for K = 20. A model below it has learnt less than the rule "never repeat a symbol".

    Args:
        vocab_size: K, at least 1.

    Returns:
        H_K / K.
    """
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be at least 1, got {vocab_size}")
    return sum(1.0 / count for count in range(1, vocab_size + 1)) / vocab_size
