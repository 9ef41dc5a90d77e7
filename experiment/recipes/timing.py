"""Times training steps of several models interleaved, so all see the same load, and profiles Memoria's share.

One step = reset memory, read a batch of samples segment by segment, backward, AdamW step (as in training).
The thread count is set (``--threads``, default 1), since step times on a busy CPU depend on it.
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
from typing import Dict, Iterator, List, Tuple

from ..settings import Settings, option

MEMORIA_CALLS = ("add_working_memory", "remind", "adjust_lifespan_and_memories")


@dataclass
class TimeSettings(Settings):
    """The models timed and the batch they step on."""

    models: List[str] = option(
        ["memoria", "memoria:erased_every_segment", "transformer"], "models of the task, MODEL or MODEL:ABLATION"
    )
    sequence_length: int = option(128, "symbols before the separator")
    segment_length: int = option(32, "tokens per segment")
    vocab_size: int = option(10, "number of symbols")
    batch_size: int = option(16, "sequences per step")
    steps: int = option(20, "timed steps per model, after 3 untimed ones")
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
        """Times Memoria's calls, the Abstractor and every memory cross-attention of a Memoria Transformer."""
        body = model.transformer
        for call in MEMORIA_CALLS:
            self._wrap(body.memoria, call, f"Memoria.{call}")
        if body.abstractor is not None:
            self._wrap(body.abstractor, "forward", "Abstractor (forward)")
        for block in body.h:
            for attention in block.memory_attn:
                self._wrap(attention, "forward", "memory cross-attention (forward)")

    def _wrap(self, owner, method: str, name: str) -> None:
        original = getattr(owner, method)

        def timed(*args, **kwargs):
            with self.timing(name):
                return original(*args, **kwargs)

        setattr(owner, method, timed)


def time_steps(args: TimeSettings) -> Tuple[Dict[str, List[float]], Dict[str, ComponentClock]]:
    """Runs the models' steps in turn; returns each model's step times and its component clock (Memoria only)."""
    import torch
    from transformers import AutoConfig

    from ..data.sorting import generate_sorting_data, model_vocab_size
    from ..datasets.sorting import SortingDataset
    from ..tasks import SortingTask

    torch.manual_seed(args.seed)
    data = generate_sorting_data(args.sequence_length, args.vocab_size, args.batch_size, 1, 1, args.seed)
    dataset = SortingDataset(data, "train")
    batch = {key: torch.stack([dataset[i][key] for i in range(len(dataset))]) for key in ("input_ids", "labels")}
    tasks, optimizers, clocks = {}, {}, {}
    from .sorting import TASK

    unknown = [key for key in args.models if key not in TASK.models]
    if unknown:
        raise ValueError(f"--models {unknown} are not models of sorting; choose from {list(TASK.models)}")
    torch.set_num_threads(args.threads)
    for spec in args.models:
        model = TASK.models[spec]
        config = AutoConfig.from_pretrained(
            model.config_path, vocab_size=model_vocab_size(args.vocab_size), **model.overrides
        )
        tasks[spec] = SortingTask(config.to_dict(), args.segment_length).train()
        optimizers[spec] = torch.optim.AdamW(tasks[spec].parameters(), lr=1e-3)
        if hasattr(tasks[spec].model, "transformer") and hasattr(tasks[spec].model.transformer, "memoria"):
            clocks[spec] = ComponentClock()
    seconds: Dict[str, List[float]] = {spec: [] for spec in args.models}
    for step in range(args.steps + 3):
        if step == 3:  # start the component clocks with the timed steps
            for spec, clock in clocks.items():
                clock.attach(tasks[spec].model)
        for spec, task in tasks.items():
            start = time.perf_counter()
            loss = task.run_batch(batch, "train")["loss"]
            optimizers[spec].zero_grad()
            loss.backward()
            optimizers[spec].step()
            if step >= 3:
                seconds[spec].append(time.perf_counter() - start)
    return seconds, clocks


def time_models(args: TimeSettings) -> Dict[str, List[float]]:
    """Times the models' steps interleaved, prints the medians, quartiles and Memoria's share; returns the times."""
    seconds, clocks = time_steps(args)
    import torch

    print(
        f"training step, {args.sequence_length} symbols in segments of {args.segment_length}, batch {args.batch_size}, "
        f"{args.steps} steps each, interleaved, threads {torch.get_num_threads()}"
    )
    width = max(len(spec) for spec in seconds)
    for spec, times in seconds.items():
        q1, median, q3 = statistics.quantiles(times, n=4)
        print(f"{spec:{width}s}  median {median:.3f} s  (quartiles {q1:.3f} - {q3:.3f})")
    for spec, clock in clocks.items():
        total = sum(seconds[spec])
        print(f"\nwhere {spec}'s step time goes (mean per step, share of the step):")
        for name, spent in sorted(clock.seconds.items(), key=lambda item: -item[1]):
            print(f"  {name:36s} {spent / args.steps:.4f} s  {100 * spent / total:5.1f}%")
        rest = total - sum(clock.seconds.values())
        print(f"  {'everything else (incl. all backward)':36s} {rest / args.steps:.4f} s  {100 * rest / total:5.1f}%")

    return seconds
