"""The default sorting experiment: the Memoria Transformer against the same-size Transformer without memory.

Generates its own data (the paper's generator), trains both small models with the same settings and seeds,
tests their last checkpoints and prints the test token accuracies side by side, with the difference and which
model is better. Everything lands under --output-dir.

Example:
    python -m experiment.run_sorting                             # prompt of 4 segments, seed 42
    python -m experiment.run_sorting --seeds 42 43 44            # three seeds
"""

from pathlib import Path
from typing import Dict, List, Optional

from .cli import arguments, make_parser

CONFIGS = Path(__file__).parent / "configs"
MODELS = {
    "Memoria Transformer": CONFIGS / "memoria-gpt2-sort-small.json",
    "Transformer": CONFIGS / "gpt2-sort-small.json",
}
BASELINE = "Transformer"


def build_parser():
    """The script's arguments."""
    parser = make_parser(__doc__)
    parser.add_argument("--output-dir", default="outputs/sorting")
    parser.add_argument("--sequence-length", type=int, default=128, help="symbols before the separator")
    parser.add_argument("--segment-length", type=int, default=32)
    parser.add_argument("--vocab-size", type=int, default=10, help="number of symbols (the paper's is 20)")
    parser.add_argument("--num-train", type=int, default=4000)
    parser.add_argument("--num-dev", type=int, default=200)
    parser.add_argument("--num-test", type=int, default=500)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42], help="training seeds; one run per model each")
    parser.add_argument("--max-steps", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--eval-batch-size", type=int, default=50)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--val-check-interval", type=int, default=125)
    parser.add_argument("--no-progress-bar", action="store_true", help="hide the progress bars")
    return parser


def make_data(args) -> Path:
    """Writes the data file unless it exists; returns its path."""
    from .longseq_formers.data.sorting import generate_sorting_data, save_sorting_data

    path = Path(args.output_dir) / f"sort-T{args.sequence_length}-K{args.vocab_size}-seed{args.data_seed}.json"
    if not path.exists():
        data = generate_sorting_data(
            args.sequence_length, args.vocab_size, args.num_train, args.num_dev, args.num_test, args.data_seed
        )
        save_sorting_data(data, path)
    return path


def run(args) -> Dict[str, List[Dict]]:
    """Runs every model with every seed; returns each model's results.json contents, one per seed."""
    from . import train_sorting

    data_path = make_data(args)
    results: Dict[str, List[Dict]] = {name: [] for name in MODELS}
    for seed in args.seeds:
        for name, config in MODELS.items():
            print(f"== training {name}, seed {seed}", flush=True)
            output_dir = Path(args.output_dir) / f"{config.stem}-T{args.sequence_length}-seed{seed}"
            train_args = arguments(
                data=data_path,
                model_config=config,
                output_dir=output_dir,
                segment_length=args.segment_length,
                batch_size=args.batch_size,
                eval_batch_size=args.eval_batch_size,
                learning_rate=args.learning_rate,
                warmup_ratio=args.warmup_ratio,
                max_steps=args.max_steps,
                val_check_interval=args.val_check_interval,
                seed=seed,
                accelerator="cpu",
                devices=1,
                no_progress_bar=args.no_progress_bar,
            )
            results[name].append(train_sorting.train(train_sorting.build_parser().parse_args(train_args)))
    return results


def main(argv: Optional[List[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    results = run(args)
    from .summary import ComparisonRow, format_comparison

    rows = [
        ComparisonRow(
            name,
            [run["test"]["accuracy"] for run in runs],
            runs[0]["parameters"],
            sum(run["mean_step_seconds"] for run in runs) / len(runs),
        )
        for name, runs in results.items()
    ]
    print(
        f"\nSorting, {args.sequence_length} symbols from {args.vocab_size}, segments of {args.segment_length}, "
        f"{args.max_steps} steps of batch {args.batch_size}: test token accuracy (last checkpoint)\n"
    )
    print(format_comparison(rows, args.seeds, "test accuracy", True, BASELINE, args.output_dir))


if __name__ == "__main__":
    main()
