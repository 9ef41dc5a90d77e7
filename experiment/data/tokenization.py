"""Tokenizers for classification, loaded from local directories only, and the one trained here for the CPU task.

:func:`load_tokenizer` reads a transformers tokenizer directory (a BERT ``vocab.txt``, a RoBERTa
``vocab.json`` + ``merges.txt``, or a ``tokenizer.json`` with its ``tokenizer_config.json``) with
``AutoTokenizer``, or a bare ``tokenizer.json`` of the ``tokenizers`` library; either way it returns a
:class:`SegmentTokenizer`: text to ids without special tokens, and the ids of the start, end and padding tokens
each segment is built with (``[CLS]``/``[SEP]``/``[PAD]`` or ``<s>``/``</s>``/``<pad>``).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, List, Union

SPECIAL_TOKENS = {"start": ("[CLS]", "<s>"), "end": ("[SEP]", "</s>"), "pad": ("[PAD]", "<pad>")}


@dataclass
class SegmentTokenizer:
    """What the classification dataset needs from a tokenizer.

    Args:
        encode_batch: texts to lists of token ids, without special tokens.
        start_id, end_id, pad_id: the ids each segment starts with, ends with and is padded with.
        vocab_size: how many ids the model needs.
    """

    encode_batch: Callable[[List[str]], List[List[int]]]
    start_id: int
    end_id: int
    pad_id: int
    vocab_size: int


def _special_id(token_to_id: Callable[[str], object], role: str, path: Path) -> int:
    for token in SPECIAL_TOKENS[role]:
        token_id = token_to_id(token)
        if isinstance(token_id, int) and token_id >= 0:
            return token_id
    raise ValueError(f"tokenizer {path} has none of the {role} tokens {SPECIAL_TOKENS[role]}")


def load_tokenizer(path: Union[str, Path]) -> SegmentTokenizer:
    """The tokenizer in local directory ``path`` (see the module docstring); nothing is downloaded.

    Raises:
        FileNotFoundError: when ``path`` is not a directory holding a tokenizer.
        ValueError: when it lacks a start, end or padding token.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer directory {path} does not exist")
    transformers_files = ("tokenizer_config.json", "vocab.txt", "vocab.json")
    if any((path / name).is_file() for name in transformers_files):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        vocab = tokenizer.get_vocab()

        def encode_batch(texts: List[str]) -> List[List[int]]:
            return tokenizer(texts, add_special_tokens=False)["input_ids"]

        token_to_id = vocab.get
        vocab_size = len(tokenizer)
    elif (path / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))

        def encode_batch(texts: List[str]) -> List[List[int]]:
            return [encoding.ids for encoding in tokenizer.encode_batch(texts, add_special_tokens=False)]

        token_to_id = tokenizer.token_to_id
        vocab_size = tokenizer.get_vocab_size()
    else:
        raise FileNotFoundError(
            f"{path} holds no tokenizer: expected tokenizer.json, or a transformers tokenizer ({transformers_files})"
        )
    return SegmentTokenizer(
        encode_batch,
        _special_id(token_to_id, "start", path),
        _special_id(token_to_id, "end", path),
        _special_id(token_to_id, "pad", path),
        vocab_size,
    )


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, output_dir: Union[str, Path]) -> Path:
    """Trains a lower-casing BPE tokenizer (``tokenizers``) on ``texts`` and saves ``output_dir/tokenizer.json``.

    Its special tokens are [PAD] (id 0), [UNK], [CLS] and [SEP], as BERT's. Returns ``output_dir``.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"], show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(output_dir / "tokenizer.json"))
    return output_dir
