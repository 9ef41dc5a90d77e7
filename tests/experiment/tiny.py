"""Tiny model fields and the front door as functions, shared by the experiment tests and their fixture scripts."""

from typing import Any, Callable, List

from experiment.__main__ import main
from experiment.settings import flag

TINY_GPT2 = {
    "n_layer": 2,
    "n_embd": 32,
    "n_head": 2,
    "n_inner": 64,
    "n_positions": 16,
    "vocab_size": 9,
    "embd_pdrop": 0.0,
    "attn_pdrop": 0.0,
    "resid_pdrop": 0.0,
    "bos_token_id": None,
    "eos_token_id": None,
    "use_cache": False,
}
TINY_BERT = {
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "max_position_embeddings": 16,
    "num_labels": 3,
}
TINY_MEMORIA = {
    "memoria_num_memories": 4,
    "memoria_stm_capacity": 8,
    "memoria_num_reminded_stm": 4,
    "memoria_num_reminded_ltm": 4,
    "memoria_ltm_search_depth": 2,
    "memoria_initial_lifespan": 3,
    "memoria_lifespan_extend_scale": 8.0,
}

TINY_RECALL = dict(
    num_pairs=1, num_keys=4, num_values=4, num_filler=2, num_segments=3, fact_queries=1, queries_per_segment=2
)
"""Recall data of 3 segments (with ``segment_length=8``): one pair, one fact query, two queries a later segment."""


def command(verb: str, task: str) -> Callable[[List[str]], Any]:
    """``python -m experiment <verb> <task>`` as a function of the rest of the command line."""
    return lambda argv: main([verb, task, *argv])


def tiny_run(config: Any, output_dir: Any, *extra: str, **options: Any) -> List[str]:
    """The options of a tiny training run in one CPU process without a progress bar: the model configuration, the
    output directory, each of ``options`` (``segment_length=8`` as ``--segment-length=8``), then ``extra``."""
    values = {"model_config": config, "output_dir": output_dir, "accelerator": "cpu", "devices": 1, **options}
    return [*[f"{flag(name)}={value}" for name, value in values.items()], "--no-progress-bar", *extra]


def quiet_trainer(**options: Any) -> Any:
    """A Lightning Trainer on the CPU that logs, prints and sanity-checks nothing; ``options`` add to or override it."""
    import lightning as L

    settings = dict(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    return L.Trainer(**{**settings, "num_sanity_val_steps": 0, **options})
