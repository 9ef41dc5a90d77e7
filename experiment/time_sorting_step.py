"""Times training steps of several models interleaved, so all see the same load, and profiles Memoria's share.

One step = reset memory, read a batch of samples segment by segment, backward, AdamW step (as in train_sorting).
Prints the median and the quartiles of each model's step time. For a model with Memoria it also prints where
the forward pass spends its time: the three Memoria calls (add_working_memory, remind,
adjust_lifespan_and_memories), the Abstractor and the memory cross-attention (forward only: their backward is
part of the remaining time).

Example:
    python -m experiment.time_sorting_step --sequence-length 128 --segment-length 32 --steps 20
"""

import statistics
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from .cli import make_parser, parse_overrides

CONFIGS = Path(__file__).parent / "configs"
MEMORIA_CALLS = ("add_working_memory", "remind", "adjust_lifespan_and_memories")


def build_parser():
    """The script's arguments."""
    parser = make_parser(__doc__)
    parser.add_argument(
        "--configs",
        nargs="+",
        default=[
            str(CONFIGS / "memoria-gpt2-sort-small.json"),
            str(CONFIGS / "memoria-gpt2-sort-small.json") + ":memoria_reset_period=1",
            str(CONFIGS / "gpt2-sort-small.json"),
        ],
        help="configuration files, each optionally followed by :FIELD=VALUE overrides separated by commas",
    )
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--segment-length", type=int, default=32)
    parser.add_argument("--vocab-size", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model, after 3 untimed ones")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def _split_spec(spec: str) -> Tuple[str, Dict]:
    """``path[:FIELD=VALUE,...]`` as the path and its overrides."""
    path, _, overrides = spec.partition(":")
    return path, parse_overrides(overrides.split(",")) if overrides else {}


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


def time_steps(args) -> Tuple[Dict[str, List[float]], Dict[str, ComponentClock]]:
    """Runs the models' steps in turn; returns each model's step times and its component clock (Memoria only)."""
    import torch
    from transformers import AutoConfig

    from .data.sorting import generate_sorting_data, model_vocab_size
    from .datasets.sorting import SortingDataset
    from .tasks import SortingTask

    torch.manual_seed(args.seed)
    data = generate_sorting_data(args.sequence_length, args.vocab_size, args.batch_size, 1, 1, args.seed)
    dataset = SortingDataset(data, "train")
    batch = {key: torch.stack([dataset[i][key] for i in range(len(dataset))]) for key in ("input_ids", "labels")}
    tasks, optimizers, clocks = {}, {}, {}
    for spec in args.configs:
        path, overrides = _split_spec(spec)
        config = AutoConfig.from_pretrained(path, vocab_size=model_vocab_size(args.vocab_size), **overrides)
        tasks[spec] = SortingTask(config.to_dict(), args.segment_length).train()
        optimizers[spec] = torch.optim.AdamW(tasks[spec].parameters(), lr=1e-3)
        if hasattr(tasks[spec].model, "transformer") and hasattr(tasks[spec].model.transformer, "memoria"):
            clocks[spec] = ComponentClock()
    seconds: Dict[str, List[float]] = {spec: [] for spec in args.configs}
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


def main(argv: Optional[List[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    seconds, clocks = time_steps(args)
    import torch

    print(
        f"training step, {args.sequence_length} symbols in segments of {args.segment_length}, batch {args.batch_size}, "
        f"{args.steps} steps each, interleaved, threads {torch.get_num_threads()}"
    )
    width = max(len(Path(spec).name) for spec in seconds)
    for spec, times in seconds.items():
        q1, median, q3 = statistics.quantiles(times, n=4)
        print(f"{Path(spec).name:{width}s}  median {median:.3f} s  (quartiles {q1:.3f} - {q3:.3f})")
    for spec, clock in clocks.items():
        total = sum(seconds[spec])
        print(f"\nwhere {Path(spec).name}'s step time goes (mean per step, share of the step):")
        for name, spent in sorted(clock.seconds.items(), key=lambda item: -item[1]):
            print(f"  {name:36s} {spent / args.steps:.4f} s  {100 * spent / total:5.1f}%")
        rest = total - sum(clock.seconds.values())
        print(f"  {'everything else (incl. all backward)':36s} {rest / args.steps:.4f} s  {100 * rest / total:5.1f}%")


if __name__ == "__main__":
    main()
