"""Trains a segment-recurrent model as a language model on WikiText-103, PG-19, enwik8 or the Gutenberg corpus.

The corpus is read from local files (see --dataset), tokenised (GPT-2's BPE from --tokenizer, a byte-level BPE
trained here on the training split, or bytes), and cut into --batch-size contiguous streams read one window of
--segments-per-batch segments per step, memory carried from step to step (Transformer-XL's batching). Writes
TensorBoard logs, checkpoints (best by dev perplexity, and last), the tokenizer (tokenizer/), the final model in
Hugging Face format (model/) and results.json with test_ppl (and test_bpc for bytes) of the final weights (checkpoints/final.ckpt).

Example:
    python -m experiment.train_language_modeling --dataset wikitext103 --data-dir data/wikitext-103-raw \\
        --tokenizer data/gpt2 --model-config experiment/configs/memoria-gpt2-lm.json \\
        --output-dir outputs/lm/memoria-wt103 --segment-length 150 --devices 4 --strategy ddp
    python -m experiment.train_language_modeling --dataset pg19 --data-dir outputs/data/gutenberg/pg19 \\
        --model-config experiment/configs/memoria-gpt2-lm-small.json --output-dir outputs/lm/memoria-small \\
        --bpe-vocab-size 4096 --max-steps 300
"""

from typing import Any, Dict, List, Optional

from .cli import add_hardware_arguments, add_model_arguments, add_training_arguments, make_parser


def add_data_arguments(parser) -> None:
    """--dataset, --data-dir and how it is read and tokenised."""
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", required=True, choices=("wikitext103", "pg19", "enwik8"))
    data.add_argument(
        "--data-dir",
        required=True,
        help="wikitext103: wiki.{train,valid,test}.raw (or .tokens); pg19: train/ validation/ test/ of <id>.txt; "
        "enwik8: the enwik8 file or enwik8.zip (or their directory); any: a datasets save_to_disk directory",
    )
    data.add_argument("--train-fraction", type=float, default=1.0, help="pg19: fraction of training books kept")
    data.add_argument("--book-seed", type=int, default=0, help="pg19: seed of the --train-fraction draw")
    data.add_argument("--enwik8-heldout-bytes", type=int, default=5_000_000, help="enwik8: bytes of valid and of test")
    data.add_argument(
        "--tokenizer",
        help="'bytes', or a directory with tokenizer.json or GPT-2's vocab.json and merges.txt; default: bytes "
        "for enwik8, else a byte-level BPE of --bpe-vocab-size trained on the training split",
    )
    data.add_argument("--bpe-vocab-size", type=int, default=16384, help="size of the BPE trained here")
    data.add_argument(
        "--segments-per-batch",
        type=int,
        default=1,
        help="consecutive segments per step and stream (one truncated-BPTT window)",
    )
    data.add_argument(
        "--document-boundaries",
        choices=("carry", "reset"),
        default="carry",
        help="carry: memory flows across documents (the paper's); reset: each document starts a fresh memory",
    )


def build_parser():
    """The script's arguments."""
    parser = make_parser(__doc__)
    add_data_arguments(parser)
    add_model_arguments(parser)
    add_training_arguments(parser, learning_rate=2e-4, batch_size=8, eval_batch_size=8)
    add_hardware_arguments(parser)
    parser.set_defaults(segment_length=150)
    return parser


def data_settings(args) -> Dict[str, Any]:
    """The settings that say how the corpus is read, kept in the checkpoint for evaluation."""
    keys = (
        "dataset",
        "data_dir",
        "train_fraction",
        "book_seed",
        "enwik8_heldout_bytes",
        "tokenizer",
        "segments_per_batch",
        "document_boundaries",
    )
    return {key: getattr(args, key) for key in keys}


def load_splits(settings: Dict[str, Any], tokenizer=None, bpe_vocab_size: int = 16384):
    """Reads the corpus and tokenises it.

    Args:
        settings: :func:`data_settings`.
        tokenizer: a tokenizer to use; None: the one ``settings["tokenizer"]`` names, else bytes for enwik8, else a
            BPE of ``bpe_vocab_size`` trained on the training split.

    Returns:
        (the tokenizer, {"train", "valid", "test"}: each a list of documents' token ids).
    """
    from .data.language_modeling import (
        ByteTokenizer,
        load_corpus,
        load_tokenizer,
        train_bpe_tokenizer,
    )

    options = {}
    if settings["dataset"] == "pg19":
        options = dict(train_fraction=settings["train_fraction"], seed=settings["book_seed"])
    elif settings["dataset"] == "enwik8":
        options = dict(heldout_bytes=settings["enwik8_heldout_bytes"])
    corpus = load_corpus(settings["dataset"], settings["data_dir"], **options)
    if tokenizer is None:
        if settings["tokenizer"]:
            tokenizer = load_tokenizer(settings["tokenizer"])
        elif settings["dataset"] == "enwik8":
            tokenizer = ByteTokenizer()
        else:
            tokenizer = train_bpe_tokenizer(corpus["train"], bpe_vocab_size)
    return tokenizer, {split: tokenizer.encode_documents(documents) for split, documents in corpus.items()}


def train(args) -> Dict[str, Any]:
    """Trains, tests the last and the best checkpoints and writes results.json; returns its contents."""
    import warnings
    from pathlib import Path

    from .tasks.language_modeling import LanguageModelingDataModule, LanguageModelingTask
    from .training import load_model_config, train_and_test, write_results

    # the window stream has a length and is read by one process: the warning about workers does not apply
    warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__` defined.*")
    settings = data_settings(args)
    tokenizer, splits = load_splits(settings, bpe_vocab_size=args.bpe_vocab_size)
    tokenizer_dir = Path(args.output_dir) / "tokenizer"
    tokenizer.save(tokenizer_dir)
    settings["tokenizer"] = str(tokenizer_dir)
    datamodule = LanguageModelingDataModule(
        splits,
        args.batch_size,
        args.eval_batch_size,
        args.segment_length,
        args.segments_per_batch,
        tokenizer.eos_id,
        args.document_boundaries,
    )
    config = load_model_config(args, vocab_size=tokenizer.vocab_size)

    def make_task() -> LanguageModelingTask:
        return LanguageModelingTask(
            config.to_dict(),
            args.segment_length,
            learning_rate=args.learning_rate,
            warmup_ratio=args.warmup_ratio,
            weight_decay=args.weight_decay,
            data_settings=settings,
        )

    counts = {
        f"{split}_tokens": int(sum(len(document) for document in documents)) for split, documents in splits.items()
    }
    results = train_and_test(args, make_task, datamodule, extra_results={"vocab_size": tokenizer.vocab_size, **counts})
    results["test_ppl"] = results["test"]["ppl"]
    if tokenizer.vocab_size == 256:
        results["test_bpc"] = results["test"]["bits_per_token"]
    write_results(Path(args.output_dir) / "results.json", results)
    return results


def main(argv: Optional[List[str]] = None) -> None:
    results = train(build_parser().parse_args(argv))
    figure = f"test bits per character {results['test_bpc']:.4f}" if "test_bpc" in results else ""
    print(
        f"test perplexity {results['test_ppl']:.3f} (final weights), {results['test_best']['ppl']:.3f} (best on "
        f"dev){'; ' + figure if figure else ''}; mean step {results['mean_step_seconds']:.3f} s; "
        f"outputs in {results['output_dir']}"
    )


if __name__ == "__main__":
    main()
