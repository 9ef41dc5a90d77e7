"""Long-document classification data: documents, labels and splits, whatever the source.

Every source is read into :class:`ClassificationData` (three splits of :class:`Document` and the label names):

- the classification JSON layout this repository writes (:func:`save_classification_data`):
  ``{"labels": [name, ...], "train": [{"id", "text", "label"}, ...], "dev": [...], "test": [...]}``, labels by
  name;
- Hyperpartisan by-article (``hyperpartisan.py``), from the SemEval release or a Hugging Face export;
- the Shakespeare genre task that runs on CPU (``shakespeare.py``).

Splits given by index into a document list (a split file) are checked for overlap: an index in two splits, or
the same text in two splits (see :func:`split_overlap`).
"""

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

SPLIT_NAMES = ("train", "dev", "test")


@dataclass(frozen=True)
class Document:
    """One labelled document.

    Args:
        id: an identifier unique within its source.
        text: the plain text.
        label: the label's index into ``ClassificationData.labels``.
    """

    id: str
    text: str
    label: int


@dataclass
class ClassificationData:
    """Three splits of labelled documents.

    Args:
        labels: the label names; a document's ``label`` indexes this list.
        train, dev, test: the splits' documents.
        overlap: pairs of splits that share documents, e.g. {"train-test": 51} (see :func:`split_overlap`);
            empty when the splits are disjoint.
    """

    labels: List[str]
    train: List[Document]
    dev: List[Document]
    test: List[Document]
    overlap: Dict[str, int] = field(default_factory=dict)

    def split(self, name: str) -> List[Document]:
        """The documents of split ``name`` ("train", "dev" or "test")."""
        if name not in SPLIT_NAMES:
            raise ValueError(f"split must be one of {SPLIT_NAMES}, got {name!r}")
        return getattr(self, name)

    def summary(self) -> str:
        """One line per split: documents per label; then the overlap, if any."""
        lines = []
        for name in SPLIT_NAMES:
            counts = [sum(doc.label == index for doc in self.split(name)) for index in range(len(self.labels))]
            by_label = ", ".join(f"{label} {count}" for label, count in zip(self.labels, counts))
            lines.append(f"{name}: {len(self.split(name))} documents ({by_label})")
        if self.overlap:
            lines.append("overlap between splits: " + ", ".join(f"{k} {v}" for k, v in self.overlap.items()))
        return "\n".join(lines)


def normalise_text(text: str) -> str:
    """Whitespace collapsed to single spaces and stripped: the form documents are compared in."""
    return " ".join(text.split())


def label_index(labels: Sequence[str], value: Union[str, bool, int], where: str) -> int:
    """The index of label ``value`` in ``labels``.

    Raises:
        ValueError: naming ``where`` and the known labels when ``value`` is not one of them.
    """
    key = str(value).lower() if isinstance(value, bool) else str(value)
    if key not in labels:
        raise ValueError(f"{where}: unknown label {value!r}; expected one of {list(labels)}")
    return list(labels).index(key)


def split_overlap(splits: Dict[str, List[Document]]) -> Dict[str, int]:
    """How many documents each pair of splits shares, by id or by normalised text.

    Returns:
        {"train-dev": n, "train-test": n, "dev-test": n} with only the pairs that share at least one document;
        n counts the documents of the second split found in the first.
    """
    result = {}
    names = list(splits)
    for i, first in enumerate(names):
        ids = {doc.id for doc in splits[first]}
        texts = {normalise_text(doc.text) for doc in splits[first]}
        for second in names[i + 1 :]:
            shared = sum(doc.id in ids or normalise_text(doc.text) in texts for doc in splits[second])
            if shared:
                result[f"{first}-{second}"] = shared
    return result


SPLIT_KEYS = ("index", "id")


def read_split_file(path: Union[str, Path], documents: List[Document], by: str = "index") -> Dict[str, List[int]]:
    """A split file, JSON ``{"train": [...], "dev": [...], "test": [...]}``, as positions into ``documents``.

    Args:
        path: the file.
        documents: the documents it splits.
        by: "index": the entries are positions in ``documents``; "id": they are document ids, as integers (e.g.
            SemEval article ids) or strings.

    Raises:
        FileNotFoundError: when the file is missing.
        ValueError: naming the split when a key is missing, or an entry is not a position in [0, len(documents))
            (by "index") or not the id of a document (by "id").
    """
    if by not in SPLIT_KEYS:
        raise ValueError(f"by must be one of {SPLIT_KEYS}, got {by!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file {path} does not exist")
    splits = json.loads(path.read_text())
    if not isinstance(splits, dict) or any(not isinstance(splits.get(name), list) for name in SPLIT_NAMES):
        raise ValueError(f"split file {path} must be a JSON object with lists {list(SPLIT_NAMES)}")
    if by == "index":
        positions = {i: i for i in range(len(documents))}
        expected = f"positions in [0, {len(documents)})"
    else:
        positions = {doc.id: i for i, doc in enumerate(documents)}
        positions.update({int(doc.id): i for i, doc in enumerate(documents) if doc.id.isdigit()})
        expected = "ids of the documents"
    result = {}
    for name in SPLIT_NAMES:
        bad = [entry for entry in splits[name] if isinstance(entry, bool) or entry not in positions]
        if bad:
            raise ValueError(f"split file {path}, split {name!r}: entries must be {expected}, got {bad[:5]}")
        result[name] = [positions[entry] for entry in splits[name]]
    return result


def apply_split(documents: List[Document], labels: List[str], indices: Dict[str, List[int]]) -> ClassificationData:
    """The splits ``indices`` picks from ``documents``, with their overlap measured (:func:`split_overlap`)."""
    splits = {name: [documents[i] for i in indices[name]] for name in SPLIT_NAMES}
    return ClassificationData(labels, **splits, overlap=split_overlap(splits))


def clean_split(
    documents: List[Document], dev_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0
) -> Dict[str, List[int]]:
    """A seeded, stratified split with no document in two splits.

    Documents with the same normalised text are grouped and kept together (only the first of a group is used, so
    no split holds a duplicate either). Within each label, groups are shuffled with ``seed`` and the first
    ``round(dev_fraction * n)`` go to dev, the next ``round(test_fraction * n)`` to test, the rest to train.

    Returns:
        {"train": [indices], "dev": [...], "test": [...]} into ``documents``, each list in ascending order.
    """
    if not (0 <= dev_fraction < 1 and 0 <= test_fraction < 1 and dev_fraction + test_fraction < 1):
        raise ValueError(
            f"dev_fraction and test_fraction must be in [0, 1) with a sum below 1, got "
            f"{dev_fraction} and {test_fraction}"
        )
    first_of_text: Dict[str, int] = {}
    for index, doc in enumerate(documents):
        first_of_text.setdefault(normalise_text(doc.text), index)
    by_label: Dict[int, List[int]] = defaultdict(list)
    for index in sorted(first_of_text.values()):
        by_label[documents[index].label].append(index)
    rng = random.Random(seed)
    result: Dict[str, List[int]] = {name: [] for name in SPLIT_NAMES}
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        num_dev, num_test = round(dev_fraction * len(group)), round(test_fraction * len(group))
        result["dev"] += group[:num_dev]
        result["test"] += group[num_dev : num_dev + num_test]
        result["train"] += group[num_dev + num_test :]
    return {name: sorted(indices) for name, indices in result.items()}


def save_classification_data(data: ClassificationData, path: Union[str, Path]) -> None:
    """Writes ``data`` in the classification JSON layout (labels by name), creating the directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    layout = {"labels": data.labels}
    for name in SPLIT_NAMES:
        layout[name] = [{"id": doc.id, "text": doc.text, "label": data.labels[doc.label]} for doc in data.split(name)]
    path.write_text(json.dumps(layout, ensure_ascii=False) + "\n")


def load_classification_data(path: Union[str, Path]) -> ClassificationData:
    """Reads a file in the classification JSON layout (see the module docstring).

    Raises:
        FileNotFoundError: when the file is missing.
        ValueError: naming the field when the layout is wrong or a document's label is unknown.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"classification data file {path} does not exist")
    layout = json.loads(path.read_text())
    missing = [key for key in ("labels", *SPLIT_NAMES) if not isinstance(layout, dict) or key not in layout]
    if missing:
        raise ValueError(f"{path}: the classification layout needs keys {['labels', *SPLIT_NAMES]}; missing {missing}")
    labels = [str(label) for label in layout["labels"]]
    splits = {}
    for name in SPLIT_NAMES:
        documents = []
        for position, item in enumerate(layout[name]):
            if not isinstance(item, dict) or "text" not in item or "label" not in item:
                raise ValueError(f"{path}: {name}[{position}] must be an object with 'text' and 'label'")
            where = f"{path}: {name}[{position}]"
            documents.append(
                Document(
                    str(item.get("id", f"{name}-{position}")), item["text"], label_index(labels, item["label"], where)
                )
            )
        splits[name] = documents
    return ClassificationData(labels, **splits, overlap=split_overlap(splits))


def first_segment_evidence(data: ClassificationData, evidence_words: int, seed: int = 0) -> ClassificationData:
    """The variant whose evidence lies only at the start: each document keeps its first ``evidence_words`` words,
    and the rest of its length is filler that says nothing about its label.

    The filler of a document is taken, word for word, from the start of documents of the same split whose label is
    drawn uniformly over the labels, independently of the document's own (then a document of that label uniformly;
    again while the filler is too short), so a model that has kept nothing of the first ``evidence_words`` words can do no better than guess:
    its expected accuracy is at most the largest label share of the split (1/3 with three balanced labels). With
    ``evidence_words`` short enough to fit one segment, only memory carries the evidence to the document's end.

    Args:
        data: the documents (every label must occur in every split, to draw filler from).
        evidence_words: words kept from each document, at least 1.
        seed: seeds the filler's draws.

    Returns:
        the variant, with the same ids, labels and lengths in words as ``data``, words joined by single spaces
        (documents shorter than ``evidence_words`` are kept whole, with no filler).
    """
    if evidence_words < 1:
        raise ValueError(f"evidence_words must be at least 1, got {evidence_words}")
    rng = random.Random(seed)
    splits = {}
    for name in SPLIT_NAMES:
        documents = data.split(name)
        by_label: Dict[int, List[Document]] = defaultdict(list)
        for document in documents:
            by_label[document.label].append(document)
        missing = [data.labels[label] for label in range(len(data.labels)) if not by_label[label]]
        if missing:
            raise ValueError(f"split {name!r} has no documents labelled {missing} to draw filler from")
        variant = []
        for document in documents:
            words = document.text.split()
            filler_words = max(len(words) - evidence_words, 0)
            filler: List[str] = []
            while len(filler) < filler_words:  # a label, then one of its documents, until the filler is long enough
                filler += rng.choice(by_label[rng.randrange(len(data.labels))]).text.split()
            filler = filler[:filler_words]
            variant.append(Document(document.id, " ".join(words[:evidence_words] + filler), document.label))
        splits[name] = variant
    return ClassificationData(list(data.labels), **splits, overlap=split_overlap(splits))
