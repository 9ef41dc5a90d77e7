"""Classification data: the JSON layout, Hyperpartisan in both layouts, split files and overlap, the clean split,
the Shakespeare genre task, tokenizers from local directories and documents cut into segments."""

import json
from pathlib import Path

import pytest
import torch

from experiment.data.classification import (
    ClassificationData,
    Document,
    clean_split,
    first_segment_evidence,
    load_classification_data,
    read_split_file,
    save_classification_data,
    split_overlap,
)
from experiment.data.hyperpartisan import html_to_text, load_hyperpartisan, read_hf_export
from experiment.data.shakespeare import PLAY_GENRES, excerpts, shakespeare_genre_data, split_plays
from experiment.data.tokenization import SegmentTokenizer, load_tokenizer, train_bpe_tokenizer
from experiment.datasets.classification import ClassificationDataset, document_segments

ARTICLES = [  # (id, title, body as the release's markup, label)
    (
        "0001",
        "Tax bill passes",
        "<p>The Senate passed the bill.</p><p>It goes to the House &amp; then on.</p>",
        "false",
    ),
    ("0002", "They lie again", "<p>The <a href='x'>elites</a> lie.</p>", "true"),
    ("0003", "Rally draws crowd", "<p>Thousands came.</p>", "true"),
    ("0004", "Markets steady", "<p>Stocks were flat.</p>", "false"),
]


def write_semeval(directory: Path, articles=ARTICLES, truth=None) -> tuple:
    body = "".join(f'<article id="{i}" title="{t}">{b}</article>' for i, t, b, _ in articles)
    (directory / "articles.xml").write_text(f"<articles>{body}</articles>")
    truth = truth if truth is not None else {i: label for i, _, _, label in articles}
    rows = "".join(f'<article id="{i}" hyperpartisan="{label}" labeled-by="byarticle"/>' for i, label in truth.items())
    (directory / "truth.xml").write_text(f"<articles>{rows}</articles>")
    return directory / "articles.xml", directory / "truth.xml"


def write_jsonl(path: Path, articles=ARTICLES) -> Path:
    lines = [
        json.dumps({"text": body, "title": title, "hyperpartisan": label == "true", "url": f"http://n/{i}"})
        for i, title, body, label in articles
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def split_file(path: Path, splits: dict) -> Path:
    path.write_text(json.dumps(splits))
    return path


def test_html_is_stripped_by_a_parser_and_whitespace_collapsed():
    assert html_to_text("<p>One &amp; two</p><p>three\n\n  four</p><br/>five") == "One & two three four five"


def test_both_layouts_give_the_same_documents(tmp_path):
    articles, truth = write_semeval(tmp_path)
    # the XML layout's split file holds article ids (as Longformer's hp-splits.json), an export's positions
    from_xml = load_hyperpartisan(
        articles, truth, split_file=split_file(tmp_path / "ids.json", {"train": [1, 2], "dev": [3], "test": [4]})
    )
    from_jsonl = load_hyperpartisan(
        write_jsonl(tmp_path / "by.jsonl"),
        split_file=split_file(tmp_path / "positions.json", {"train": [0, 1], "dev": [2], "test": [3]}),
    )
    assert from_xml.labels == from_jsonl.labels == ["false", "true"]
    xml_docs = from_xml.train + from_xml.dev + from_xml.test
    jsonl_docs = from_jsonl.train + from_jsonl.dev + from_jsonl.test
    assert [d.text for d in xml_docs] == [d.text for d in jsonl_docs]
    assert [d.label for d in xml_docs] == [d.label for d in jsonl_docs] == [0, 1, 1, 0]
    assert from_xml.train[0].text == "The Senate passed the bill. It goes to the House & then on."
    assert from_xml.overlap == {}
    titled = load_hyperpartisan(articles, truth, split_file=tmp_path / "ids.json", include_title=True)
    assert titled.train[0].text == "Tax bill passes\n\n" + from_xml.train[0].text
    by_position = load_hyperpartisan(articles, truth, split_file=tmp_path / "positions.json", split_by="index")
    assert [d.id for d in by_position.train] == ["0001", "0002"]


def test_parquet_export(tmp_path):
    parquet = pytest.importorskip("pyarrow.parquet")
    import pyarrow

    rows = [json.loads(line) for line in write_jsonl(tmp_path / "by.jsonl").read_text().splitlines()]
    parquet.write_table(pyarrow.Table.from_pylist(rows), tmp_path / "by.parquet")
    assert [d.text for d in read_hf_export(tmp_path / "by.parquet")] == [
        d.text for d in read_hf_export(tmp_path / "by.jsonl")
    ]


def test_a_split_file_that_repeats_articles_is_reported(tmp_path):
    duplicate = ARTICLES + [("0005", "Tax bill passes", ARTICLES[0][2], "false")]  # same text, another id
    articles, truth = write_semeval(tmp_path, duplicate)
    splits = split_file(tmp_path / "s.json", {"train": [1, 2, 3], "dev": [3], "test": [5, 4, 2]})
    data = load_hyperpartisan(articles, truth, split_file=splits)
    # dev repeats train's article 3; test repeats article 2 and the text of article 1 (as article 5)
    assert data.overlap == {"train-dev": 1, "train-test": 2}
    assert "overlap between splits: train-dev 1, train-test 2" in data.summary()


def test_the_clean_split_is_stratified_disjoint_deduplicated_and_seeded():
    documents = [Document(str(i), f"text {i}", i % 2) for i in range(40)] + [Document("dup", "text 0", 0)]
    splits = clean_split(documents, 0.1, 0.2, seed=3)
    assert clean_split(documents, 0.1, 0.2, seed=3) == splits != clean_split(documents, 0.1, 0.2, seed=4)
    every = splits["train"] + splits["dev"] + splits["test"]
    assert len(every) == len(set(every)) == 40 and 40 not in every  # the duplicate is left out
    for name, share in (("dev", 2), ("test", 4)):
        assert [sum(documents[i].label == label for i in splits[name]) for label in (0, 1)] == [share, share]
    assert split_overlap({n: [documents[i] for i in splits[n]] for n in splits}) == {}


def test_the_default_hyperpartisan_split_is_clean(tmp_path):
    articles = [(f"{i:04d}", f"Title {i}", f"<p>Body {i}</p>", "true" if i % 3 else "false") for i in range(60)]
    data = load_hyperpartisan(*write_semeval(tmp_path, articles))
    assert data.overlap == {} and len(data.train) + len(data.dev) + len(data.test) == 60
    assert len(data.dev) > 0 and len(data.test) > 0


@pytest.mark.parametrize(
    "change, error, match",
    [
        ("missing articles", FileNotFoundError, "articles XML"),
        ("no ground truth", ValueError, "ground-truth XML"),
        ("wrong root", ValueError, "<articles>"),
        ("unlabelled article", ValueError, "no label for article id 0004"),
        ("unknown label", ValueError, "unknown label 'maybe'"),
        ("not xml", ValueError, "well-formed"),
    ],
)
def test_semeval_errors(tmp_path, change, error, match):
    articles, truth = write_semeval(tmp_path)
    if change == "missing articles":
        articles.unlink()
    elif change == "no ground truth":
        truth = None
    elif change == "wrong root":
        articles.write_text("<news><article id='1'/></news>")
    elif change == "unlabelled article":
        write_semeval(tmp_path, truth={i: label for i, _, _, label in ARTICLES[:3]})
    elif change == "unknown label":
        write_semeval(tmp_path, truth={**{i: label for i, _, _, label in ARTICLES}, "0002": "maybe"})
    else:
        articles.write_text("<articles><article>")
    with pytest.raises(error, match=match):
        load_hyperpartisan(articles, truth)


def test_export_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_hyperpartisan(tmp_path / "none.jsonl")
    (tmp_path / "bad.jsonl").write_text(json.dumps({"title": "x", "hyperpartisan": True}) + "\n")
    with pytest.raises(ValueError, match="row 0 must have fields 'text' and 'hyperpartisan'"):
        load_hyperpartisan(tmp_path / "bad.jsonl")
    (tmp_path / "label.jsonl").write_text(json.dumps({"text": "x", "hyperpartisan": "left"}) + "\n")
    with pytest.raises(ValueError, match="unknown label 'left'"):
        load_hyperpartisan(tmp_path / "label.jsonl")
    (tmp_path / "data.csv").write_text("text\n")
    with pytest.raises(ValueError, match=".jsonl or .parquet"):
        load_hyperpartisan(tmp_path / "data.csv")
    with pytest.raises(ValueError, match="ground_truth is only for the SemEval XML"):
        load_hyperpartisan(write_jsonl(tmp_path / "ok.jsonl"), tmp_path / "truth.xml")


def test_split_file_errors(tmp_path):
    documents = [Document(f"{i:04d}", f"text {i}", 0) for i in range(4)]
    with pytest.raises(FileNotFoundError, match="split file"):
        read_split_file(tmp_path / "none.json", documents)
    with pytest.raises(ValueError, match="lists"):
        read_split_file(split_file(tmp_path / "a.json", {"train": [0], "dev": [1]}), documents)
    bad_position = split_file(tmp_path / "b.json", {"train": [0], "dev": [1], "test": [4]})
    with pytest.raises(ValueError, match=r"split 'test': entries must be positions in \[0, 4\)"):
        read_split_file(bad_position, documents)
    with pytest.raises(ValueError, match=r"split 'test': entries must be ids of the documents, got \[4\]"):
        read_split_file(bad_position, documents, by="id")
    assert read_split_file(
        split_file(tmp_path / "c.json", {"train": [3], "dev": ["0001"], "test": []}), documents, by="id"
    ) == {"train": [3], "dev": [1], "test": []}
    with pytest.raises(ValueError, match="by must be"):
        read_split_file(bad_position, documents, by="name")


def test_the_json_layout_round_trips_and_checks_labels(tmp_path):
    data = ClassificationData(["a", "b"], [Document("1", "x y", 1)], [Document("2", "z", 0)], [])
    save_classification_data(data, tmp_path / "d.json")
    again = load_classification_data(tmp_path / "d.json")
    assert again.labels == ["a", "b"] and again.train == data.train and again.dev == data.dev and again.test == []
    layout = json.loads((tmp_path / "d.json").read_text())
    layout["dev"][0]["label"] = "c"
    (tmp_path / "e.json").write_text(json.dumps(layout))
    with pytest.raises(ValueError, match=r"dev\[0\]: unknown label 'c'; expected one of \['a', 'b'\]"):
        load_classification_data(tmp_path / "e.json")
    (tmp_path / "f.json").write_text(json.dumps({"labels": ["a"], "train": []}))
    with pytest.raises(ValueError, match="missing"):
        load_classification_data(tmp_path / "f.json")
    with pytest.raises(FileNotFoundError):
        load_classification_data(tmp_path / "none.json")


def test_the_first_folio_genres():
    genres = list(PLAY_GENRES.values())
    assert (genres.count("comedy"), genres.count("history"), genres.count("tragedy")) == (14, 10, 12)


def test_plays_are_split_by_genre_without_sharing_a_play():
    splits = split_plays(dev_per_genre=2, test_per_genre=3, seed=1)
    assert split_plays(2, 3, seed=1) == splits
    assert (len(splits["dev"]), len(splits["test"]), len(splits["train"])) == (6, 9, 21)
    assert not set(splits["train"]) & set(splits["dev"]) | set(splits["train"]) & set(splits["test"])
    with pytest.raises(ValueError, match="must leave"):
        split_plays(dev_per_genre=5, test_per_genre=5)


def test_excerpts_are_whole_windows_of_words():
    text = " ".join(f"w{i}" for i in range(10))
    assert excerpts(text, 4, 4) == ["w0 w1 w2 w3", "w4 w5 w6 w7"]
    assert excerpts(text, 4, 3) == ["w0 w1 w2 w3", "w3 w4 w5 w6", "w6 w7 w8 w9"]


def write_plays(directory: Path, words: int = 40) -> Path:
    directory.mkdir(exist_ok=True)
    for name, genre in PLAY_GENRES.items():
        text = "Persons of the play\n\nACT I.\n" + " ".join(f"{genre}{i % 7} {name}" for i in range(words // 2))
        (directory / f"{name}_gut.txt").write_text(text)
    return directory


def test_the_genre_data_labels_excerpts_by_their_plays_genre(tmp_path):
    data, plays = shakespeare_genre_data(write_plays(tmp_path / "texts"), excerpt_words=10, seed=0)
    assert data.overlap == {}
    for split in ("train", "dev", "test"):
        assert {doc.id.split(":")[0] for doc in data.split(split)} == set(plays[split])
        for doc in data.split(split):
            assert data.labels[doc.label] == PLAY_GENRES[doc.id.split(":")[0]]
            assert len(doc.text.split()) == 10 and "Persons" not in doc.text  # the text from "ACT I" on
        assert data.split(split)[0].text.startswith("ACT I.")


def test_tokenizers_from_local_directories(tmp_path):
    directory = train_bpe_tokenizer(["the cat sat on the mat"] * 20, 60, tmp_path / "bpe")
    tokenizer = load_tokenizer(directory)
    assert (tokenizer.pad_id, tokenizer.start_id, tokenizer.end_id) == (0, 2, 3)
    assert tokenizer.encode_batch(["The cat"])[0] == tokenizer.encode_batch(["the cat"])[0]
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer"}))
    (tmp_path / "bert" / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "cat", "sat"])
    )
    bert = load_tokenizer(tmp_path / "bert")
    assert (bert.pad_id, bert.start_id, bert.end_id, bert.vocab_size) == (0, 2, 3, 7)
    assert bert.encode_batch(["cat sat dog"]) == [[5, 6, 1]]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_tokenizer(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no tokenizer"):
        load_tokenizer(tmp_path / "empty")


def test_documents_are_cut_into_segments_with_special_tokens():
    assert document_segments(list(range(10, 17)), 5, 1, 2) == [[1, 10, 11, 12, 2], [1, 13, 14, 15, 2], [1, 16, 2]]
    assert document_segments([], 5, 1, 2) == [[1, 2]]
    assert document_segments(list(range(10, 17)), 5, 1, 2, max_segments=1) == [[1, 10, 11, 12, 2]]
    with pytest.raises(ValueError, match="segment_length"):
        document_segments([1], 2, 1, 2)


def test_the_dataset_pads_documents_to_whole_segments():
    tokenizer = SegmentTokenizer(lambda texts: [[10 + len(w) for w in t.split()] for t in texts], 1, 2, 0, 20)
    docs = [Document("a", "x yy zzz wwww", 1), Document("b", "q", 0)]
    dataset = ClassificationDataset(docs, tokenizer, segment_length=4)
    batch = dataset.collate([dataset[0], dataset[1]])
    assert batch["input_ids"].tolist() == [[1, 11, 12, 2, 1, 13, 14, 2], [1, 11, 2, 0, 0, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1] * 8, [1, 1, 1, 0, 0, 0, 0, 0]]
    assert batch["labels"].tolist() == [1, 0] and batch["num_segments"].tolist() == [2, 1]


def test_each_document_names_its_play_as_its_group():
    tokenizer = SegmentTokenizer(lambda texts: [[10 + len(w) for w in t.split()] for t in texts], 1, 2, 0, 20)
    ids = ["lear:1", "hamlet:0", "solo", "lear:0", "hamlet:1:b"]  # excerpts "<play>:<number>"; "solo" stands alone
    dataset = ClassificationDataset([Document(name, "x", 0) for name in ids], tokenizer, segment_length=4)
    assert dataset.groups == ["hamlet", "lear", "solo"]
    batch = dataset.collate([dataset[i] for i in range(len(ids))])
    assert batch["group"].tolist() == [1, 0, 2, 1, 0]


def test_the_shipped_published_split_is_the_papers_with_its_overlap(tmp_path):
    # 645 distinct by-article rows; the published split (516 / 64 / 65 by position) shares test articles with
    # train (51) and dev (7), as the issue and the Longformer split state
    articles = [
        (f"{i:07d}", f"title {i}", f"<p>article number {i}</p>", "true" if i % 3 else "false") for i in range(645)
    ]
    data = load_hyperpartisan(write_jsonl(tmp_path / "byarticle.jsonl", articles), split_file="published")
    assert (len(data.train), len(data.dev), len(data.test)) == (516, 64, 65)
    assert data.overlap == {"train-test": 51, "dev-test": 7}
    with pytest.raises(ValueError, match="position"):  # a smaller export cannot hold the published positions
        load_hyperpartisan(write_jsonl(tmp_path / "small.jsonl"), split_file="published")


def variant_source() -> ClassificationData:
    """Three labels; each document's words name its label, so a word's origin is visible."""
    splits = {
        split: [
            Document(f"{split}-{label}-{number}", " ".join(f"{name}{i}" for i in range(40)), label)
            for label, name in enumerate(("comedy", "history", "tragedy"))
            for number in range(4)
        ]
        for split in ("train", "dev", "test")
    }
    return ClassificationData(["comedy", "history", "tragedy"], **splits)


def test_first_segment_evidence_keeps_the_start_and_fills_the_rest_independently_of_the_label():
    source = variant_source()
    variant = first_segment_evidence(source, evidence_words=10, seed=3)
    filler_labels = []
    for split in ("train", "dev", "test"):
        for original, changed in zip(source.split(split), variant.split(split)):
            words = changed.text.split()
            assert (changed.id, changed.label) == (original.id, original.label) and len(words) == 40
            assert words[:10] == original.text.split()[:10]
            assert words[10:] == [word.rstrip("0123456789") + str(i) for i, word in enumerate(words[10:])]
            filler_labels.append(
                (original.label, ("comedy", "history", "tragedy").index(words[10].rstrip("0123456789")))
            )
    same = sum(label == filler for label, filler in filler_labels) / len(filler_labels)
    assert 0.1 < same < 0.6  # about 1/3: the filler's label does not follow the document's
    assert first_segment_evidence(source, 10, seed=3).test == variant.test  # seeded
    with pytest.raises(ValueError, match="evidence_words"):
        first_segment_evidence(source, 0)
    lopsided = ClassificationData(source.labels, source.train, source.dev, source.test[:4])
    with pytest.raises(ValueError, match="no documents labelled"):
        first_segment_evidence(lopsided, 10)


def test_the_comparisons_first_segment_variant_checks_that_the_evidence_fits_a_segment(tmp_path):
    from experiment.recipes.classification import ClassificationCompare, first_segment_variant

    source = variant_source()
    data_path = tmp_path / "genre.json"
    save_classification_data(source, data_path)
    tokenizer_dir = tmp_path / "bpe"
    train_bpe_tokenizer([doc.text for doc in source.train], 200, tokenizer_dir)
    settings = ClassificationCompare.create(evidence="first-segment", evidence_words=5, segment_length=64)
    path = first_segment_variant(data_path, tokenizer_dir, settings)
    variant = load_classification_data(path)
    assert path != data_path and [doc.text.split()[:5] for doc in variant.test] == [
        doc.text.split()[:5] for doc in source.test
    ]
    too_long = ClassificationCompare.create(evidence="first-segment", evidence_words=40, segment_length=8)
    with pytest.raises(ValueError, match="--evidence-words 40 gives up to"):
        first_segment_variant(data_path, tokenizer_dir, too_long)
