"""The tasks a user names on the command line (``python -m experiment <verb> <task>``), one module each.

A task module defines ``TASK``, a :class:`Task`: its summary, its models (named as in experiment/configs, with
ablations), the settings class and function of each verb it supports, its quick settings, its metrics and the
grid of settings a comparison runs. Adding a task is one module and one line in :data:`TASKS`. Nothing heavy is
imported here, so ``python -m experiment --help`` is fast.
"""

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

from ..settings import Settings

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
VERBS = {
    "prepare": "make the task's data",
    "train": "train one model",
    "eval": "evaluate a checkpoint",
    "compare": "train and test models x seeds x settings; write comparison.json and the table",
    "analyze": "engram analysis of a trained Memoria model",
    "time": "time training steps of several models, interleaved",
}
# task name: (module, one-line summary)
TASKS: Dict[str, Tuple[str, str]] = {
    "sorting": ("experiment.recipes.sorting", "sort symbols by frequency after reading a long sequence"),
    "language-modeling": ("experiment.recipes.language_modeling", "next-token prediction on a long corpus"),
    "classification": ("experiment.recipes.classification", "classify documents longer than a segment"),
    "recall": ("experiment.recipes.recall", "answer queries about key-value pairs given 0-8 segments back"),
}


@dataclass(frozen=True)
class Model:
    """A model of a comparison: a configuration file, and for an ablation the fields and settings it changes.

    Args:
        name: the model's name as in its configuration file ("memoria", "transformer", "transfo-xl", ...).
        config: the configuration file's name under experiment/configs.
        ablation: "" for the model as trained and tested; else what is changed (e.g. "erased_every_segment").
        overrides: configuration fields the ablation sets (``config_override``).
        settings: training settings this entry sets (e.g. {"prediction": "mean"}).
        directory: the name of its runs' directories (default: the key, ":" as "-"); the ablations keep the names
            earlier versions gave them, so that their finished runs are read back.
        evaluates: the key of the model whose trained weights this entry only tests, built with ``overrides``
            (e.g. memory erased at evaluation); "" for an entry that trains.
    """

    name: str
    config: str
    ablation: str = ""
    overrides: Dict[str, Any] = field(default_factory=dict)
    settings: Dict[str, Any] = field(default_factory=dict)
    directory: str = ""
    evaluates: str = ""

    @property
    def run_name(self) -> str:
        """The directory name of its runs, before ``-seed<seed>``."""
        return self.directory or self.key.replace(":", "-")

    @property
    def key(self) -> str:
        """How ``--models`` names it: MODEL or MODEL:ABLATION."""
        return f"{self.name}:{self.ablation}" if self.ablation else self.name

    @property
    def config_path(self) -> str:
        return str(CONFIGS / self.config)


@dataclass(frozen=True)
class Setting:
    """One setting of a comparison's grid: its label, the training settings every run of it shares, lines printed
    under its table, and the directory its runs go to under the comparison's (default: the label; "" for a task
    with one setting, whose runs sit directly in the comparison's directory)."""

    label: str
    train_settings: Settings
    notes: List[str] = field(default_factory=list)
    directory: Optional[str] = None


@dataclass(frozen=True)
class Task:
    """Everything the front door needs to know about a task.

    Args:
        name: as typed on the command line.
        summary: one line.
        verbs: {verb: (settings class, function taking the settings)}.
        models: every model the task can compare, by :attr:`Model.key`.
        default_models: the keys a comparison runs by default.
        baseline: the key the table's differences are taken against.
        metrics: the test metrics of results.json's "test" recorded in comparison.json; a name ending in "*"
            stands for every metric that starts with the rest (e.g. "correct_group*").
        headline: the metric the table and the verdict are about, and whether higher is better.
        also_tabled: more test metrics the table shows, as a column of each one's mean over the seeds.
        quick: the settings ``compare --quick`` replaces (a smoke test in minutes on 2 CPU cores).
        identity: the training settings a finished run must share to be read back instead of retrained.
        grid: prepares the data and returns the settings a comparison runs (:class:`Setting` list).
        report: the task's own report from comparison.json's rows and the compare settings (a table, a verdict, a
            figure it writes to the output directory), printed and saved after the generic table; None: none.
    """

    name: str
    summary: str
    verbs: Dict[str, Tuple[Type[Settings], Callable[[Any], Any]]]
    models: Dict[str, Model]
    default_models: List[str]
    baseline: str
    metrics: Tuple[str, ...]
    headline: Tuple[str, bool]
    quick: Dict[str, Any]
    identity: Tuple[str, ...]
    grid: Optional[Callable[[Any], List[Setting]]] = None
    also_tabled: Tuple[str, ...] = ()
    report: Optional[Callable[[List[Dict[str, Any]], Any], str]] = None


def model_table(*models: Model) -> Dict[str, Model]:
    """Models by key."""
    return {model.key: model for model in models}


ERASED = {"memoria_reset_period": 1}


def causal_models(size: str) -> List[Model]:
    """The models of the sorting and language-modelling comparisons at ``size`` ("sort-small", "lm-small"):
    Memoria, its memoryless ablations (trained erased every segment; the trained Memoria's weights tested erased
    every segment), Transformer-XL, the Compressive Transformer, the infinity-former, the Recurrent Memory
    Transformer and the plain Transformer."""
    memoria = f"memoria-gpt2-{size}.json"
    return [
        Model("memoria", memoria),
        Model("memoria", memoria, "erased_every_segment", ERASED, directory="memoria-erased"),
        Model("memoria", memoria, "erased_at_eval", ERASED, evaluates="memoria"),
        *[Model(name, f"{name}-{size}.json") for name in ("transfo-xl", "compressive", "infinity-former", "rmt")],
        Model("transformer", f"gpt2-{size}.json"),
    ]


WORKING_MEMORY_ONLY = {"memoria_num_reminded_stm": 0, "memoria_num_reminded_ltm": 0}


def memoria_ladder(config: str) -> List[Model]:
    """Memoria's ablations besides erasure: nothing reminded, the trained Memoria's weights tested so
    (``working_memory_only``: the working memory is the only memory read) and trained so
    (``working_memory_only_trained``), and the paper's algorithm (``paper_mode``, ``memoria_mode="paper"`` beside
    the default "reference"; trained so)."""
    return [
        Model("memoria", config, "working_memory_only", WORKING_MEMORY_ONLY, evaluates="memoria"),
        Model("memoria", config, "working_memory_only_trained", WORKING_MEMORY_ONLY),
        Model("memoria", config, "paper_mode", {"memoria_mode": "paper"}),
    ]


def load_task(name: str) -> Task:
    """The :class:`Task` named ``name``.

    Raises:
        ValueError: naming the tasks when ``name`` is not one.
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
    return importlib.import_module(TASKS[name][0]).TASK
