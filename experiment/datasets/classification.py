"""Documents as segments: each document's tokens cut into segments that each start and end with special tokens."""

from typing import Dict, List, Optional

import torch
from torch.utils.data import Dataset

from ..data.classification import Document
from ..data.tokenization import SegmentTokenizer


def document_segments(
    token_ids: List[int], segment_length: int, start_id: int, end_id: int, max_segments: Optional[int] = None
) -> List[List[int]]:
    """``token_ids`` cut into segments of ``[start] + segment_length - 2 tokens + [end]`` (the last may be shorter).

    Args:
        token_ids: the document's ids, without special tokens.
        segment_length: tokens per segment, special tokens included (at least 3).
        start_id, end_id: the ids of the start and end tokens ([CLS] and [SEP], or <s> and </s>).
        max_segments: keep only the first this many segments (None: all of them).

    Returns:
        the segments, at least one (an empty document is ``[start, end]``).
    """
    if segment_length < 3:
        raise ValueError(f"segment_length must be at least 3 (start and end tokens and one more), got {segment_length}")
    if max_segments is not None and max_segments < 1:
        raise ValueError(f"max_segments must be None or at least 1, got {max_segments}")
    body = segment_length - 2
    chunks = [token_ids[start : start + body] for start in range(0, len(token_ids), body)] or [[]]
    return [[start_id, *chunk, end_id] for chunk in chunks[:max_segments]]


def document_group(document_id: str) -> str:
    """The unit a document's test result is not independent of: the part of its id before the first ":" (the play
    of a Shakespeare excerpt ``<play>:<excerpt number>``), or the whole id (the document alone)."""
    return document_id.split(":", 1)[0]


class ClassificationDataset(Dataset):
    """Tokenised documents as items ``{"input_ids", "attention_mask"}`` shaped [NumSegments * SegmentLength]
    (the last segment padded), ``"labels"`` (the class, a 0-d long), ``"num_segments"`` (0-d long) and ``"group"``
    (0-d long: the document's index into :attr:`groups`, the sorted :func:`document_group` names of the documents).

    Args:
        documents: the documents.
        tokenizer: see ``data.tokenization``.
        segment_length: tokens per segment, special tokens included.
        max_segments: keep only the first this many segments of each document (None: all).
    """

    def __init__(
        self,
        documents: List[Document],
        tokenizer: SegmentTokenizer,
        segment_length: int,
        max_segments: Optional[int] = None,
    ) -> None:
        self.documents = documents
        self.segment_length = segment_length
        self.pad_id = tokenizer.pad_id
        ids = tokenizer.encode_batch([doc.text for doc in documents]) if documents else []
        self.segments = [
            document_segments(doc_ids, segment_length, tokenizer.start_id, tokenizer.end_id, max_segments)
            for doc_ids in ids
        ]
        self.groups = sorted({document_group(doc.id) for doc in documents})
        index = {name: number for number, name in enumerate(self.groups)}
        self.group_of = [index[document_group(doc.id)] for doc in documents]

    def __len__(self) -> int:
        return len(self.documents)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        segments = self.segments[index]
        input_ids = torch.full((len(segments) * self.segment_length,), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for number, segment in enumerate(segments):
            start = number * self.segment_length
            input_ids[start : start + len(segment)] = torch.tensor(segment)
            attention_mask[start : start + len(segment)] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": torch.tensor(self.documents[index].label),
            "num_segments": torch.tensor(len(segments)),
            "group": torch.tensor(self.group_of[index]),
        }

    def collate(self, items: List[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
        """Stacks items, padding shorter documents with whole segments of padding (attention_mask 0)."""
        length = max(item["input_ids"].numel() for item in items)

        def pad(key: str, value: int) -> torch.Tensor:
            rows = [item[key] for item in items]
            return torch.stack([torch.cat([row, row.new_full((length - row.numel(),), value)]) for row in rows])

        return {
            "input_ids": pad("input_ids", self.pad_id),
            "attention_mask": pad("attention_mask", 0),
            "labels": torch.stack([item["labels"] for item in items]),
            "num_segments": torch.stack([item["num_segments"] for item in items]),
            "group": torch.stack([item["group"] for item in items]),
        }
