"""The sorting comparison: Memoria, its memoryless ablation, the paper's baselines, RMT and the plain Transformer.

Generates the data (the paper's generator) for each prompt length, trains every small model with the same
settings and seeds, tests the weights at the end of training and prints one table per prompt length: mean and standard
deviation of test token accuracy over the seeds, the difference from the plain Transformer, training-step time
and parameters, with two counting rules as reference points. Runs whose results.json already exists with the
same settings are read back instead of retrained (``--retrain`` to redo them), so an interrupted comparison
resumes where it stopped. Everything lands under --output-dir.

Example:
    python -m experiment.run_sorting --quick                     # a few minutes: one seed, 128 symbols
    python -m experiment.run_sorting                             # the full table: 3 seeds, 128 and 512 symbols
    python -m experiment.run_sorting --models memoria memoria-erased transformer --seeds 1 2 3 4 5
    python -m experiment.run_sorting --models memoria memoria-two-attention memoria-renormalised   # the variants
"""

import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .cli import arguments, make_parser, override_arguments

CONFIGS = Path(__file__).parent / "configs"
# key: (name in the table, configuration file, configuration overrides)
MODEL_CHOICES: Dict[str, Tuple[str, Path, Dict[str, Any]]] = {
    "memoria": ("Memoria Transformer", CONFIGS / "memoria-gpt2-sort-small.json", {}),
    "memoria-erased": (
        "Memoria, erased every segment",
        CONFIGS / "memoria-gpt2-sort-small.json",
        {"memoria_reset_period": 1},
    ),
    "transfo-xl": ("Transformer-XL", CONFIGS / "transfo-xl-sort-small.json", {}),
    "compressive": ("Compressive Transformer", CONFIGS / "compressive-sort-small.json", {}),
    "infinity-former": ("infinity-former", CONFIGS / "infinity-former-sort-small.json", {}),
    "rmt": ("Recurrent Memory Transformer", CONFIGS / "rmt-sort-small.json", {}),
    "transformer": ("Transformer", CONFIGS / "gpt2-sort-small.json", {}),
    # variants of the Memoria Transformer (not in the default comparison)
    "memoria-two-attention": (
        "Memoria, two memory attentions per block",
        CONFIGS / "memoria-gpt2-sort-small.json",
        {"memoria_shared_memory_attention": False},
    ),
    "memoria-renormalised": (
        "Memoria, renormalised lifespan delta",
        CONFIGS / "memoria-gpt2-sort-small.json",
        {"memoria_lifespan_delta": "renormalised"},
    ),
}
DEFAULT_MODELS = ["memoria", "memoria-erased", "transfo-xl", "compressive", "infinity-former", "rmt", "transformer"]
MODELS = {name: (path, overrides) for name, path, overrides in MODEL_CHOICES.values()}
BASELINE = "transformer"
QUICK = dict(sequence_lengths=[128], seeds=[42], max_steps=100, num_train=1600, num_dev=100, num_test=200)
# the settings a saved run must share with this one to be reused
RUN_SETTINGS = (
    "data",
    "config_override",
    "segment_length",
    "batch_size",
    "learning_rate",
    "warmup_ratio",
    "max_steps",
    "seed",
)


def build_parser():
    """The script's arguments."""
    parser = make_parser(__doc__)
    parser.add_argument("--output-dir", default="outputs/sorting")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=list(MODEL_CHOICES),
        default=DEFAULT_MODELS,
        help="models to compare (memoria-two-attention and memoria-renormalised are the Memoria Transformer's variants)",
    )
    parser.add_argument(
        "--sequence-lengths", type=int, nargs="+", default=[128, 512], help="symbols before the separator"
    )
    parser.add_argument("--segment-length", type=int, default=32)
    parser.add_argument("--vocab-size", type=int, default=10, help="number of symbols (the paper's is 20)")
    parser.add_argument("--num-train", type=int, default=3200)
    parser.add_argument("--num-dev", type=int, default=100)
    parser.add_argument("--num-test", type=int, default=300)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44], help="training seeds")
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--eval-batch-size", type=int, default=50)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--warmup-ratio", type=float, default=0.06)
    parser.add_argument("--val-check-interval", type=int, default=100)
    parser.add_argument(
        "--quick", action="store_true", help="one seed, 128 symbols, 100 steps: " + ", ".join(map(str, QUICK.items()))
    )
    parser.add_argument("--retrain", action="store_true", help="train again even where results.json exists")
    parser.add_argument("--no-progress-bar", action="store_true", help="hide the progress bars")
    return parser


def parse_args(argv: Optional[List[str]] = None):
    """Parses the arguments; ``--quick`` replaces the settings it names."""
    args = build_parser().parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    return args


def make_data(args, sequence_length: int) -> Path:
    """Writes the data file of ``sequence_length`` symbols unless it exists; returns its path."""
    from .data.sorting import generate_sorting_data, save_sorting_data

    name = f"sort-T{sequence_length}-K{args.vocab_size}-n{args.num_train}-{args.num_dev}-{args.num_test}"
    path = Path(args.output_dir) / "data" / f"{name}-seed{args.data_seed}.json"
    if not path.exists():
        data = generate_sorting_data(
            sequence_length, args.vocab_size, args.num_train, args.num_dev, args.num_test, args.data_seed
        )
        save_sorting_data(data, path)
    return path


def training_arguments(args, key: str, data_path: Path, sequence_length: int, seed: int):
    """The parsed ``train_sorting`` arguments of model ``key`` on one data file with one seed."""
    from . import train_sorting

    _, config, overrides = MODEL_CHOICES[key]
    output_dir = Path(args.output_dir) / f"T{sequence_length}" / f"{key}-seed{seed}"
    epochs = math.ceil(args.max_steps * args.batch_size / args.num_train)
    return train_sorting.build_parser().parse_args(
        arguments(
            data=data_path,
            model_config=config,
            output_dir=output_dir,
            segment_length=args.segment_length,
            batch_size=args.batch_size,
            eval_batch_size=args.eval_batch_size,
            learning_rate=args.learning_rate,
            warmup_ratio=args.warmup_ratio,
            max_steps=args.max_steps,
            epochs=epochs,
            val_check_interval=args.val_check_interval,
            seed=seed,
            accelerator="cpu",
            devices=1,
            no_progress_bar=args.no_progress_bar,
        )
        + override_arguments(overrides)
    )


def train_one(args, key: str, data_path: Path, sequence_length: int, seed: int) -> Dict:
    """Trains (or reads back) model ``key`` on one data file with one seed; returns its results.json contents."""
    from . import train_sorting
    from .training import saved_results

    train_args = training_arguments(args, key, data_path, sequence_length, seed)
    output_dir = Path(train_args.output_dir)
    saved = None if args.retrain else saved_results(output_dir, train_args, RUN_SETTINGS)
    if saved is not None:
        print(f"== {key}, {sequence_length} symbols, seed {seed}: read back from {output_dir}", flush=True)
        return saved
    print(f"== training {key}, {sequence_length} symbols, seed {seed}", flush=True)
    train_args.overwrite = True  # a run with other settings (or --retrain) is replaced
    return train_sorting.train(train_args)


def counting_rules(data_path: Path, segment_length: int) -> Dict[str, float]:
    """Test accuracy of the counting rules: over the last segment only, and over the whole sequence."""
    from .data.sorting import counting_rule_accuracy, load_sorting_data

    data = load_sorting_data(data_path)
    return {
        "count the last segment's symbols, then emit by count": counting_rule_accuracy(
            data.test, data.sequence_length, data.vocab_size, segment_length
        ),
        "count the whole sequence, then emit by count": counting_rule_accuracy(
            data.test, data.sequence_length, data.vocab_size
        ),
    }


def run(args) -> Dict[int, Dict[str, List[Dict]]]:
    """Every model with every seed at every prompt length; returns {length: {key: [results per seed]}}."""
    results: Dict[int, Dict[str, List[Dict]]] = {}
    for sequence_length in args.sequence_lengths:
        data_path = make_data(args, sequence_length)
        results[sequence_length] = {key: [] for key in args.models}
        for seed in args.seeds:
            for key in args.models:
                results[sequence_length][key].append(train_one(args, key, data_path, sequence_length, seed))
    return results


def report(args, results: Dict[int, Dict[str, List[Dict]]]) -> str:
    """One table per prompt length, with the counting rules beneath it."""
    from .summary import ComparisonRow, format_comparison

    baseline = MODEL_CHOICES[BASELINE if BASELINE in args.models else args.models[-1]][0]
    sections = []
    for sequence_length, by_model in results.items():
        rows = [
            ComparisonRow(
                MODEL_CHOICES[key][0],
                [run["test"]["accuracy"] for run in runs],
                runs[0]["parameters"],
                sum(run["mean_step_seconds"] for run in runs) / len(runs),
            )
            for key, runs in by_model.items()
        ]
        title = (
            f"Sorting, {sequence_length} symbols from {args.vocab_size} ({sequence_length // args.segment_length}x "
            f"the segment of {args.segment_length}), {args.max_steps} steps of batch {args.batch_size}: "
            "test token accuracy at the end of training"
        )
        table = format_comparison(rows, args.seeds, "test accuracy", True, baseline, args.output_dir)
        rules = counting_rules(make_data(args, sequence_length), args.segment_length)
        lines = [f"  {name}: {accuracy:.4f}" for name, accuracy in rules.items()]
        sections.append("\n".join([title, "", table, "", "Reference points on the same test set:", *lines]))
    return "\n\n".join(sections)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    results = run(args)
    print("\n" + report(args, results))


if __name__ == "__main__":
    main()
