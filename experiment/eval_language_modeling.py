"""Evaluates a language-modelling checkpoint: corpus perplexity and bits per token on the validation and test splits.

The corpus, tokenizer, segment length and segments per window are read from the checkpoint (what
``train_language_modeling`` trained with); each may be overridden. Streams are read as in training, memory carried
from window to window, reset at the start of each split.

Example:
    python -m experiment.eval_language_modeling \\
        --checkpoint outputs/language_modeling/memoria-seed42/checkpoints/final.ckpt
"""

from typing import Dict, List, Optional

from .cli import make_parser, parse_devices


def build_parser():
    """The script's arguments."""
    parser = make_parser(__doc__)
    parser.add_argument("--checkpoint", required=True, help="Lightning checkpoint written by train_language_modeling")
    parser.add_argument("--splits", nargs="+", default=["valid", "test"], choices=("train", "valid", "test"))
    parser.add_argument("--data-dir", help="the corpus (default: the one the checkpoint was trained on)")
    parser.add_argument("--tokenizer", help="tokenizer directory or 'bytes' (default: the checkpoint's)")
    parser.add_argument("--segment-length", type=int, help="tokens per segment (default: the checkpoint's)")
    parser.add_argument("--segments-per-batch", type=int, help="segments per window (default: the checkpoint's)")
    parser.add_argument("--batch-size", type=int, default=1, help="parallel streams")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--devices", default="1")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--seed", type=int, default=42, help="seeds the models' random choices (Memoria's ties)")
    return parser


def evaluate(args) -> Dict[str, Dict[str, float]]:
    """Loads the checkpoint and returns {split: {"ppl", "bits_per_token", "segment_ppl", "loss"}}."""
    import warnings

    import lightning as L

    from .tasks.language_modeling import LanguageModelingDataModule, LanguageModelingTask
    from .train_language_modeling import load_splits
    from .training import check_checkpoint, quiet_lightning

    quiet_lightning()
    warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__` defined.*")
    L.seed_everything(args.seed, verbose=False)
    check_checkpoint(args.checkpoint, "--checkpoint")
    task = LanguageModelingTask.load_from_checkpoint(args.checkpoint, map_location="cpu", weights_only=True)
    settings = dict(task.hparams.get("data_settings") or {})
    if not settings:
        raise ValueError(f"{args.checkpoint} holds no data_settings: was it written by train_language_modeling?")
    for key in ("data_dir", "tokenizer", "segments_per_batch"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    segment_length = args.segment_length or task.hparams.segment_length
    task.hparams.segment_length = segment_length
    tokenizer, splits = load_splits(settings)
    if tokenizer.vocab_size != task.model.config.vocab_size:
        raise ValueError(
            f"--tokenizer has {tokenizer.vocab_size} tokens but the model was trained with "
            f"{task.model.config.vocab_size}"
        )
    results = {}
    for split in args.splits:
        datamodule = LanguageModelingDataModule(
            {**splits, "test": splits[split]},
            args.batch_size,
            args.batch_size,
            segment_length,
            settings["segments_per_batch"],
            tokenizer.eos_id,
            settings["document_boundaries"],
        )
        trainer = L.Trainer(
            accelerator=args.accelerator,
            devices=parse_devices(args.devices),
            precision=args.precision,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        metrics = trainer.test(task, datamodule=datamodule, verbose=False)[0]
        results[split] = {key.removeprefix("test/"): value for key, value in metrics.items()}
    return results


def main(argv: Optional[List[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    for split, metrics in evaluate(args).items():
        print(
            f"{split}: perplexity {metrics['ppl']:.3f}, {metrics['bits_per_token']:.4f} bits per token "
            f"(per-segment average perplexity {metrics['segment_ppl']:.3f}, for comparison with the paper's code)"
        )


if __name__ == "__main__":
    main()
