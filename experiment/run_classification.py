"""The long-document classification comparison on CPU: Memoria BERT, its memoryless ablation and two baselines.

The task is the First Folio genre (comedy, history, tragedy) of a Shakespeare play from an excerpt of 1,500
words, read as 8 segments of 256 tokens (2,048 tokens; the excerpt is cut there), with plays split so that no
play is in two splits (``data/shakespeare.py``) and a BPE tokenizer trained here on the training
plays. Small encoders are trained from scratch with the same settings and seeds, and one table per metric is
printed: test accuracy and macro-F1 of the weights at the end of training per seed, the mean, the difference from
the truncation baseline, which is better and whether that exceeds the seed spread. (With the default validation
every 100 steps of a 160-batch epoch, dev is checked once, at step 100, so the best-on-dev checkpoint, whose test
metrics each results.json also holds, is not informative here.) Runs whose results.json exists with the same
settings are read back (``--retrain`` to redo them). Everything lands under --output-dir.

Example:
    python -m experiment.run_classification                    # the full comparison (3 seeds)
    python -m experiment.run_classification --quick            # one seed, fewer steps: a smoke test
    python -m experiment.run_classification --models memoria-bert bert-truncated --seeds 1 2 3 4 5
"""

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .cli import arguments, make_parser, override_arguments

CONFIGS = Path(__file__).parent / "configs"
# key: (name in the table, configuration file, configuration overrides, extra train_classification arguments)
MODEL_CHOICES: Dict[str, Tuple[str, Path, Dict[str, Any], Dict[str, Any]]] = {
    "memoria-bert": ("Memoria BERT", CONFIGS / "memoria-bert-genre-small.json", {}, {}),
    "memoria-bert-erased": (
        "Memoria BERT, erased every segment",
        CONFIGS / "memoria-bert-genre-small.json",
        {"memoria_reset_period": 1},
        {},
    ),
    "bert-mean": ("BERT, mean of segment logits", CONFIGS / "bert-genre-small.json", {}, {"prediction": "mean"}),
    "bert-truncated": ("BERT, first segment only", CONFIGS / "bert-genre-small.json", {}, {"max_segments": 1}),
}
BASELINE = "bert-truncated"
QUICK = dict(seeds=[42], max_steps=40, val_check_interval=20)
RUN_SETTINGS = (
    "data",
    "config_override",
    "prediction",
    "segment_length",
    "batch_size",
    "learning_rate",
    "warmup_ratio",
    "max_steps",
    "seed",
    "max_segments",
)


def build_parser():
    """The script's arguments."""
    parser = make_parser(__doc__)
    parser.add_argument("--output-dir", default="outputs/classification")
    parser.add_argument("--models", nargs="+", choices=list(MODEL_CHOICES), default=list(MODEL_CHOICES))
    parser.add_argument("--texts-dir", help="shksprdata's texts/ (default: the installed shakespeare package's)")
    parser.add_argument("--excerpt-words", type=int, default=1500)
    parser.add_argument("--train-stride-words", type=int, default=750, help="training excerpts start this far apart")
    parser.add_argument("--vocab-size", type=int, default=4000, help="of the BPE tokenizer trained on train plays")
    parser.add_argument("--segment-length", type=int, default=256)
    parser.add_argument("--segments", type=int, default=8, help="segments read per document")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the split of plays")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44], help="training seeds")
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--eval-batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--warmup-ratio", type=float, default=0.06)
    parser.add_argument("--val-check-interval", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="smoke test: " + ", ".join(map(str, QUICK.items())))
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


def make_data(args) -> Tuple[Path, Path]:
    """Writes the genre data (classification JSON) and trains its tokenizer, unless they exist; returns their paths."""
    from .data.classification import save_classification_data
    from .data.shakespeare import default_texts_dir, read_play, shakespeare_genre_data
    from .data.tokenization import train_bpe_tokenizer

    name = f"genre-w{args.excerpt_words}-s{args.train_stride_words}-seed{args.data_seed}"
    data_dir = Path(args.output_dir) / "data"
    data_path, tokenizer_dir = data_dir / f"{name}.json", data_dir / f"{name}-bpe{args.vocab_size}"
    if not data_path.exists() or not (tokenizer_dir / "tokenizer.json").exists():
        texts_dir = args.texts_dir or default_texts_dir()
        data, plays = shakespeare_genre_data(
            texts_dir, args.excerpt_words, args.train_stride_words, seed=args.data_seed
        )
        train_bpe_tokenizer((read_play(texts_dir, play) for play in plays["train"]), args.vocab_size, tokenizer_dir)
        save_classification_data(data, data_path)
        print("plays: " + "; ".join(f"{split}: {', '.join(names)}" for split, names in plays.items()), flush=True)
    return data_path, tokenizer_dir


def train_one(args, key: str, data_path: Path, tokenizer_dir: Path, seed: int) -> Dict:
    """Trains (or reads back) model ``key`` with one seed; returns its results.json contents."""
    from . import train_classification
    from .training import saved_results

    _, config, overrides, extra = MODEL_CHOICES[key]
    output_dir = Path(args.output_dir) / f"{key}-seed{seed}"
    options = {"max_segments": args.segments, **extra}
    train_args = train_classification.build_parser().parse_args(
        arguments(
            dataset="json",
            data=data_path,
            tokenizer=tokenizer_dir,
            model_config=config,
            output_dir=output_dir,
            segment_length=args.segment_length,
            batch_size=args.batch_size,
            eval_batch_size=args.eval_batch_size,
            learning_rate=args.learning_rate,
            warmup_ratio=args.warmup_ratio,
            max_steps=args.max_steps,
            epochs=1000,
            val_check_interval=args.val_check_interval,
            seed=seed,
            accelerator="cpu",
            devices=1,
            no_progress_bar=args.no_progress_bar,
            **options,
        )
        + override_arguments(overrides)
    )
    saved = None if args.retrain else saved_results(output_dir, train_args, RUN_SETTINGS)
    if saved is not None:
        print(f"== {key}, seed {seed}: read back from {output_dir}", flush=True)
        return saved
    print(f"== training {key}, seed {seed}", flush=True)
    train_args.overwrite = True  # a run with other settings (or --retrain) is replaced
    return train_classification.train(train_args)


def run(args) -> Dict[str, List[Dict]]:
    """Every model with every seed; returns {key: [results per seed]}."""
    data_path, tokenizer_dir = make_data(args)
    results: Dict[str, List[Dict]] = {key: [] for key in args.models}
    for seed in args.seeds:
        for key in args.models:
            results[key].append(train_one(args, key, data_path, tokenizer_dir, seed))
    return results


def report(args, results: Dict[str, List[Dict]]) -> str:
    """One table per metric: test accuracy and macro-F1 of the weights at the end of training."""
    from .summary import ComparisonRow, format_comparison

    baseline = MODEL_CHOICES[BASELINE if BASELINE in args.models else args.models[-1]][0]
    sections = []
    for metric, label in (("accuracy", "test accuracy"), ("macro_f1", "test macro-F1")):
        rows = [
            ComparisonRow(
                MODEL_CHOICES[key][0],
                [run["test"][metric] for run in runs],
                runs[0]["parameters"],
                sum(run["mean_step_seconds"] for run in runs) / len(runs),
            )
            for key, runs in results.items()
        ]
        title = (
            f"Shakespeare genre, {args.segments} segments of {args.segment_length} tokens, {args.max_steps} "
            f"steps of batch {args.batch_size}: {label} of the final weights"
        )
        table = format_comparison(rows, args.seeds, label, True, baseline, args.output_dir)
        sections.append(f"{title}\n\n{table}")
    sections.append("The best-on-dev checkpoint's test metrics are in each run's results.json (test_best).")
    return "\n\n".join(sections)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    results = run(args)
    print("\n" + report(args, results))


if __name__ == "__main__":
    main()
