"""Language-modelling corpora on small fixtures in each published layout, the tokenisers and the stream batching."""

import zipfile

import numpy as np
import pytest

from experiment.data.language_modeling import (
    IGNORE_INDEX,
    ByteTokenizer,
    load_corpus,
    load_enwik8,
    load_pg19,
    load_saved_dataset,
    load_tokenizer,
    load_wikitext103,
    make_windows,
    split_wikitext_articles,
    train_bpe_tokenizer,
)

ARTICLE_A = " = Alpha = \n \n Alpha is a letter . \n \n = = History = = \n \n It is old . \n"
ARTICLE_B = " = Beta ( letter ) = \n \n Beta follows alpha . \n = = = Uses = = = \n Many . \n"


def write_wikitext(directory, suffix="raw"):
    directory.mkdir(parents=True, exist_ok=True)
    for split, articles in {"train": [ARTICLE_A, ARTICLE_B], "valid": [ARTICLE_B], "test": [ARTICLE_A]}.items():
        (directory / f"wiki.{split}.{suffix}").write_text(" \n" + "".join(articles), encoding="utf-8")
    return directory


def write_pg19(directory, books=None):
    books = books or {
        "train": {"10": "book ten\n", "2": "book two\n", "33": "book 33\n"},
        "validation": {"5": "v\n"},
        "test": {"7": "t\n"},
    }
    for split, contents in books.items():
        (directory / split).mkdir(parents=True, exist_ok=True)
        for book_id, text in contents.items():
            (directory / split / f"{book_id}.txt").write_text(text, encoding="utf-8")
    return directory


# ---- WikiText-103 ------------------------------------------------------------------------------------------------


def test_wikitext_articles_split_at_top_level_headings_only():
    lines = (ARTICLE_A + ARTICLE_B).splitlines(keepends=True)
    articles = split_wikitext_articles(lines)
    assert articles == [ARTICLE_A, ARTICLE_B]
    assert "".join(articles) == "".join(lines)


@pytest.mark.parametrize("suffix", ["raw", "tokens"])
def test_wikitext_directory(tmp_path, suffix):
    corpus = load_wikitext103(write_wikitext(tmp_path / "wt", suffix))
    assert corpus["train"] == [ARTICLE_A, ARTICLE_B]  # the blank line before the first heading is dropped
    assert corpus["valid"] == [ARTICLE_B]
    assert corpus["test"] == [ARTICLE_A]


def test_wikitext_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_wikitext103(tmp_path / "missing")
    directory = write_wikitext(tmp_path / "wt")
    (directory / "wiki.test.raw").unlink()
    with pytest.raises(FileNotFoundError, match="wiki.test.raw"):
        load_wikitext103(directory)


# ---- PG-19 ---------------------------------------------------------------------------------------------------------


def test_pg19_directory_reads_books_in_id_order(tmp_path):
    corpus = load_pg19(write_pg19(tmp_path / "pg19"))
    assert corpus == {"train": ["book two\n", "book ten\n", "book 33\n"], "valid": ["v\n"], "test": ["t\n"]}


def test_pg19_train_fraction_is_a_seeded_subset_in_order(tmp_path):
    books = {"train": {str(i): f"book {i}\n" for i in range(20)}, "validation": {"1": "v"}, "test": {"1": "t"}}
    directory = write_pg19(tmp_path / "pg19", books)
    kept = load_pg19(directory, train_fraction=0.25, seed=3)["train"]
    assert len(kept) == 5
    order = [f"book {i}\n" for i in range(20)]
    assert [order.index(book) for book in kept] == sorted(order.index(book) for book in kept)
    assert kept == load_pg19(directory, train_fraction=0.25, seed=3)["train"]
    assert kept != load_pg19(directory, train_fraction=0.25, seed=4)["train"]
    assert len(load_pg19(directory, train_fraction=0.01)["train"]) == 1
    assert load_pg19(directory)["valid"] == ["v"]


def test_pg19_errors(tmp_path):
    directory = write_pg19(tmp_path / "pg19")
    with pytest.raises(ValueError, match="--train-fraction"):
        load_pg19(directory, train_fraction=0.0)
    for book in (directory / "test").iterdir():
        book.unlink()
    with pytest.raises(FileNotFoundError, match="no .txt books"):
        load_pg19(directory)
    (directory / "test").rmdir()
    with pytest.raises(FileNotFoundError, match="no test/ directory"):
        load_pg19(directory)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_pg19(tmp_path / "missing")


# ---- enwik8 --------------------------------------------------------------------------------------------------------


def test_enwik8_split_file_zip_and_directory(tmp_path):
    data = bytes(range(256)) * 4 + b"\n\nend"  # 1029 bytes, newlines included
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "enwik8").write_bytes(data)
    with zipfile.ZipFile(tmp_path / "enwik8.zip", "w") as archive:
        archive.writestr("enwik8", data)
    for path in (tmp_path / "plain" / "enwik8", tmp_path / "enwik8.zip", tmp_path / "plain"):
        corpus = load_enwik8(path, heldout_bytes=100)
        assert corpus["train"] == [data[:829]]
        assert corpus["valid"] == [data[829:929]]
        assert corpus["test"] == [data[929:]]
    assert load_corpus("enwik8", tmp_path / "enwik8.zip", heldout_bytes=100) == corpus


def test_enwik8_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_enwik8(tmp_path / "enwik8")
    with pytest.raises(FileNotFoundError, match="neither enwik8 nor enwik8.zip"):
        load_enwik8(tmp_path)
    (tmp_path / "enwik8").write_bytes(b"x" * 200)
    with pytest.raises(ValueError, match="too few"):
        load_enwik8(tmp_path / "enwik8", heldout_bytes=100)
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("something", b"x" * 1000)
    with pytest.raises(FileNotFoundError, match="not enwik8"):
        load_enwik8(tmp_path / "other.zip", heldout_bytes=10)


# ---- saved datasets ------------------------------------------------------------------------------------------------


def test_saved_dataset_errors_without_dataset_dict(tmp_path):
    with pytest.raises(FileNotFoundError, match="save_to_disk"):
        load_saved_dataset(tmp_path)
    with pytest.raises(ValueError, match="--dataset"):
        load_corpus("wikitext2", tmp_path)


def test_saved_dataset_layouts(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    lines = (ARTICLE_A + ARTICLE_B).splitlines()
    rows = {"train": lines, "validation": lines[:4], "test": lines[4:]}
    datasets.DatasetDict({k: datasets.Dataset.from_dict({"text": v}) for k, v in rows.items()}).save_to_disk(
        str(tmp_path / "wt")
    )
    assert load_saved_dataset(tmp_path / "wt")["valid"] == lines[:4]
    assert load_wikitext103(tmp_path / "wt")["train"] == [ARTICLE_A, ARTICLE_B]
    books = {"train": ["b1", "b2"], "validation": ["v"], "test": ["t"]}
    datasets.DatasetDict({k: datasets.Dataset.from_dict({"text": v}) for k, v in books.items()}).save_to_disk(
        str(tmp_path / "pg")
    )
    assert load_pg19(tmp_path / "pg") == {"train": ["b1", "b2"], "valid": ["v"], "test": ["t"]}
    wrong_column = {k: datasets.Dataset.from_dict({"body": v}) for k, v in books.items()}
    datasets.DatasetDict(wrong_column).save_to_disk(str(tmp_path / "column"))
    with pytest.raises(ValueError, match="not 'text'"):
        load_saved_dataset(tmp_path / "column")
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["x"]})}).save_to_disk(str(tmp_path / "split"))
    with pytest.raises(ValueError, match="expected one of"):
        load_saved_dataset(tmp_path / "split")


# ---- tokenisers ----------------------------------------------------------------------------------------------------


def test_byte_tokenizer():
    tokenizer = ByteTokenizer()
    ids = tokenizer.encode_documents([b"a\nb", "é"])
    assert ids[0].tolist() == [97, 10, 98]
    assert ids[1].tolist() == list("é".encode("utf-8"))
    assert tokenizer.vocab_size == 256 and tokenizer.eos_id is None


def test_bpe_trained_saved_and_loaded_in_both_layouts(tmp_path):
    texts = ["the cat sat on the mat. " * 20, "the dog sat on the log. " * 20]
    tokenizer = train_bpe_tokenizer(texts, vocab_size=300)
    assert 257 < tokenizer.vocab_size <= 300
    assert tokenizer.eos_id is not None
    ids = tokenizer.encode_documents(texts)
    assert tokenizer.tokenizer.decode(ids[0].tolist()) == texts[0]
    assert len(ids[0]) < len(texts[0])  # merges were learnt
    tokenizer.save(tmp_path / "json")
    assert [a.tolist() for a in load_tokenizer(tmp_path / "json").encode_documents(texts)] == [a.tolist() for a in ids]
    (tmp_path / "gpt2").mkdir()
    tokenizer.tokenizer.model.save(str(tmp_path / "gpt2"))  # GPT-2's published layout: vocab.json and merges.txt
    assert (tmp_path / "gpt2" / "merges.txt").exists()
    gpt2 = load_tokenizer(tmp_path / "gpt2")
    assert [a.tolist() for a in gpt2.encode_documents(texts)] == [a.tolist() for a in ids]
    ByteTokenizer().save(tmp_path / "bytes")
    assert isinstance(load_tokenizer(tmp_path / "bytes"), ByteTokenizer)
    assert isinstance(load_tokenizer("bytes"), ByteTokenizer)
    with pytest.raises(FileNotFoundError, match="--tokenizer"):
        load_tokenizer(tmp_path)
    with pytest.raises(ValueError, match="--bpe-vocab-size"):
        train_bpe_tokenizer(texts, vocab_size=200)


# ---- stream batching -----------------------------------------------------------------------------------------------


def stream_tokens(windows, stream):
    """A stream's inputs and labels across windows, padding removed."""
    inputs = windows.input_ids[:, stream].reshape(-1)
    labels = windows.labels[:, stream].reshape(-1)
    real = labels != IGNORE_INDEX
    return inputs[real], labels[real]


@pytest.mark.parametrize("num_streams, window", [(1, 4), (3, 5), (4, 7)])
def test_carry_streams_are_contiguous_and_cover_every_token(num_streams, window):
    documents = [np.arange(100, 100 + n) for n in (13, 1, 29, 8)]
    eos = 7
    joined = np.concatenate([np.append(d, eos) for d in documents])  # each document followed by eos
    windows = make_windows(documents, num_streams, window, eos_id=eos)
    assert windows.input_ids.shape == windows.labels.shape
    assert windows.input_ids.shape[1:] == (num_streams, window)
    assert windows.num_tokens == len(joined) - 1  # every token but the first is predicted once
    pieces = []
    for stream in range(num_streams):
        inputs, labels = stream_tokens(windows, stream)
        pieces.append(inputs)
        start = sum(len(p) for p in pieces[:-1])
        assert inputs.tolist() == joined[start : start + len(inputs)].tolist()  # contiguous
        assert labels.tolist() == joined[start + 1 : start + 1 + len(inputs)].tolist()  # the next token
    assert np.concatenate(pieces).tolist() == joined[:-1].tolist()
    assert windows.reset[0].all() and not windows.reset[1:].any()  # memory carried across documents


def test_reset_streams_start_each_document_on_a_window_with_reset():
    documents = [np.arange(10, 10 + n) for n in (9, 3, 12, 2, 5)]
    eos = 1
    windows = make_windows(documents, 2, 4, eos_id=eos, document_boundaries="reset")
    assert windows.num_tokens == sum(len(d) + 1 for d in documents)
    found = []
    for stream in range(2):
        starts = np.flatnonzero(windows.reset[:, stream])
        for start in starts:
            labels = windows.labels[start:, stream].reshape(-1)
            inputs = windows.input_ids[start:, stream].reshape(-1)
            if labels[0] == IGNORE_INDEX:
                continue  # an empty filler window
            end = np.flatnonzero(labels == eos)[0]
            assert inputs[0] == eos  # the document is framed by end-of-text: its first token is predicted
            found.append(labels[:end].tolist())
            assert labels[end] == eos
            after = start + (end + 1 + 3) // 4  # the windows the document fills
            assert after == len(windows.reset) or windows.reset[after, stream]
            assert (windows.labels[start:after, stream].reshape(-1)[end + 1 :] == IGNORE_INDEX).all()
    assert sorted(found) == sorted(d.tolist() for d in documents)


def test_windows_pad_only_after_real_tokens_and_reject_bad_arguments():
    windows = make_windows([np.arange(2, 12)], 3, 4)
    for stream in range(3):
        real = (windows.labels[:, stream].reshape(-1) != IGNORE_INDEX).tolist()
        assert real == sorted(real, reverse=True)
    with pytest.raises(ValueError, match="num_streams"):
        make_windows([np.arange(5)], 0, 4)
    with pytest.raises(ValueError, match="document_boundaries"):
        make_windows([np.arange(5)], 1, 4, document_boundaries="drop")
    with pytest.raises(ValueError, match="fewer than 2 tokens"):
        make_windows([np.arange(1)], 1, 4)


def test_rank_share_deals_streams_like_distributed_sampler():
    windows = make_windows([np.arange(1000)], 6, 5)
    shares = [windows.rank_share(rank, 3) for rank in range(3)]
    for rank, share in enumerate(shares):
        assert share.input_ids.shape == (windows.input_ids.shape[0], 2, 5)
        assert np.array_equal(share.input_ids, windows.input_ids[:, rank::3])
    assert not np.array_equal(shares[0].input_ids, shares[1].input_ids)
    with pytest.raises(ValueError, match="evenly"):
        windows.rank_share(0, 4)
    with pytest.raises(ValueError, match="rank"):
        windows.rank_share(3, 3)
