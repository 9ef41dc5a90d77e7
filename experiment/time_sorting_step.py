"""Times training steps of the Memoria Transformer and the baseline, interleaved so both see the same load.

One step = reset memory, read a batch of samples segment by segment, backward, Adam step (as in train_sorting).
Prints the median and the quartiles of each model's step time.

Example:
    python -m experiment.time_sorting_step --sequence-length 128 --segment-length 32 --steps 20
"""

import statistics
import time
from pathlib import Path
from typing import Dict, List, Optional

from .cli import make_parser

CONFIGS = Path(__file__).parent / "configs"


def build_parser():
    """The script's arguments."""
    parser = make_parser(__doc__)
    parser.add_argument(
        "--configs",
        nargs="+",
        default=[str(CONFIGS / "memoria-gpt2-sort-small.json"), str(CONFIGS / "gpt2-sort-small.json")],
    )
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--segment-length", type=int, default=32)
    parser.add_argument("--vocab-size", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model, after 3 untimed ones")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def time_steps(args) -> Dict[str, List[float]]:
    """Runs the models' steps in turn; returns each configuration's step times in seconds."""
    import torch
    from transformers import AutoConfig

    from .longseq_formers.data.sorting import generate_sorting_data, model_vocab_size
    from .longseq_formers.dataset.sorting import SortingDataset
    from .longseq_formers.task import SortingTask

    torch.manual_seed(args.seed)
    data = generate_sorting_data(args.sequence_length, args.vocab_size, args.batch_size, 1, 1, args.seed)
    dataset = SortingDataset(data, "train")
    batch = {key: torch.stack([dataset[i][key] for i in range(len(dataset))]) for key in ("input_ids", "labels")}
    tasks, optimizers = {}, {}
    for path in args.configs:
        config = AutoConfig.from_pretrained(path, vocab_size=model_vocab_size(args.vocab_size))
        tasks[path] = SortingTask(config.to_dict(), args.segment_length).train()
        optimizers[path] = torch.optim.Adam(tasks[path].parameters(), lr=1e-3)
    seconds: Dict[str, List[float]] = {path: [] for path in args.configs}
    for step in range(args.steps + 3):
        for path, task in tasks.items():
            start = time.perf_counter()
            loss = task.run_batch(batch, "train")["loss"]
            optimizers[path].zero_grad()
            loss.backward()
            optimizers[path].step()
            if step >= 3:
                seconds[path].append(time.perf_counter() - start)
    return seconds


def main(argv: Optional[List[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    seconds = time_steps(args)
    import torch

    print(
        f"training step, {args.sequence_length} symbols in segments of {args.segment_length}, batch {args.batch_size}, "
        f"{args.steps} steps each, threads {torch.get_num_threads()}"
    )
    for path, times in seconds.items():
        q1, median, q3 = statistics.quantiles(times, n=4)
        print(f"{Path(path).name:32s} median {median:.3f} s  (quartiles {q1:.3f} - {q3:.3f})")


if __name__ == "__main__":
    main()
