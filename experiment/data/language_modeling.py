"""Language-modelling corpora from local files, their tokenisers, and Transformer-XL's stream batching.

Corpora (nothing is downloaded; every loader takes a local path and returns ``{"train", "valid", "test"}``, each a
list of documents in corpus order):

- WikiText-103 (:func:`load_wikitext103`): a directory with ``wiki.{train,valid,test}.raw`` (or ``.tokens``), as
  published; a document is an article, from one top-level `` = Title = `` heading line to the next.
- PG-19 (:func:`load_pg19`): a directory with ``train/``, ``validation/`` and ``test/`` of ``<id>.txt`` books;
  each book is a document; a seeded fraction of the training books may be kept (the paper kept 7%).
- enwik8 (:func:`load_enwik8`): the ``enwik8`` file or ``enwik8.zip``; the first 90M bytes train, the next 5M
  validate, the last 5M test; one document of bytes per split.
- A directory written by Hugging Face ``datasets``' ``save_to_disk`` (:func:`load_saved_dataset`), with a
  ``text`` column per split; recognised by its ``dataset_dict.json``.

Token streams (:func:`make_windows`): the documents of a split are turned into ``num_streams`` contiguous token
streams read side by side, one window of ``window`` tokens per step, as Transformer-XL batches a corpus. With
``document_boundaries="carry"`` (the paper's) the documents are concatenated, separated by the end-of-text token,
and the concatenation is cut into equal streams; memory flows across document boundaries. With ``"reset"`` every
document starts at a window boundary with a reset flag (the model's memory of that row is reset before it), and
its last window is padded. Padding is never scored (label ``IGNORE_INDEX``) and only ever follows the real tokens
of a row, so causal attention never lets a real token see it.
"""

import json
import math
import random
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

SPLITS = ("train", "valid", "test")
IGNORE_INDEX = -100
ENWIK8_HELDOUT_BYTES = 5_000_000
END_OF_TEXT = "<|endoftext|>"
BOUNDARY_MODES = ("carry", "reset")

Document = Union[str, bytes]
Corpus = Dict[str, List[Document]]

# a top-level WikiText heading: " = Title = " (subsections are " = = Title = = ")
_WIKITEXT_TITLE = re.compile(r"^ = [^=].* = $")


def _require_dir(path: Union[str, Path], what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"--data-dir {path} is not a directory; expected {what}")
    return path


def is_saved_dataset(path: Union[str, Path]) -> bool:
    """Whether ``path`` is a directory written by ``datasets.DatasetDict.save_to_disk``."""
    return (Path(path) / "dataset_dict.json").is_file()


# ---- WikiText-103 ------------------------------------------------------------------------------------------------


def split_wikitext_articles(lines: Sequence[str]) -> List[str]:
    """Groups WikiText lines into articles: each starts at a top-level `` = Title = `` line.

    Lines before the first heading (the published files open with a blank line) form an article of their own.
    Lines keep their newlines, so the articles concatenated give the text back.
    """
    articles: List[List[str]] = []
    for line in lines:
        if _WIKITEXT_TITLE.match(line.rstrip("\n")) or not articles:
            articles.append([])
        articles[-1].append(line)
    return ["".join(article) for article in articles]


def load_wikitext103(path: Union[str, Path]) -> Corpus:
    """WikiText-103 from a directory of ``wiki.{train,valid,test}.raw`` (or ``.tokens``), or a saved dataset.

    Args:
        path: the directory (e.g. ``wikitext-103-raw/``), or a ``save_to_disk`` directory whose ``text`` rows are
            WikiText lines (the hub copy), which are joined and split into articles the same way.

    Returns:
        {"train", "valid", "test"}: each a list of articles (str); text that is only whitespace (the blank line
        before the first heading) is dropped.

    Raises:
        FileNotFoundError: naming the missing file.
    """
    if is_saved_dataset(path):
        rows = load_saved_dataset(path)
        lines = {split: [row if row.endswith("\n") else row + "\n" for row in rows[split]] for split in SPLITS}
        return {split: [a for a in split_wikitext_articles(lines[split]) if a.strip()] for split in SPLITS}
    path = _require_dir(path, "wiki.train.raw, wiki.valid.raw and wiki.test.raw (or .tokens)")
    corpus: Corpus = {}
    for split in SPLITS:
        candidates = [path / f"wiki.{split}.raw", path / f"wiki.{split}.tokens"]
        found = next((candidate for candidate in candidates if candidate.is_file()), None)
        if found is None:
            raise FileNotFoundError(
                f"WikiText-103 directory {path} has neither {candidates[0].name} nor {candidates[1].name}"
            )
        with open(found, encoding="utf-8") as file:
            corpus[split] = [article for article in split_wikitext_articles(file) if article.strip()]
    return corpus


# ---- PG-19 ---------------------------------------------------------------------------------------------------------

PG19_SPLIT_DIRS = {"train": "train", "valid": "validation", "test": "test"}


def load_pg19(path: Union[str, Path], train_fraction: float = 1.0, seed: int = 0) -> Corpus:
    """PG-19 from a directory of ``train/``, ``validation/`` and ``test/`` holding ``<id>.txt`` books, or a saved dataset.

    Args:
        path: the directory, or a ``save_to_disk`` directory with one book per ``text`` row.
        train_fraction: the fraction of training books kept, in (0, 1] (the paper kept 0.07), drawn with ``seed``
            and kept in id order; at least one book.
        seed: the draw's seed.

    Returns:
        {"train", "valid", "test"}: each a list of books (str), in id order.

    Raises:
        FileNotFoundError: naming the missing split directory or a split without books.
        ValueError: when ``train_fraction`` is outside (0, 1].
    """
    if not 0.0 < train_fraction <= 1.0:
        raise ValueError(f"--train-fraction must be in (0, 1], got {train_fraction}")
    if is_saved_dataset(path):
        corpus = load_saved_dataset(path)
    else:
        path = _require_dir(path, "train/, validation/ and test/ of <id>.txt books")
        corpus = {}
        for split, name in PG19_SPLIT_DIRS.items():
            directory = path / name
            if not directory.is_dir():
                raise FileNotFoundError(f"PG-19 directory {path} has no {name}/ directory")
            books = sorted(directory.glob("*.txt"), key=lambda book: (len(book.stem), book.stem))
            if not books:
                raise FileNotFoundError(f"PG-19 split directory {directory} holds no .txt books")
            corpus[split] = [book.read_text(encoding="utf-8") for book in books]
    if train_fraction < 1.0:
        books = corpus["train"]
        keep = sorted(random.Random(seed).sample(range(len(books)), max(1, round(train_fraction * len(books)))))
        corpus["train"] = [books[index] for index in keep]
    return corpus


# ---- enwik8 --------------------------------------------------------------------------------------------------------


def load_enwik8(path: Union[str, Path], heldout_bytes: int = ENWIK8_HELDOUT_BYTES) -> Corpus:
    """enwik8's standard split: all but the last 2 x ``heldout_bytes`` train, then valid, then test.

    Every byte is one symbol, newlines included: the byte-level figures then count every byte of the test set,
    as the usual enwik8 bits per character do (Transformer-XL's preparation turns each newline into an end-of-line
    symbol, which is the same count).

    Args:
        path: the ``enwik8`` file (100,000,000 bytes), ``enwik8.zip`` (holding ``enwik8``), or a directory holding
            either.
        heldout_bytes: bytes of the validation and of the test split (5,000,000 in the standard split).

    Returns:
        {"train", "valid", "test"}: each a list of one document (bytes).

    Raises:
        FileNotFoundError: when there is no such file, or the zip lacks ``enwik8``.
        ValueError: when the file is too short for the split.
    """
    path = Path(path)
    if path.is_dir():
        found = next((path / name for name in ("enwik8", "enwik8.zip") if (path / name).is_file()), None)
        if found is None:
            raise FileNotFoundError(f"--data-dir {path} holds neither enwik8 nor enwik8.zip")
        path = found
    if not path.is_file():
        raise FileNotFoundError(f"enwik8 file {path} does not exist")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if "enwik8" not in archive.namelist():
                raise FileNotFoundError(f"{path} holds {archive.namelist()[:5]}, not enwik8")
            data = archive.read("enwik8")
    else:
        data = path.read_bytes()
    if heldout_bytes < 1 or len(data) <= 2 * heldout_bytes:
        raise ValueError(
            f"enwik8 file {path} has {len(data):,} bytes: too few for two held-out splits of {heldout_bytes:,} "
            "bytes and a training split (the standard file has 100,000,000)"
        )
    return {
        "train": [data[: -2 * heldout_bytes]],
        "valid": [data[-2 * heldout_bytes : -heldout_bytes]],
        "test": [data[-heldout_bytes:]],
    }


# ---- Hugging Face datasets -----------------------------------------------------------------------------------------

SAVED_SPLIT_NAMES = {"train": ("train",), "valid": ("validation", "valid", "dev"), "test": ("test",)}


def load_saved_dataset(path: Union[str, Path], column: str = "text") -> Corpus:
    """The ``text`` rows of a ``DatasetDict`` written by ``save_to_disk`` (needs the ``datasets`` package).

    Args:
        path: the directory holding ``dataset_dict.json``.
        column: the text column.

    Returns:
        {"train", "valid", "test"}: each the column's rows (str), in order; "valid" is read from a split named
        "validation", "valid" or "dev".

    Raises:
        FileNotFoundError: when ``path`` is not a saved ``DatasetDict``.
        ImportError: when ``datasets`` is not installed.
        ValueError: when a split or the column is missing.
    """
    path = Path(path)
    if not is_saved_dataset(path):
        raise FileNotFoundError(f"{path} is not a directory written by datasets' save_to_disk (no dataset_dict.json)")
    try:
        import datasets
    except ImportError as error:
        raise ImportError(f"reading {path} needs the datasets package: pip install datasets") from error
    saved = datasets.load_from_disk(str(path))
    corpus: Corpus = {}
    for split, names in SAVED_SPLIT_NAMES.items():
        name = next((name for name in names if name in saved), None)
        if name is None:
            raise ValueError(f"saved dataset {path} has splits {list(saved)}; expected one of {names}")
        if column not in saved[name].column_names:
            raise ValueError(f"split {name!r} of {path} has columns {saved[name].column_names}, not {column!r}")
        corpus[split] = list(saved[name][column])
    return corpus


DATASETS = {"wikitext103": load_wikitext103, "pg19": load_pg19, "enwik8": load_enwik8}


def load_corpus(dataset: str, path: Union[str, Path], **options) -> Corpus:
    """The corpus ``dataset`` ("wikitext103", "pg19" or "enwik8") from ``path``; ``options`` go to its loader."""
    if dataset not in DATASETS:
        raise ValueError(f"--dataset must be one of {sorted(DATASETS)}, got {dataset!r}")
    return DATASETS[dataset](path, **options)


# ---- tokenisers ----------------------------------------------------------------------------------------------------


class ByteTokenizer:
    """One token per byte (256 symbols, UTF-8 for text); no end-of-text token."""

    vocab_size = 256
    eos_id: Optional[int] = None

    def encode_documents(self, documents: Sequence[Document]) -> List[np.ndarray]:
        """Each document as its bytes, int64 [NumBytes]."""
        return [
            np.frombuffer(d if isinstance(d, bytes) else d.encode("utf-8"), dtype=np.uint8).astype(np.int64)
            for d in documents
        ]

    def save(self, directory: Union[str, Path]) -> None:
        """Writes ``tokenizer_config.json`` saying the tokens are bytes."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "tokenizer_config.json").write_text(json.dumps({"type": "bytes"}) + "\n")


class BPETokenizer:
    """A Hugging Face ``tokenizers`` byte-level BPE (GPT-2's, or one trained here).

    Args:
        tokenizer: the ``tokenizers.Tokenizer``.
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.vocab_size = tokenizer.get_vocab_size()
        self.eos_id = tokenizer.token_to_id(END_OF_TEXT)

    def encode_documents(self, documents: Sequence[Document]) -> List[np.ndarray]:
        """Each document's token ids, int64 [NumTokens]."""
        texts = [d.decode("utf-8") if isinstance(d, bytes) else d for d in documents]
        return [np.asarray(encoding.ids, dtype=np.int64) for encoding in self.tokenizer.encode_batch(texts)]

    def save(self, directory: Union[str, Path]) -> None:
        """Writes ``tokenizer.json``."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(str(Path(directory) / "tokenizer.json"))


Tokenizer = Union[ByteTokenizer, BPETokenizer]


def load_tokenizer(path: Union[str, Path]) -> Tokenizer:
    """The tokenizer saved in ``path``: "bytes", a directory with ``tokenizer.json`` (e.g. a saved GPT-2 tokenizer,
    or one trained by :func:`train_bpe_tokenizer`), with GPT-2's ``vocab.json`` and ``merges.txt``, or with the
    ``tokenizer_config.json`` that :class:`ByteTokenizer` writes.

    Raises:
        FileNotFoundError: when the directory holds none of these.
    """
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers

    if str(path) == "bytes":
        return ByteTokenizer()
    path = Path(path)
    config = path / "tokenizer_config.json"
    if config.is_file() and json.loads(config.read_text()).get("type") == "bytes":
        return ByteTokenizer()
    if (path / "tokenizer.json").is_file():
        return BPETokenizer(HFTokenizer.from_file(str(path / "tokenizer.json")))
    if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
        tokenizer = HFTokenizer(models.BPE.from_file(str(path / "vocab.json"), str(path / "merges.txt")))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        return BPETokenizer(tokenizer)
    raise FileNotFoundError(f"--tokenizer {path} holds neither tokenizer.json nor GPT-2's vocab.json and merges.txt")


def train_bpe_tokenizer(documents: Sequence[str], vocab_size: int) -> BPETokenizer:
    """A byte-level BPE of ``vocab_size`` tokens (``<|endoftext|>`` included) trained on ``documents``."""
    from tokenizers import ByteLevelBPETokenizer

    if vocab_size <= 257:
        raise ValueError(f"--bpe-vocab-size must exceed the 256 bytes and <|endoftext|>, got {vocab_size}")
    trainer = ByteLevelBPETokenizer()
    texts = [d.decode("utf-8") if isinstance(d, bytes) else d for d in documents]
    trainer.train_from_iterator(
        texts, vocab_size=vocab_size, min_frequency=2, special_tokens=[END_OF_TEXT], show_progress=False
    )
    return BPETokenizer(trainer._tokenizer)


# ---- stream batching -----------------------------------------------------------------------------------------------


@dataclass
class Windows:
    """A split cut into windows of ``num_streams`` parallel streams.

    Args:
        input_ids: [NumWindows, NumStreams, Window] int64: window w of stream s is ``input_ids[w, s]``.
        labels: [NumWindows, NumStreams, Window] int64: the next token of each input, ``IGNORE_INDEX`` on padding.
        reset: [NumWindows, NumStreams] bool: reset the row's memory before this window (a new stream or document).
        documents: [NumWindows, NumStreams, Window] int64: the index (in the split's order) of the document each label
            belongs to (a document's closing end-of-text token is its own), -1 on padding; None: not recorded.
    """

    input_ids: np.ndarray
    labels: np.ndarray
    reset: np.ndarray
    documents: Optional[np.ndarray] = None

    @property
    def num_tokens(self) -> int:
        """The tokens scored (labels that are not padding)."""
        return int((self.labels != IGNORE_INDEX).sum())

    def rank_share(self, rank: int, world_size: int) -> "Windows":
        """The streams of process ``rank`` of ``world_size``: streams rank, rank + world_size, ... (as
        ``DistributedSampler`` deals indices)."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        if self.input_ids.shape[1] % world_size:
            raise ValueError(f"{self.input_ids.shape[1]} streams cannot be split evenly over {world_size} processes")
        share = slice(rank, None, world_size)
        documents = None if self.documents is None else self.documents[:, share]
        return Windows(self.input_ids[:, share], self.labels[:, share], self.reset[:, share], documents)


def _pairs(tokens: np.ndarray, eos_id: Optional[int], prefix_eos: bool) -> tuple:
    """(inputs, labels) of one token sequence: each input's label is the next token."""
    if prefix_eos and eos_id is not None:
        tokens = np.concatenate([[eos_id], tokens, [eos_id]])
    return tokens[:-1], tokens[1:]


def _padded(values: np.ndarray, length: int, fill: int) -> np.ndarray:
    return np.concatenate([values, np.full(length - len(values), fill, dtype=np.int64)])


def make_windows(
    documents: Sequence[np.ndarray],
    num_streams: int,
    window: int,
    eos_id: Optional[int] = None,
    document_boundaries: str = "carry",
    pad_id: int = 0,
) -> Windows:
    """Cuts a split's token ids into ``num_streams`` contiguous streams of windows (Transformer-XL's batching).

    "carry": the documents are joined, each followed by ``eos_id`` (when there is one), and the joined ids are cut
    into ``num_streams`` equal contiguous streams; every input's label is the next id, so the first id of the split
    is the only one never predicted. The last stream and the last window are padded; nothing is dropped.
    "reset": each document, framed by ``eos_id`` on both sides when there is one (so its first token is
    predicted from the end-of-text token), starts at a window boundary with ``reset`` set and its last window
    padded; documents are dealt to the stream with the fewest windows, longest first, and the streams are
    padded with empty windows to the same length.

    Args:
        documents: each document's token ids, int [NumTokens].
        num_streams: B, the parallel streams (the batch size, times the processes under DDP).
        window: tokens per stream per step (segment length x segments per batch).
        eos_id: the end-of-text id, or None (bytes).
        document_boundaries: "carry" (the paper's) or "reset".
        pad_id: the input id of padding (never scored, never attended to by real tokens).

    Returns:
        the windows, with each label's document; ``reset`` is set on every stream's first window.
    """
    if num_streams < 1 or window < 1:
        raise ValueError(f"num_streams and window must be at least 1, got {num_streams} and {window}")
    if document_boundaries not in BOUNDARY_MODES:
        raise ValueError(f"document_boundaries must be one of {BOUNDARY_MODES}, got {document_boundaries!r}")
    if not documents or sum(len(document) for document in documents) < 2:
        raise ValueError("the split holds fewer than 2 tokens: nothing to predict")
    if document_boundaries == "carry":
        pieces, owners = [], []
        for index, document in enumerate(documents):
            pieces.append(np.asarray(document, dtype=np.int64))
            if eos_id is not None:
                pieces.append(np.asarray([eos_id], dtype=np.int64))
            owners.append(np.full(len(document) + (eos_id is not None), index, dtype=np.int64))
        inputs, labels = _pairs(np.concatenate(pieces), eos_id, prefix_eos=False)
        owner = np.concatenate(owners)[1:]  # the document of each label
        stream_length = math.ceil(len(inputs) / num_streams)
        num_windows = math.ceil(stream_length / window)
        width = num_windows * window

        def cut(values: np.ndarray, fill: int) -> np.ndarray:  # [NumWindows, S, W]: equal streams, padded windows
            rows = _padded(values, num_streams * stream_length, fill).reshape(num_streams, stream_length)
            rows = np.stack([_padded(row, width, fill) for row in rows])  # [S, NumWindows * W]
            return np.ascontiguousarray(rows.reshape(num_streams, num_windows, window).transpose(1, 0, 2))

        reset = np.zeros((num_windows, num_streams), dtype=bool)
        reset[0] = True
        return Windows(cut(inputs, pad_id), cut(labels, IGNORE_INDEX), reset, cut(owner, -1))

    streams: List[List[tuple]] = [[] for _ in range(num_streams)]  # per stream: (inputs, labels, reset, document)
    order = sorted(range(len(documents)), key=lambda index: -len(documents[index]))
    for index in order:
        inputs, labels = _pairs(np.asarray(documents[index], dtype=np.int64), eos_id, prefix_eos=True)
        if len(inputs) == 0:
            continue
        width = math.ceil(len(inputs) / window) * window
        owner = _padded(np.full(len(labels), index, dtype=np.int64), width, -1)
        inputs, labels = _padded(inputs, width, pad_id), _padded(labels, width, IGNORE_INDEX)
        target = min(range(num_streams), key=lambda stream: len(streams[stream]))
        for start in range(0, width, window):
            cut = slice(start, start + window)
            streams[target].append((inputs[cut], labels[cut], start == 0, owner[cut]))
    num_windows = max(len(stream) for stream in streams)
    empty = (
        np.full(window, pad_id, dtype=np.int64),
        np.full(window, IGNORE_INDEX, dtype=np.int64),
        True,
        np.full(window, -1, dtype=np.int64),
    )
    for stream in streams:
        stream.extend([empty] * (num_windows - len(stream)))
    input_ids = np.stack([np.stack([stream[w][0] for stream in streams]) for w in range(num_windows)])
    labels = np.stack([np.stack([stream[w][1] for stream in streams]) for w in range(num_windows)])
    reset = np.array([[stream[w][2] for stream in streams] for w in range(num_windows)], dtype=bool)
    owners = np.stack([np.stack([stream[w][3] for stream in streams]) for w in range(num_windows)])
    reset[0] = True
    return Windows(input_ids, labels, reset, owners)
