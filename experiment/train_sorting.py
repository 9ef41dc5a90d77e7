"""Trains a segment-recurrent model (Memoria Transformer or a baseline) on a sorting-data file.

Writes TensorBoard logs, checkpoints (best by dev accuracy, and last), the final model in Hugging Face format
and results.json (test accuracy of the final weights and of the best checkpoint, mean training-step time) under
--output-dir. The defaults are the paper's training settings.

Example:
    python -m experiment.train_sorting --data outputs/data/sort-1k.json \\
        --model-config experiment/configs/memoria-gpt2-sort.json --output-dir outputs/memoria-sort-1k \\
        --segment-length 256 --devices 4 --strategy ddp --precision bf16-mixed
"""

from typing import Any, Dict, List, Optional

from .cli import add_hardware_arguments, add_model_arguments, add_training_arguments, make_parser


def build_parser():
    """The script's arguments."""
    parser = make_parser(__doc__)
    data = parser.add_argument_group("data")
    data.add_argument("--data", required=True, help="JSON file in the paper's layout (experiment.make_sorting_data)")
    data.add_argument(
        "--segment-alignment",
        choices=("start", "end"),
        default="start",
        help="cut segments from the start of the sequence (the paper's) or from its end",
    )
    add_model_arguments(parser)
    add_training_arguments(parser)
    add_hardware_arguments(parser)
    return parser


def train(args) -> Dict[str, Any]:
    """Trains, tests the last and the best checkpoints and writes results.json; returns its contents."""
    from .tasks import SortingDataModule, SortingTask
    from .training import load_model_config, train_and_test

    datamodule = SortingDataModule(args.data, args.batch_size, args.eval_batch_size, args.num_workers)
    config = load_model_config(args, vocab_size=datamodule.model_vocab_size)

    def make_task() -> SortingTask:
        return SortingTask(
            config.to_dict(),
            args.segment_length,
            learning_rate=args.learning_rate,
            warmup_ratio=args.warmup_ratio,
            weight_decay=args.weight_decay,
            segment_alignment=args.segment_alignment,
        )

    return train_and_test(args, make_task, datamodule)


def main(argv: Optional[List[str]] = None) -> None:
    results = train(build_parser().parse_args(argv))
    print(
        f"test accuracy {results['test']['accuracy']:.4f} (final weights), "
        f"{results['test_best']['accuracy']:.4f} (best on dev); mean step {results['mean_step_seconds']:.3f} s; "
        f"outputs in {results['output_dir']}"
    )


if __name__ == "__main__":
    main()
