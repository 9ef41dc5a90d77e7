"""Times training steps of a task's models interleaved, so all see the same load, and profiles Memoria's share.

One step = what training does with one batch: reset memory where the task does (every batch for sorting and
classification; only at the start for language modelling, whose memory is carried and detached from batch to
batch), read the batch segment by segment, backward, AdamW step. Each task builds the batch and its models'
tasks (its ``bench``); the batch is the same for every step, so the times compare the models and not the data.
The thread count is set (``--threads``, default 1), since step times on a busy CPU depend on it: under load, time
in a fresh process and compare only numbers taken together.

Prints the median and the quartiles of each model's step time. For a model with Memoria it also prints where
the forward pass spends its time: the three Memoria calls (add_working_memory, remind,
adjust_lifespan_and_memories), the Abstractor and the memory cross-attention (forward only: their backward is
part of the remaining time).

Example:
    python -m experiment time sorting --sequence-length 128 --segment-length 32 --steps 20 --threads 1
"""

import statistics
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Tuple

from ..settings import Settings, option

MEMORIA_CALLS = ("add_working_memory", "remind", "adjust_lifespan_and_memories")
WARMUP_STEPS = 3


@dataclass
class TimeSettings(Settings):
    """The models timed and the steps they take."""

    models: List[str] = option([], "models of the task, MODEL or MODEL:ABLATION (none: the task's default list)")
    segment_length: int = option(32, "tokens per segment")
    batch_size: int = option(16, "samples (streams for language modelling) per step")
    steps: int = option(20, f"timed steps per model, after {WARMUP_STEPS} untimed ones")
    seed: int = option(0, "seed of the data and the weights")
    threads: int = option(1, "CPU threads (torch.set_num_threads); timings depend on it")


class ComponentClock:
    """Accumulates wall time per named component while it is attached to a model."""

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = defaultdict(float)

    @contextmanager
    def timing(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def attach(self, model) -> None:
        """Times the Memoria calls, the Abstractor and every memory cross-attention of a model built on memoria.nn."""
        from memoria.nn import MemoriaMemory, MemoryCrossAttention

        for module in model.modules():
            if isinstance(module, MemoriaMemory):
                for call in MEMORIA_CALLS:
                    self._wrap(module.memoria, call, f"Memoria.{call}")
                if module.abstractor is not None:
                    self._wrap(module.abstractor, "forward", "Abstractor (forward)")
            elif isinstance(module, MemoryCrossAttention):
                self._wrap(module, "forward", "memory cross-attention (forward)")

    def _wrap(self, owner, method: str, name: str) -> None:
        original = getattr(owner, method)

        def timed(*args, **kwargs):
            with self.timing(name):
                return original(*args, **kwargs)

        setattr(owner, method, timed)


Bench = Callable[[Any], Tuple[Any, Dict[str, Any]]]  # a model of the task -> (its SegmentTask, its batch)


def model_config_of(model, **fields: Any):
    """The configuration of a task's model (a ``recipes.Model``): its file, then ``fields``, then its ablation's."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model.config_path, **{**fields, **model.overrides})


def time_steps(task, settings: TimeSettings, bench: Bench) -> Tuple[Dict[str, List[float]], Dict[str, ComponentClock]]:
    """Runs the models' steps in turn; returns each model's step times and its component clock (Memoria only).

    Args:
        task: the ``recipes.Task`` whose models are timed.
        settings: which models, how many steps, the seed and the threads.
        bench: builds a model's task and the batch it steps on.

    Raises:
        ValueError: naming the models that are not the task's.
    """
    import torch

    from memoria.nn import MemoriaMemory

    keys = settings.models or task.default_models
    unknown = [key for key in keys if key not in task.models]
    if unknown:
        raise ValueError(f"--models {unknown} are not models of {task.name}; choose from {list(task.models)}")
    torch.set_num_threads(settings.threads)
    tasks, batches, optimizers, clocks = {}, {}, {}, {}
    for key in keys:
        torch.manual_seed(settings.seed)
        tasks[key], batches[key] = bench(task.models[key])
        tasks[key].train()
        optimizers[key] = torch.optim.AdamW(tasks[key].parameters(), lr=1e-3)
        if any(isinstance(module, MemoriaMemory) for module in tasks[key].modules()):
            clocks[key] = ComponentClock()
    seconds: Dict[str, List[float]] = {key: [] for key in keys}
    for step in range(settings.steps + WARMUP_STEPS):
        if step == WARMUP_STEPS:  # start the component clocks with the timed steps
            for key, clock in clocks.items():
                clock.attach(tasks[key].model)
        for key, segment_task in tasks.items():
            start = time.perf_counter()
            loss = segment_task.run_batch(batches[key], "train")["loss"]
            optimizers[key].zero_grad()
            loss.backward()
            optimizers[key].step()
            if step >= WARMUP_STEPS:
                seconds[key].append(time.perf_counter() - start)
    return seconds, clocks


def time_models(task, settings: TimeSettings, bench: Bench, shape: str) -> Dict[str, List[float]]:
    """Times the models' steps interleaved, prints the medians, quartiles and Memoria's share; returns the times.

    Args:
        task, settings, bench: see :func:`time_steps`.
        shape: the batch in words, for the heading (e.g. "16 sequences of 128 symbols").
    """
    seconds, clocks = time_steps(task, settings, bench)
    import torch

    print(
        f"{task.name} training step, {shape} in segments of {settings.segment_length}, {settings.steps} steps each, "
        f"interleaved, threads {torch.get_num_threads()}"
    )
    width = max(len(key) for key in seconds)
    for key, times in seconds.items():
        q1, median, q3 = statistics.quantiles(times, n=4)
        print(f"{key:{width}s}  median {median:.3f} s  (quartiles {q1:.3f} - {q3:.3f})")
    for key, clock in clocks.items():
        total = sum(seconds[key])
        print(f"\nwhere {key}'s step time goes (mean per step, share of the step):")
        for name, spent in sorted(clock.seconds.items(), key=lambda item: -item[1]):
            print(f"  {name:36s} {spent / settings.steps:.4f} s  {100 * spent / total:5.1f}%")
        rest = total - sum(clock.seconds.values())
        print(
            f"  {'everything else (incl. all backward)':36s} {rest / settings.steps:.4f} s  {100 * rest / total:5.1f}%"
        )
    return seconds
