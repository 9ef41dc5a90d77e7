"""The default sorting experiment: Memoria Transformer against the GPT-2 baseline, on CPU in about ten minutes.

Generates its own data, trains both small models with the same settings and seed, tests their best
checkpoints and prints the test token accuracies side by side. Everything lands under --output-dir.

Example:
    python -m experiment.run_sorting                          # prompt of 4x the segment length
    python -m experiment.run_sorting --sequence-length 512     # 16x
"""

import argparse
from pathlib import Path
from typing import Dict, List, Optional

from . import train_sorting
from .longseq_formers.data.sorting import generate_sorting_data, save_sorting_data

CONFIGS = Path(__file__).parent / "configs"
MODELS = {
    "Memoria Transformer": CONFIGS / "memoria-gpt2-sort-small.json",
    "Transformer (baseline)": CONFIGS / "gpt2-sort-small.json",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="outputs/sorting")
    parser.add_argument("--sequence-length", type=int, default=128, help="symbols before the separator")
    parser.add_argument("--segment-length", type=int, default=32)
    parser.add_argument("--vocab-size", type=int, default=10, help="number of symbols (the paper's is 20)")
    parser.add_argument("--num-train", type=int, default=4000)
    parser.add_argument("--num-dev", type=int, default=200)
    parser.add_argument("--num-test", type=int, default=500)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds; one run per model each")
    parser.add_argument("--max-steps", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--warmup-steps", type=int, default=25)
    parser.add_argument("--val-check-interval", type=int, default=125)
    parser.add_argument("--progress-bar", action="store_true")
    return parser


def run(args: argparse.Namespace) -> Dict[str, List[Dict]]:
    """Runs every model with every seed; returns each model's results.json contents, one per seed."""
    output_dir = Path(args.output_dir)
    data_path = output_dir / f"sort-T{args.sequence_length}-K{args.vocab_size}-seed{args.data_seed}.pt"
    if not data_path.exists():
        data = generate_sorting_data(
            args.sequence_length, args.vocab_size, args.num_train, args.num_dev, args.num_test, args.data_seed
        )
        save_sorting_data(data, data_path)
    results: Dict[str, List[Dict]] = {name: [] for name in MODELS}
    for seed in args.seeds:
        for name, config in MODELS.items():
            print(f"== training {name}, seed {seed}")
            train_args = train_sorting.build_parser().parse_args(
                [
                    f"--data={data_path}",
                    f"--model-config={config}",
                    f"--output-dir={output_dir / f'{config.stem}-T{args.sequence_length}-seed{seed}'}",
                    f"--segment-length={args.segment_length}",
                    f"--batch-size={args.batch_size}",
                    f"--learning-rate={args.learning_rate}",
                    f"--warmup-steps={args.warmup_steps}",
                    f"--max-steps={args.max_steps}",
                    f"--val-check-interval={args.val_check_interval}",
                    f"--seed={seed}",
                    "--accelerator=cpu",
                    "--devices=1",
                ]
                + ([] if args.progress_bar else ["--no-progress-bar"])
            )
            results[name].append(train_sorting.train(train_args))
    return results


def format_table(results: Dict[str, List[Dict]], seeds: List[int]) -> str:
    """A plain-text table: one row per model, test accuracy per seed, their mean, and the mean step time."""
    header = ["model"] + [f"seed {seed}" for seed in seeds] + ["mean", "step (s)", "params"]
    rows = [header]
    for name, runs in results.items():
        accuracies = [run["test_accuracy"] for run in runs]
        step = sum(run["mean_step_seconds"] for run in runs) / len(runs)
        rows.append(
            [name]
            + [f"{a:.4f}" for a in accuracies]
            + [f"{sum(accuracies) / len(accuracies):.4f}", f"{step:.3f}", str(runs[0]["parameters"])]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows)


def main(argv: Optional[List[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    results = run(args)
    print(
        f"\nSorting, {args.sequence_length} symbols from {args.vocab_size}, segments of {args.segment_length}, "
        f"{args.max_steps} steps of batch {args.batch_size}: test token accuracy"
    )
    print(format_table(results, args.seeds))


if __name__ == "__main__":
    main()
