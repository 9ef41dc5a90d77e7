"""Hyperpartisan news detection (SemEval-2019 Task 4), the by-article set: 645 articles labelled by hand.

Two layouts are read, both local files:

- the SemEval release: the articles XML (``<articles><article id=... title=...>`` with the article's markup
  inside) and its ground-truth XML (``<articles><article id=... hyperpartisan="true|false" .../>``);
- a JSON Lines (``.jsonl``) or Parquet (``.parquet``, needs ``pyarrow``) export of the Hugging Face
  ``hyperpartisan_news_detection`` ``byarticle`` split: one row per article with ``text`` (HTML), ``title`` and
  ``hyperpartisan`` (true/false), and ``url`` when present (used as the id; the row index otherwise).

A document's text is the article's text with the markup removed by a real HTML parser (``html.parser``;
entities decoded) and whitespace collapsed, as the Longformer preprocessing takes it (without the title;
``include_title`` puts the title and a blank line before it). Documents keep the file's order.

Splits: a split file (``read_split_file``: JSON ``{"train", "dev", "test"}``) of SemEval article ids or of
positions in file order (a split that puts some articles in two splits has its overlap measured and reported); ``split_file="published"`` reads the shipped ``hyperpartisan_splits.json``: the
Longformer split (its ``scripts/hp-splits.json``) as the Memoria paper's code used it, positions 0..644 into the
Hugging Face ``byarticle`` export, 516 / 64 / 65, whose test split shares 51 articles with train and 7 with dev;
or by default :func:`clean_split`: seeded, stratified, deduplicated, disjoint, in the published split's proportions (about
80 / 10 / 10).
"""

import json
import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List, Optional, Union

from .classification import ClassificationData, Document, apply_split, clean_split, label_index, read_split_file

LABELS = ["false", "true"]  # the ground truth's values of "hyperpartisan"
PUBLISHED_SIZES = {"train": 516, "dev": 64, "test": 65}
PUBLISHED_SPLIT_FILE = Path(__file__).parent / "hyperpartisan_splits.json"  # positions into the byarticle export


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment, with a space at every tag so that words do not run together."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: List[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.parts.append(" ")

    def handle_endtag(self, tag) -> None:
        self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """The text of ``html`` with tags removed, entities decoded and whitespace collapsed to single spaces."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return " ".join("".join(parser.parts).split())


def _document_text(title: str, body: str, include_title: bool) -> str:
    title = " ".join(title.split())
    return f"{title}\n\n{body}" if title and include_title else body


def read_semeval(
    articles_path: Union[str, Path], ground_truth_path: Union[str, Path], include_title: bool = False
) -> List[Document]:
    """The articles of the SemEval XML release, labelled by its ground-truth XML, in the articles file's order.

    Raises:
        FileNotFoundError: naming the file when either is missing.
        ValueError: naming the file when its root is not ``<articles>``, an article has no id, an article has
            no ground truth, or a label is not "true" / "false".
    """
    articles_path, ground_truth_path = Path(articles_path), Path(ground_truth_path)
    for path, what in ((articles_path, "articles XML"), (ground_truth_path, "ground-truth XML")):
        if not path.is_file():
            raise FileNotFoundError(f"hyperpartisan {what} {path} does not exist")
    truth_root = _xml_root(ground_truth_path)
    truth: Dict[str, str] = {}
    for position, article in enumerate(truth_root.iter("article")):
        if "id" not in article.attrib or "hyperpartisan" not in article.attrib:
            raise ValueError(f"{ground_truth_path}: article {position} needs attributes id and hyperpartisan")
        truth[article.attrib["id"]] = article.attrib["hyperpartisan"]
    documents = []
    for position, article in enumerate(_xml_root(articles_path).iter("article")):
        article_id = article.attrib.get("id")
        if article_id is None:
            raise ValueError(f"{articles_path}: article {position} has no id attribute")
        if article_id not in truth:
            raise ValueError(f"{ground_truth_path} has no label for article id {article_id} of {articles_path}")
        body = " ".join(" ".join(article.itertext()).split())  # a space at every element, as html_to_text
        label = label_index(LABELS, truth[article_id].lower(), f"{ground_truth_path}: article {article_id}")
        documents.append(
            Document(article_id, _document_text(article.attrib.get("title", ""), body, include_title), label)
        )
    if not documents:
        raise ValueError(f"{articles_path} holds no <article> elements")
    return documents


def _xml_root(path: Path) -> ElementTree.Element:
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise ValueError(f"{path} is not well-formed XML: {error}") from error
    if root.tag != "articles":
        raise ValueError(f"{path}: the root element must be <articles>, got <{root.tag}>")
    return root


def read_hf_export(path: Union[str, Path], include_title: bool = False) -> List[Document]:
    """The rows of a JSON Lines or Parquet export of the Hugging Face ``byarticle`` split, in file order.

    Raises:
        FileNotFoundError: when the file is missing.
        ImportError: for Parquet without ``pyarrow``.
        ValueError: naming the row when it lacks ``text`` or ``hyperpartisan`` or its label is unknown, or when
            the suffix is neither .jsonl nor .parquet.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"hyperpartisan export {path} does not exist")
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}: line {number + 1} is not JSON: {error}") from error
    elif path.suffix == ".parquet":
        try:
            import pyarrow.parquet as parquet
        except ImportError as error:
            raise ImportError(f"reading {path} needs pyarrow (pip install pyarrow)") from error
        rows = parquet.read_table(path).to_pylist()
    else:
        raise ValueError(f"{path}: a Hugging Face export must be .jsonl or .parquet, got {path.suffix!r}")
    documents = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or "text" not in row or "hyperpartisan" not in row:
            raise ValueError(f"{path}: row {index} must have fields 'text' and 'hyperpartisan'")
        label = label_index(LABELS, row["hyperpartisan"], f"{path}: row {index}")
        text = _document_text(row.get("title") or "", html_to_text(row["text"] or ""), include_title)
        documents.append(Document(str(row.get("url") or index), text, label))
    if not documents:
        raise ValueError(f"{path} holds no rows")
    return documents


def load_hyperpartisan(
    data: Union[str, Path],
    ground_truth: Optional[Union[str, Path]] = None,
    split_file: Optional[Union[str, Path]] = None,
    split_seed: int = 0,
    split_by: Optional[str] = None,
    include_title: bool = False,
) -> ClassificationData:
    """The by-article set split for training (see the module docstring).

    Args:
        data: the articles XML (with ``ground_truth``) or a .jsonl / .parquet export.
        ground_truth: the ground-truth XML; required with an XML ``data``, refused otherwise.
        split_file: JSON ``{"train", "dev", "test"}`` of article ids or positions; "published": the shipped
            Longformer split, positions into the export (by "index" unless ``split_by`` says otherwise); None: the
            clean split.
        split_seed: the clean split's seed.
        split_by: "id" (SemEval article ids; the default for the XML layout) or "index" (positions in file order; the default for an export, which has no article ids).
        include_title: put the title before the text (the Longformer preprocessing, which the paper followed,
            uses the text only).

    Returns:
        the splits; ``overlap`` counts the articles the split file puts in two splits (by id or text).
    """
    data = Path(data)
    if data.suffix == ".xml":
        if ground_truth is None:
            raise ValueError(f"the SemEval articles {data} need their ground-truth XML (ground_truth)")
        documents = read_semeval(data, ground_truth, include_title)
    else:
        if ground_truth is not None:
            raise ValueError(f"ground_truth is only for the SemEval XML layout; {data} is an export with labels")
        documents = read_hf_export(data, include_title)
    if split_file == "published":
        split_file, split_by = PUBLISHED_SPLIT_FILE, split_by or "index"
    if split_file is not None:
        by = split_by or ("id" if data.suffix == ".xml" else "index")
        indices = read_split_file(split_file, documents, by)
    else:
        total = sum(PUBLISHED_SIZES.values())
        indices = clean_split(documents, PUBLISHED_SIZES["dev"] / total, PUBLISHED_SIZES["test"] / total, split_seed)
    return apply_split(documents, LABELS, indices)
